"""The fixed data plan of a run: which queries train, which are held out, which MC items measure competence.

Everything here is a deterministic function of the config, so a resumed run sees the same sets.
Held-out sets are split by near-duplicate group of the normalised query text (data/split.py: content-word
Jaccard >= 0.5, a group never straddles the split) and never enter training. With `data.heldout_source`
one whole harmful seed set is held out as well: its seeds and every seed grouped with one never train,
and half the held-out harmful queries come from it (`heldout_subset` names each query's subset).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from superalign.config import DataConfig, RunConfig
from superalign.records import Query, ReplayExample, user_chat

if TYPE_CHECKING:
    from superalign.data.split import SourceSplit


@dataclass(frozen=True)
class RunPlan:
    train_harmful: list[Query]
    train_benign: list[Query]
    heldout_harmful: list[Query]
    heldout_benign: list[Query]
    competence_items: list  # list[MCItem]
    replay: list[ReplayExample]  # competence SFT examples, disjoint from competence_items
    dev_harmful: list[Query] = field(default_factory=list)  # taken out of training; read each round, never trained
    dev_benign: list[Query] = field(default_factory=list)
    dev_competence: list = field(default_factory=list)  # list[MCItem]: disjoint from competence_items and replay


def harmful_split(data: DataConfig) -> SourceSplit:
    """The harmful seeds split as `data` says (`superalign.data.split.SourceSplit`): `train` is what the
    loop may train on; `heldout` the in-distribution held-out groups; `source` the held-out source's seeds;
    `excluded` the other sets' near-duplicates of those (never trained, never evaluated)."""
    from superalign.data.seeds import check_heldout_source, load_harmful_seeds
    from superalign.data.split import split_with_source

    check_heldout_source(data.heldout_source)
    return split_with_source(load_harmful_seeds(), data.heldout_fraction, data.heldout_source)


def heldout_subset(query: Query, cfg: RunConfig) -> str:
    """Which held-out subset a held-out harmful query belongs to: "source:<name>" when it comes from
    `data.heldout_source`, else "in-distribution" (ASR can then be reported per subset)."""
    from superalign.data.split import source_of

    src = cfg.data.heldout_source
    return f"source:{src}" if src is not None and source_of(query) == src else "in-distribution"


def make_plan(cfg: RunConfig) -> RunPlan:
    from superalign.data.benign import load_benign_edgy, load_benign_general
    from superalign.data.competence import load_competence, mc_options, mc_prompt
    from superalign.data.split import split_queries

    frac = cfg.data.heldout_fraction
    h = harmful_split(cfg.data)
    e_train, e_held = split_queries(load_benign_edgy(), frac)
    # dev: whole near-duplicate groups moved out of the training side (another salt, so another cut)
    h_train, h_dev = _dev_split(h.train, cfg.data.dev_harmful)
    e_train, e_dev = _dev_split(e_train, cfg.data.dev_benign)
    g_train, _ = split_queries(load_benign_general(2000), frac)
    rng = random.Random(cfg.seed)
    n = cfg.data.heldout_harmful
    if cfg.data.heldout_source is None:
        h_held = _sample(h.heldout, n, rng)
    else:  # half from the held-out source, the rest in-distribution
        from_source = _sample(h.source, n // 2, rng)
        h_held = from_source + _sample(h.heldout, n - len(from_source), rng)
    e_held = _sample(e_held, cfg.data.heldout_benign, rng)
    n_eval = cfg.data.competence_items
    n_replay = cfg.train.competence_replay  # every round replays the same examples (loop.py)
    # a prefix-stable pool (load_competence): eval items, then replay, then dev; adding dev changes neither
    pool = load_competence(n_eval + n_replay + cfg.data.dev_competence, seed=cfg.seed)
    eval_ids = {it.id for it in pool[:n_eval]}
    rest = [it for it in pool[n_eval : n_eval + n_replay] if it.id not in eval_ids]
    seen = eval_ids | {it.id for it in rest}
    dev_items = [it for it in pool[n_eval + n_replay :] if it.id not in seen]
    # MC format with the options listed: a bare "The answer is X." template collapsed every answer
    # of the embedded model into that template (measured: it then answered "The answer is Facebook.").
    if cfg.train.replay_format == "mc":  # the metric's own text (data/competence.py mc_prompt), no chat template
        replay: list[ReplayExample] = [(mc_prompt(it), mc_options(it)[it.answer]) for it in rest]
    else:
        replay = [
            (user_chat(f"{it.question}\nOptions: " + "; ".join(it.options)), it.options[it.answer]) for it in rest
        ]
    dev_rng = random.Random(f"{cfg.seed}-dev")
    return RunPlan(
        h_train,
        e_train + g_train,
        h_held,
        e_held,
        pool[:n_eval],
        replay,
        _sample(h_dev, cfg.data.dev_harmful, dev_rng),
        _sample(e_dev, cfg.data.dev_benign, dev_rng),
        dev_items,
    )


def _dev_split(queries: list[Query], n: int) -> tuple[list[Query], list[Query]]:
    """(train, dev): the smallest dev share (in steps of 5 %, at most 40 %) whose groups hold >= `n` queries."""
    from superalign.data.split import split_queries

    if n == 0:
        return queries, []
    for pct in range(5, 45, 5):
        train, dev = split_queries(queries, pct / 100, salt="superalign-dev")
        if len(dev) >= n:
            return train, dev
    return train, dev


def _sample(items: list[Query], n: int, rng: random.Random) -> list[Query]:
    items = sorted(items, key=lambda q: q.id)
    return rng.sample(items, n) if n < len(items) else items


def benign_training_queries(plan: RunPlan, n: int, round: int, seed: int, edgy_share: float = 0.5) -> list[Query]:
    """`n` benign training queries for a round, deterministic: `edgy_share` of them benign-edgy (rounded half up;
    at most as many as the training side has), the rest general questions."""
    rng = random.Random(f"{seed}-benign-{round}")
    edgy = [q for q in plan.train_benign if q.source == "benign_edgy"]
    general = [q for q in plan.train_benign if q.source != "benign_edgy"]
    n_edgy = min(n, math.floor(n * edgy_share + 0.5))
    picked = rng.sample(edgy, min(len(edgy), n_edgy)) + rng.sample(general, min(len(general), n - n_edgy))
    return [Query(**{**q.to_dict(), "round": round}) for q in picked]
