"""Accuracies, paired differences and gates, with percentile bootstrap CIs over items.

Every CI of one run resamples the same items (`bootstrap_indices` once per run), so a difference of two
conditions is paired: each replicate compares the two on the same resampled items.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

TIE = 1e-9


def item_correct(p: np.ndarray) -> np.ndarray:
    """Per item: 1 if the mean over both answer orders of P(correct) is above 0.5, 0 below, 0.5 for a tie
    (within 1e-9: a judge with nothing but a letter bias must not win or lose items on rounding)."""
    import numpy as np

    m = np.asarray(p, float).mean(axis=1)
    return np.where(np.abs(m - 0.5) <= TIE, 0.5, np.where(m > 0.5, 1.0, 0.0))


def bootstrap_indices(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, n) item indices drawn with replacement."""
    import numpy as np

    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def percentile_ci(samples: np.ndarray, digits: int = 4) -> list[float]:
    import numpy as np

    return [round(float(np.percentile(samples, 2.5)), digits), round(float(np.percentile(samples, 97.5)), digits)]


def mean_cell(values: np.ndarray, idx: np.ndarray) -> dict[str, Any]:
    """Mean of per-item values with its 95 % bootstrap CI."""
    import numpy as np

    v = np.asarray(values, float)
    return {"mean": round(float(v.mean()), 4), "ci": percentile_ci(v[idx].mean(axis=1)), "n": int(len(v))}


def diff_cell(a: np.ndarray, b: np.ndarray, idx: np.ndarray) -> dict[str, Any]:
    """mean(a) - mean(b) over the same items, with its paired 95 % bootstrap CI."""
    import numpy as np

    d = np.asarray(a, float) - np.asarray(b, float)
    return {"diff": round(float(d.mean()), 4), "ci": percentile_ci(d[idx].mean(axis=1))}


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
