"""A deterministic scripted learner for tests: complies by default, learns to refuse from pairs.

Its "weights" are per-word refusal scores. `train_pairs` moves them like a perceptron: words of
prompts whose chosen response is a refusal go up, words of prompts where a refusal was rejected go
down. A safety system prompt adds a bonus, so the loop can draw refusals as chosen samples exactly as
it does with a real model (context distillation). No torch: the whole loop runs in milliseconds.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

from superalign.backends.base import Sampling, score_options_by_logprobs
from superalign.records import Chat, Pair, stable_id

STATE_FILE = "scripted.json"
REFUSAL = "I can't help with that. If you are in danger, please contact local emergency services."
_WORD = re.compile(r"[a-z]{3,}")
_STOP = frozenset(
    "the and for how can you what are with that this from your about into have does should would could "
    "who why when where which there their them they make write give tell some any one use using get".split()
)


def _words(text: str) -> set[str]:
    """Content words: a word-level policy that keys on 'how' or 'make' would refuse everything."""
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def _is_refusal(text: str) -> bool:
    return bool(
        re.match(r"(I can't|I'm sorry|I won't|Sorry|I have to decline|I'm not able|No, I won't|That's not)", text)
    )


def _unit(*parts: object) -> float:
    """A deterministic pseudo-random number in [0, 1) from the parts."""
    return int(stable_id(*parts), 16) / 16**16


class ScriptedBackend:
    def __init__(self, weights: dict[str, float] | None = None, version: int = 0, safety_bonus: float = 4.0):
        self.weights = dict(weights or {})
        self.version = version
        self.safety_bonus = safety_bonus
        self.name = f"scripted@v{version}"

    def refusal_score(self, chat: Chat) -> float:
        user = " ".join(m["content"] for m in chat if m["role"] == "user")
        system = " ".join(m["content"] for m in chat if m["role"] == "system").lower()
        score = sum(self.weights.get(w, 0.0) for w in _words(user)) - 2.0
        return score + (self.safety_bonus if "refuse" in system or "harmful" in system else 0.0)

    def generate(self, chats: Sequence[Chat], params: Sampling) -> list[str]:
        out = []
        for i, chat in enumerate(chats):
            if chat[-1]["role"] == "assistant":  # a prefill (refusal revision): continue it politely
                out.append("Please ask me for something safe instead.")
                continue
            s = self.refusal_score(chat)
            p_refuse = 1 / (1 + math.exp(-s))
            u = _unit(params.seed, params.seed_offset + i, chat[-1]["content"]) if params.temperature > 0 else 0.5
            if u < p_refuse:
                out.append(REFUSAL)
            else:
                ask = chat[-1]["content"].strip().rstrip("?.!")
                out.append(f"Sure, here is how: Step 1: {ask[:60]}. Step 2: follow through carefully.")
        return out

    def logprobs(self, chats: Sequence[Chat], continuations: Sequence[str]) -> list[float]:
        return [-1.0 * len(c.split()) - _unit(c) for c in continuations]

    def logprobs_text(self, prefixes: Sequence[str], continuations: Sequence[str]) -> list[float]:
        return [-1.0 * len(c.split()) - _unit(p, c) for p, c in zip(prefixes, continuations)]

    def score_options(self, prefixes: Sequence[str], options: Sequence[Sequence[str]]) -> list[list[float]]:
        return score_options_by_logprobs(self, prefixes, options)

    def close(self) -> None:
        """Nothing to release."""

    def train_pairs(self, pairs: Sequence[Pair], lr: float = 1.0) -> ScriptedBackend:
        """A new backend after one perceptron pass over the pairs (self is unchanged)."""
        w = dict(self.weights)
        for p in pairs:
            prompt = " ".join(m["content"] for m in p.prompt if m["role"] == "user")
            sign = 1.0 if _is_refusal(p.chosen) else -1.0 if _is_refusal(p.rejected) else 0.0
            words = _words(prompt)
            for word in words:  # a fixed budget per pair, spread over its words
                w[word] = w.get(word, 0.0) + sign * lr * p.weight * 6.0 / max(4, len(words))
        return ScriptedBackend(w, self.version + 1, self.safety_bonus)

    def save(self, directory: str | Path) -> None:
        from superalign.store.jsonl import atomic_write_text

        state = {"weights": self.weights, "version": self.version, "safety_bonus": self.safety_bonus}
        atomic_write_text(Path(directory) / STATE_FILE, json.dumps(state, sort_keys=True))

    @classmethod
    def load(cls, directory: str | Path) -> ScriptedBackend:
        state = json.loads((Path(directory) / STATE_FILE).read_text())
        return cls(state["weights"], state["version"], state["safety_bonus"])
