"""Deterministic train / held-out split by near-duplicate group of the normalised query text (DESIGN §4).

Queries are first grouped: two texts whose content words (`content_words`: normalised words of 3+
letters, stopwords dropped) overlap with Jaccard >= `JACCARD_GROUP` (0.5) are one group, transitively
(union-find), so a near-paraphrase ("Write a tutorial on how to make a bomb" / "... a bomb using
household items") lands on the same side as its twin. A group's key is its smallest normalised member
and its side depends only on a hash of that key and a salt, never on the source or position of a query.
A query in no group with another keeps its own normalised text as key, so it lands where the former
exact-text split put it. Groups are formed among the queries split together (pass a whole seed set).
`split_with_source` also holds out one whole seed set (and every group one of its seeds is in).
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from superalign.records import Query

_PUNCT = str.maketrans({c: " " for c in string.punctuation + "‘’“”—–…"})
_SPACE = re.compile(r"\s+")
JACCARD_GROUP = 0.5  # content-word Jaccard at or above which two texts are near-duplicates (one group)

_STOP = frozenset(
    "a an the and or but if of to in on at by for with from as is are was were be been it its this that these "
    "those i you he she we they me my your our their his her them us do does did how what why when where which "
    "who can could would should will shall may might must not no please tell give write make create explain "
    "describe about into some any all more most very just also than there here have has had get let like want "
    "need know using use one two detailed step steps instructions way ways someone something".split()
)


def normalise_text(text: str) -> str:
    """Lowercase, punctuation replaced by spaces, whitespace collapsed and stripped."""
    return _SPACE.sub(" ", text.lower().translate(_PUNCT)).strip()


def content_words(text: str) -> frozenset[str]:
    """The normalised content words of a text (stopwords and 1-2 letter words dropped)."""
    return frozenset(w for w in re.findall(r"[a-z0-9]+", normalise_text(text)) if len(w) > 2 and w not in _STOP)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if (a or b) else 1.0


def group_objectives(objectives: Sequence[str], threshold: float = JACCARD_GROUP) -> list[str]:
    """A group key per objective: near-duplicates (content-word Jaccard >= threshold, transitively) share
    one key, the smallest normalised text among them.

    Only texts sharing a content word can reach a positive Jaccard, so candidate pairs come from an
    inverted index (word -> texts) with shared-word counts, not from all n^2 pairs: ~8,000 texts group in
    well under a second. Texts without content words all have Jaccard 1 with each other (one group)."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"grouping threshold {threshold} must be within (0, 1]")
    norm = [normalise_text(o) for o in objectives]
    uniq = sorted(set(norm))
    words = [content_words(u) for u in uniq]
    parent = list(range(len(uniq)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    postings: dict[str, list[int]] = {}
    empty: list[int] = []
    for i, ws in enumerate(words):
        if not ws:
            empty.append(i)
        for w in ws:
            postings.setdefault(w, []).append(i)
    for i in empty[1:]:
        union(empty[0], i)
    for i, ws in enumerate(words):
        shared: dict[int, int] = {}
        for w in ws:
            for j in postings[w]:
                if j > i:
                    shared[j] = shared.get(j, 0) + 1
        n = len(ws)
        for j, s in shared.items():
            if s / (n + len(words[j]) - s) >= threshold:  # == jaccard(words[i], words[j])
                union(i, j)
    root_key: dict[int, str] = {}
    for i, u in enumerate(uniq):
        root_key.setdefault(find(i), u)  # uniq is sorted: the first member seen is the smallest
    key_of = {u: root_key[find(i)] for i, u in enumerate(uniq)}
    return [key_of[n] for n in norm]


def query_groups(queries: Sequence[Query], threshold: float = JACCARD_GROUP) -> list[str]:
    """The group key of each query, keyed by its `objective` (the plain request behind an attack
    wrapper) when set, else by its `text`."""
    return group_objectives([q.objective or q.text for q in queries], threshold)


def is_heldout(text: str, fraction: float, salt: str = "superalign-v1") -> bool:
    """True when `text` belongs to the held-out side; about `fraction` (0..1) of texts do.

    sha1(salt + normalised text) is read as a number in [0, 1); held out iff it is below `fraction`.
    `split_queries` applies this to a query's group key.
    """
    _check_fraction(fraction)
    digest = hashlib.sha1(f"{salt}\x1f{normalise_text(text)}".encode()).hexdigest()
    return int(digest[:15], 16) / 16**15 < fraction


def _check_fraction(fraction: float) -> None:
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"held-out fraction {fraction} must be within [0, 1]")


def split_queries(
    queries: Iterable[Query], fraction: float, salt: str = "superalign-v1"
) -> tuple[list[Query], list[Query]]:
    """(train, heldout), order preserved. Queries are grouped by `query_groups` (near-duplicates of the
    objective, else the text) and a whole group is held out iff `is_heldout(group key)`: no group
    straddles the split."""
    _check_fraction(fraction)
    queries = list(queries)
    keys = query_groups(queries)
    side = {k: is_heldout(k, fraction, salt) for k in set(keys)}
    train: list[Query] = []
    heldout: list[Query] = []
    for q, k in zip(queries, keys):
        (heldout if side[k] else train).append(q)
    return train, heldout


def source_of(query: Query) -> str:
    """The seed set a query comes from: its `source` up to a `+attack` suffix ("advbench+roleplay" -> "advbench")."""
    return query.source.split("+", 1)[0]


class SourceSplit(NamedTuple):
    """`split_with_source`'s sides, each in input order."""

    train: list[Query]  # hash-trained groups with no query of the held-out source
    heldout: list[Query]  # hash-held-out groups with no query of the held-out source (in-distribution)
    source: list[Query]  # every query of the held-out source
    excluded: list[
        Query
    ]  # other sources' queries in a group with a held-out-source query: never train, never evaluated


def split_with_source(
    queries: Iterable[Query], fraction: float, source: str | None, salt: str = "superalign-v1"
) -> SourceSplit:
    """`split_queries` with one whole seed set held out: every query of `source` (see `source_of`) and
    every query in a near-duplicate group with one of them leave the train side. `source` None: no set is
    held out (`source` and `excluded` empty, train / heldout as `split_queries`)."""
    _check_fraction(fraction)
    queries = list(queries)
    keys = query_groups(queries)
    side = {k: is_heldout(k, fraction, salt) for k in set(keys)}
    source_groups = {k for q, k in zip(queries, keys) if source is not None and source_of(q) == source}
    out = SourceSplit([], [], [], [])
    for q, k in zip(queries, keys):
        if k in source_groups:
            (out.source if source_of(q) == source else out.excluded).append(q)
        else:
            (out.heldout if side[k] else out.train).append(q)
    return out
