"""Typed records that flow between stages (docs/design.md §2, a public contract).

Every record is a frozen dataclass; `to_dict` / `from_dict` give the JSONL and SQLite form.
Field names are the contract: add fields freely, never rename.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}
Chat = list[Message]
# A competence replay example: (chat, answer), or (raw text prefix, its continuation) read without the chat
# template (train.replay_format: mc, the text the competence metric scores).
ReplayExample = tuple[Chat | str, str]

R = TypeVar("R")


def stable_id(*parts: object) -> str:
    """A short deterministic id from the given parts (same inputs -> same id across runs)."""
    h = hashlib.sha1("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()
    return h[:16]


def user_chat(text: str, system: str | None = None) -> Chat:
    """The single-turn chat a query becomes when sent to a model."""
    chat: Chat = [{"role": "system", "content": system}] if system else []
    chat.append({"role": "user", "content": text})
    return chat


class _Record:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]  # every subclass is a dataclass; this mixin is not

    @classmethod
    def from_dict(cls: type[R], row: dict[str, Any]) -> R:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]  # cls is a dataclass subclass (see to_dict)
        return cls(**{k: v for k, v in row.items() if k in names})


@dataclass(frozen=True)
class Query(_Record):
    """A prompt sent to the learner. `harmful` is ground truth when known (None otherwise)."""

    id: str
    text: str
    category: str = "benign"  # harm category, or "benign"
    harmful: bool | None = None
    source: str = ""  # seed set or attack method, e.g. "harmbench", "advbench+roleplay"
    parent_id: str | None = None  # the seed this attack was derived from
    round: int = 0
    objective: str = ""  # the plain request behind a jailbreak wrapper (the seed text)


@dataclass(frozen=True)
class Response(_Record):
    id: str
    query_id: str
    text: str
    model: str  # name + version, e.g. "embedded@round-1"
    round: int = 0
    sample: int = 0  # index among the n samples drawn for this query
    system: str = ""  # system prompt used to draw it ("" = the model's default)


@dataclass(frozen=True)
class Verdict(_Record):
    """A critic's judgement of one response.

    unsafe: True = harmful compliance, False = safe (refusal, safe answer), None = the critic abstains.
    score: P(unsafe) in [0, 1]; confidence in [0, 1]; dimensions: {name: score in [0, 1], 1 = good}.
    constitution / profile: the constitution version ("name@version") and value profile applied.
    rubric_item: the constitution rubric item id that decided the verdict (e.g. "harm.no-uplift").
    evidence: the span of the response that decided it, an exact substring of the response.
    overall: the profile-weighted mean of the dimensions (1 = good).
    """

    response_id: str
    critic: str
    unsafe: bool | None
    refusal: bool
    score: float
    confidence: float
    dimensions: dict[str, float] = field(default_factory=dict)
    explanation: str = ""
    constitution: str = ""
    profile: str = ""
    rubric_item: str = ""
    evidence: str = ""
    request_harm: float | None = None  # the critic's P(the request is harmful); None = not estimated
    overall: float | None = None


@dataclass(frozen=True)
class HumanLabel(_Record):
    response_id: str
    reviewer: str
    unsafe: bool | None
    refusal: bool
    note: str = ""
    created_at: str = ""


@dataclass(frozen=True)
class Pair(_Record):
    """A preference pair for DPO. `prompt` is the chat *without* the assistant turn."""

    prompt: Chat
    chosen: str
    rejected: str
    weight: float = 1.0
    provenance: str = "critic"  # critic | human | self | competence
    kind: str = ""  # e.g. "refuse-harmful", "help-benign"
    query_id: str = ""
