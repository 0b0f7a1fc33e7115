"""Calibrated confidence and honest abstention.

    report = calibration_report(probs, labels, abstain_below=0.7)   # ece, coverage, acc_answered, ...
    reliability_plot(probs, labels, "reliability.png")
    cal = fit_calibrator(train_probs, train_labels, "isotonic")     # or "temperature"
    critic = CalibratedCritic(build_critic(cfg), cal, abstain_below=0.7)

Conventions: `probs` are P(label = 1) (for the critic: P(unsafe)); the prediction is p >= 0.5 and its
confidence max(p, 1 - p). An item is answered when confidence >= abstain_below, else the critic
abstains (unsafe=None). Metrics never drop abstentions silently: `coverage` is the answered share,
`acc_answered` the accuracy on answered items, `acc_abstain_as_wrong` counts each abstention as an error.
Calibrators are fitted on held-out folds only (`cross_fitted` fits on the other folds of each item).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from superalign.critic.critic import Critic, JudgeItem
from superalign.records import Verdict

Method = Literal["isotonic", "temperature"]
_EPS = 1e-6


def _logit(p: float) -> float:
    p = min(1 - _EPS, max(_EPS, p))
    return math.log(p / (1 - p))


def expected_calibration_error(probs: Sequence[float], labels: Sequence[bool], n_bins: int = 10) -> float:
    """ECE of P(label = 1): sum over equal-width bins of |mean prob - positive rate| x bin share."""
    if len(probs) != len(labels):
        raise ValueError(f"{len(probs)} probabilities for {len(labels)} labels")
    if not probs:
        return float("nan")
    total = 0.0
    for b in range(n_bins):
        idx = [i for i, p in enumerate(probs) if min(int(p * n_bins), n_bins - 1) == b]
        if idx:
            gap = sum(probs[i] for i in idx) / len(idx) - sum(bool(labels[i]) for i in idx) / len(idx)
            total += abs(gap) * len(idx) / len(probs)
    return round(total, 4)


def calibration_report(
    probs: Sequence[float], labels: Sequence[bool], abstain_below: float = 0.0, n_bins: int = 10
) -> dict[str, float | int]:
    """{n, ece, coverage, abstained, acc_answered, acc_abstain_as_wrong, accuracy_all}.

    accuracy_all is the accuracy had the critic answered everything (abstain_below = 0)."""
    right = [(p >= 0.5) == bool(y) for p, y in zip(probs, labels)]
    answered = [max(p, 1 - p) >= abstain_below for p in probs]
    n, k = len(probs), sum(answered)
    hits = sum(r for r, a in zip(right, answered) if a)
    return {
        "n": n,
        "ece": expected_calibration_error(probs, labels, n_bins),
        "coverage": round(k / n, 4) if n else float("nan"),
        "abstained": n - k,
        "acc_answered": round(hits / k, 4) if k else float("nan"),
        "acc_abstain_as_wrong": round(hits / n, 4) if n else float("nan"),
        "accuracy_all": round(sum(right) / n, 4) if n else float("nan"),
    }


def reliability_plot(
    probs: Sequence[float], labels: Sequence[bool], path: str | Path, n_bins: int = 10, title: str = "Reliability"
) -> Path:
    """A reliability diagram (positive rate per confidence bin vs the diagonal, bin counts below) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centers, rates, counts = [], [], []
    for b in range(n_bins):
        idx = [i for i, p in enumerate(probs) if min(int(p * n_bins), n_bins - 1) == b]
        centers.append((b + 0.5) / n_bins)
        rates.append(sum(bool(labels[i]) for i in idx) / len(idx) if idx else float("nan"))
        counts.append(len(idx))
    fig, (ax, axc) = plt.subplots(2, 1, figsize=(4.5, 5.5), height_ratios=[3, 1], sharex=True)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.bar(centers, rates, width=1 / n_bins, edgecolor="black", alpha=0.7, label="observed positive rate")
    ax.set_ylabel("fraction positive")
    ax.set_title(f"{title} (ECE {expected_calibration_error(probs, labels, n_bins):.3f}, n={len(probs)})")
    ax.legend(loc="upper left", fontsize=8)
    axc.bar(centers, counts, width=1 / n_bins, edgecolor="black", color="tab:orange")
    axc.set_xlabel("predicted probability")
    axc.set_ylabel("count")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


@dataclass(frozen=True)
class Calibrator:
    """A fitted map from raw to calibrated P(label = 1)."""

    method: Method
    model: Any

    def __call__(self, probs: Sequence[float]) -> list[float]:
        if not probs:
            return []
        if self.method == "isotonic":
            return [float(p) for p in self.model.predict([float(p) for p in probs])]
        return [float(p) for p in self.model.predict_proba([[_logit(p)] for p in probs])[:, 1]]

    @property
    def temperature(self) -> float | None:
        """The fitted temperature (temperature method only): p' = sigmoid((logit(p) + b) / T)."""
        return 1.0 / float(self.model.coef_[0][0]) if self.method == "temperature" else None


def fit_calibrator(probs: Sequence[float], labels: Sequence[bool], method: Method = "isotonic") -> Calibrator:
    """Fit isotonic regression or temperature (Platt on the logit) scaling on held-out predictions."""
    ys = [int(bool(y)) for y in labels]
    if len(set(ys)) < 2:
        raise ValueError("calibration needs both labels among the held-out predictions")
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        return Calibrator(
            method, IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit([float(p) for p in probs], ys)
        )
    from sklearn.linear_model import LogisticRegression

    return Calibrator(method, LogisticRegression(C=1e4, max_iter=1000).fit([[_logit(p)] for p in probs], ys))


def cross_fitted(
    probs: Sequence[float], labels: Sequence[bool], groups: Sequence[str], method: Method = "isotonic", folds: int = 5
) -> list[float]:
    """Each item's calibrated probability from a calibrator fitted on the other folds (folds by a
    hash of `groups`, e.g. the objective text, so one objective never sits on both sides)."""
    from superalign.critic.classifier import fold_of

    fold = [fold_of(g, folds) for g in groups]
    out = [0.0] * len(probs)
    for f in range(folds):
        train = [i for i in range(len(probs)) if fold[i] != f]
        test = [i for i in range(len(probs)) if fold[i] == f]
        if not test:
            continue
        cal = fit_calibrator([probs[i] for i in train], [labels[i] for i in train], method)
        for i, p in zip(test, cal([probs[i] for i in test])):
            out[i] = p
    return out


@dataclass(frozen=True)
class CalibratedCritic:
    """Another critic with its P(unsafe) passed through a calibrator; confidence = max(p, 1 - p) of
    the calibrated probability; abstains (unsafe=None) below `abstain_below`."""

    inner: Critic
    calibrator: Calibrator
    abstain_below: float = 0.0
    threshold: float = 0.5

    @property
    def name(self) -> str:
        return f"{self.inner.name}+{self.calibrator.method}"

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        raw = self.inner.judge(items)
        out = []
        for v, p in zip(raw, self.calibrator([v.score for v in raw])):
            conf = p if p >= self.threshold else 1 - p
            unsafe = None if conf < self.abstain_below else p >= self.threshold
            tail = f" Calibrated ({self.calibrator.method}): P(unsafe)={p:.2f}, confidence {conf:.2f}" + (
                "; abstains, route to a human." if unsafe is None else "."
            )
            out.append(
                dataclasses.replace(
                    v,
                    critic=self.name,
                    unsafe=unsafe,
                    score=round(p, 4),
                    confidence=round(conf, 4),
                    explanation=v.explanation + tail,
                )
            )
        return out
