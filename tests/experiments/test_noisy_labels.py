"""A micro noisy-labels run on the tiny random model: it trains every (method, ε, seed) and writes its outputs."""

import json

import pytest

from superalign.experiments import common


@pytest.fixture()
def micro(monkeypatch, tmp_path):
    from superalign.experiments.noisy_labels.run import NoisyLabelsConfig

    monkeypatch.setattr(common, "pool_cache_path", lambda s: tmp_path / "pool.json")
    pool = common.PoolSettings(
        learner="tiny",
        harmful_train=2,
        benign_train=8,
        harmful_heldout=2,
        benign_heldout=4,
        max_new_tokens=6,
        critic="rules",
    )
    return NoisyLabelsConfig(
        eps=(0.0, 0.4),
        methods=("dpo", "rdpo"),
        seeds=2,
        steps=2,
        batch_size=4,
        micro_batch=4,
        max_len=48,
        asr_prompts=1,
        asr_max_new_tokens=4,
        lr=5e-3,
        pool=pool,
    )


def test_micro_run_writes_metrics_with_expected_keys(micro, tmp_path):
    from superalign.experiments.noisy_labels.run import run

    out = tmp_path / "exp"
    out.mkdir()
    seen = []
    metrics = run(
        out, quick=True, seeds=None, learner="tiny", progress=lambda s, d, t: seen.append((s, d, t)), config=micro
    )
    data = json.loads((out / "metrics.json").read_text())
    assert {"experiment", "config", "pool", "baseline", "runs", "summary", "minutes"} <= set(data)
    assert data["experiment"] == "noisy-labels" and data["baseline"]["pref_acc"] == 0.5 and data["complete"]
    # ε = 0 once (plain DPO) + 2 methods at ε = 0.4, two seeds each
    assert len(data["runs"]) == 2 + 2 * 2
    n = data["n_train_pairs"]
    assert {r["flipped"] for r in data["runs"] if r["eps"] == 0.4} == {round(0.4 * n)}
    assert all(0.0 <= r["pref_acc"] <= 1.0 and r["steps"] == 2 for r in data["runs"])
    assert any(r["mean_margin"] != 0.0 for r in data["runs"])  # training moved the policy off the reference
    nh, nb = data["n_heldout_harmful_pairs"], data["n_heldout_benign_pairs"]
    for r in data["runs"]:  # the overall accuracy is the pair-weighted mean of the per-kind ones
        parts = [(nh, r["pref_acc_harmful"]), (nb, r["pref_acc_benign"])]
        assert abs(sum(n * a for n, a in parts if n) / (nh + nb) - r["pref_acc"]) < 1e-3
    for m in ("dpo", "rdpo"):
        for e in ("0.0", "0.4"):
            cell = data["summary"][m][e]["pref_acc"]
            assert cell["n"] == 2 and len(cell["ci"]) == 2
    assert data["summary"]["rdpo"]["0.0"] == data["summary"]["dpo"]["0.0"]  # ε = 0 shared: rDPO == DPO there
    assert (out / "pref_acc_vs_eps.png").stat().st_size > 2000 and (out / "asr_vs_eps.png").is_file()
    assert "| 0.4 | rdpo |" in (out / "results.md").read_text().replace("0.400", "0.4")
    assert ("noisy-labels runs", 6, 6) in seen and metrics["runs"] == data["runs"]


def test_method_settings_are_eps_aware():
    from superalign.experiments.noisy_labels.run import PRESETS, method_train_config

    cfg = PRESETS["full"]
    assert cfg.eps == (0.0, 0.1, 0.2, 0.3, 0.4) and cfg.seeds >= 3
    r, c, d = (method_train_config(m, 0.3, cfg) for m in ("rdpo", "cdpo", "dpo"))
    assert (r.loss_type, r.label_smoothing) == ("robust", 0.3)
    assert (c.loss_type, c.label_smoothing) == ("sigmoid", 0.3)
    assert (d.loss_type, d.label_smoothing) == ("sigmoid", 0.0)
    assert r.nll_weight == 0.0  # the NLL term would train on flipped "chosen" whatever the loss


def test_resume_keeps_finished_runs_and_runs_only_the_rest(micro, tmp_path):
    """A run cut after seed 0 (1 seed) resumed with 2 seeds equals the straight 2-seed run."""
    from superalign.experiments.noisy_labels.run import run

    straight = run(tmp_path / "a", quick=True, seeds=None, learner="tiny", progress=lambda *a: None, config=micro)
    run(tmp_path / "b", quick=True, seeds=1, learner="tiny", progress=lambda *a: None, config=micro)
    trained: list[int] = []
    resumed = run(
        tmp_path / "b",
        quick=True,
        seeds=2,
        learner="tiny",
        config=micro,
        resume=True,
        progress=lambda s, d, t: trained.append(d) if s == "noisy-labels runs" else None,
    )
    assert trained == [3, 4, 5, 6]  # jobs 0-2 (seed 0) were kept, not retrained
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(resumed["runs"]) == strip(straight["runs"]) and resumed["complete"]
    as_json = lambda m: json.dumps(common._json_safe(m["summary"]))  # noqa: E731  (NaN != NaN in MeanCI)
    assert as_json(resumed) == as_json(straight)
