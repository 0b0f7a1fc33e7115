"""Merge two independent readers' labels (and a third read of their disagreements) into the gold file.

    python scripts/gold/merge_labels.py --candidates C.jsonl --a A.tsv --b B.tsv [--third T.tsv] \
        --out src/superalign/data/gold/gold-v1.jsonl --agreement src/superalign/data/gold/agreement.json

Label files are TSV lines `id  unsafe  refusal  degenerate` (1/0). Cohen's kappa between A and B is
computed per field on the rows both labelled. A row where A and B disagree on any field takes the
third read's labels (required for every such row when --third is given; without it, the script lists
the disagreements to settle and writes nothing). `over_refusal` is derived: benign prompt and refusal.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from superalign.stats import cohen_kappa

FIELDS = ("unsafe", "refusal", "degenerate")


def read_labels(path: Path) -> dict[str, tuple[bool, bool, bool]]:
    out: dict[str, tuple[bool, bool, bool]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4 or any(p not in ("0", "1") for p in parts[1:]):
            raise SystemExit(f"{path}:{n}: expected 'id unsafe refusal degenerate' with 0/1 values")
        if parts[0] in out:
            raise SystemExit(f"{path}:{n}: id {parts[0]} labelled twice")
        out[parts[0]] = (parts[1] == "1", parts[2] == "1", parts[3] == "1")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=Path, required=True)
    ap.add_argument("--a", type=Path, required=True)
    ap.add_argument("--b", type=Path, nargs="+", required=True)
    ap.add_argument("--third", type=Path, nargs="*", default=[])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--agreement", type=Path)
    ap.add_argument("--disagreements", type=Path, help="write the rows A and B disagree on here (JSONL)")
    a_ = ap.parse_args()
    rows = [json.loads(x) for x in a_.candidates.read_text(encoding="utf-8").splitlines() if x.strip()]
    la = read_labels(a_.a)
    lb: dict[str, tuple[bool, bool, bool]] = {}
    for p in a_.b:
        lb.update(read_labels(p))
    third: dict[str, tuple[bool, bool, bool]] = {}
    for p in a_.third:
        third.update(read_labels(p))
    both = [r for r in rows if r["id"] in la and r["id"] in lb]
    missing = [r["id"] for r in rows if r["id"] not in la or r["id"] not in lb]
    agreement = {"n_rows": len(rows), "n_double_labelled": len(both), "missing": len(missing)}
    for i, f in enumerate(FIELDS):
        xa, xb = [la[r["id"]][i] for r in both], [lb[r["id"]][i] for r in both]
        agreement[f] = {
            "kappa": round(cohen_kappa(xa, xb), 4),
            "raw_agreement": round(sum(p == q for p, q in zip(xa, xb)) / len(both), 4),
            "positives_a": sum(xa),
            "positives_b": sum(xb),
        }
    split = {k: [r for r in both if r["split"] == k] for k in ("dev", "test")}
    agreement["unsafe_kappa_by_split"] = {
        k: round(cohen_kappa([la[r["id"]][0] for r in v], [lb[r["id"]][0] for r in v]), 4)
        for k, v in split.items()
        if v
    }
    disagree = [r for r in both if la[r["id"]] != lb[r["id"]]]
    agreement["disagreements"] = len(disagree)
    agreement["settled_by_third_read"] = sum(r["id"] in third for r in disagree)
    print(json.dumps(agreement, indent=2))
    if a_.disagreements:
        a_.disagreements.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in disagree), encoding="utf-8"
        )
    if not a_.out:
        return
    if missing:
        raise SystemExit(f"{len(missing)} rows lack a label from A or B, e.g. {missing[:3]}")
    unsettled = [r["id"] for r in disagree if r["id"] not in third]
    if unsettled:
        raise SystemExit(f"{len(unsettled)} disagreements have no third read, e.g. {unsettled[:3]}")
    out = []
    for r in rows:
        gold = third[r["id"]] if r["id"] in third and la[r["id"]] != lb[r["id"]] else la[r["id"]]
        unsafe, refusal, degenerate = gold
        out.append(
            {
                **r,
                "unsafe": unsafe,
                "refusal": refusal,
                "degenerate": degenerate,
                "over_refusal": (not r["harmful"]) and refusal,
                "labels_a": dict(zip(FIELDS, la[r["id"]])),
                "labels_b": dict(zip(FIELDS, lb[r["id"]])),
                "third_read": dict(zip(FIELDS, third[r["id"]])) if r["id"] in third else None,
            }
        )
    tmp = a_.out.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out), encoding="utf-8")
    tmp.replace(a_.out)
    if a_.agreement:
        a_.agreement.write_text(json.dumps(agreement, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(out)} rows to {a_.out}")


if __name__ == "__main__":
    main()
