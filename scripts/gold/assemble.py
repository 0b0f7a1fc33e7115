"""Assemble the unlabelled candidate rows of the gold set from what the loop really produced.

    python scripts/gold/assemble.py --run runs/demo --generated /tmp/gold/gen --written /tmp/gold/written \
        --self-enhance docs/results/self-enhance-full --out /tmp/gold/candidates.jsonl

Sources (each row keeps its provenance in `source` and `model`):
- a run store (`--run DIR/run.sqlite`): held-out answers of every round (kind `loop`), sampled training
  answers to attack-wrapped queries (`attack` when the query is a template/converter, else `loop`), and
  refusal revisions (`revision`);
- `--generated DIR/*.jsonl`: `superalign generate` outputs (prompt, response, harmful, model);
- `--self-enhance DIR/answers/*.jsonl`: held-out answers of the self-enhance checkpoints;
- `--written DIR/*.jsonl`: freshly written hard cases (kind given per row).
Rows are deduplicated by (prompt, response), sampled per stratum with a fixed seed, grouped by
near-duplicate objective (content-word Jaccard >= 0.5, superalign.data.gold.group_objectives) and split
dev/test by group. The labels are added afterwards, by reading (docs/labelling.md).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
from pathlib import Path

from superalign.data.gold import assign_splits, row_id


def _run_rows(run: Path) -> list[dict]:
    db = sqlite3.connect(f"file:{run / 'run.sqlite'}?mode=ro", uri=True)
    queries = {json.loads(d)["id"]: json.loads(d) for (d,) in db.execute("select data from queries")}
    out = []
    for rnd, step, data in db.execute("select round, step, data from responses order by seq"):
        r = json.loads(data)
        q = queries.get(r["query_id"])
        if q is None:
            continue
        src = q.get("source", "")
        if r.get("system") == "revision":
            kind = "revision"
        elif step == "eval":
            kind = "loop"
        else:
            kind = "attack" if "+" in src and not src.endswith("+plain") else "loop"
        out.append(
            {
                "prompt": q["text"],
                "objective": q.get("objective") or q["text"],
                "response": r["text"],
                "harmful": bool(q.get("harmful")),
                "category": q.get("category", ""),
                "kind": kind,
                "model": r.get("model", ""),
                "source": f"{run.name}/round-{rnd}/{step}/{src}",
            }
        )
    return out


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _generated_rows(d: Path) -> list[dict]:
    out = []
    for f in sorted(d.glob("*.jsonl")):
        for r in _jsonl(f):
            out.append(
                {
                    "prompt": r["prompt"],
                    "objective": r["prompt"],
                    "response": r["response"],
                    "harmful": bool(r["harmful"]),
                    "category": r.get("category", ""),
                    "kind": "loop",
                    "model": r.get("model", f.stem),
                    "source": f"generate/{f.stem}",
                }
            )
    return out


def _self_enhance_rows(d: Path) -> list[dict]:
    out = []
    for f in sorted((d / "answers").glob("*.jsonl")):
        for r in _jsonl(f):
            out.append(
                {
                    "prompt": r["prompt"],
                    "objective": r["prompt"],
                    "response": r["response"],
                    "harmful": bool(r["harmful"]),
                    "category": "",
                    "kind": "loop",
                    "model": f"embedded@self-enhance/{f.stem}",
                    "source": f"{d.name}/answers/{f.stem}",
                }
            )
    return out


def _written_rows(d: Path) -> list[dict]:
    out = []
    for f in sorted(d.glob("*.jsonl")):
        for r in _jsonl(f):
            out.append(
                {
                    "prompt": r["prompt"],
                    "objective": r["prompt"],
                    "response": r["response"],
                    "harmful": bool(r["harmful"]),
                    "category": "",
                    "kind": r["kind"],
                    "model": "written",
                    "source": f"written/{f.stem}/{r.get('subtype', '')}",
                }
            )
    return out


def _sample(rows: list[dict], n: int, stratum: str, seed: int) -> list[dict]:
    """n rows of a stratum; each stratum has its own generator, so adding one source never moves another."""
    return rows if len(rows) <= n else random.Random(f"{seed}/{stratum}").sample(rows, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--generated", type=Path, required=True)
    ap.add_argument("--self-enhance", type=Path, required=True)
    ap.add_argument("--written", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-rounds", default="0,1", help="rounds whose held-out answers are sampled (gold-v1: 0,1)")
    a = ap.parse_args()
    run = _run_rows(a.run)

    def sample(rows: list[dict], n: int, stratum: str) -> list[dict]:
        return _sample(rows, n, stratum, a.seed)

    pick = []
    # Strata and sizes: every round's held-out answers, training answers, revisions, longer answers.
    for rnd in (int(x) for x in a.eval_rounds.split(",")):
        ev = [r for r in run if f"/round-{rnd}/eval/" in r["source"]]
        pick += sample([r for r in ev if r["harmful"]], 45, f"eval{rnd}-harmful") + sample(
            [r for r in ev if not r["harmful"]], 20, f"eval{rnd}-benign"
        )
    train = [r for r in run if "/respond/" in r["source"] and r["kind"] != "revision"]
    pick += sample([r for r in train if r["harmful"]], 110, "train-harmful") + sample(
        [r for r in train if not r["harmful"]], 20, "train-benign"
    )
    pick += sample([r for r in run if r["kind"] == "revision" and r["harmful"]], 45, "revision")
    gen = _generated_rows(a.generated)
    for model in sorted({r["model"] for r in gen}):
        mine = [r for r in gen if r["model"] == model]
        pick += sample([r for r in mine if r["harmful"]], 60, f"gen-{model}-harmful") + sample(
            [r for r in mine if not r["harmful"]], 20, f"gen-{model}-benign"
        )
    se = [r for r in _self_enhance_rows(a.self_enhance) if "/t0" not in r["source"]]
    pick += sample([r for r in se if r["harmful"]], 50, "se-harmful") + sample(
        [r for r in se if not r["harmful"]], 10, "se-benign"
    )
    pick += _written_rows(a.written)
    seen, rows = set(), []
    for r in pick:
        key = (r["prompt"], r["response"])
        if key in seen:
            continue
        seen.add(key)
        rows.append({"id": row_id(r["prompt"], r["response"]), **r})
    rows = assign_splits(rows)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    kinds: dict[str, int] = {}
    for r in rows:
        kinds[f"{r['split']}/{r['kind']}"] = kinds.get(f"{r['split']}/{r['kind']}", 0) + 1
    print(len(rows), "rows;", dict(sorted(kinds.items())))


if __name__ == "__main__":
    main()
