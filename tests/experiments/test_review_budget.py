"""`superalign experiment review-budget`: the simulated human budget study runs like every experiment and
says what the docs say it measures: humans label the budgeted share, uncertainty routing leaves fewer wrong
verdicts than no review, and labelling everything leaves none."""

from __future__ import annotations

import json

import pytest

from superalign.errors import UserError
from superalign.experiments import run_experiment
from superalign.experiments.review_budget.run import RoutingExperimentConfig


def test_review_budget_runs_as_an_experiment(tmp_path, monkeypatch):
    import superalign.experiments.review_budget.run as rb

    small = RoutingExperimentConfig(seeds=(0, 1), rounds=1, queries_per_round=48, benign_per_round=24)
    monkeypatch.setitem(rb.PRESETS, "quick", small)
    m = run_experiment("review-budget", tmp_path / "out", quick=True)
    s = m["summary"]
    assert s["critic"]["human_share"] == 0 and s["oracle"]["human_share"] == 1
    for routed in ("uncertainty", "random"):
        assert 0 < s[routed]["human_share"] <= small.budget_fraction + 0.01
    assert s["oracle"]["wrong_verdicts_after_review"] == 0
    assert s["uncertainty"]["wrong_verdicts_after_review"] < s["critic"]["wrong_verdicts_after_review"]
    on_disk = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert on_disk["experiment"] == "review-budget" and len(on_disk["runs"]) == 2 * 4
    assert "uncertainty routing" in (tmp_path / "out" / "results.md").read_text()
    assert (tmp_path / "out" / "report.html").is_file()
    with pytest.raises(UserError, match="scripted learner only"):
        run_experiment("review-budget", tmp_path / "o2", quick=True, learner="tiny")
