"""Store the per-item competence of a run written before the eval step kept it (step `eval_competence`).

Each round's evaluated version (the base model at round 0, checkpoints/round-K after) scores the run's reported MC
items again, in the run's dtype; the reading is stored only if its accuracy equals the `competence` the run
reported for that round (same weights, same items, deterministic scoring), so what is stored is what the run would
have stored. `rounds.jsonl` then carries `competence_drop` with its paired interval (`superalign report RUN`).

    python scripts/backfill_competence.py RUN
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    args = ap.parse_args()

    from superalign.backends import load_backend
    from superalign.config import RunConfig
    from superalign.evaluate import competence_correct
    from superalign.plan import make_plan
    from superalign.store.run_outputs import write_outputs
    from superalign.store.runstore import RunStore

    with RunStore(args.run / "run.sqlite") as store:
        cfg = RunConfig.model_validate(store.get_meta("config"))
        items = make_plan(cfg).competence_items
        for row in store.rounds_metrics():
            k = row["round"]
            if store.step_done(k, "eval_competence"):
                print(f"round {k}: already stored")
                continue
            spec = cfg.learner if k == 0 else str(args.run / "checkpoints" / f"round-{k}")
            model = load_backend(spec, batch_size=cfg.batch_size, dtype=cfg.dtype, device=cfg.device)
            correct = competence_correct(model, items)
            model.close()
            acc = round(sum(correct) / len(correct), 4)
            if acc != row["competence"]:
                raise SystemExit(f"round {k}: re-scored {acc} != reported {row['competence']}: not stored")
            store.commit_step(k, "eval_competence", payload={"competence_correct": correct})
            print(f"round {k}: {acc} (= reported), stored")
        write_outputs(args.run, store, cfg)


if __name__ == "__main__":
    main()
