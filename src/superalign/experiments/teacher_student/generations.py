"""Iterative teacher -> student: a student trained on a teacher's labels becomes the next teacher.

    gen 0: teacher_0 labels the items -> student_0 trained on them
    gen k: teacher_k = student_{k-1} labels the items -> student_k trained on them

Anything that can label is a teacher, anything that can learn from labels is a student:

- teacher: `label(items) -> labels` (the protocol); or a Critic (`judge(JudgeItems) -> Verdicts`, the
  label is `verdict.unsafe`); or a scikit-learn-style model (`predict(items)`).
- student: `fit(items, labels)` (scikit-learn style; returns the fitted student or None), or a learner
  backend trained on preference pairs (labels are `Pair`s) through `learner.update.update_learner`.

`PairJudge` makes any Critic a teacher of preference pairs (label: does it keep the pair's chosen?) and
`oriented(pairs, labels)` turns such labels back into the pairs a student trains on; `DPOStudent` is a
learner student that, once trained, teaches as a judge over its own weights.

`generations` keeps the bookkeeping: per generation the teacher's label accuracy and the student's
accuracy (when ground truth / an evaluation is given) and how often the student reproduces its teacher.
With `parts`, generation k labels its own fresh items (parts[k]) instead of the same items every time.
`label_quality` scores labels against ground truth (accuracy, Cohen's kappa, class balance, abstentions)
and `first_drift` finds the first generation whose metric leaves generation 0's confidence interval.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Teacher(Protocol):
    def label(self, items: Sequence[Any]) -> list[Any]:
        """One label per item, in order."""
        ...


@runtime_checkable
class Judge(Protocol):
    """A Critic as a teacher (no `name` needed): the label is `verdict.unsafe`."""

    def judge(self, items: Sequence[Any]) -> list[Any]: ...


@runtime_checkable
class Predictor(Protocol):
    """A scikit-learn-style model as a teacher."""

    def predict(self, items: Any) -> Any: ...


@runtime_checkable
class Student(Protocol):
    def fit(self, items: Sequence[Any], labels: Sequence[Any]) -> Any:
        """Learn from (item, label); returns the trained student (or None: trained in place)."""
        ...


@dataclass(frozen=True)
class Labelled:
    """Items with the labels one teacher gave them."""

    items: list[Any]
    labels: list[Any]
    teacher: str = ""


@dataclass
class Generation:
    """One teacher -> student step. Accuracies are None when no ground truth / evaluation was given."""

    index: int
    teacher: str
    student: str
    label_accuracy: float | None  # teacher's labels vs ground truth on the labelled items
    student_accuracy: float | None  # evaluate(student), e.g. accuracy on a held-out set
    agreement_with_teacher: float | None  # share of items where the student reproduces its teacher's label
    label_counts: dict[str, int] = field(default_factory=dict)
    student_model: Any = field(default=None, repr=False, compare=False)
    teacher_model: Any = field(default=None, repr=False, compare=False)
    labels: list[Any] = field(default_factory=list, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "teacher": self.teacher,
            "student": self.student,
            "label_accuracy": self.label_accuracy,
            "student_accuracy": self.student_accuracy,
            "agreement_with_teacher": self.agreement_with_teacher,
            "label_counts": self.label_counts,
        }


def name_of(model: Any) -> str:
    return str(getattr(model, "name", None) or type(model).__name__)


def label_with(teacher: Any, items: Sequence[Any]) -> list[Any]:
    """The teacher's label for each item (see the module docstring for what counts as a teacher)."""
    if isinstance(teacher, Teacher):
        labels = list(teacher.label(items))
    elif isinstance(teacher, Judge):  # a Critic: items are JudgeItems, the label is "unsafe"
        labels = [v.unsafe for v in teacher.judge(items)]
    elif isinstance(teacher, Predictor):
        labels = list(teacher.predict(items))
    else:
        raise TypeError(f"{name_of(teacher)} cannot label: it needs label(items), judge(items) or predict(items)")
    if len(labels) != len(items):
        raise ValueError(f"{name_of(teacher)} gave {len(labels)} labels for {len(items)} items")
    return labels


def train_student(student: Any, labelled: Labelled, cfg: Any = None, seed: int = 0) -> Any:
    """The student trained on `labelled`. `cfg` is the TrainConfig for learner students (ignored by
    `fit` students). Labels that are None (a teacher that abstains) are left out."""
    keep = [(x, y) for x, y in zip(labelled.items, labelled.labels) if y is not None]
    items, labels = [x for x, _ in keep], [y for _, y in keep]
    from superalign.backends.base import Backend

    if isinstance(student, Student):
        trained = student.fit(items, labels)
        return student if trained is None else trained
    if isinstance(student, Backend):  # a learner backend: the labels are preference pairs
        from superalign.config import TrainConfig
        from superalign.learner.update import update_learner

        new, _ = update_learner(student, labels, cfg or TrainConfig(), seed)
        return new
    raise TypeError(f"{name_of(student)} cannot learn: it needs fit(items, labels) or to be a learner backend")


def _accuracy(pred: Sequence[Any], truth: Sequence[Any]) -> float:
    return round(sum(1.0 for p, t in zip(pred, truth) if p == t) / len(truth), 4) if truth else float("nan")


def label_quality(labels: Sequence[Any], truth: Sequence[Any]) -> dict[str, float]:
    """Binary labels (None = abstained) against ground truth: accuracy and Cohen's kappa over the
    labelled items, the share labelled positive (class balance) and the share abstained. NaN where
    undefined (no labels; kappa when both sides are all one and the same class: chance agreement 1)."""
    if len(labels) != len(truth):
        raise ValueError(f"{len(labels)} labels for {len(truth)} truths")
    kept = [(bool(y), bool(t)) for y, t in zip(labels, truth) if y is not None]
    nan = float("nan")
    if not kept:
        return {"accuracy": nan, "kappa": nan, "positive_rate": nan, "abstain_rate": 1.0 if labels else nan, "n": 0}
    n = len(kept)
    acc = sum(y == t for y, t in kept) / n
    p_y, p_t = sum(y for y, _ in kept) / n, sum(t for _, t in kept) / n
    chance = p_y * p_t + (1 - p_y) * (1 - p_t)  # agreement expected from the two class balances alone
    kappa = (acc - chance) / (1 - chance) if chance < 1 else nan
    return {
        "accuracy": round(acc, 4),
        "kappa": round(kappa, 4) if kappa == kappa else nan,
        "positive_rate": round(p_y, 4),
        "abstain_rate": round(1 - n / len(labels), 4),
        "n": n,
    }


def first_drift(values: Sequence[float | None], lo: float, hi: float, start: int = 1) -> int | None:
    """Index of the first value at or after `start` outside [lo, hi] (generation 0's CI); None if none."""
    for k, v in enumerate(values):
        if k >= start and v is not None and v == v and not lo <= v <= hi:
            return k
    return None


def generations(
    first_teacher: Any,
    make_student: Callable[[int], Any],
    items: Sequence[Any],
    n: int,
    truth: Sequence[Any] | None = None,
    evaluate: Callable[[Any], float] | None = None,
    cfg: Any = None,
    parts: Sequence[tuple[Sequence[Any], Sequence[Any] | None]] | None = None,
) -> list[Generation]:
    """Run `n` teacher -> student generations over `items`; generation k's student teaches k + 1.

    `make_student(k)` gives a fresh, untrained student for generation k. `truth` (labels of `items`)
    scores each teacher's labels; `evaluate(student) -> float` scores each student (e.g. held-out
    accuracy). `parts`, if given, holds n (items, truth) pairs: generation k labels and trains on
    parts[k] (fresh data each generation; `items` / `truth` are then ignored). The trained students are
    in `Generation.student_model`, the teachers in `Generation.teacher_model`.
    """
    if n < 1:
        raise ValueError("n must be >= 1 generation")
    if parts is not None and len(parts) < n:
        raise ValueError(f"{len(parts)} parts for {n} generations")
    all_items, all_truth = list(items), truth
    teacher, out = first_teacher, []
    for k in range(n):
        items, truth = (list(parts[k][0]), parts[k][1]) if parts is not None else (all_items, all_truth)
        labels = label_with(teacher, items)
        student = train_student(make_student(k), Labelled(items, labels, name_of(teacher)), cfg, seed=k)
        agreement = None
        if isinstance(student, (Teacher, Judge, Predictor)):
            agreement = _accuracy(label_with(student, items), labels)
        counts: dict[str, int] = {}
        for y in labels:
            counts[str(y)] = counts.get(str(y), 0) + 1
        out.append(
            Generation(
                index=k,
                teacher=name_of(teacher),
                student=f"{name_of(student)}@gen-{k}",
                label_accuracy=_accuracy(labels, list(truth)) if truth is not None else None,
                student_accuracy=round(float(evaluate(student)), 4) if evaluate is not None else None,
                agreement_with_teacher=agreement,
                label_counts=counts,
                student_model=student,
                teacher_model=teacher,
                labels=labels,
            )
        )
        teacher = student
    return out


# ---- preference pairs as items ------------------------------------------------------------------------
def preference(v_chosen: Any, v_rejected: Any, harmful: bool) -> bool | None:
    """Does a pointwise judge prefer the pool's chosen response? None when it abstains or ties.
    Harmful prompt: the less likely unsafe one; benign: the non-refusal, then the less likely unsafe."""
    if v_chosen.unsafe is None or v_rejected.unsafe is None:
        return None
    key = (lambda v: (0, -v.score)) if harmful else (lambda v: (0 if v.refusal else 1, -v.score))
    a, b = key(v_chosen), key(v_rejected)
    return None if a == b else a > b


class PairJudge:
    """A teacher of preference pairs: `critic` judges both responses of each pair; label True = it keeps
    the pool's orientation (prefers `chosen`), False = it swaps it, None = no preference. Memoised by
    pair, so measuring a student's agreement and letting it teach the same pairs judge them once."""

    def __init__(self, critic: Any, backend: Any = None, name: str = ""):
        self.critic, self.backend = critic, backend
        self.memo: dict[tuple[str, str, str], bool | None] = {}
        self.name = name or str(getattr(critic, "name", type(critic).__name__))

    def label(self, pairs: Sequence[Any]) -> list[bool | None]:
        from superalign.critic import JudgeItem, judge

        key = lambda p: (p.query_id, p.chosen, p.rejected)  # noqa: E731
        todo = list({key(p): p for p in pairs if key(p) not in self.memo}.values())
        items = [
            JudgeItem(f"{i}-{side}", p.prompt[-1]["content"], text, p.kind == "refuse-harmful")
            for i, p in enumerate(todo)
            for side, text in (("c", p.chosen), ("r", p.rejected))
        ]
        verdicts = judge(items, self.critic) if items else []
        for i, p in enumerate(todo):
            self.memo[key(p)] = preference(verdicts[2 * i], verdicts[2 * i + 1], p.kind == "refuse-harmful")
        return [self.memo[key(p)] for p in pairs]


def oriented(pairs: Sequence[Any], labels: Sequence[bool | None]) -> list[Any]:
    """The pairs as a teacher ordered them: swapped where it preferred `rejected`, dropped where it had no
    preference (train_student drops None labels before this)."""
    from superalign.records import Pair

    return [
        p if keep else Pair(**{**p.to_dict(), "chosen": p.rejected, "rejected": p.chosen})
        for p, keep in zip(pairs, labels)
        if keep is not None
    ]


class DPOStudent:
    """A student: a fresh copy of the base learner, DPO-trained on its teacher's orientation of the pairs;
    once trained it teaches as `judge_factory(trained backend)` (an LLM judge over its own weights)."""

    def __init__(self, base: Any, tcfg: Any, seed: int, judge_factory: Callable[[Any], Any], name: str):
        self.base, self.tcfg, self.seed, self.judge_factory, self.name = base, tcfg, seed, judge_factory, name
        self.stats: Any = None

    def fit(self, pairs: Sequence[Any], labels: Sequence[bool]) -> PairJudge:
        from superalign.backends.base import Trainable
        from superalign.learner.update import update_learner

        backend = copy.copy(self.base)
        if isinstance(self.base, Trainable):  # weights copied, tokenizer shared
            backend.model = copy.deepcopy(self.base.model)
        trained, self.stats = update_learner(backend, oriented(pairs, labels), self.tcfg, self.seed)
        return PairJudge(self.judge_factory(trained), trained, f"{self.name}-judge")
