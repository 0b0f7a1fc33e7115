"""The one protocol every model backend implements: batch-first generation and scoring."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from superalign.records import Chat


@dataclass(frozen=True)
class Sampling:
    """How to decode. temperature 0 = greedy. top_k is applied before the softmax."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_k: int = 50
    seed: int = 0


@runtime_checkable
class Backend(Protocol):
    """A language model. `name` identifies model + version in Response.model."""

    name: str

    def generate(self, chats: Sequence[Chat], params: Sampling) -> list[str]:
        """One completion per chat (the assistant turn's text, without end-of-turn marker)."""
        ...

    def logprobs(self, chats: Sequence[Chat], continuations: Sequence[str]) -> list[float]:
        """Sum of log P(continuation tokens | chat rendered with the generation prompt), in nats."""
        ...
