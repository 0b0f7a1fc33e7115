"""sandwich: the simulated non-expert's decision rules, gap arithmetic, and the run on the scripted backend."""

import json

import pytest

from superalign.data.competence import MCItem
from superalign.experiments.sandwich import run as sw


def _items(n, options=4):
    return [
        MCItem(f"i{k}", "synthetic", f"q{k}", tuple(f"o{j}" for j in range(options)), k % options) for k in range(n)
    ]


def _scores(items, right, margin):
    """Log-likelihoods: the correct option (right=True) or the next one on top by `margin` nats; when
    wrong, the correct option comes second (margin / 2)."""
    out = []
    for it in items:
        top = it.answer if right else (it.answer + 1) % len(it.options)
        out.append([margin if j == top else margin / 2 if j == it.answer else 0.0 for j in range(len(it.options))])
    return out


def test_nonexpert_alone_hits_the_configured_accuracy():
    items = _items(3000)
    cfg = sw.SandwichConfig(seeds=1)
    for a in (0.25, 0.55, 0.9):
        d = sw.simulate(items, _scores(items, True, 1.0), a, cfg, seed=0)
        assert sum(d.alone) / len(items) == pytest.approx(a, abs=0.03)


def test_assistance_from_a_right_and_confident_model_closes_the_whole_gap():
    items = _items(400)
    cfg = sw.SandwichConfig(known_confidence=0.9)
    d = sw.simulate(items, _scores(items, True, 10.0), 0.55, cfg, seed=1)  # p_s ~ 0.9999 > 0.9: always defers
    alone, assisted = sum(d.alone) / 400, sum(d.assisted) / 400
    assert assisted == 1.0 and sw.gap_closed(alone, assisted, 1.0) == pytest.approx(1.0)


def test_a_confidently_wrong_model_misleads_and_debate_with_skill_recovers():
    items = _items(400)
    cfg = sw.SandwichConfig(known_confidence=0.9, judge_skill=1.0)
    d = sw.simulate(items, _scores(items, False, 10.0), 0.55, cfg, seed=2)
    assert sum(d.assisted) == 0.0 < sum(d.alone)  # defers to a wrong model even on items it knew
    assert sum(d.strong) == 0.0
    assert sum(d.debate) == 400  # the right option is the model's 2nd choice, and the judge can tell
    assert sum(d.debate_no_skill) < sum(d.debate)
    # a guessing non-expert only follows an unsure model when it beats its own 1/n confidence
    d2 = sw.simulate(items, _scores(items, False, 0.0), 0.55, cfg, seed=2)  # all options tie: p_s = 1/n
    assert d2.assisted == d2.alone


def test_gap_closed_is_undefined_when_there_is_no_gap():
    assert sw.gap_closed(0.6, 0.8, 1.0) == pytest.approx(0.5)
    assert sw.gap_closed(0.6, 0.8, 0.6) is None and sw.gap_closed(0.7, 0.8, 0.6) is None


def test_run_on_the_scripted_backend_writes_every_output(tmp_path):
    from superalign.backends import load_backend

    cfg = sw.SandwichConfig(
        tasks=("sciq", "arc_challenge", "mmlu:moral_scenarios"),
        items_per_task=12,
        nonexpert_accuracy=(0.4, 0.7),
        seeds=2,
        bootstrap=200,
    )
    m = sw.run(
        tmp_path,
        quick=True,
        seeds=None,
        learner="scripted",
        progress=lambda *a: None,
        config=cfg,
        backend=load_backend("scripted"),
    )
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert (tmp_path / "results.md").is_file() and (tmp_path / "accuracy_vs_nonexpert.png").is_file()
    assert saved["gap_closed"] == m["gap_closed"] and saved["headline_nonexpert_accuracy"] == 0.7
    res = saved["results"]["0.4"]
    assert set(res) == {"sciq", "arc_challenge", "mmlu:moral_scenarios", "all"}
    assert res["all"]["n_items"] == 36 and res["all"]["expert"]["mean"] == 1.0
    for cond in ("alone", "assisted", "debate", "strong"):
        assert 0.0 <= res["all"][cond]["mean"] <= 1.0
    # the non-expert alone gets better as configured
    assert saved["results"]["0.7"]["all"]["alone"]["mean"] > res["all"]["alone"]["mean"]
    with pytest.raises(Exception, match="unknown task"):
        sw.load_task("mmlu-moral", 3)


def test_calibration_stops_deference_to_an_overconfident_wrong_model():
    items = _items(400)
    wrong = _scores(items, False, 10.0)
    assert sw.fit_temperature(items, wrong) > 5.0  # confidently wrong: flattened
    assert sw.fit_temperature(items, _scores(items, True, 10.0)) <= 1.0  # confidently right: kept sharp
    d = sw.simulate(items, wrong, 0.55, sw.SandwichConfig(known_confidence=0.9), seed=3)
    assert sum(d.assisted) == 0.0 < sum(d.assisted_calibrated)  # known answers survive calibrated advice
    temps = sw.cross_fitted_temperatures(items, wrong)
    assert len(temps) == 400 and len(set(temps[0::2])) == 1 and len(set(temps[1::2])) == 1
