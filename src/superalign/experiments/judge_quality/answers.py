"""The task: a short answer to a SciQ question given its support passage; the item split; answer matching.

Items are debate's SciQ passage items (`load_passage_items`, 887 with a passage, one fixed shuffle), cut into
three disjoint blocks by position: dev (the gates and every design choice), test (held-out accuracy only) and
train (the generations the rankers choose among). The options are never shown: the model writes the answer.

An answer is right when its normalised text contains the normalised correct answer as a whole phrase
(`contains_answer`: lower case, punctuation and articles dropped, word boundaries kept); `exact_answer`
(the normalised texts equal) is the strict diagnostic beside it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from superalign.data.passages import PassageItem, load_passage_items
from superalign.records import Chat

ARTICLES = frozenset({"a", "an", "the"})


@dataclass(frozen=True)
class Split:
    """Disjoint item blocks of the fixed shuffle: dev, test, train (in that order of positions)."""

    dev: list[PassageItem]
    test: list[PassageItem]
    train: list[PassageItem]


def split_items(dev: int, test: int, train: int) -> Split:
    """The first `dev` items of the shuffle, the next `test`, the next `train` (ValueError past 887 items).
    A smaller split's blocks are prefixes of a larger one's only when `dev` and `test` are the same."""
    items = load_passage_items(0)
    if dev + test + train > len(items):
        raise ValueError(f"dev {dev} + test {test} + train {train} > the {len(items)} SciQ items with a passage")
    return Split(items[:dev], items[dev : dev + test], items[dev + test : dev + test + train])


def answer_chat(item: PassageItem) -> Chat:
    """The question as the model sees it: the passage, the question, and a request for a short answer."""
    return [
        {
            "role": "user",
            "content": (
                "Read the passage, then answer the question with a short phrase (a few words).\n\n"
                f"Passage: {item.passage}\n\nQuestion: {item.question}"
            ),
        }
    ]


def normalise(text: str) -> str:
    """Lower case, punctuation to spaces, articles dropped, whitespace collapsed."""
    words = re.sub(r"[^a-z0-9]+", " ", text.lower()).split()
    return " ".join(w for w in words if w not in ARTICLES)


def contains_answer(reply: str, answer: str) -> bool:
    """Whether the normalised reply holds the normalised answer as a whole phrase (word boundaries)."""
    a, r = normalise(answer), normalise(reply)
    return bool(a) and f" {a} " in f" {r} "


def exact_answer(reply: str, answer: str) -> bool:
    """Whether the normalised reply equals the normalised answer."""
    a = normalise(answer)
    return bool(a) and normalise(reply) == a


def first_line(reply: str) -> str:
    """The reply up to its first blank line (what is scored and trained on; a 135M model rambles on)."""
    return reply.strip().split("\n\n")[0].strip()


def correctness(replies: Sequence[str], items: Sequence[PassageItem]) -> list[bool]:
    """`contains_answer` of each reply against its item's correct answer."""
    return [contains_answer(r, it.correct) for r, it in zip(replies, items, strict=True)]
