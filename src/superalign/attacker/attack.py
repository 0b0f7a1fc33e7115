"""Attack stage: seed queries -> attack queries (plain, converted, or wrapped in a PyRIT template).

Deterministic: the same seeds, config, round and seed give the same queries, ids included.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from superalign.attacker.converters import check_converter
from superalign.attacker.templates import JailbreakTemplate, load_templates, render
from superalign.config import AttackerConfig
from superalign.records import Query, stable_id


def stratified_sample(seeds: Sequence[Query], n: int, rng: random.Random) -> list[Query]:
    """`n` seeds drawn round-robin over categories (in an `rng`-shuffled order), each category's seeds
    in an `rng`-shuffled order; a category that runs out is reshuffled and drawn again, so `n` may
    exceed len(seeds). Input order does not matter (seeds are sorted by id first)."""
    by_category: dict[str, list[Query]] = {}
    for q in sorted(seeds, key=lambda q: (q.category, q.id, q.text)):
        by_category.setdefault(q.category, []).append(q)
    if not by_category or n <= 0:
        return []
    order = sorted(by_category)
    rng.shuffle(order)
    streams = {c: _reshuffled_forever(by_category[c], rng) for c in order}
    return [next(streams[order[i % len(order)]]) for i in range(n)]


def _reshuffled_forever(items: list[Query], rng: random.Random) -> Iterator[Query]:
    """Yield `items` in shuffled passes, reshuffling after each pass."""
    while True:
        batch = list(items)
        rng.shuffle(batch)
        yield from batch


def _method(cfg: AttackerConfig, templates: Sequence[JailbreakTemplate], rng: random.Random) -> str:
    """ "template:<name>" with prob. template_share, else a converter name with prob. converter_share,
    else "plain"."""
    if templates and rng.random() < cfg.template_share:
        return "template:" + rng.choice(templates).name
    if cfg.converters and rng.random() < cfg.converter_share:
        return rng.choice(cfg.converters)
    return "plain"


def apply_method(method: str, text: str, templates: dict[str, JailbreakTemplate], rng: random.Random) -> str:
    """The attack text for `text` under `method` ("plain", a converter name, or "template:<name>")."""
    if method == "plain":
        return text
    if method.startswith("template:"):
        return render(templates[method.removeprefix("template:")], text)
    return check_converter(method)(text, rng)


def attack(seeds: Sequence[Query], cfg: AttackerConfig, round: int, seed: int) -> list[Query]:
    """`cfg.queries_per_round` attack queries built from `seeds`, stratified by category.

    Each query keeps its seed's category and `harmful`, records its lineage (`parent_id` = seed id,
    `objective` = seed text) and method (`source` = "<seed source>+<method>"). Raises UserError for
    an unknown converter name, or when templates are wanted and the pyrit wheel is missing.
    """
    for name in cfg.converters:
        check_converter(name)  # fail fast, even for a converter this round never draws
    templates = load_templates(cfg.max_template_chars) if cfg.template_share > 0 else []
    by_name = {t.name: t for t in templates}
    rng = random.Random(int(stable_id("attack-rng", seed, round), 16))
    drawn: dict[str, int] = {}
    out = []
    for parent in stratified_sample(seeds, cfg.queries_per_round, rng):
        method = _method(cfg, templates, rng)
        k = drawn.get(parent.id, 0)
        drawn[parent.id] = k + 1
        item_rng = random.Random(rng.getrandbits(64))  # converter draws don't shift later choices
        out.append(
            Query(
                id=stable_id("attack", round, parent.id, method, k),
                text=apply_method(method, parent.text, by_name, item_rng),
                category=parent.category,
                harmful=parent.harmful,
                source=f"{parent.source}+{method}",
                parent_id=parent.id,
                round=round,
                objective=parent.text,
            )
        )
    return out
