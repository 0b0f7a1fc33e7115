"""The judge's accuracy per condition and the pilot's gates, with percentile bootstrap CIs over items
(`superalign.stats`: every CI of one run resamples the same items, so a difference of two conditions is paired).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from superalign.stats import diff_cell, mean_cell

if TYPE_CHECKING:
    import numpy as np

TIE = 1e-9


def item_correct(p: np.ndarray) -> np.ndarray:
    """Per item: 1 if the mean over both answer orders of P(correct) is above 0.5, 0 below, 0.5 for a tie
    (within 1e-9: a judge with nothing but a letter bias must not win or lose items on rounding)."""
    import numpy as np

    m = np.asarray(p, float).mean(axis=1)
    return np.where(np.abs(m - 0.5) <= TIE, 0.5, np.where(m > 0.5, 1.0, 0.0))


def condition_summary(p: np.ndarray, idx: np.ndarray) -> dict[str, Any]:
    """A judge condition from its (n, 2) P(correct) per answer order: accuracy (orders averaged) [CI], the
    mean P(correct) [CI], the accuracy of each order alone and the mean P(the judge says A) (letter bias)."""
    import numpy as np

    p = np.asarray(p, float)
    return {
        "accuracy": mean_cell(item_correct(p), idx),
        "p_correct": mean_cell(p.mean(axis=1), idx),
        "order_accuracy": [round(float((p[:, j] > 0.5).mean()), 4) for j in (0, 1)],
        "p_says_a": round(float(np.concatenate([p[:, 0], 1 - p[:, 1]]).mean()), 4),
    }


def gate(name: str, better: np.ndarray, worse: np.ndarray, threshold: float, idx: np.ndarray) -> dict[str, Any]:
    """Accuracy gain of `better` over `worse` (per-item correctness) against `threshold`. `passed` is decided
    on the point estimate (gain >= threshold); `ci_clears` says whether the CI's lower end clears it too."""
    d = diff_cell(better, worse, idx)
    return {
        "name": name,
        "gain": d["diff"],
        "ci": d["ci"],
        "threshold": threshold,
        "passed": bool(d["diff"] >= threshold - 1e-12),
        "ci_clears": bool(d["ci"][0] >= threshold - 1e-12),
    }
