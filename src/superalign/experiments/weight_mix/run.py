"""`superalign experiment weight-mix`: competence × conformity by weight mixtures vs fixed schedules.

Two LoRA deltas are trained once from the base weights W0, each on half of the training budget:
competence SFT on sciq / ARC-Easy training items (Wc) and refusal DPO (+RPO NLL) on the pair pool (Wr).
The search scores every mixture W0 + a·(Wc − W0) + b·(Wr − W0) on the grid `grid` × `grid` on the DEV set
and keeps the best (mixing.py). The fixed schedules of co-optimize (simultaneous, alternating; its
schedules.py) get the same optimiser steps on the same data, each at every setting in `fixed`, and the
best of them on DEV is the comparison. Selection reads dev scores only (`choose`); the TEST set, the
same size and disjoint from dev and training (data.py), then gives the paired difference search − best
fixed on the same items, with bootstrap CIs (measure.py). Report: report.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from superalign.errors import UserError
from superalign.experiments.common import PoolSettings, Progress, choose_preset, pair_pool, write_metrics
from superalign.experiments.weight_mix import mixing
from superalign.experiments.weight_mix.data import MixData, build_data
from superalign.experiments.weight_mix.measure import ItemScores, capability_items, capacity_items, measure, objective
from superalign.experiments.weight_mix.report import summarise, write_outputs

FIXED = ("simultaneous:0.2", "simultaneous:1.0", "alternating:conformity-first", "alternating:competence-first")


class WeightMixConfig(BaseModel):
    """One preset of the experiment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rounds: int = Field(3, ge=1, description="Rounds of the fixed schedules (alternating alternates once per round).")
    steps_per_round: int = Field(8, ge=2, description="Optimiser steps per round (even); budget = rounds × this.")
    pairs_per_step: int = Field(4, ge=1, description="Preference pairs per step p (competence: c = max(1, p // 2)).")
    micro_batch: int = Field(4, ge=1, description="Examples per forward/backward.")
    lr: float = Field(5e-4, gt=0, description="LoRA learning rate (every training run).")
    beta: float = Field(0.1, gt=0, description="DPO beta.")
    nll_weight: float = Field(1.0, ge=0, description="RPO NLL weight on the chosen answer.")
    max_len: int = Field(128, ge=16, description="Max tokens of prompt + response in training.")
    grid: tuple[float, ...] = Field(
        (0.0, 0.5, 1.0, 1.5, 2.0), description="Coefficients a (competence) and b (refusal)."
    )
    fixed: tuple[str, ...] = Field(
        FIXED, description="Fixed schedule settings: simultaneous:<replay weight> | alternating:<order>."
    )
    weight: float = Field(0.5, ge=0, le=1, description="w of objective = w·competence + (1 − w)·conformity.")
    eval_harmful: int = Field(100, ge=1, description="Harmful prompts in dev and in test (each).")
    eval_benign: int = Field(100, ge=2, description="Benign prompts in dev and in test (half edgy, half trivia).")
    eval_mc: int = Field(200, ge=1, description="MC items in dev and in test (each).")
    probe_items: int = Field(200, ge=6, description="MC items the capability probe is fitted on.")
    competence_train: int = Field(400, ge=1, description="MC items formatted as chat + answer for training.")
    safety_tokens: int = Field(40, ge=1, description="Greedy tokens per answer to a harmful / benign prompt.")
    answer_tokens: int = Field(24, ge=1, description="Greedy tokens per chat answer to an MC question (capacity).")
    test_every_mixture: bool = Field(True, description="Also score every grid point on test (the test front).")
    test_every_fixed: bool = Field(
        True,
        description=(
            "Score every fixed schedule on test; false: only the one chosen on dev (best fixed), whose weights are "
            "kept from its training run, so the headline difference is the same and the test costs less."
        ),
    )
    judge: str = Field("independent", description="Critic kind that grades (never the pool's training critic).")
    seed: int = Field(0, description="Training seed (data slices are fixed).")
    bootstrap: int = Field(2000, ge=100, description="Bootstrap resamples of every interval.")
    pool: PoolSettings = Field(
        PoolSettings(critic="rules", harmful_heldout=0, benign_heldout=0),
        description="The pair pool (cached); its critic must share nothing with `judge`.",
    )


PRESETS = {
    "full": WeightMixConfig(),
    # 2 rounds x 4 steps, a 3 x 3 grid, 40 + 40 prompts and 80 MC items per split (below the size gate)
    "quick": WeightMixConfig(
        rounds=2,
        steps_per_round=4,
        grid=(0.0, 1.0, 2.0),
        eval_harmful=40,
        eval_benign=40,
        eval_mc=80,
        probe_items=80,
        competence_train=200,
        safety_tokens=24,
        answer_tokens=16,
        test_every_mixture=False,
        test_every_fixed=False,
        pool=PoolSettings(
            critic="rules", harmful_train=24, benign_train=12, harmful_heldout=0, benign_heldout=0, max_new_tokens=32
        ),
    ),
}


def mix_name(a: float, b: float) -> str:
    return f"mix a={a:g} b={b:g}"


def choose(dev: dict[str, ItemScores], fixed: list[str], w: float) -> tuple[str, str]:
    """(best mixture, best fixed setting) by dev objective; ties go to the earlier name. Reads dev only."""
    mixes = [n for n in dev if n.startswith("mix ")]
    if not mixes or not fixed:
        raise ValueError("choose: need at least one mixture and one fixed setting")
    best = {n: objective(dev[n], w) for n in dev}
    return max(mixes, key=lambda n: (best[n], -mixes.index(n))), max(fixed, key=lambda n: (best[n], -fixed.index(n)))


def parse_fixed(setting: str) -> tuple[str, float, bool]:
    """(schedule, replay weight, competence first) of "simultaneous:<w>" or "alternating:<order>"."""
    kind, _, arg = setting.partition(":")
    if kind == "simultaneous":
        try:
            return kind, float(arg), False
        except ValueError:
            pass
    if kind == "alternating" and arg in ("conformity-first", "competence-first"):
        return kind, 0.0, arg == "competence-first"
    raise UserError(
        f"weight-mix: fixed setting {setting!r}; write simultaneous:<replay weight> (e.g. simultaneous:0.5) "
        "or alternating:conformity-first | alternating:competence-first"
    )


def _train_cfg(cfg: WeightMixConfig, replay_weight: float = 0.0) -> Any:
    from superalign.config import TrainConfig

    return TrainConfig(
        beta=cfg.beta,
        nll_weight=cfg.nll_weight,
        replay_weight=replay_weight,
        lr=cfg.lr,
        micro_batch=cfg.micro_batch,
        max_len=cfg.max_len,
    )


def train_delta(backend: Any, data: Any, cfg: WeightMixConfig, kind: str) -> dict[str, Any]:
    """Train one delta from the backend's current weights (the base) on half the budget: `kind`
    "competence" (SFT, batches of 2c) or "conformity" (DPO, batches of 2p), the phases of alternating.
    Returns its budget (steps, pairs and competence examples seen) and losses."""
    from superalign.experiments.co_optimize.schedules import Phase, competence_per_step, run_phases

    steps = cfg.rounds * cfg.steps_per_round // 2
    c = competence_per_step(cfg.pairs_per_step)
    phase = (
        Phase("competence", steps, 0, 2 * c)
        if kind == "competence"
        else Phase("conformity", steps, 2 * cfg.pairs_per_step, 0)
    )
    logs = run_phases(backend, [phase], data.pairs, data.competence_train, _train_cfg(cfg), cfg.seed * 1000 + 7)
    b = logs[0].budget
    return {
        "steps": b.steps,
        "pairs_seen": b.pairs_seen,
        "competence_seen": b.competence_seen,
        "losses": logs[0].losses,
    }


def train_fixed(backend: Any, data: Any, cfg: WeightMixConfig, setting: str) -> dict[str, Any]:
    """Train one fixed schedule setting from the backend's current weights for `rounds` rounds."""
    from superalign.experiments.co_optimize.schedules import Budget, plan_round, run_phases

    kind, replay, competence_first = parse_fixed(setting)
    total, losses = Budget(), []
    for r in range(cfg.rounds):
        phases = plan_round(kind, cfg.steps_per_round, cfg.pairs_per_step)
        if competence_first:
            phases = phases[::-1]
        logs = run_phases(
            backend, phases, data.pairs, data.competence_train, _train_cfg(cfg, replay), cfg.seed * 1000 + r
        )
        for lg in logs:
            total = total + lg.budget
            losses.append({lg.kind: lg.losses})
    return {
        "steps": total.steps,
        "pairs_seen": total.pairs_seen,
        "competence_seen": total.competence_seen,
        "losses": losses,
    }


def run(
    out: Path,
    quick: bool,
    seeds: int | None,
    learner: str,
    progress: Progress,
    config: WeightMixConfig | None = None,
) -> dict:
    """Train the deltas and the fixed schedules, search the grid on dev, confirm on test; write
    metrics.json, results.md and plots into `out`; return the metrics. `seeds` is not used (one training
    seed, `seed` in the config; the CIs are over items)."""
    from superalign.backends import load_backend, require_trainable
    from superalign.config import CriticConfig
    from superalign.critic import build_critic
    from superalign.critic.independent import independence_problem

    t0 = time.time()
    preset, cfg = choose_preset(PRESETS, quick, config, None, learner)
    settings = [s for s in cfg.fixed if parse_fixed(s)]
    if cfg.steps_per_round % 2 or (cfg.rounds * cfg.steps_per_round) % 2:
        raise UserError(f"weight-mix: steps_per_round={cfg.steps_per_round} must be even (halves for the deltas)")
    if not settings or not {0.0, 1.0} <= set(cfg.grid):
        raise UserError("weight-mix: give at least one `fixed` setting, and a `grid` holding 0 and 1 (base, deltas)")
    problem = independence_problem(cfg.pool.critic, cfg.judge)
    if problem:
        raise UserError(f"weight-mix: judge {cfg.judge!r} {problem}")
    backend = require_trainable(
        load_backend(learner), f"--learner {learner}: weight-mix trains weights; give embedded, tiny or an HF model dir"
    )
    pool = pair_pool(cfg.pool, progress, backend=backend)
    if len(pool.train) < 2:
        raise UserError(f"the pair pool has {len(pool.train)} training pairs; raise PoolSettings prompt counts")
    data = build_data(
        pool.train,
        cfg.eval_harmful,
        cfg.eval_benign,
        cfg.eval_mc,
        cfg.probe_items,
        cfg.competence_train,
        cfg.pool.heldout_fraction,
    )
    judge = build_critic(CriticConfig(kind=cfg.judge))
    metrics = compare(cfg, backend, data, judge, progress)
    metrics = summarise(cfg, preset, data, metrics, pool.stats) | {"seconds": metrics["seconds"]}
    metrics["seconds"]["total"] = round(time.time() - t0, 1)
    write_metrics(out, metrics)
    write_outputs(out, cfg, metrics)
    return metrics


def compare(cfg: WeightMixConfig, backend: Any, data: MixData, judge: Any, progress: Progress) -> dict[str, Any]:
    """Train, measure and select: {"dev", "test": {model: ItemScores}, "budgets", "exact", "search",
    "best_fixed", "seconds"}. The backend ends at the base weights."""
    w = cfg.weight
    seconds: dict[str, float] = {"train": 0.0, "dev": 0.0, "test": 0.0}

    def timed(key: str, fn: Any, *a: Any) -> Any:
        t = time.time()
        r = fn(*a)
        seconds[key] += time.time() - t
        return r

    def full_test(name: str) -> None:
        s = timed("test", measure, backend, data.test, judge, cfg.safety_tokens)
        s.capability = timed("test", capability_items, backend, data.probe_train, data.test.mc, cfg.seed)
        s.capacity = timed("test", capacity_items, backend, data.test.mc, judge, cfg.answer_tokens)
        test[name] = s

    base = mixing.snapshot(backend.model)
    dev: dict[str, ItemScores] = {}
    test: dict[str, ItemScores] = {}
    budgets: dict[str, dict] = {}
    trained: dict[str, dict] = {}
    names = {"competence": "competence", "conformity": "refusal"}
    for i, kind in enumerate(("competence", "conformity")):
        progress("train the two deltas", i, 2)
        mixing.load_weights(backend, base)
        budgets[f"delta:{names[kind]}"] = timed("train", train_delta, backend, data, cfg, kind)
        trained[names[kind]] = mixing.changed(base, mixing.snapshot(backend.model))
    progress("train the two deltas", 2, 2)
    deltas = mixing.Deltas(base, trained)
    settings = list(cfg.fixed)
    kept: dict[str, dict[str, Any]] = {}  # a fixed schedule's changed tensors, tested once chosen on dev
    for i, setting in enumerate(settings):
        progress("fixed schedules (train, dev, test)", i, len(settings))
        mixing.load_weights(backend, base)
        budgets[setting] = timed("train", train_fixed, backend, data, cfg, setting)
        dev[setting] = timed("dev", measure, backend, data.dev, judge, cfg.safety_tokens)
        if cfg.test_every_fixed:
            full_test(setting)
        else:
            kept[setting] = mixing.changed(base, mixing.snapshot(backend.model))
    progress("fixed schedules (train, dev, test)", len(settings), len(settings))
    exact = {}
    grid = [(a, b) for a in cfg.grid for b in cfg.grid]
    named = {(0.0, 0.0): "base", (1.0, 0.0): "competence delta", (0.0, 1.0): "refusal delta"}
    for i, (a, b) in enumerate(grid):
        progress("mixtures on dev", i, len(grid))
        weights = deltas.mixture({"competence": a, "refusal": b})
        if (a, b) in named:  # the exactness gate: these mixtures are the base / trained models bit for bit
            ref = base if (a, b) == (0.0, 0.0) else {**base, **trained["competence" if a else "refusal"]}
            exact[named[(a, b)]] = mixing.same_weights(weights, ref)
        mixing.load_weights(backend, weights)
        dev[mix_name(a, b)] = timed("dev", measure, backend, data.dev, judge, cfg.safety_tokens)
        if (a, b) in named:
            full_test(mix_name(a, b))
        elif cfg.test_every_mixture:
            test[mix_name(a, b)] = timed("test", measure, backend, data.test, judge, cfg.safety_tokens)
    progress("mixtures on dev", len(grid), len(grid))
    search, best_fixed = choose(dev, settings, w)  # dev only: test scores are not passed
    a, b = (float(x.split("=")[1]) for x in search.split()[1:])
    if search not in test or not test[search].capacity:
        mixing.load_weights(backend, deltas.mixture({"competence": a, "refusal": b}))
        full_test(search)
    if best_fixed not in test:
        mixing.load_weights(backend, {**base, **kept[best_fixed]})
        full_test(best_fixed)
    mixing.load_weights(backend, base)
    return {
        "dev": dev,
        "test": test,
        "budgets": budgets,
        "exact": exact,
        "search": search,
        "best_fixed": best_fixed,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
