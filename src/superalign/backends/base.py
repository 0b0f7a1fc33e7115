"""What the code asks of a model, as protocols.

- `Backend`: every backend (HF, scripted, openai:, sharded, vLLM) — batch-first generation and scoring.
- `Trainable`: the in-process torch backend (HFBackend): the weights training replaces, its tokenizer, and how
  a chat becomes text and tokens. The experiments that train weights or render chats require it
  (`require_trainable`).
- `PairTrainable`: the scripted test learner, which learns from preference pairs without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from superalign.errors import UserError
from superalign.records import Chat, Pair


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

    def logprobs_text(self, prefixes: Sequence[str], continuations: Sequence[str]) -> list[float]:
        """Sum of log P(continuation | prefix) over plain text (no chat template), in nats."""
        ...

    def score_options(self, prefixes: Sequence[str], options: Sequence[Sequence[str]]) -> list[list[float]]:
        """Sum log P(option | prefix) for every option of every prefix (`score_options_by_logprobs` where a
        backend has no faster way)."""
        ...

    def close(self) -> None:
        """Release what the backend holds (HTTP clients, workers, served adapters); a no-op where nothing is."""
        ...


@runtime_checkable
class Trainable(Backend, Protocol):
    """An in-process torch model (HFBackend). Training replaces `model` in place and leaves the round's LoRA
    delta in `last_adapter` (None: nothing trained, or full fine-tuning); `save` writes a save_pretrained
    directory."""

    model: Any
    tokenizer: Any
    max_context: int
    last_adapter: Any

    def render(self, chat: Chat) -> str:
        """The chat as the model sees it, ending with the assistant generation prompt."""
        ...

    def bos_text(self) -> str:
        """The BOS token as text when a plain-text prompt must start with it (its tokenizer adds one), else ""."""
        ...

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (no special tokens added)."""
        ...

    def save(self, directory: str | Path) -> None:
        """Write the model and tokenizer to `directory` (loadable with load_backend)."""
        ...


@runtime_checkable
class PairTrainable(Backend, Protocol):
    """A learner trained without torch (the scripted test learner): `train_pairs` returns a new backend."""

    def train_pairs(self, pairs: Sequence[Pair], lr: float = 1.0) -> PairTrainable: ...

    def save(self, directory: str | Path) -> None: ...


def score_options_by_logprobs(
    backend: Backend, prefixes: Sequence[str], options: Sequence[Sequence[str]]
) -> list[list[float]]:
    """`score_options` from one flat `logprobs_text` call over every (prefix, option), grouped back per prefix:
    for backends with no shared-prefix scoring (scripted, openai:, vLLM)."""
    flat = backend.logprobs_text([p for p, os in zip(prefixes, options) for _ in os], [o for os in options for o in os])
    out, at = [], 0
    for os in options:
        out.append(flat[at : at + len(os)])
        at += len(os)
    return out


def require_trainable(backend: Backend, message: str) -> Trainable:
    """`backend` as a Trainable (a local torch model), else UserError(message): say what needs the weights and
    which learners have them (embedded, tiny or an HF model dir)."""
    if not isinstance(backend, Trainable):
        raise UserError(message)
    return backend
