"""Human labels back into training: a round's preference pairs rebuilt with the humans' verdicts.

`human_corrected_pairs` is what the round runner calls between "judge" and "pairs" when a review
budget is set: the critic's verdicts, overridden by every human label of the round's responses, go
through the same `build_pairs`; pairs whose query had a human-labelled response carry
provenance "human".
"""

from __future__ import annotations

from typing import Any

from superalign.records import Pair


def human_corrected_pairs(store: Any, queue: Any, round: int) -> list[Pair]:
    """Pairs of round `round` (its attack/respond/judge steps in `store`, a RunStore) with the labels
    of `queue` (a ReviewQueue over the same run) applied."""
    from superalign.learner.pairs import build_pairs
    from superalign.oversight.queue import apply_human_labels, mark_human_pairs

    queries = store.queries(round=round, step="attack")
    responses = store.responses(round=round, step="respond")
    labels = queue.latest_labels()
    verdicts = apply_human_labels(store.verdicts(round=round, step="judge"), labels)
    samples = [r for r in responses if r.system == ""]
    revisions = [r for r in responses if r.system != ""]
    human_queries = {r.query_id for r in responses if r.id in labels}
    return mark_human_pairs(build_pairs(queries, samples, revisions, verdicts), human_queries)
