"""`train.engine: trl`: the round's DPO update run by TRL's DPOTrainer."""

from __future__ import annotations

import importlib.util

from superalign.config import TrainConfig


def engine_problem(cfg: TrainConfig) -> str | None:
    """Why `cfg` cannot train with the trl engine here, or None."""
    if importlib.util.find_spec("trl") is None or importlib.util.find_spec("datasets") is None:
        return "needs TRL: pip install 'superalign[trl]' (trl==1.16.0), or train.engine: native"
    return None
