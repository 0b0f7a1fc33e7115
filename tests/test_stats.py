"""stats.py: Wilson intervals, PPI / PPI++ means and the labels a target half-width needs (seeded, < 5 s)."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from superalign.stats import labels_for_halfwidth, ppi_mean, wilson, z_value

P, N, NL = 0.3, 500, 40  # true unsafe rate, judged items, labelled items


def _world(seed, n=N, p=P, shift=0.2, noise=0.15):
    """N items with true labels y ~ Bernoulli(p) and a judge that sees y but scores 0.2 too high."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < p).astype(float)
    f = np.clip(0.15 + 0.6 * y + rng.normal(0.0, noise, n) + shift, 0.0, 1.0)
    return rng, y, f


def _simulate(sims=2000, labelled_in_pool=True, noise=0.15):
    cover, widths, classical_widths, thetas, judge_means = [], [], [], [], []
    for seed in range(sims):
        rng, y, f = _world(seed, noise=noise)
        idx = rng.choice(N, NL, replace=False)
        if labelled_in_pool:
            est = ppi_mean(f, f[idx], y[idx])
        else:
            rest = np.setdiff1d(np.arange(N), idx)
            est = ppi_mean(f[rest], f[idx], y[idx], labelled_in_pool=False)
        lo, hi = est.ci
        cover.append(lo <= P <= hi)
        widths.append(hi - lo)
        classical_widths.append(est.classical_ci[1] - est.classical_ci[0])
        thetas.append(est.estimate)
        judge_means.append(f.mean())
    return (
        float(np.mean(cover)),
        float(np.mean(widths)),
        float(np.mean(classical_widths)),
        float(np.mean(thetas)),
        float(np.mean(judge_means)),
    )


# -- Wilson ---------------------------------------------------------------------------------------------


def test_wilson_matches_hand_computation():
    # 5/10 at 95 %: centre 0.5, half-width 1.96 sqrt(.025 + .0096) / 1.384 = 0.2634 (textbook value)
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson(0, 10)  # no successes: the interval still has width (Wald would give [0, 0])
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)


@pytest.mark.parametrize(
    "k,n,conf",
    [(0, 1, 0.95), (1, 1, 0.95), (12, 40, 0.95), (0, 40, 0.9), (40, 40, 0.99), (3, 500, 0.95), (250, 500, 0.8)],
)
def test_wilson_matches_scipy(k, n, conf):
    ref = binomtest(k, n).proportion_ci(confidence_level=conf, method="wilson")
    assert wilson(k, n, conf) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_wilson_rejects_nonsense():
    with pytest.raises(ValueError, match="at least one"):
        wilson(0, 0)
    with pytest.raises(ValueError, match="not in"):
        wilson(5, 4)
    with pytest.raises(ValueError, match="confidence"):
        wilson(1, 2, confidence=95)


# -- PPI: coverage and power ----------------------------------------------------------------------------


def test_ppi_covers_the_true_rate_with_a_biased_judge():
    coverage, width, classical_width, mean_theta, judge_mean = _simulate()
    # measured with these seeds: coverage 0.9405 (20,000 seeds: 0.936, the normal approximation at n=40)
    assert 0.93 <= coverage <= 0.97
    assert judge_mean - P > 0.15  # the judge alone is far off: 0.52 for a true 0.30
    assert abs(mean_theta - P) < 0.005  # PPI removes the bias
    assert width < 0.7 * classical_width  # a good judge buys a much narrower interval than 40 labels alone


def test_ppi_covers_with_a_disjoint_pool_too():
    coverage, width, classical_width, mean_theta, _ = _simulate(labelled_in_pool=False)
    assert 0.93 <= coverage <= 0.97
    assert abs(mean_theta - P) < 0.005 and width < classical_width


def test_a_useless_judge_is_weighted_out():
    rng = np.random.default_rng(7)
    y = (rng.random(N) < P).astype(float)
    f = rng.random(N)  # pure noise, unrelated to y
    idx = rng.choice(N, 200, replace=False)
    est = ppi_mean(f, f[idx], y[idx])
    assert est.lam < 0.2  # tuning leans on the labels
    assert est.halfwidth <= 1.02 * (est.classical_ci[1] - est.classical_ci[0]) / 2


def test_lam_zero_is_the_classical_estimate():
    rng, y, f = _world(3)
    idx = rng.choice(N, NL, replace=False)
    est = ppi_mean(f, f[idx], y[idx], lam=0.0)
    yl = y[idx]
    z = z_value(0.95)
    half = z * yl.std(ddof=1) / math.sqrt(NL)
    assert est.estimate == pytest.approx(yl.mean()) == pytest.approx(est.classical)
    assert est.ci == pytest.approx((yl.mean() - half, yl.mean() + half))
    assert est.ci == pytest.approx(est.classical_ci)


def test_ppi_is_narrower_than_classical_when_the_judge_is_good():
    rng, y, f = _world(11, noise=0.05)
    idx = rng.choice(N, NL, replace=False)
    est = ppi_mean(f, f[idx], y[idx])
    assert est.lam > 0.8
    assert est.halfwidth < 0.6 * (est.classical_ci[1] - est.classical_ci[0]) / 2


def test_estimator_and_variance_match_the_formulas():
    rng, y, f = _world(5)
    idx = rng.choice(N, NL, replace=False)
    fl, yl = f[idx], y[idx]
    z = z_value(0.9)
    c = np.cov(yl, fl, ddof=1)[0, 1]
    vf = f.var(ddof=1)

    est = ppi_mean(f, fl, yl, confidence=0.9)  # pooled: lam = cov / var(f), variance with the overlap term
    lam = min(1.0, max(0.0, c / vf))
    e = yl - lam * fl
    var = lam**2 * vf / N + e.var(ddof=1) / NL + 2 * lam * np.cov(e, fl, ddof=1)[0, 1] / N
    theta = lam * f.mean() + e.mean()
    assert est.lam == pytest.approx(lam)
    assert est.estimate == pytest.approx(theta)
    assert est.ci == pytest.approx((theta - z * math.sqrt(var), theta + z * math.sqrt(var)))

    rest = np.setdiff1d(np.arange(N), idx)  # disjoint: textbook PPI++
    fu = f[rest]
    est = ppi_mean(fu, fl, yl, confidence=0.9, labelled_in_pool=False)
    lam = min(1.0, max(0.0, c / ((1 + NL / fu.size) * fu.var(ddof=1))))
    e = yl - lam * fl
    var = lam**2 * fu.var(ddof=1) / fu.size + e.var(ddof=1) / NL
    theta = lam * fu.mean() + e.mean()
    assert est.lam == pytest.approx(lam) and est.estimate == pytest.approx(theta)
    assert est.ci == pytest.approx((theta - z * math.sqrt(var), theta + z * math.sqrt(var)))

    assert ppi_mean(f, fl, yl, tune=False).lam == 1.0


def test_labelling_everything_gives_the_exact_mean():
    _, y, f = _world(2)
    for lam in (0.0, 0.5, 1.0):
        assert ppi_mean(f, f, y, lam=lam).estimate == pytest.approx(y.mean())


# -- edge cases -----------------------------------------------------------------------------------------


def test_no_labels_or_one_label_gives_no_interval():
    est = ppi_mean([0.2, 0.4], [], [])
    assert est.estimate is None and est.ci is None and est.classical is None and "no labels" in est.reason
    est = ppi_mean([0.2, 0.4, 0.9], [0.9], [1.0])
    assert est.estimate == 1.0 and est.ci is None and est.classical_ci is None and "at least 2" in est.reason


def test_zero_variance_falls_back_to_wilson_not_a_point():
    est = ppi_mean([0.1] * 100, [0.1] * 40, [0.0] * 40)  # all safe, judge flat
    assert est.estimate == 0.0 and est.lam == 0.0
    assert est.ci == pytest.approx(wilson(0, 40)) and est.ci[1] > 0.05 and "Wilson" in est.reason
    assert est.classical_ci == pytest.approx(wilson(0, 40))
    rng = np.random.default_rng(0)  # all safe, judge varies: tuning finds no covariance, lam = 0
    f = rng.random(100) * 0.1
    est = ppi_mean(f, f[:40], [0.0] * 40)
    assert est.lam == 0.0 and est.ci == pytest.approx(wilson(0, 40))


def test_flat_judge_gets_no_weight_and_few_positives_are_flagged():
    rng = np.random.default_rng(1)
    y = (rng.random(40) < 0.5).astype(float)
    est = ppi_mean([0.5] * 200, [0.5] * 40, y)
    assert est.lam == 0.0 and est.estimate == pytest.approx(y.mean()) and est.reason == ""
    y = np.zeros(40)
    y[:2] = 1
    est = ppi_mean(np.linspace(0, 1, 200), np.linspace(0, 1, 40), y)
    assert est.ci is not None and "2 of 40 labels are 1" in est.reason


def test_estimate_and_interval_stay_in_the_unit_interval():
    f = np.full(100, 0.99)
    est = ppi_mean(f, f[:10], np.array([1.0] * 9 + [0.0]), tune=False)
    assert 0.0 <= est.ci[0] <= est.estimate <= est.ci[1] <= 1.0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="one score per label"):
        ppi_mean([0.1, 0.2], [0.1], [1.0, 0.0])
    with pytest.raises(ValueError, match="pool"):
        ppi_mean([0.1], [0.1, 0.2], [1.0, 0.0])
    with pytest.raises(ValueError, match="NaN"):
        ppi_mean([0.1, float("nan")], [0.1], [1.0])


# -- how many labels ------------------------------------------------------------------------------------


def test_labels_for_halfwidth_is_the_smallest_n():
    z = z_value(0.95)
    n = labels_for_halfwidth(0.04, 0.09, 500, 0.05)
    half = lambda k: z * math.sqrt(0.09 / 500 + 0.04 / k)  # noqa: E731
    assert half(n) <= 0.05 < half(n - 1)
    assert labels_for_halfwidth(0.04, 0.09, 500, 0.05, lam=0.5) < n
    assert labels_for_halfwidth(0.0, 0.09, 500, 0.05) == 2
    assert labels_for_halfwidth(0.04, 0.09, 20, 0.01) is None  # the judge's noise over 20 items exceeds it
    assert labels_for_halfwidth(0.2, 0.0, 100, 0.01) is None  # would need more labels than items
    with pytest.raises(ValueError):
        labels_for_halfwidth(0.04, 0.09, 500, 0.0)


def test_labels_for_halfwidth_predicts_the_width_it_buys():
    rng, y, f = _world(123, n=20000)  # the population's variances, from a large draw
    idx = rng.choice(y.size, 2000, replace=False)
    pilot = ppi_mean(f, f[idx], y[idx])
    n = labels_for_halfwidth(
        pilot.var_resid,
        pilot.var_f,
        N,
        0.04,
        lam=pilot.lam,  # for a pool of N
        cov_resid_f=pilot.cov_resid_f,
    )
    assert pilot.lam == 1.0 and pilot.cov_resid_f > 0  # this judge moves less than the labels: lam clipped
    assert n is not None and 10 < n < N
    widths = []
    for seed in range(300):
        rng, y, f = _world(seed)
        idx = rng.choice(N, n, replace=False)
        widths.append(ppi_mean(f, f[idx], y[idx]).halfwidth)
    assert np.mean(widths) == pytest.approx(0.04, rel=0.1)


def test_paired_difference_counts_only_the_items_that_changed():
    from superalign.stats import paired_difference_ci

    assert paired_difference_ci([1, 0, 1], [1, 0, 1]) == (0.0, 0.0, 0.0)
    before = [1.0] * 30 + [0.0] * 270
    after = [0.0] * 15 + [1.0] * 15 + [0.0] * 270  # 15 of 300 items lost
    drop, lo, hi = paired_difference_ci(before, after)
    assert drop == pytest.approx(0.05) and 0 < lo < drop < hi
    # narrower than the two readings' separate Wilson intervals would suggest
    from superalign.stats import wilson

    assert hi - lo < (wilson(30, 300)[1] - wilson(30, 300)[0])
    with pytest.raises(ValueError, match="3 scores before, 2 after"):
        paired_difference_ci([1, 0, 1], [1, 0])


def test_stratified_drop_weights_each_task_to_the_reported_mix():
    from superalign.stats import paired_difference_ci, stratified_paired_difference_ci

    # 700 items of a task that loses 1 point, 300 of one that loses 5: the plain mean says 2.2, the 50/50 mix 3
    tasks = ["sciq"] * 700 + ["arc"] * 300
    before = [1.0] * 1000
    after = [0.0 if i < 7 or 700 <= i < 715 else 1.0 for i in range(1000)]  # sciq 7 of 700 lost, arc 15 of 300
    mean, lo, hi = stratified_paired_difference_ci(before, after, tasks, {"sciq": 0.5, "arc": 0.5})
    assert mean == pytest.approx(0.5 * 0.01 + 0.5 * 0.05) and lo < mean < hi
    assert paired_difference_ci(before, after)[0] == pytest.approx(0.022)
    # weights equal to the items' own mix give the plain mean back
    assert stratified_paired_difference_ci(before, after, tasks, {"sciq": 0.7, "arc": 0.3})[0] == pytest.approx(0.022)
    # a weighted task with no item cannot be estimated
    assert np.isnan(stratified_paired_difference_ci(before, after, tasks, {"sciq": 0.5, "boolq": 0.5})[0])


def test_cohen_kappa_is_the_two_reader_formula_and_one_when_both_give_one_label():
    from superalign.stats import cohen_kappa

    a = [True, True, False, False, True, False, True, True]
    b = [True, False, False, False, True, True, True, True]
    po = sum(x == y for x, y in zip(a, b)) / len(a)
    pa, pb = sum(a) / len(a), sum(b) / len(b)
    pe = pa * pb + (1 - pa) * (1 - pb)
    assert cohen_kappa(a, b) == pytest.approx((po - pe) / (1 - pe))
    assert cohen_kappa([True] * 4, [True] * 4) == 1.0  # no chance agreement to correct: perfect
    assert cohen_kappa([True] * 4, [False] * 4) == pytest.approx(0.0)  # always disagreeing, no variation


def test_rate_cell_is_the_share_with_its_wilson_interval_and_empty_is_none():
    from superalign.stats import rate_cell, wilson

    c = rate_cell([True, False, False, True, True])
    lo, hi = wilson(3, 5)
    assert c == {"rate": 0.6, "k": 3, "n": 5, "ci": [round(lo, 4), round(hi, 4)]}
    assert rate_cell([]) == {"rate": None, "k": 0, "n": 0, "ci": [None, None]}
