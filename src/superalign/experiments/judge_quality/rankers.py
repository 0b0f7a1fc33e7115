"""Rankers: who decides which of an item's sampled answers is the best (trained on) and which the worst.

Every ranker scores the *same* `Group`s (one per training item: its prompt and its k sampled answers), so arms
differ only in who ranked. A ranker returns one score per answer, higher = better; `pick` turns scores into
(best, worst) with a seeded random tie-break, so a ranker that cannot tell answers apart picks at random.

    oracle           1 if the answer contains the reference answer, else 0 (the upper bound)
    oracle-flip-P    the oracle, its ranking reversed on a random P of the items (a judge of known error rate)
    self-consistency the answer's mean word-F1 with the item's other answers (majority vote, softened)
    mean-logprob     the model's mean per-token log-probability of the answer given the prompt
    self-judge       the model's own yes/no verdict: log P(" yes") - log P(" no") after "Is it correct?"
    gemma-judge      the same verdict from Gemma-3-270M, another model family (an outside judge; the optional
                     Gemma wheels, backends/gemma.py); a base model, so the question is plain text after <bos>
    random           uniform scores (the control: training on the model's own samples, unranked)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from superalign.data.passages import PassageItem
from superalign.experiments.judge_quality.answers import answer_chat, normalise
from superalign.records import Chat


@dataclass(frozen=True)
class Group:
    """One training item's sampled answers and whether each contains the reference answer."""

    item: PassageItem
    answers: tuple[str, ...]
    correct: tuple[bool, ...]

    @property
    def decidable(self) -> bool:
        """Some answers right and some wrong: only here can a ranker pick better or worse."""
        return any(self.correct) and not all(self.correct)


class Ranker(Protocol):
    """Scores every answer of every group (higher = better)."""

    @property
    def name(self) -> str: ...

    def scores(self, groups: Sequence[Group]) -> list[list[float]]: ...


class OptionScorer(Protocol):
    """What the model-based rankers need from a model (HFBackend has both)."""

    def render(self, chat: Chat) -> str: ...

    def score_options(self, prefixes: Sequence[str], options: Sequence[Sequence[str]]) -> list[list[float]]: ...

    def encode(self, text: str) -> list[int]: ...


@dataclass(frozen=True)
class Oracle:
    """Correct answers score 1, wrong ones 0; with `flip` > 0, each item's ranking is reversed with that
    probability (drawn per item from `seed`), so the pick is the worst answer there."""

    flip: float = 0.0
    seed: int = 0

    @property
    def name(self) -> str:
        return "oracle" if self.flip == 0 else f"oracle-flip-{round(100 * self.flip)}"

    def flipped(self, n: int) -> list[bool]:
        """Which of `n` items have their ranking reversed."""
        rng = random.Random(f"{self.name}-{self.seed}")
        return [rng.random() < self.flip for _ in range(n)]

    def scores(self, groups: Sequence[Group]) -> list[list[float]]:
        return [[(-1.0 if f else 1.0) * float(c) for c in g.correct] for g, f in zip(groups, self.flipped(len(groups)))]


def word_f1(a: str, b: str) -> float:
    """Word-overlap F1 of two answers after `normalise` (1 = the same words)."""
    x, y = normalise(a).split(), normalise(b).split()
    if not x or not y:
        return 0.0
    common = sum(min(x.count(w), y.count(w)) for w in set(x))
    if common == 0:
        return 0.0
    p, r = common / len(x), common / len(y)
    return 2 * p * r / (p + r)


@dataclass(frozen=True)
class SelfConsistency:
    """An answer's mean word-F1 with the item's other answers: the answer the samples agree on wins."""

    name: str = "self-consistency"

    def scores(self, groups: Sequence[Group]) -> list[list[float]]:
        out = []
        for g in groups:
            k = len(g.answers)
            out.append(
                [
                    sum(word_f1(a, b) for j, b in enumerate(g.answers) if j != i) / max(1, k - 1)
                    for i, a in enumerate(g.answers)
                ]
            )
        return out


@dataclass(frozen=True)
class RandomRanker:
    """Uniform random scores, seeded."""

    seed: int = 0
    name: str = "random"

    def scores(self, groups: Sequence[Group]) -> list[list[float]]:
        rng = random.Random(f"random-{self.seed}")
        return [[rng.random() for _ in g.answers] for g in groups]


@dataclass(frozen=True)
class MeanLogprob:
    """The model's mean log-probability per answer token, given the answer prompt (length-normalised, so
    a short answer does not win for being short)."""

    model: OptionScorer
    name: str = "mean-logprob"

    def scores(self, groups: Sequence[Group]) -> list[list[float]]:
        prefixes = [self.model.render(answer_chat(g.item)) for g in groups]
        sums = self.model.score_options(prefixes, [list(g.answers) for g in groups])
        return [[s / max(1, len(self.model.encode(a))) for s, a in zip(row, g.answers)] for row, g in zip(sums, groups)]


def judge_chat(item: PassageItem, answer: str) -> Chat:
    """The self-judge's question: the passage, the question, a proposed answer, "correct? yes or no"."""
    user = (
        f"Passage: {item.passage}\n\nQuestion: {item.question}\nProposed answer: {answer}\n\n"
        "Is the proposed answer correct? Answer yes or no."
    )
    return [{"role": "user", "content": user}, {"role": "assistant", "content": "Answer:"}]


def judge_text(item: PassageItem, answer: str) -> str:
    """The outside judge's question for a base model (no chat turns): plain text after <bos>, ending at "Answer:"."""
    return (
        f"<bos>Passage: {item.passage}\n\nQuestion: {item.question}\nProposed answer: {answer}\n\n"
        "Is the proposed answer correct? Answer yes or no.\nAnswer:"
    )


def yes_minus_no(model: OptionScorer, groups: Sequence[Group], prefixes: Sequence[str]) -> list[list[float]]:
    """log P(" yes") - log P(" no") after each prefix (one per answer, in group order), regrouped per group."""
    yes_no = model.score_options(prefixes, [[" yes", " no"]] * len(prefixes))
    flat = [y - n for y, n in yes_no]
    out, at = [], 0
    for g in groups:
        out.append(flat[at : at + len(g.answers)])
        at += len(g.answers)
    return out


@dataclass(frozen=True)
class SelfJudge:
    """The model's own verdict on each answer: log P(" yes") - log P(" no") after its "Answer:"."""

    model: OptionScorer
    name: str = "self-judge"

    def scores(self, groups: Sequence[Group]) -> list[list[float]]:
        return yes_minus_no(
            self.model, groups, [self.model.render(judge_chat(g.item, a)) for g in groups for a in g.answers]
        )


@dataclass(frozen=True)
class OutsideJudge:
    """Another model's verdict on each answer (the question as plain text: `judge_text`)."""

    model: OptionScorer
    name: str = "gemma-judge"

    def scores(self, groups: Sequence[Group]) -> list[list[float]]:
        return yes_minus_no(self.model, groups, [judge_text(g.item, a) for g in groups for a in g.answers])


@dataclass(frozen=True)
class Picks:
    """A ranker's choice per group: the best answer's index (trained on) and the worst's."""

    best: list[int]
    worst: list[int]


def pick(scores: Sequence[Sequence[float]], seed: int = 0) -> Picks:
    """(best, worst) per group: argmax / argmin of the scores, ties broken uniformly at random (seeded)."""
    rng = random.Random(f"pick-{seed}")
    best, worst = [], []
    for row in scores:
        jitter = [rng.random() for _ in row]
        order = sorted(range(len(row)), key=lambda i: (row[i], jitter[i]))
        best.append(order[-1])
        worst.append(order[0])
    return Picks(best, worst)


def pick_accuracy(groups: Sequence[Group], picks: Picks) -> tuple[int, int]:
    """(right, decidable): on the items with both right and wrong answers, how often the pick is right."""
    dec = [(g, b) for g, b in zip(groups, picks.best) if g.decidable]
    return sum(g.correct[b] for g, b in dec), len(dec)


def pair_accuracy(groups: Sequence[Group], scores: Sequence[Sequence[float]]) -> float:
    """Over every (right, wrong) answer pair of an item, the share the scores order right (a tie counts 1/2);
    NaN without such pairs."""
    total, n = 0.0, 0
    for g, s in zip(groups, scores):
        for i, ci in enumerate(g.correct):
            for j, cj in enumerate(g.correct):
                if ci and not cj:
                    total += 1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0
                    n += 1
    return total / n if n else float("nan")
