"""The competence drop of every round per task (sciq, ARC-Easy), on the reported and on the dev MC items of a run.

    python scripts/competence_by_task.py RUN --out FILE.json

Reads the per-item correctness each round stored (steps `eval_competence` and `eval_dev`) and the run's data
plan (which item is which task); loads no model. For each round: the plain mean drop, the drop per task, and
the drop weighted to the reported items' task mix (what the competence gate reads from this version on).
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections import Counter
from pathlib import Path

from superalign.config import RunConfig
from superalign.plan import make_plan
from superalign.stats import paired_difference_ci, stratified_paired_difference_ci
from superalign.store.runstore import RunStore


def breakdown(items: list, base: list[float], after: list[float], weights: dict[str, float]) -> dict:
    tasks = [it.task for it in items]
    per_task = {}
    for t in sorted(set(tasks)):
        idx = [i for i, x in enumerate(tasks) if x == t]
        per_task[t] = round(paired_difference_ci([base[i] for i in idx], [after[i] for i in idx])[0], 4)
    weighted, lo, hi = stratified_paired_difference_ci(base, after, tasks, weights)
    return {
        "drop": round(paired_difference_ci(base, after)[0], 4),
        "per_task": per_task,
        "weighted_to_reported_mix": round(weighted, 4),
        "weighted_ci": [round(lo, 4), round(hi, 4)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    with RunStore(a.run / "run.sqlite") as store:
        cfg = RunConfig.model_validate(store.get_meta("config"))
        plan = make_plan(cfg)
        read = {
            name: {k: (store.step_payload(k, step) or {}).get("competence_correct") for k in range(cfg.rounds + 1)}
            for name, step in (("reported", "eval_competence"), ("dev", "eval_dev"))
        }
    shares = Counter(it.task for it in plan.competence_items)
    weights = {t: n / sum(shares.values()) for t, n in shares.items()}
    out: dict = {"run": a.run.name, "reported_mix": weights, "sets": {}}
    for name, items in (("reported", plan.competence_items), ("dev", plan.dev_competence)):
        got = read[name]
        rows = {}
        for k in range(1, cfg.rounds + 1):
            if got.get(0) and got.get(k) and len(got[0]) == len(got[k]) == len(items):
                rows[str(k)] = breakdown(items, got[0], got[k], weights)
        out["sets"][name] = {"n": len(items), "tasks": dict(Counter(it.task for it in items)), "rounds": rows}
    out["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    for name, s in out["sets"].items():
        for k, r in s["rounds"].items():
            w = r["weighted_to_reported_mix"]
            print(f"{name:8s} round {k}: drop {r['drop']:+.3f} per task {r['per_task']} weighted {w:+.3f}")


if __name__ == "__main__":
    main()
