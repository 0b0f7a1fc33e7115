"""The one protocol every model backend implements: batch-first generation and scoring."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from superalign.records import Chat


@dataclass(frozen=True)
class Sampling:
    """How to decode. temperature 0 = greedy. top_k is applied before the softmax.

    Row i of a call samples with its own seed, `row_seed(seed, seed_offset + i)`: a row's text does not
    depend on which other rows share its batch or shard, so splitting a call across workers (the Ray
    executor passes each shard its `seed_offset`) gives the same records as one local call.
    """

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_k: int = 50
    seed: int = 0
    seed_offset: int = 0


def row_seed(seed: int, row: int) -> int:
    """The sampling seed of row `row` of a call made with `seed` (a 63-bit mix, stable across runs)."""
    return (seed * 1_000_003 + row * 7_919 + 12_345) % (2**63 - 1)


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
