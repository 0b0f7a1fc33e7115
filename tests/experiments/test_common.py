"""The experiment dispatcher and the shared pieces: CIs, metrics.json, tables, plots, label flips, pair pool."""

import json
import math
import sys

import pytest

from superalign.experiments import common
from superalign.records import Pair, user_chat


def _cli(monkeypatch, capsys, *args):
    from superalign.cli import main

    monkeypatch.setattr(sys, "argv", ["superalign", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr().err


def test_unknown_experiment_exits_2_and_lists_the_available_ones(monkeypatch, capsys, tmp_path):
    code, err = _cli(monkeypatch, capsys, "experiment", "nosiy-labels", "--out", str(tmp_path / "x"))
    assert code == 2
    assert (
        "did you mean 'noisy-labels'" in err and "Available: " in err and "noisy-labels" in err.split("Available:")[1]
    )
    assert not (tmp_path / "x").exists()


def test_planned_but_unbuilt_experiment_exits_2(monkeypatch, capsys, tmp_path):
    import superalign.experiments as ex

    monkeypatch.setattr(ex, "available_experiments", lambda: ["noisy-labels"])
    code, err = _cli(monkeypatch, capsys, "experiment", "w2s", "--out", str(tmp_path / "x"))
    assert code == 2
    assert "'w2s' is not built yet" in err and "Available: noisy-labels " in err


def test_t_ci_over_seeds_matches_the_formula():
    ci = common.mean_ci([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, df=2) * sd(=1) / sqrt(n)
    assert ci.mean == pytest.approx(2.0) and ci.n == 3
    assert (ci.lo, ci.hi) == pytest.approx((2.0 - half, 2.0 + half))
    boot = common.mean_ci([0.0, 1.0] * 10, method="bootstrap")
    assert boot.lo < 0.5 < boot.hi and boot.method == "bootstrap"
    one = common.mean_ci([0.7])
    assert one.n == 1 and math.isnan(one.lo) and one.to_dict()["ci"] == [None, None]


def test_metrics_json_is_strict_json_and_written_atomically(tmp_path):
    path = common.write_metrics(tmp_path, {"a": float("nan"), "ci": common.mean_ci([1.0, 3.0]), "xs": [1, 2]})
    data = json.loads(path.read_text())  # strict: NaN would not parse back as a number
    assert data["a"] is None and data["ci"]["mean"] == 2.0 and data["ci"]["n"] == 2 and data["xs"] == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind


def test_results_table_and_plot(tmp_path):
    table = common.markdown_table(["ε", "acc"], [[0.1, common.mean_ci([0.5, 0.7])], [0.2, None]])
    lines = table.splitlines()
    assert lines[0] == "| ε | acc |" and lines[1] == "|---|---|"
    assert lines[2].startswith("| 0.100 | 0.600 [") and lines[3] == "| 0.200 | – |"
    md = common.write_results(tmp_path, "T", [table])
    assert md.read_text().startswith("# T\n\n| ε | acc |")
    png = common.plot_with_ci(
        tmp_path / "p.png", [0, 1], {"dpo": [common.mean_ci([0.5, 0.6]), common.mean_ci([0.7])]}, "x", "y", "t"
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000


def _pairs(n):
    return [Pair(user_chat(f"q{i}"), chosen=f"good {i}", rejected=f"bad {i}") for i in range(n)]


@pytest.mark.parametrize("rate,expected", [(0.0, 0), (0.1, 2), (0.3, 6), (0.4, 8), (1.0, 20)])
def test_flip_labels_flips_exactly_the_requested_share(rate, expected):
    pairs = _pairs(20)
    noisy, flipped = common.flip_labels(pairs, rate, seed=1)
    assert len(flipped) == expected
    swapped = [i for i, (a, b) in enumerate(zip(pairs, noisy)) if (b.chosen, b.rejected) == (a.rejected, a.chosen)]
    unchanged = [i for i, (a, b) in enumerate(zip(pairs, noisy)) if b == a]
    assert swapped == flipped and len(unchanged) == 20 - expected
    assert common.flip_labels(pairs, rate, seed=1)[1] == flipped  # same seed, same draw


def test_flip_draw_differs_between_seeds():
    draws = {tuple(common.flip_labels(_pairs(40), 0.2, seed=s)[1]) for s in range(4)}
    assert len(draws) > 1


def test_pair_pool_from_scripted_learner_is_split_and_cached(monkeypatch, tmp_path):
    monkeypatch.setattr(common, "pool_cache_path", lambda s: tmp_path / "pool.json")
    settings = common.PoolSettings(
        learner="scripted", harmful_train=12, benign_train=8, harmful_heldout=6, benign_heldout=4, critic="rules"
    )
    pool = common.pair_pool(settings)
    assert pool.train and pool.heldout and len(pool.heldout_harmful) == 6
    harmful = [p for p in pool.train if p.kind == "refuse-harmful"]
    from superalign.learner.respond import REFUSAL_OPENERS

    assert harmful and all(p.chosen.startswith(REFUSAL_OPENERS) and p.rejected.startswith("Sure") for p in harmful)
    train_q = {p.prompt[-1]["content"] for p in pool.train}
    assert not train_q & {p.prompt[-1]["content"] for p in pool.heldout}  # disjoint prompts
    assert pool.stats["train"]["pairs"] == len(pool.train)
    monkeypatch.setattr(common, "build_pair_pool", lambda *a, **k: pytest.fail("rebuilt instead of cached"))
    again = common.pair_pool(settings)
    assert again.train == pool.train and again.heldout_harmful == pool.heldout_harmful


def test_mean_ci_is_cut_to_the_bounds_of_a_rate():
    from superalign.experiments.common import KAPPA, RATE, mean_ci

    wide = mean_ci([0.25, 0.25, 0.79])  # the t-interval of 3 seeds of a rate reaches past 0 and 1
    assert wide.lo < 0 and wide.hi > 1
    cut = mean_ci([0.25, 0.25, 0.79], bounds=RATE)
    assert (cut.mean, cut.lo, cut.hi) == (wide.mean, 0.0, 1.0)
    inside = mean_ci([0.4, 0.5, 0.6], bounds=RATE)
    assert (inside.lo, inside.hi) == (mean_ci([0.4, 0.5, 0.6]).lo, mean_ci([0.4, 0.5, 0.6]).hi)  # untouched
    assert mean_ci([-0.9, -0.9, 0.9], bounds=KAPPA).lo == -1.0
