"""Learner update stage and checkpoints (merged HF directories, written atomically)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from superalign.config import TrainConfig
from superalign.learner.dpo import TrainStats, train_dpo
from superalign.records import Chat, Pair


def update_learner(learner: Any, pairs: Sequence[Pair], cfg: TrainConfig, seed: int,
                   replay: Sequence[tuple[Chat, str]] = (),
                   progress: Callable[[int, int, float], None] | None = None) -> tuple[Any, TrainStats]:
    """Train the learner on preference pairs (+ competence replay) with `cfg.engine` (native: learner/dpo.py;
    trl: TRL's DPOTrainer, learner/trl_engine.py); returns (new learner, stats)."""
    if hasattr(learner, "train_pairs"):  # the scripted test learner
        new = learner.train_pairs(pairs)
        return new, TrainStats(steps=1)  # a perceptron pass has no loss to report
    if cfg.engine == "trl":
        from superalign.learner.trl_engine import train_dpo_trl

        _, stats = train_dpo_trl(learner, pairs, cfg, seed=seed, replay=replay, progress=progress)
    else:
        _, stats = train_dpo(learner, pairs, cfg, seed=seed, replay=replay, progress=progress)
    return learner, stats


def save_checkpoint(learner: Any, directory: str | Path) -> Path:
    """Write the learner to `directory` atomically (temp dir, fsync, rename): loadable or absent."""
    from superalign.store.jsonl import atomic_write_dir

    def build(tmp: Path) -> None:
        if hasattr(learner, "save"):
            learner.save(tmp)
        else:
            learner.model.save_pretrained(tmp)
            learner.tokenizer.save_pretrained(tmp)

    return atomic_write_dir(directory, build, replace=True)
