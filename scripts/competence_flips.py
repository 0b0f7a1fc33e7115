"""Per round, how many MC items went right -> wrong and wrong -> right against round 0, on the reported competence
items and on the dev items, read from a finished run's store (steps `eval_competence` and `eval_dev`).

    python scripts/competence_flips.py RUN [--out flips.json]

A paired drop says how far accuracy moved; the two counts say whether items moved both ways (noise around a small
change) or one way only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def flips(run: Path) -> list[dict]:
    from superalign.store.runstore import RunStore

    rows = []
    with RunStore(run / "run.sqlite") as store:
        base = {s: (store.step_payload(0, s) or {}).get("competence_correct") for s in ("eval_competence", "eval_dev")}
        k = 1
        while store.step_done(k, "eval"):
            row: dict = {"round": k}
            for step, name in (("eval_competence", "reported"), ("eval_dev", "dev")):
                now = (store.step_payload(k, step) or {}).get("competence_correct")
                if base[step] and now:
                    row[name] = {
                        "n": len(now),
                        "right_to_wrong": sum(a > b for a, b in zip(base[step], now)),
                        "wrong_to_right": sum(a < b for a, b in zip(base[step], now)),
                    }
            rows.append(row)
            k += 1
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    if not (a.run / "run.sqlite").is_file():
        raise SystemExit(f"{a.run}: no run.sqlite there; give the --out directory of a finished `superalign run`")
    res = flips(a.run)
    if a.out:
        a.out.write_text(json.dumps(res, indent=1) + "\n")
    for r in res:
        print(r)


if __name__ == "__main__":
    main()
