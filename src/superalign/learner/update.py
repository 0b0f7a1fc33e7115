"""Learner update stage: train on the round's preference pairs with the configured engine (checkpoints:
learner/checkpoint.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from superalign.backends.base import PairTrainable
from superalign.config import TrainConfig
from superalign.learner.dpo import TrainStats, train_dpo
from superalign.records import Pair, ReplayExample


def update_learner(
    learner: Any,
    pairs: Sequence[Pair],
    cfg: TrainConfig,
    seed: int,
    replay: Sequence[ReplayExample] = (),
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[Any, TrainStats]:
    """Train the learner on preference pairs (+ competence replay) with `cfg.engine` (native: learner/dpo.py;
    trl: TRL's DPOTrainer, learner/trl_engine.py); returns (new learner, stats)."""
    if isinstance(learner, PairTrainable):  # the scripted test learner
        new = learner.train_pairs(pairs)
        return new, TrainStats(steps=1)  # a perceptron pass has no loss to report
    if cfg.engine == "trl":
        from superalign.learner.trl_engine import train_dpo_trl

        _, stats = train_dpo_trl(learner, pairs, cfg, seed=seed, replay=replay, progress=progress)
    else:
        _, stats = train_dpo(learner, pairs, cfg, seed=seed, replay=replay, progress=progress)
    return learner, stats
