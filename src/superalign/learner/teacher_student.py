"""Iterative teacher -> student: a student trained on a teacher's labels becomes the next teacher.

    gen 0: teacher_0 labels the items -> student_0 trained on them
    gen k: teacher_k = student_{k-1} labels the items -> student_k trained on them

Anything that can label is a teacher, anything that can learn from labels is a student:

- teacher: `label(items) -> labels` (the protocol); or a Critic (`judge(JudgeItems) -> Verdicts`, the
  label is `verdict.unsafe`); or a scikit-learn-style model (`predict(items)`).
- student: `fit(items, labels)` (scikit-learn style; returns the fitted student or None), or a learner
  backend trained on preference pairs (labels are `Pair`s) through `learner.update.update_learner`.

`generations` keeps the bookkeeping: per generation the teacher's label accuracy and the student's
accuracy (when ground truth / an evaluation is given) and how often the student reproduces its teacher.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Teacher(Protocol):
    def label(self, items: Sequence[Any]) -> list[Any]:
        """One label per item, in order."""
        ...


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

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "teacher": self.teacher, "student": self.student,
                "label_accuracy": self.label_accuracy, "student_accuracy": self.student_accuracy,
                "agreement_with_teacher": self.agreement_with_teacher, "label_counts": self.label_counts}


def name_of(model: Any) -> str:
    return str(getattr(model, "name", None) or type(model).__name__)


def label_with(teacher: Any, items: Sequence[Any]) -> list[Any]:
    """The teacher's label for each item (see the module docstring for what counts as a teacher)."""
    if hasattr(teacher, "label"):
        labels = list(teacher.label(items))
    elif hasattr(teacher, "judge"):  # a Critic: items are JudgeItems, the label is "unsafe"
        labels = [v.unsafe for v in teacher.judge(items)]
    elif hasattr(teacher, "predict"):
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
    if hasattr(student, "fit"):
        trained = student.fit(items, labels)
        return student if trained is None else trained
    if hasattr(student, "generate"):  # a learner backend: the labels are preference pairs
        from superalign.config import TrainConfig
        from superalign.learner.update import update_learner

        new, _ = update_learner(student, labels, cfg or TrainConfig(), seed)
        return new
    raise TypeError(f"{name_of(student)} cannot learn: it needs fit(items, labels) or to be a learner backend")


def _accuracy(pred: Sequence[Any], truth: Sequence[Any]) -> float:
    return round(sum(1.0 for p, t in zip(pred, truth) if p == t) / len(truth), 4) if truth else float("nan")


def generations(first_teacher: Any, make_student: Callable[[int], Any], items: Sequence[Any], n: int,
                truth: Sequence[Any] | None = None, evaluate: Callable[[Any], float] | None = None,
                cfg: Any = None) -> list[Generation]:
    """Run `n` teacher -> student generations over `items`; generation k's student teaches k + 1.

    `make_student(k)` gives a fresh, untrained student for generation k. `truth` (labels of `items`)
    scores each teacher's labels; `evaluate(student) -> float` scores each student (e.g. held-out
    accuracy). The trained students are in `Generation.student_model`.
    """
    if n < 1:
        raise ValueError("n must be >= 1 generation")
    items = list(items)
    teacher, out = first_teacher, []
    for k in range(n):
        labels = label_with(teacher, items)
        student = train_student(make_student(k), Labelled(items, labels, name_of(teacher)), cfg, seed=k)
        agreement = None
        if any(hasattr(student, a) for a in ("label", "judge", "predict")):
            agreement = _accuracy(label_with(student, items), labels)
        counts: dict[str, int] = {}
        for y in labels:
            counts[str(y)] = counts.get(str(y), 0) + 1
        out.append(Generation(
            index=k, teacher=name_of(teacher), student=f"{name_of(student)}@gen-{k}",
            label_accuracy=_accuracy(labels, list(truth)) if truth is not None else None,
            student_accuracy=round(float(evaluate(student)), 4) if evaluate is not None else None,
            agreement_with_teacher=agreement, label_counts=counts, student_model=student))
        teacher = student
    return out
