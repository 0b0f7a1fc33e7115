"""Competence × conformity training schedules with equal budgets (issue 6, docs/design.md §1).

A schedule turns one round's budget (optimiser steps, preference pairs per step) into *phases*:

- ``conformity-only``: ``steps`` DPO steps of ``p`` pairs; no competence data (the control).
- ``simultaneous``: ``steps`` mixed steps, each ``p`` DPO pairs + ``c = max(1, p // 2)`` competence SFT
  examples, loss = DPO + nll_weight·NLL(chosen) + replay_weight·NLL(competence) (``train_dpo``'s replay path).
- ``alternating``: a conformity phase of ``steps / 2`` DPO steps of ``2p`` pairs, then a competence phase of
  ``steps / 2`` SFT steps of ``2c`` competence examples (``learner.sft.train_sft``).

So every schedule makes the same number of optimiser steps, and ``simultaneous`` and ``alternating`` see
the same number of pairs and competence examples (``conformity-only`` sees the same pairs and no
competence data). ``planned_budget`` states that; ``run_phases`` counts what was actually fed, and the
tests check the two agree. Competence examples are (chat with the options listed, correct option)
from the MC *training* slice, never the evaluation or dev items (see run.py).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from superalign.config import TrainConfig
from superalign.errors import UserError
from superalign.records import Chat, Pair

SCHEDULES = ("conformity-only", "simultaneous", "alternating")
PhaseKind = Literal["conformity", "mixed", "competence"]
Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class Phase:
    """A run of optimiser steps of one kind, with the examples each step consumes."""

    kind: PhaseKind
    steps: int
    pairs_per_step: int
    competence_per_step: int


@dataclass(frozen=True)
class Budget:
    """What a round costs: optimiser steps and examples seen per kind (repeats count)."""

    steps: int = 0
    pairs_seen: int = 0
    competence_seen: int = 0

    def __add__(self, other: Budget) -> Budget:
        return Budget(
            self.steps + other.steps, self.pairs_seen + other.pairs_seen, self.competence_seen + other.competence_seen
        )


@dataclass
class PhaseLog:
    """What one phase actually did."""

    kind: str
    budget: Budget
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def competence_per_step(pairs_per_step: int) -> int:
    """Competence examples in a mixed step: ``train_dpo`` adds ``max(1, batch_size // 2)`` replay rows."""
    return max(1, pairs_per_step // 2)


def plan_round(schedule: str, steps: int, pairs_per_step: int) -> list[Phase]:
    """The phases of one round of `schedule` with `steps` optimiser steps of `pairs_per_step` pairs."""
    if steps < 1 or pairs_per_step < 1:
        raise UserError(f"schedule budget: steps={steps}, pairs_per_step={pairs_per_step}; both must be >= 1")
    c = competence_per_step(pairs_per_step)
    if schedule == "conformity-only":
        return [Phase("conformity", steps, pairs_per_step, 0)]
    if schedule == "simultaneous":
        return [Phase("mixed", steps, pairs_per_step, c)]
    if schedule == "alternating":
        if steps % 2:
            raise UserError(
                f"alternating schedule: steps per round = {steps} must be even "
                "(half conformity, half competence); set an even step count"
            )
        return [Phase("conformity", steps // 2, 2 * pairs_per_step, 0), Phase("competence", steps // 2, 0, 2 * c)]
    raise UserError(f"unknown schedule {schedule!r}: choose from {', '.join(SCHEDULES)}")


def planned_budget(phases: Sequence[Phase]) -> Budget:
    total = Budget()
    for p in phases:
        total = total + Budget(p.steps, p.steps * p.pairs_per_step, p.steps * p.competence_per_step)
    return total


def take_cycled(items: Sequence[Any], n: int, rng: random.Random) -> list[Any]:
    """`n` items drawn without replacement from shuffled passes over `items` (repeats only once exhausted)."""
    if n and not items:
        raise UserError("a training phase needs examples but got none (empty pair pool or competence set)")
    out: list[Any] = []
    while len(out) < n:
        order = list(items)
        rng.shuffle(order)
        out.extend(order[: n - len(out)])
    return out


def run_phases(
    backend: Any,
    phases: Sequence[Phase],
    pairs: Sequence[Pair],
    competence: Sequence[tuple[Chat, str]],
    cfg: TrainConfig,
    seed: int,
    progress: Progress | None = None,
    ref_cache: dict | None = None,
) -> list[PhaseLog]:
    """Train `backend` (an HFBackend, modified in place) through `phases`; returns what each phase did.

    Each phase gets exactly ``steps × per_step`` examples (cycled from `pairs` / `competence`) and one
    pass over them, so every batch is full and the counted budget is the planned one. `ref_cache`
    (dpo.reference_logps) may be shared only by single-phase calls that start from the same weights,
    such as the search's candidates of one round: a later phase's reference is the earlier phase's result.
    """
    if ref_cache is not None and len(phases) > 1:
        raise ValueError("run_phases: ref_cache is valid for one phase (each phase has its own reference)")
    rng = random.Random(seed)
    logs = []
    for i, ph in enumerate(phases):
        t0 = time.time()
        if ph.kind == "competence":
            batch = take_cycled(competence, ph.steps * ph.competence_per_step, rng)
            steps, losses = _competence_phase(backend, batch, ph, cfg, seed + i, progress)
            used = Budget(steps, 0, steps * ph.competence_per_step)
        else:
            batch = take_cycled(pairs, ph.steps * ph.pairs_per_step, rng)
            replay = take_cycled(competence, ph.steps * ph.competence_per_step, rng) if ph.kind == "mixed" else []
            steps, losses = _preference_phase(backend, batch, replay, ph, cfg, seed + i, progress, ref_cache)
            used = Budget(steps, steps * ph.pairs_per_step, steps * ph.competence_per_step)
        if steps != ph.steps:
            raise RuntimeError(f"{ph.kind} phase ran {steps} steps, planned {ph.steps}: budget bookkeeping broke")
        logs.append(PhaseLog(ph.kind, used, losses, round(time.time() - t0, 2)))
    return logs


def _phase_cfg(cfg: TrainConfig, batch_size: int, steps: int) -> TrainConfig:
    return cfg.model_copy(update={"batch_size": batch_size, "epochs": 1, "max_steps": steps})


def _preference_phase(
    backend, pairs, replay, ph: Phase, cfg: TrainConfig, seed: int, progress, ref_cache: dict | None = None
) -> tuple[int, list[float]]:
    from superalign.learner.dpo import train_dpo

    if ph.kind == "mixed" and competence_per_step(ph.pairs_per_step) != ph.competence_per_step:
        raise RuntimeError("mixed phase: train_dpo draws max(1, batch // 2) replay rows per step")
    _, stats = train_dpo(
        backend,
        pairs,
        _phase_cfg(cfg, ph.pairs_per_step, ph.steps),
        seed=seed,
        replay=replay,
        progress=progress,
        ref_cache=ref_cache,
    )
    return stats.steps, list(stats.losses)


def _competence_phase(backend, examples, ph: Phase, cfg: TrainConfig, seed: int, progress) -> tuple[int, list[float]]:
    """SFT on competence examples through A's `learner.sft.train_sft` (LoRA, merged afterwards)."""
    from superalign.learner.sft import train_sft

    result = train_sft(backend, examples, _phase_cfg(cfg, ph.competence_per_step, ph.steps), seed, progress)
    stats = result[1] if isinstance(result, tuple) else result
    return stats.steps, list(stats.losses)
