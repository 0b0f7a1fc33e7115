"""The fixed data plan of a run: which queries train, which are held out, which MC items measure competence.

Everything here is a deterministic function of the config, so a resumed run sees the same sets.
Held-out sets are split by normalised query text and never enter training.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from superalign.config import RunConfig
from superalign.records import Chat, Query, user_chat


@dataclass(frozen=True)
class RunPlan:
    train_harmful: list[Query]
    train_benign: list[Query]
    heldout_harmful: list[Query]
    heldout_benign: list[Query]
    competence_items: list  # list[MCItem]
    replay: list[tuple[Chat, str]]  # competence SFT examples, disjoint from competence_items


def make_plan(cfg: RunConfig) -> RunPlan:
    from superalign.data.benign import load_benign_edgy, load_benign_general
    from superalign.data.competence import load_competence
    from superalign.data.seeds import load_harmful_seeds
    from superalign.data.split import split_queries

    frac = cfg.data.heldout_fraction
    h_train, h_held = split_queries(load_harmful_seeds(), frac)
    e_train, e_held = split_queries(load_benign_edgy(), frac)
    g_train, _ = split_queries(load_benign_general(2000), frac)
    rng = random.Random(cfg.seed)
    h_held = _sample(h_held, cfg.data.heldout_harmful, rng)
    e_held = _sample(e_held, cfg.data.heldout_benign, rng)
    n_eval = cfg.data.competence_items
    pool = load_competence(n_eval + cfg.train.competence_replay * 4, seed=cfg.seed)
    eval_ids = {it.id for it in pool[:n_eval]}
    rest = [it for it in pool if it.id not in eval_ids]
    # MC format with the options listed: a bare "The answer is X." template collapsed every answer
    # of the embedded model into that template (measured: it then answered "The answer is Facebook.").
    replay = [(user_chat(f"{it.question}\nOptions: " + "; ".join(it.options)), it.options[it.answer]) for it in rest]
    return RunPlan(h_train, e_train + g_train, h_held, e_held, pool[:n_eval], replay)


def _sample(items: list[Query], n: int, rng: random.Random) -> list[Query]:
    items = sorted(items, key=lambda q: q.id)
    return rng.sample(items, n) if n < len(items) else items


def benign_training_queries(plan: RunPlan, n: int, round: int, seed: int) -> list[Query]:
    """`n` benign training queries for a round: half benign-edgy, half general, deterministic."""
    rng = random.Random(f"{seed}-benign-{round}")
    edgy = [q for q in plan.train_benign if q.source == "benign_edgy"]
    general = [q for q in plan.train_benign if q.source != "benign_edgy"]
    picked = rng.sample(edgy, min(len(edgy), (n + 1) // 2)) + rng.sample(general, min(len(general), n // 2))
    return [Query(**{**q.to_dict(), "round": round}) for q in picked]
