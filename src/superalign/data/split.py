"""Deterministic train / held-out split by normalised query text (DESIGN §4).

The side a query lands on depends only on its normalised text and a salt, never on its source or
position, so the same objective appearing in several seed sets (or wrapped by several attacks) is
always on the same side and held-out objectives never leak into training.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterable

from superalign.records import Query

_PUNCT = str.maketrans({c: " " for c in string.punctuation + "‘’“”—–…"})
_SPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """Lowercase, punctuation replaced by spaces, whitespace collapsed and stripped."""
    return _SPACE.sub(" ", text.lower().translate(_PUNCT)).strip()


def is_heldout(text: str, fraction: float, salt: str = "superalign-v1") -> bool:
    """True when `text` belongs to the held-out side; about `fraction` (0..1) of texts do.

    sha1(salt + normalised text) is read as a number in [0, 1); held out iff it is below `fraction`.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"held-out fraction {fraction} must be within [0, 1]")
    digest = hashlib.sha1(f"{salt}\x1f{normalise_text(text)}".encode("utf-8")).hexdigest()
    return int(digest[:15], 16) / 16**15 < fraction


def split_queries(queries: Iterable[Query], fraction: float, salt: str = "superalign-v1") -> tuple[list[Query], list[Query]]:
    """(train, heldout), order preserved. A query is keyed by its `objective` (the plain request behind
    an attack wrapper) when set, else by its `text`."""
    train: list[Query] = []
    heldout: list[Query] = []
    for q in queries:
        (heldout if is_heldout(q.objective or q.text, fraction, salt) else train).append(q)
    return train, heldout
