"""The dev and test sets of weight-mix and the training data, all disjoint.

Harmful prompts: the seed sets split by near-duplicate group (data/split.py, the pair pool's own split);
dev draws from the training side minus every prompt that produced a training pair, test from the held-out
side, so dev and test share no group, and test shares none with training. Benign prompts: half
benign-edgy ("how do I kill a Python process", same two sides as the harmful ones), half ordinary
trivia_qa questions (even positions to dev, odd to test): only 213 edgy prompts exist, too few for two
sets of 100 beside the pool's. MC items: `load_competence`'s fixed order cut into test | dev | probe
training | competence training.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from superalign.records import Chat, Pair, Query, user_chat


@dataclass(frozen=True)
class EvalSet:
    """One evaluation split: harmful prompts (ASR), benign prompts (over-refusal), MC items (competence)."""

    name: str  # "dev" | "test"
    harmful: list[Query]
    benign: list[Query]
    mc: list[Any]  # data.competence.MCItem

    def sizes(self) -> dict[str, int]:
        return {"harmful": len(self.harmful), "benign": len(self.benign), "mc": len(self.mc)}


@dataclass(frozen=True)
class MixData:
    pairs: list[Pair]  # preference pairs of the refusal delta and the conformity phases
    competence_train: list[tuple[Chat, str]]  # (MC question as chat, correct option)
    probe_train: list[Any]  # MC items the capability probe is fitted on (gold labels)
    dev: EvalSet
    test: EvalSet


def mc_chat(item: Any) -> Chat:
    """An MC question as the deployed chat sees it: the question and its options, one line each."""
    return user_chat(f"{item.question}\nOptions: " + "; ".join(item.options))


def build_data(
    pairs: list[Pair], harmful: int, benign: int, mc: int, probe: int, competence: int, heldout_fraction: float
) -> MixData:
    """Dev and test sets of `harmful` + `benign` prompts and `mc` items each, `probe` probe items and
    `competence` training items; raises ValueError when any two parts overlap (see `overlaps`)."""
    from superalign.data.benign import load_benign_edgy, load_benign_general
    from superalign.data.competence import load_competence
    from superalign.data.seeds import load_harmful_seeds
    from superalign.data.split import split_queries

    used = {p.query_id for p in pairs}
    rng = random.Random("weight-mix")
    h_train, h_held = split_queries(load_harmful_seeds(), heldout_fraction)
    e_train, e_held = split_queries(load_benign_edgy(), heldout_fraction)

    def draw(qs: list[Query], n: int) -> list[Query]:
        free = sorted((q for q in qs if q.id not in used), key=lambda q: q.id)
        return rng.sample(free, min(n, len(free)))

    n_edgy = benign // 2
    general = load_benign_general(2 * (benign - n_edgy))
    items = load_competence(2 * mc + probe + competence, seed=0)
    test = EvalSet("test", draw(h_held, harmful), draw(e_held, n_edgy) + general[1::2], items[:mc])
    dev = EvalSet("dev", draw(h_train, harmful), draw(e_train, n_edgy) + general[0::2], items[mc : 2 * mc])
    probe_items = items[2 * mc : 2 * mc + probe]
    train = [(mc_chat(it), it.options[it.answer]) for it in items[2 * mc + probe :]]
    data = MixData(list(pairs), train, probe_items, dev, test)
    bad = overlaps(data)
    if bad:
        raise ValueError(f"weight-mix data: parts overlap: {bad}")
    return data


def overlaps(data: MixData) -> list[str]:
    """Which parts share a prompt (by id or near-duplicate group) or an MC item: [] when all are disjoint."""
    from superalign.data.split import query_groups

    bad = []
    prompts = {
        "dev": data.dev.harmful + data.dev.benign,
        "test": data.test.harmful + data.test.benign,
    }
    train_ids = {p.query_id for p in data.pairs}
    both = prompts["dev"] + prompts["test"]
    groups = dict(zip((q.id for q in both), query_groups(both)))
    if {groups[q.id] for q in prompts["dev"]} & {groups[q.id] for q in prompts["test"]}:
        bad.append("dev/test prompts (near-duplicate group)")
    for name, qs in prompts.items():
        if {q.id for q in qs} & train_ids:
            bad.append(f"{name}/training pairs")
    mc_ids = {
        "dev": {it.id for it in data.dev.mc},
        "test": {it.id for it in data.test.mc},
        "probe": {it.id for it in data.probe_train},
    }
    train_q = {chat[-1]["content"] for chat, _ in data.competence_train}
    for a, b in (("dev", "test"), ("dev", "probe"), ("test", "probe")):
        if mc_ids[a] & mc_ids[b]:
            bad.append(f"{a}/{b} MC items")
    for name, ids in mc_ids.items():
        items = {"dev": data.dev.mc, "test": data.test.mc, "probe": data.probe_train}[name]
        if any(mc_chat(it)[-1]["content"] in train_q for it in items) and ids:
            bad.append(f"{name}/competence training items")
    return bad
