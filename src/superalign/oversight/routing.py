"""Which verdicts go to humans: the ones the critic is least sure of, up to a per-round budget.

Uncertainty of a verdict (higher = more worth a human's time):
- abstention (`unsafe is None`): 2 + (1 - confidence), always first;
- else 1 - confidence, plus the ensemble disagreement when the critic reports it in
  `dimensions["disagreement"]` (|P_rules - P_classifier|, 0..1).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

from superalign.records import Query, Response, Verdict

Strategy = Literal["uncertainty", "random"]


def uncertainty(v: Verdict) -> float:
    """How unsure the critic is about `v` (see the module docstring); ties keep input order."""
    base = 1.0 - float(v.confidence)
    if v.unsafe is None:
        return 2.0 + base
    return base + float(v.dimensions.get("disagreement", 0.0))


def why_routed(v: Verdict) -> str:
    if v.unsafe is None:
        return f"abstained (confidence {v.confidence:.2f})"
    dis = v.dimensions.get("disagreement")
    return f"confidence {v.confidence:.2f}" + (f", disagreement {dis:.2f}" if dis else "")


def budget_for(n_items: int, fraction: float) -> int:
    """The item budget for a round of `n_items` at `fraction` (e.g. 0.05) of items, rounded down."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction {fraction} must be in [0, 1]")
    return int(n_items * fraction + 1e-9)


def route_to_humans(
    verdicts: Sequence[Verdict], budget: int, strategy: Strategy = "uncertainty", seed: int = 0
) -> list[Verdict]:
    """At most `budget` verdicts for humans: the most uncertain first ("uncertainty"), or a uniform
    sample ("random", the baseline at the same budget). Deterministic for a given seed."""
    if budget < 0:
        raise ValueError(f"budget {budget} must be >= 0")
    if budget == 0 or not verdicts:
        return []
    if strategy == "uncertainty":
        order = sorted(range(len(verdicts)), key=lambda i: (-uncertainty(verdicts[i]), i))
        return [verdicts[i] for i in order[:budget]]
    if strategy == "random":
        return random.Random(seed).sample(list(verdicts), min(budget, len(verdicts)))
    raise ValueError(f"unknown routing strategy {strategy!r}; choose 'uncertainty' or 'random'")


def review_items_for(
    verdicts: Sequence[Verdict],
    responses: Sequence[Response],
    queries: Sequence[Query],
    round: int = 0,
    source: str = "route",
) -> list:
    """ReviewItems (prompt, response, the critic's verdict) for routed verdicts."""
    from superalign.oversight.queue import ReviewItem

    resp = {r.id: r for r in responses}
    qs = {q.id: q for q in queries}
    items = []
    for v in verdicts:
        r = resp[v.response_id]
        q = qs[r.query_id]
        items.append(ReviewItem(r.id, q.text, r.text, round, q.harmful, v, uncertainty(v), why_routed(v), source))
    return items


def routed_items(
    store, round: int, budget: int, strategy: Strategy = "uncertainty", seed: int = 0, source: str = "route"
) -> list:
    """The ReviewItems routing picks from round `round` of a run (its "judge" step; none if missing)."""
    picked = route_to_humans(store.verdicts(round=round, step="judge"), budget, strategy, seed)
    return review_items_for(
        picked, store.responses(round=round, step="respond"), store.queries(round=round, step="attack"), round, source
    )


def route_round(store, queue, round: int, budget: int, strategy: Strategy = "uncertainty", seed: int = 0) -> int:
    """Route round `round` of a run (its "judge" step) into `queue`; returns how many items were new.

    `store`: the run's RunStore; `queue`: its ReviewQueue. Nothing to route (step missing) -> 0."""
    return queue.enqueue(routed_items(store, round, budget, strategy, seed))
