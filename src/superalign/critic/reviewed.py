"""Reviewer labels train the learned critic: its objective head is refitted with the human-labelled pairs.

The loop routes the verdicts the critic is least sure of to a reviewer (oversight/in_loop.py); with
`critic.kind: learned`, the labels of earlier rounds then enter the critic that judges round k:

    critic_k = with_reviews(critic, reviewed_pairs(queue, before_round=k))

A reviewed response to a harmful prompt is one more row for the objective head ("does the response do
what the request asks?" = the reviewer's unsafe call), weighted `weight` times a row of PyRIT's public
set, so a few dozen corrections move the head where the critic was wrong. Responses to benign prompts
say nothing about that head and are skipped; the refusal call is rules + TF-IDF (learned.py) and is not
refitted. Heads are cached under a key of the reviewed rows, so a resumed run reuses them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from superalign.critic.learned import LearnedCritic, LearnedHeads, fit_binary_head, group_of, heads_path
from superalign.store.jsonl import cached_pickle


@dataclass(frozen=True)
class ReviewedPair:
    """One reviewer label usable for the objective head: the pair and whether it achieved the request."""

    prompt: str
    response: str
    achieved: bool


def reviewed_pairs(queue: Any, before_round: int) -> list[ReviewedPair]:
    """The queue's latest labels of items from rounds before `before_round` whose prompt is harmful
    (known from the item) and whose label has an unsafe call; in a stable order (item id)."""
    labels = queue.latest_labels()
    out = []
    for it in sorted(queue.items(), key=lambda i: i.id):
        ev = labels.get(it.id)
        if ev is None or ev.unsafe is None or it.harmful is not True or it.round >= before_round:
            continue
        out.append(ReviewedPair(it.prompt, it.response, bool(ev.unsafe)))
    return out


def refit_objective_head(
    heads: LearnedHeads,
    reviewed: Sequence[ReviewedPair],
    weight: float = 5.0,
    heldout_fold: int | None = None,
    folds: int = 5,
) -> LearnedHeads:
    """`heads` with the objective head refitted on PyRIT's objective rows (minus `heldout_fold`) plus
    the reviewed rows at `weight` each."""
    import numpy as np

    from superalign.critic.classifier import fold_of, load_objective_examples

    rows = [e for e in load_objective_examples() if heldout_fold is None or fold_of(e.objective, folds) != heldout_fold]
    prompts = [e.objective for e in rows] + [r.prompt for r in reviewed]
    responses = [e.response for e in rows] + [r.response for r in reviewed]
    y = [e.label for e in rows] + [r.achieved for r in reviewed]
    w = np.r_[np.ones(len(rows)), np.full(len(reviewed), float(weight))]
    x = heads.features.encode(prompts, responses)
    head = fit_binary_head(x, y, [group_of(p) for p in prompts], sample_weight=w)
    return replace(heads, objective=head, meta={**heads.meta, "reviewed": len(reviewed), "reviewed_weight": weight})


def with_reviews(critic: LearnedCritic, reviewed: Sequence[ReviewedPair], weight: float = 5.0) -> LearnedCritic:
    """The learned critic with its objective head refitted on `reviewed` (cached on disk by their content);
    `critic` itself when there is nothing to learn from."""
    if not reviewed:
        return critic
    digest = hashlib.sha256(repr([(r.prompt, r.response, r.achieved) for r in reviewed] + [weight]).encode())
    fold = critic.heads.meta.get("heldout_fold")
    base = heads_path(critic.heads.features, fold, critic.heads.tfidf_weight)
    path = base.with_name(f"{base.stem}-reviewed-{digest.hexdigest()[:16]}.pkl")
    heads = cached_pickle(
        path,
        lambda: refit_objective_head(
            critic.heads, reviewed, weight, heldout_fold=fold, folds=critic.heads.meta.get("folds", 5)
        ),
        LearnedHeads,
    )
    return replace(critic, heads=heads, name=f"{critic.name}+{len(reviewed)}reviewed")
