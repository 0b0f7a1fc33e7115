"""A run's preference pairs as TRL's conversational preference dataset (`superalign pairs export`).

Each row is {"prompt": [...turns without the answer...], "chosen": [{"role": "assistant", ...}],
"rejected": [{"role": "assistant", ...}]} (TRL's "conversational preference" format, with an explicit
prompt): `datasets.load_dataset("json", data_files=FILE)` gives a dataset that TRL's DPOTrainer and
`maybe_apply_chat_template` take as is. The prompt is the chat the learner answered (a system turn
included, when the run had one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from superalign.errors import UserError
from superalign.records import Pair

META_KEYS = ("round", "kind", "provenance", "weight", "query_id")  # the columns --meta adds


def pair_rounds(store: Any) -> list[int]:
    """The rounds of a run store that committed their preference pairs (round 0, the base evaluation, has none)."""
    return sorted({k for k, name in store.steps() if name == "pairs"})


def preference_rows(
    store: Any, rounds: Sequence[int] = (), replay: bool = False, meta: bool = False
) -> list[dict[str, Any]]:
    """The pairs of `rounds` (default: every round with pairs), in round order, as TRL conversational
    preference rows. `replay`: also the pairs a round replayed from earlier rounds (provenance "replay"):
    each round's rows are then what it trained on, but a pair can appear twice; without it each appears
    once. `meta`: add the columns in META_KEYS. UserError for a round without pairs."""
    have = pair_rounds(store)
    if not have:
        raise UserError("this run has no preference pairs yet (round 0 only evaluates); run a round first")
    missing = [k for k in rounds if k not in have]
    if missing:
        raise UserError(
            f"--round {missing[0]}: no preference pairs in that round; rounds with pairs: {', '.join(map(str, have))}"
        )
    rows = []
    for k in sorted(set(rounds)) if rounds else have:
        for p in store.pairs(round=k, step="pairs"):
            if replay or p.provenance != "replay":
                rows.append(preference_row(p, k if meta else None))
    return rows


def preference_row(p: Pair, round: int | None = None) -> dict[str, Any]:
    """One pair as a conversational preference row; with `round`, also the META_KEYS columns."""
    row: dict[str, Any] = {
        "prompt": [{"role": m["role"], "content": m["content"]} for m in p.prompt],
        "chosen": [{"role": "assistant", "content": p.chosen}],
        "rejected": [{"role": "assistant", "content": p.rejected}],
    }
    if round is not None:
        row.update(round=round, kind=p.kind, provenance=p.provenance, weight=p.weight, query_id=p.query_id)
    return row
