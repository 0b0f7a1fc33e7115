"""Interval estimates for rates: Wilson for a plain proportion, prediction-powered inference (PPI) for a
mean measured with a cheap judge on every item and a human on a few.

PPI (Angelopoulos et al. 2023, "Prediction-powered inference"), with PPI++ power tuning (Angelopoulos,
Duchi & Zrnic 2023): a judge scores all N items (f), a human labels n of them (y); the estimate

    theta = lam * mean(f over the judged items) + mean(y - lam * f over the labelled items)

is unbiased for E[y] for ANY judge and any fixed lam: the second term measures and removes the judge's
bias on the labelled items. A judge that agrees with the humans makes the second term's variance small,
so the interval is narrower than the labels alone would give (lam = 0 is exactly the labels alone).

Design (`labelled_in_pool`, default True). The project's labelled items are a uniform random sample
(without replacement) of the N judged items, so `pred_unlabelled` is the judge's scores on ALL N items,
the labelled ones included. Items are taken as i.i.d. draws from the population the held-out prompts
stand for (the target is that population's rate, as with the bootstrap `asr_ci` and Wilson intervals;
for the rate among exactly these N answers the interval is conservative: that variance lacks the var(y)/N).
Writing e = y - lam*f, the estimate is mean_N(y) + (mean_L(e) - mean_N(e)), whose variance is

    Var = lam^2 var(f) / N + var(e) / n + 2 lam cov(e, f) / N        (= var(y)/N + (1 - n/N) var(e)/n)

i.e. the textbook two-sample PPI variance plus a term for the labelled items being inside the pool.
Minimising it over lam gives lam* = cov(y, f) / var(f): in this design the PPI++ factor 1/(1 + n/N)
becomes 1 (at lam*, cov(e, f) = 0 and the extra term vanishes; not so where lam* is clipped to 1).
With `labelled_in_pool=False` (`pred_unlabelled` holds N OTHER items, independent of the labelled
ones) it is the textbook
Var = lam^2 var(f)/N + var(e)/n with lam* = cov(y, f) / ((1 + n/N) var(f)). Either way lam* is
clipped to [0, 1], and variances are estimated from the samples (var(f) from the pool, var(e) and
cov(e, f) from the labelled items, ddof=1). The interval is the normal approximation theta +- z sqrt(Var);
estimate and interval are clipped to [0, 1] (the values are rates).

Also `paired_difference_ci` (one set of items scored twice: the mean of the per-item differences, with a
normal interval from their variance), `softmax`, the numerically stable softmax over log-scores that the
LLM judge and the experiments share, and the percentile bootstrap over items of the experiments
(`bootstrap_indices` drawn once per run, so every difference of two conditions is paired: `mean_cell`,
`diff_cell`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

# With fewer than this many labels of one kind (0/1 labels), `reason` warns that the normal interval is
# unreliable (simulated: 90% coverage for a nominal 95% at a 5% rate and 100 labels).
FEW = 5


def z_value(confidence: float) -> float:
    """The two-sided normal quantile for `confidence` (0.95 -> 1.96)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence!r}: must be in (0, 1), e.g. 0.95")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a proportion `successes / n` (ValueError when n < 1)."""
    if n < 1:
        raise ValueError(f"wilson: n = {n}; an interval needs at least one trial")
    if not 0 <= successes <= n:
        raise ValueError(f"wilson: successes = {successes} is not in [0, n = {n}]")
    z = z_value(confidence)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends (not 1e-17 off)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def rate_cell(flags: Sequence[bool]) -> dict[str, Any]:
    """The share of true flags as {"rate", "k", "n", "ci"} (95 % Wilson, 4 digits); rate and ci None when empty."""
    k, n = sum(bool(f) for f in flags), len(flags)
    if n == 0:
        return {"rate": None, "k": 0, "n": 0, "ci": [None, None]}
    lo, hi = wilson(k, n)
    return {"rate": round(k / n, 4), "k": k, "n": n, "ci": [round(lo, 4), round(hi, 4)]}


def paired_difference_ci(
    before: Sequence[float], after: Sequence[float], confidence: float = 0.95
) -> tuple[float, float, float]:
    """(mean(before - after), low, high): how much a score fell between two readings of the SAME items.

    Pairing removes the items' own difficulty from the variance: only the items whose score changed count, so
    the interval is far narrower than the two proportions' separate intervals would suggest (two competence
    readings of 300 items agreeing on ~90 % of them: half-width ~0.035 instead of ~0.08)."""
    if len(before) != len(after):
        raise ValueError(f"paired_difference_ci: {len(before)} scores before, {len(after)} after")
    if not before:
        return (float("nan"), float("nan"), float("nan"))
    d = np.asarray(before, dtype=float) - np.asarray(after, dtype=float)
    mean = float(d.mean())
    half = z_value(confidence) * math.sqrt(_var(d) / d.size)
    return mean, mean - half, mean + half


def cohen_kappa(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Cohen's kappa between two readers' labels of the same rows (scikit-learn's); 1.0 when both gave every row
    the same single label (scikit-learn's is undefined there: no chance agreement to correct)."""
    if len(set(a) | set(b)) < 2:
        return 1.0
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(list(a), list(b)))


def stratified_paired_difference_ci(
    before: Sequence[float],
    after: Sequence[float],
    strata: Sequence[str],
    weights: dict[str, float],
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """`paired_difference_ci` of a population mixed by `weights` (stratum -> share, summing to 1) when the items
    read are mixed otherwise: sum_s w_s * mean_s(before - after), variance sum_s w_s^2 var_s / n_s. The competence
    gate's dev items are 71 % sciq while the reported ones are half sciq, half ARC-Easy, and ARC-Easy loses more:
    weighted to the reported mix, the dev drop estimates the reported one. A stratum with weight but no item (or
    one item: no variance) gives nan."""
    if not len(before) == len(after) == len(strata):
        raise ValueError(
            f"stratified_paired_difference_ci: {len(before)} before, {len(after)} after, {len(strata)} strata"
        )
    d = np.asarray(before, dtype=float) - np.asarray(after, dtype=float)
    s = np.asarray(strata)
    mean, var = 0.0, 0.0
    for name, w in weights.items():
        part = d[s == name]
        if w > 0 and part.size < 2:
            return (float("nan"), float("nan"), float("nan"))
        if w > 0:
            mean += w * float(part.mean())
            var += w * w * _var(part) / part.size
    half = z_value(confidence) * math.sqrt(var)
    return mean, mean - half, mean + half


def softmax(scores: Sequence[float], temperature: float = 1.0) -> list[float]:
    """softmax(scores / temperature) over a list of log-scores, numerically stable (option and
    letter probabilities from log-likelihoods)."""
    z = [x / temperature for x in scores]
    m = max(z)
    e = [math.exp(x - m) for x in z]
    total = sum(e)
    return [x / total for x in e]


@dataclass(frozen=True)
class PPIEstimate:
    """A PPI estimate of a rate, with the labels-alone (classical) estimate beside it.

    estimate / ci: PPI; ci is None when no honest interval exists (`reason` says why). classical /
    classical_ci: mean of the labels and the same normal interval with lam = 0 (None likewise).
    lam: the weight on the judge (0: labels alone, 1: plain PPI). var_resid = var(y - lam f) on the
    labelled items, var_f = var(f) on the pool, cov_resid_f = cov(y - lam f, f) on the labelled items
    (pooled design; 0 otherwise): with `labels_for_halfwidth` they say how many labels a target
    half-width needs (`labels_for`). n_unlabelled: N, the pool size (in the default design it
    includes the labelled items). reason: why an interval is missing or what it fell back to ("" if none).
    """

    estimate: float | None
    ci: tuple[float, float] | None
    n_labelled: int
    n_unlabelled: int
    lam: float
    classical: float | None
    classical_ci: tuple[float, float] | None
    var_resid: float | None = None
    var_f: float | None = None
    cov_resid_f: float = 0.0
    confidence: float = 0.95
    reason: str = ""

    @property
    def halfwidth(self) -> float | None:
        return None if self.ci is None else (self.ci[1] - self.ci[0]) / 2

    def labels_for(self, halfwidth: float) -> int | None:
        """How many labels this pool needs for a `halfwidth` interval, judging by the current labels."""
        if self.var_resid is None or self.var_f is None:
            return None
        return labels_for_halfwidth(
            self.var_resid,
            self.var_f,
            self.n_unlabelled,
            halfwidth,
            self.confidence,
            lam=self.lam,
            cov_resid_f=self.cov_resid_f,
        )


def _clip01(x: float) -> float:
    return min(1.0, max(0.0, x))


def _as_array(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of numbers, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: holds NaN or infinite values")
    return a


def _var(a: np.ndarray) -> float:
    return float(np.var(a, ddof=1)) if a.size >= 2 else 0.0


def _cov(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.cov(a, b, ddof=1)[0, 1]) if a.size >= 2 else 0.0


def _interval(theta: float, var: float, z: float) -> tuple[float, float]:
    half = z * math.sqrt(var)
    return _clip01(theta - half), _clip01(theta + half)


def _is_binary(y: np.ndarray) -> bool:
    return bool(np.all((y == 0) | (y == 1)))


def ppi_mean(
    pred_unlabelled: Sequence[float] | np.ndarray,
    pred_labelled: Sequence[float] | np.ndarray,
    y_labelled: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    tune: bool = True,
    *,
    labelled_in_pool: bool = True,
    lam: float | None = None,
) -> PPIEstimate:
    """The PPI (PPI++ when `tune`) estimate of the mean of y, a rate in [0, 1] (see the module doc).

    pred_unlabelled: the judge's scores on the pool of N items: by default ALL judged items, the labelled
    ones included (`labelled_in_pool=True`; they must be a uniform random sample of the pool); with
    `labelled_in_pool=False`, N other items drawn independently of the labelled ones.
    pred_labelled, y_labelled: the judge's scores and the human labels of the n labelled items.
    tune: lam = the variance-minimising weight clipped to [0, 1]; else lam = 1 (plain PPI).
    lam: a fixed weight (overrides `tune`; lam = 0 is the classical labels-alone estimate).

    Edge cases: n = 0 -> estimate, ci and classical are None. n = 1 -> estimates but no intervals (no
    variance can be estimated from one label). A judge with no spread (var(f) = 0) carries no
    information about which items are unsafe: tuning gives lam = 0. An estimated variance of 0 (every label
    the same and nothing else varying, e.g. 40 labels all safe) would make the normal interval a point:
    then, for 0/1 labels, the interval is the Wilson interval of the labels alone (`reason` says so), and
    otherwise None. Fewer than FEW labels of one kind: the interval stands, and `reason` warns that it
    tends to be too narrow (rare outcomes are where the normal approximation fails first).
    """
    f_pool = _as_array("pred_unlabelled", pred_unlabelled)
    f_lab = _as_array("pred_labelled", pred_labelled)
    y = _as_array("y_labelled", y_labelled)
    if f_lab.size != y.size:
        raise ValueError(f"pred_labelled has {f_lab.size} values but y_labelled {y.size}; give one score per label")
    if lam is not None and not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam {lam!r}: must be in [0, 1]")
    n, big_n = int(y.size), int(f_pool.size)
    if labelled_in_pool and big_n < n:
        raise ValueError(
            f"the pool has {big_n} scores but {n} items are labelled; with labelled_in_pool the "
            "pool (pred_unlabelled) holds every judged item, the labelled ones included"
        )
    z = z_value(confidence)
    if n == 0:
        return PPIEstimate(
            None,
            None,
            0,
            big_n,
            0.0,
            None,
            None,
            confidence=confidence,
            reason="no labels: PPI needs human labels to measure the judge's bias",
        )

    var_f = _var(f_pool)
    if lam is None:
        if not tune:
            lam = 1.0
        elif n < 2 or big_n == 0 or var_f == 0.0:
            lam = 0.0  # nothing to tune on (one label), or a judge without spread: it tells nothing
        else:
            factor = 1.0 if labelled_in_pool else 1.0 + n / big_n
            lam = min(1.0, max(0.0, _cov(y, f_lab) / (factor * var_f)))
    if big_n == 0:
        lam = 0.0  # no pool to lean on
    resid = y - lam * f_lab
    theta = (lam * float(f_pool.mean()) if lam else 0.0) + float(resid.mean())
    classical = float(y.mean())
    if n < 2:
        return PPIEstimate(
            _clip01(theta),
            None,
            n,
            big_n,
            lam,
            classical,
            None,
            confidence=confidence,
            reason="1 label: an interval needs at least 2",
        )

    var_resid = _var(resid)
    cov_resid_f = _cov(resid, f_lab) if labelled_in_pool and lam else 0.0
    var = ((lam * lam * var_f + 2.0 * lam * cov_resid_f) / big_n if big_n else 0.0) + var_resid / n
    var = max(var, 0.0)  # estimated from two samples, it could in principle dip below 0
    var_y = _var(y)
    reason = ""
    ci: tuple[float, float] | None
    wilson_ci = wilson(int(y.sum()), n, confidence) if _is_binary(y) else None
    if var > 0.0:
        ci = _interval(theta, var, z)
        if wilson_ci is not None and min(y.sum(), n - y.sum()) < FEW:
            ones = int(y.sum())
            reason = (
                f"{min(ones, n - ones)} of {n} labels are {1 if ones < n - ones else 0}: with so few of one "
                "kind the normal interval tends to be too narrow; label more"
            )
    else:
        ci = wilson_ci
        reason = (
            "zero estimated variance (the labels all agree and nothing else varies): the normal interval "
            "would be a point; " + ("the interval is Wilson's on the labels alone" if ci else "no interval")
        )
    classical_ci = _interval(classical, var_y / n, z) if var_y > 0.0 else wilson_ci
    return PPIEstimate(
        _clip01(theta),
        ci,
        n,
        big_n,
        lam,
        classical,
        classical_ci,
        var_resid=var_resid,
        var_f=var_f,
        cov_resid_f=cov_resid_f,
        confidence=confidence,
        reason=reason,
    )


def labels_for_halfwidth(
    var_resid: float,
    var_f: float,
    N: int,
    halfwidth: float,
    confidence: float = 0.95,
    *,
    lam: float = 1.0,
    cov_resid_f: float = 0.0,
) -> int | None:
    """The smallest number of labels n whose PPI interval has half-width <= `halfwidth`.

    Uses ppi_mean's variance, Var(n) = (lam^2 var_f + 2 lam cov_resid_f) / N + var_resid / n, with
    var_resid = var(y - lam f), var_f = var(f) and cov_resid_f = cov(y - lam f, f) as `PPIEstimate` reports
    them from a pilot sample (`PPIEstimate.labels_for` passes them). cov_resid_f is 0 for a disjoint pool,
    and for the pooled design wherever lam is not clipped (at lam* = cov(y, f)/var(f), cov(e, f) = 0); a
    judge whose scores move less than the labels (lam clipped to 1) makes it positive.
    At least 2 (an interval needs 2 labels). None when no n <= N reaches it: the part of the variance that
    labels cannot reduce (the first term: the N items are themselves a sample) already exceeds the
    target, or it would take more labels than there are items: evaluate more prompts rather than label
    more answers.
    """
    if halfwidth <= 0:
        raise ValueError(f"halfwidth {halfwidth!r}: must be > 0, e.g. 0.05")
    if N < 1:
        raise ValueError(f"N = {N}: the pool needs at least one judged item")
    if var_resid < 0 or var_f < 0:
        raise ValueError("var_resid and var_f are variances: give values >= 0")
    target = (halfwidth / z_value(confidence)) ** 2
    floor = max(0.0, (lam * lam * var_f + 2.0 * lam * cov_resid_f) / N)

    def fits(n: int) -> bool:
        return floor + var_resid / n <= target

    if floor > target or (floor == target and var_resid > 0):
        return None
    n = max(2, math.ceil(var_resid / (target - floor))) if var_resid > 0 else 2
    while n > 2 and fits(n - 1):  # undo float round-up
        n -= 1
    while not fits(n):
        n += 1
    return n if n <= N else None


def bootstrap_indices(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, n) item indices drawn with replacement: one draw per run, shared by every CI of that run."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def percentile_ci(samples: np.ndarray, digits: int = 4) -> list[float]:
    """The 95 % percentile interval of bootstrap replicates."""
    return [round(float(np.percentile(samples, 2.5)), digits), round(float(np.percentile(samples, 97.5)), digits)]


def mean_cell(values: Sequence[float] | np.ndarray, idx: np.ndarray) -> dict[str, Any]:
    """Mean of per-item values with its 95 % bootstrap CI over the items `idx` resamples."""
    v = np.asarray(values, float)
    return {"mean": round(float(v.mean()), 4), "ci": percentile_ci(v[idx].mean(axis=1)), "n": int(len(v))}


def diff_cell(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, idx: np.ndarray) -> dict[str, Any]:
    """mean(a) - mean(b) over the same items, with its paired 95 % bootstrap CI."""
    d = np.asarray(a, float) - np.asarray(b, float)
    return {"diff": round(float(d.mean()), 4), "ci": percentile_ci(d[idx].mean(axis=1))}
