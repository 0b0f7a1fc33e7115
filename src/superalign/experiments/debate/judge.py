"""The weak judge: SmolLM2 without the passage, choosing between two options by the letter it would answer.

    judge = CachedJudge(lambda: load_backend("embedded"), tag="embedded-float32")
    p = judge.p_correct([JudgeRequest(question, correct, distractor, context)])   # (n, 2)

Each request is asked in both answer orders (order 0: the correct option is A; order 1: it is B). The chat
ends with the assistant's "Answer:" and the judge's choice is the log-probability of " A" against " B"
(softmax over the two letters); `p_correct_both` also scores the option's own text as the reply (a
diagnostic), in the same forward pass, and `cloze_p_correct` is a second diagnostic judge in the plain-text
SciQ format of lm-evaluation-harness (passage, question, "Answer:", each option as the continuation). A
small model prefers one letter whatever the question, so only the mean over both orders says what it knows:
`p_correct` returns P(correct) per order and callers average them.

Every score is cached on disk per (model tag, chat, replies) under `$SUPERALIGN_CACHE/debate-judge/`, so a
rerun loads no model; the model is loaded on the first miss only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from superalign.records import Chat
from superalign.store.vector_cache import load_vectors, save_vector

if TYPE_CHECKING:
    import numpy as np

LETTERS = (" A", " B")
VERSION = 1  # bump when a prompt changes (new cache keys anyway) or the scoring does


class OptionScorer(Protocol):
    """What the judge needs from a model (HFBackend has both)."""

    def render(self, chat: Chat) -> str: ...

    def bos_text(self) -> str: ...

    def score_options(self, prefixes: Sequence[str], options: Sequence[Sequence[str]]) -> list[list[float]]: ...


@dataclass(frozen=True)
class JudgeRequest:
    """One question for the judge: the two options and what it reads before the question ("" = nothing)."""

    question: str
    correct: str
    distractor: str
    context: str = ""


def passage_context(passage: str) -> str:
    """What the passage-reading judge reads before the question."""
    return f"Read the passage, then answer the question.\n\nPassage: {passage}"


def judge_chat(question: str, first: str, second: str, context: str = "") -> Chat:
    """The judge's chat: context, the question with options A and B, and the reply opened with "Answer:"."""
    head = f"{context}\n\n" if context else ""
    user = f"{head}Question: {question}\nA. {first}\nB. {second}\nAnswer with the letter of the correct option, A or B."
    return [{"role": "user", "content": user}, {"role": "assistant", "content": "Answer:"}]


def order_prompts(req: JudgeRequest, with_text: bool = False) -> list[tuple[Chat, tuple[str, ...]]]:
    """(chat, the replies scored) in order 0 (correct = A) and order 1 (correct = B): " A", " B", and with
    `with_text` the A-option's and the B-option's text."""
    out = []
    for first, second in ((req.correct, req.distractor), (req.distractor, req.correct)):
        replies = LETTERS + ((" " + first, " " + second) if with_text else ())
        out.append((judge_chat(req.question, first, second, req.context), replies))
    return out


def cloze_prompt(req: JudgeRequest) -> str:
    """lm-evaluation-harness's SciQ prompt, plain text: "{context}\nQuestion: {question}\nAnswer:"; each
    option is scored as the continuation. A diagnostic judge (the options are never shown together)."""
    head = f"{req.context}\n" if req.context else ""
    return f"{head}Question: {req.question}\nAnswer:"


def softmax2(a: float, b: float) -> float:
    """P(first) of a two-way softmax over log-scores a, b."""
    import math

    m = max(a, b)
    ea, eb = math.exp(a - m), math.exp(b - m)
    return ea / (ea + eb)


class CachedJudge:
    """Scores chats' replies with a lazily loaded model, each (chat, replies) once per machine."""

    def __init__(self, load: Callable[[], OptionScorer], tag: str, cache: Path | None = None, chunk: int = 64) -> None:
        self._load = load
        self._model: OptionScorer | None = None
        self.tag, self.cache, self.chunk = tag, cache, chunk
        self.scored = 0  # prompts the model ran (cache misses)

    def model(self) -> OptionScorer:
        """The model, loaded on first use."""
        if self._model is None:
            self._model = self._load()
        return self._model

    def key(self, chat: Chat | str, replies: Sequence[str]) -> str:
        text = json.dumps([self.tag, VERSION, chat, list(replies)], ensure_ascii=False)
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def scores(
        self,
        prompts: Sequence[tuple[Chat | str, Sequence[str]]],
        progress: Callable[[int, int], None] | None = None,
    ) -> list[list[float]]:
        """Summed log P(reply | prompt) for each reply of each prompt, from the cache where present. A chat
        is rendered with the model's chat template; a string is scored as plain text (after the model's BOS token
        where its tokenizer adds one: Gemma)."""
        import numpy as np

        keys = [self.key(c, r) for c, r in prompts]
        have: dict[str, np.ndarray] = load_vectors(self.cache, keys) if self.cache else {}
        todo = list(dict.fromkeys(k for k in keys if k not in have))
        where = {k: i for i, k in enumerate(keys)}
        for b in range(0, len(todo), self.chunk):
            if progress:
                progress(b, len(todo))
            part = todo[b : b + self.chunk]
            m = self.model()
            texts = [prompts[where[k]][0] for k in part]
            bos = m.bos_text()  # once per chunk: it tokenizes a probe string
            got = m.score_options(
                [bos + t if isinstance(t, str) else m.render(t) for t in texts],
                [prompts[where[k]][1] for k in part],
            )
            self.scored += len(part)
            for k, s in zip(part, got):
                have[k] = np.asarray(s, dtype=np.float64)
                if self.cache:
                    save_vector(self.cache, k, have[k])
        if progress:
            progress(len(todo), len(todo))
        return [have[k].tolist() for k in keys]

    def p_correct(
        self, requests: Sequence[JudgeRequest], progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """(n, 2) P(correct option) by letter, per request in order 0 (correct = A) and order 1 (= B)."""
        return self._probs(requests, False, progress)[0]

    def cloze_p_correct(
        self, requests: Sequence[JudgeRequest], progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """(n, 2) P(correct) of the cloze judge (`cloze_prompt`: no options listed, so no order: both columns
        are the same), the two options' summed log-probabilities softmaxed."""
        import numpy as np

        s = self.scores([(cloze_prompt(r), (" " + r.correct, " " + r.distractor)) for r in requests], progress)
        p = np.asarray([softmax2(a, b) for a, b in s])
        return np.column_stack([p, p])

    def p_correct_both(
        self, requests: Sequence[JudgeRequest], progress: Callable[[int, int], None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(letter, text): P(correct) per order by the letter and by the option's text as the reply."""
        letter, text = self._probs(requests, True, progress)
        assert text is not None
        return letter, text

    def _probs(
        self, requests: Sequence[JudgeRequest], with_text: bool, progress: Callable[[int, int], None] | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        import numpy as np

        prompts = [p for r in requests for p in order_prompts(r, with_text)]
        s = self.scores(prompts, progress)
        pairs = ((0, 1), (2, 3)) if with_text else ((0, 1),)
        out = [np.zeros((len(requests), 2)) for _ in pairs]
        for k, (a, b) in enumerate(pairs):
            for i in range(len(requests)):
                s0, s1 = s[2 * i], s[2 * i + 1]
                out[k][i, 0] = softmax2(s0[a], s0[b])  # order 0: the correct option is the A-reply
                out[k][i, 1] = 1.0 - softmax2(s1[a], s1[b])  # order 1: it is the B-reply
        return out[0], (out[1] if with_text else None)


def judge_for(learner: str, dtype: str, batch_size: int, use_cache: bool = True) -> CachedJudge:
    """The judge on `learner` (embedded | tiny | an HF model dir), cached under `$SUPERALIGN_CACHE`."""
    from superalign.backends.embedded import cache_root

    def load() -> OptionScorer:
        from superalign.backends import load_backend, require_trainable

        return require_trainable(
            load_backend(learner, batch_size=batch_size, dtype=dtype),
            f"debate judge {learner!r}: it scores options under the model's own chat template; give embedded, "
            "gemma, tiny or an HF model dir",
        )

    name = (
        learner
        if learner in ("embedded", "gemma", "tiny")
        else hashlib.sha1(str(Path(learner).resolve()).encode()).hexdigest()[:12]
    )
    tag = f"{name}-{dtype}"
    return CachedJudge(load, tag, cache_root() / "debate-judge" / tag if use_cache else None)
