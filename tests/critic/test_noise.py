"""Noisy point-wise labels: flipping, the robust heads vs plain cross-entropy, CIs and the plot (fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from superalign.critic.noise import fit_predict, flip_labels, noise_plot, summarise


def _blobs(n: int, seed: int, d: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian classes separated along one axis (Bayes accuracy ~0.93), plus noise dimensions."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, d))
    x[:, 0] += np.where(y == 1, 1.5, -1.5)
    return x, y


def test_flip_labels_flips_about_the_asked_share_and_is_seeded() -> None:
    y = np.zeros(2000, dtype=int)
    flipped = flip_labels(y, 0.3, seed=1)
    assert 0.27 < flipped.mean() < 0.33
    assert (flip_labels(y, 0.3, seed=1) == flipped).all() and (flip_labels(y, 0.0, 1) == y).all()


def test_coteaching_beats_plain_ce_at_40_percent_symmetric_noise() -> None:
    x, y = _blobs(240, seed=1)
    xt, yt = _blobs(600, seed=2)
    acc = {m: [] for m in ("ce", "coteach")}
    for seed in range(3):
        noisy = flip_labels(y, 0.4, seed)
        for m in acc:
            acc[m].append(float(((fit_predict(x, noisy, xt, m, seed=seed, steps=200) >= 0.5) == yt).mean()))
    # measured: ce ~0.57, coteach ~0.62 (plain CE memorises the flipped labels)
    assert np.mean(acc["coteach"]) > np.mean(acc["ce"]) + 0.02, acc


def test_clean_labels_are_learned_by_every_method() -> None:
    x, y = _blobs(240, seed=3)
    xt, yt = _blobs(400, seed=4)
    for m in ("ce", "forward", "coteach"):
        assert ((fit_predict(x, y, xt, m, steps=150) >= 0.5) == yt).mean() > 0.75, m


def test_summary_cis_bracket_the_mean_and_plot_is_written(tmp_path: Path) -> None:
    rows = [
        {"method": m, "rate": r, "seed": s, "accuracy": a + 0.01 * s}
        for m, a0 in (("ce", 0.8), ("coteach", 0.85))
        for r in (0.0, 0.4)
        for s in range(3)
        for a in [a0 - r / 2]
    ]
    summary = summarise(rows)
    cell = summary["ce"]["0.4"]
    assert cell["lo"] < cell["mean"] == 0.61 < cell["hi"] and cell["n"] == 3
    noise_plot(summary, tmp_path / "noise.png")
    assert (tmp_path / "noise.png").read_bytes()[:4] == b"\x89PNG"
