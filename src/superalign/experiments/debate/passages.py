"""A passage's sentences; verbatim quote checks; option masking (the items: `superalign.data.passages`).

The strong side reads the passage; the judge does not. What agents may show the judge are *verified*
quotes: exact substrings of the passage (`verify_quote`). Masking (`mask_options`) replaces both options
and words that share a stem with an option's content words, so a quote cannot hand the judge the answer
by string match: the judge must use what the quote says.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# A sentence ends at . ! or ? followed by space and a capital, digit, quote or bracket.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
# Words of four letters or more that say nothing about which option is meant.
STOPWORDS = frozenset(
    "that this with from into than then they them their there these those have been were what which when "
    "where while other some more most many much such only also very each both does will would could should "
    "about after before under over between through because".split()
)


def sentences(passage: str) -> list[str]:
    """The passage's sentences, each an exact substring of it (so each passes `verify_quote`)."""
    return [s for s in (p.strip() for p in SENTENCE_END.split(passage)) if s]


def verify_quote(quote: str, passage: str) -> bool:
    """True iff `quote` is a non-empty, verbatim substring of `passage` (no normalisation of case or spaces)."""
    return bool(quote.strip()) and quote in passage


def _stem(word: str) -> str:
    return word[: max(4, len(word) - 2)]


def option_pattern(options: Sequence[str]) -> re.Pattern[str]:
    """A case-insensitive pattern for every option string, every word sharing a stem with an option's content
    words (four letters or more, not a stopword: "nucleotides" also masks "nucleotide") and every number in an
    option (option "carbon 14" masks the 14 of "carbon-14")."""
    parts = [re.escape(o.strip()) for o in options if o.strip()]
    for o in options:
        for w in re.findall(r"[A-Za-z]{4,}", o):
            if w.lower() not in STOPWORDS:
                parts.append(re.escape(_stem(w.lower())) + r"[A-Za-z]*")
        parts += [re.escape(n) for n in re.findall(r"[0-9]+(?:[.,][0-9]+)*", o)]
    parts.sort(key=len, reverse=True)  # whole options before their words
    return re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(parts) + r")(?![A-Za-z0-9])", re.IGNORECASE)


def mask_options(text: str, options: Sequence[str], token: str = "___") -> str:
    """`text` with every option string (and the words that share a stem with one) replaced by `token`."""
    if not any(o.strip() for o in options):
        return text
    return option_pattern(options).sub(token, text)


def mentions(text: str, option: str) -> bool:
    """Whether `text` contains `option` as a whole string (case-insensitive): the leak a mask removes."""
    o = option.strip()
    return (
        bool(o) and re.search(r"(?<![A-Za-z0-9])" + re.escape(o) + r"(?![A-Za-z0-9])", text, re.IGNORECASE) is not None
    )
