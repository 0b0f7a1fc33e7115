"""Learner update stage and checkpoints (merged HF directories, written atomically)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from superalign.config import TrainConfig
from superalign.learner.dpo import TrainStats, train_dpo
from superalign.records import Chat, Pair


def update_learner(learner: Any, pairs: Sequence[Pair], cfg: TrainConfig, seed: int,
                   replay: Sequence[tuple[Chat, str]] = (),
                   progress: Callable[[int, int, float], None] | None = None) -> tuple[Any, TrainStats]:
    """Train the learner on preference pairs (+ competence replay); returns (new learner, stats)."""
    if hasattr(learner, "train_pairs"):  # the scripted test learner
        new = learner.train_pairs(pairs)
        return new, TrainStats(steps=1)  # a perceptron pass has no loss to report
    _, stats = train_dpo(learner, pairs, cfg, seed=seed, replay=replay, progress=progress)
    learner.name = learner.name.split("@")[0]
    return learner, stats


def save_checkpoint(learner: Any, directory: str | Path) -> Path:
    """Write the learner to `directory` (temp dir + fsync'd files + rename): loadable or absent."""
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        if hasattr(learner, "save"):
            learner.save(tmp)
        else:
            learner.model.save_pretrained(tmp)
            learner.tokenizer.save_pretrained(tmp)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
