"""Read training-recipe variants on dev only: retrain one round of a finished run with each variant.

Each variant starts from the version that round really trained from, trains on the round's stored pairs (and
replay examples) with some train settings changed, and is read on the run's dev prompts and on dev MC items
(`data.dev_competence` raised with --dev-competence; the pool is prefix-stable, so the run's own dev items are the
first ones). Nothing held out is read. Writes one JSON with every variant's dev metrics and training stats.

    python scripts/recipe_probe.py RUN --round 3 --out probe.json \\
        --variant base= --variant nll0.25=nll_weight=0.25 --variant replay64=competence_replay=64
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition("=")
    changes: dict = {}
    for part in filter(None, rest.split(",")):
        key, _, value = part.partition("=")
        changes[key] = json.loads(value)
    return name, changes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--round", type=int, required=True)
    ap.add_argument("--variant", action="append", required=True, help="NAME=key=value,key=value (train settings)")
    ap.add_argument("--dev-competence", type=int, default=0, help="dev MC items (0 = the run's own)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    from superalign.backends import load_backend
    from superalign.config import RunConfig
    from superalign.critic import build_critic
    from superalign.learner.update import update_learner
    from superalign.loop import _dev_metrics, _seed
    from superalign.plan import make_plan
    from superalign.store.runstore import RunStore

    with RunStore(args.run / "run.sqlite") as store:
        cfg = RunConfig.model_validate(store.get_meta("config"))
        pairs = store.pairs(round=args.round, step="pairs")
        trained_from = (store.step_payload(args.round, "train") or {}).get("trained_from", args.round - 1)
    if args.dev_competence:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"dev_competence": args.dev_competence})})
    plan = make_plan(cfg)
    critic = build_critic(cfg.critic)
    spec = cfg.learner if trained_from == 0 else str(args.run / "checkpoints" / f"round-{trained_from}")

    def load(spec: str):
        return load_backend(spec, batch_size=cfg.batch_size, dtype=cfg.dtype, device=cfg.device)

    t = time.time()
    base_model = load(cfg.learner)
    base_dev, _, _, base_correct = _dev_metrics(cfg, plan, critic, base_model, 0, None)
    getattr(base_model, "close", lambda: None)()
    start = load(spec)
    start_dev = _dev_metrics(cfg, plan, critic, start, args.round, base_correct)[0]
    getattr(start, "close", lambda: None)()
    print(f"round 0 dev {base_dev}\nround-{trained_from} dev {start_dev} [{time.time() - t:.0f}s]", flush=True)
    results = []
    for text in args.variant:
        name, changes = parse_variant(text)
        train = cfg.train.model_copy(update=changes)
        n_replay = train.competence_replay
        if n_replay > len(plan.replay):
            raise SystemExit(f"{name}: competence_replay {n_replay} > the plan's replay pool {len(plan.replay)}")
        t = time.time()
        # a variant of the replay text (train.replay_format) writes the same replay items its own way
        replay = (
            plan.replay
            if train.replay_format == cfg.train.replay_format
            else make_plan(cfg.model_copy(update={"train": train})).replay
        )
        model = load(spec)
        _, stats = update_learner(model, pairs, train, _seed(cfg, args.round, "train"), replay=replay[:n_replay])
        dev = _dev_metrics(cfg, plan, critic, model, args.round, base_correct)[0]
        getattr(model, "close", lambda: None)()
        row = {
            "variant": name,
            "changes": changes,
            **dev,
            "steps": stats.steps,
            "train_loss_last": stats.last_loss,
            "reward_accuracy": round(stats.reward_accuracy, 4),
            "seconds": round(time.time() - t, 1),
        }
        print(json.dumps(row), flush=True)
        results.append(row)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "run": str(args.run),
                "round": args.round,
                "trained_from": trained_from,
                "pairs": len(pairs),
                "train": cfg.train.model_dump(mode="json"),
                "round0_dev": base_dev,
                "start_dev": start_dev,
                "variants": results,
                "machine": {"cpu": cpu, "python": platform.python_version(), "dtype": cfg.dtype},
                "commit": commit,
            },
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
