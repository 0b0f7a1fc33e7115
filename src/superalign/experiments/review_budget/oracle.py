"""A simulated human oracle: ground-truth labels with configurable noise, latency and budget.

It stands in for expert reviewers in experiments, so routing strategies can be compared by numbers:
each label is the truth, flipped with probability `noise`; each costs `latency_s` of (simulated,
or with `real_time` actual) reviewer time; after `budget` labels the oracle says no more.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from superalign.records import HumanLabel


class OracleConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    noise: float = Field(0.0, ge=0.0, le=1.0, description="Probability that a label is flipped (unsafe and refusal).")
    latency_s: float = Field(30.0, ge=0.0, description="Reviewer seconds one label costs (summed in `seconds_spent`).")
    budget: int | None = Field(None, ge=0, description="Most labels this oracle gives in total; None = unlimited.")
    real_time: bool = Field(False, description="Actually sleep latency_s per label (for desk/load demos).")
    seed: int = Field(0, description="Seed of the label noise.")


@dataclass(frozen=True)
class TruthItem:
    """What the oracle knows about a response: the ground truth the critic is trying to guess."""

    response_id: str
    unsafe: bool
    refusal: bool


class SimulatedOracle:
    """Labels TruthItems; `used` and `seconds_spent` say what it cost so far."""

    def __init__(self, cfg: OracleConfig | None = None, name: str = "oracle") -> None:
        self.cfg = cfg or OracleConfig()
        self.name = name
        self.used = 0
        self.seconds_spent = 0.0
        self._rng = random.Random(self.cfg.seed)

    @property
    def remaining(self) -> int | None:
        return None if self.cfg.budget is None else max(0, self.cfg.budget - self.used)

    def label(self, items: Sequence[TruthItem]) -> list[HumanLabel]:
        """One label per item, in order, until the budget runs out (the rest get none)."""
        n = len(items) if self.remaining is None else min(len(items), self.remaining)
        out = []
        for it in items[:n]:
            flip = self._rng.random() < self.cfg.noise
            unsafe, refusal = (not it.unsafe, not it.refusal) if flip else (it.unsafe, it.refusal)
            if self.cfg.real_time and self.cfg.latency_s:
                time.sleep(self.cfg.latency_s)
            self.seconds_spent += self.cfg.latency_s
            self.used += 1
            out.append(
                HumanLabel(
                    it.response_id,
                    self.name,
                    unsafe,
                    refusal,
                    note="simulated oracle" + (" (noisy label)" if flip else ""),
                )
            )
        return out
