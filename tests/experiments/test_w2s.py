"""w2s: PGR arithmetic and edge cases, the aux confidence loss by hand, leak-free halves, control flow."""

import json
import math

import numpy as np
import pytest
import torch

from superalign.experiments import w2s
from superalign.learner.w2s_loss import HeadConfig, aux_coefficient, aux_confidence_loss, predict_proba, train_head


def test_pgr_arithmetic_and_edge_cases():
    assert w2s.pgr(0.6, 0.7, 0.8) == pytest.approx(0.5)
    assert w2s.pgr(0.6, 0.8, 0.8) == pytest.approx(1.0)
    assert w2s.pgr(0.6, 0.5, 0.8) == pytest.approx(-0.5)  # student below its supervisor
    assert w2s.pgr(0.6, 0.9, 0.8) == pytest.approx(1.5)  # student beyond the ceiling
    assert w2s.pgr(0.7, 0.9, 0.7) is None  # ceiling == weak: undefined, no division
    assert w2s.pgr(0.8, 0.9, 0.7) is None  # ceiling < weak


def test_pgr_bootstrap_reports_undefined_instead_of_blowing_up():
    run = {"acc": {"weak": 0.8, "student": 0.8, "ceiling": 0.8},
           "correct": {"weak": [1.0, 1.0, 0.0, 1.0, 1.0], "student": [1.0, 1.0, 0.0, 1.0, 1.0],
                       "ceiling": [1.0, 1.0, 0.0, 1.0, 1.0]}}
    out = w2s.pgr_bootstrap([run, run, run], "student", 200)
    assert out["pgr"] is None and out["undefined_share"] == 1.0 and out["ci"] == [None, None]
    json.dumps(out)  # strict JSON


def test_aux_loss_matches_a_hand_computed_example():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 1.0]])
    weak = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])  # mean P(1) = 0.5
    p0 = [1 / (1 + math.exp(-(a - b))) for a, b in logits.tolist()]  # 0.881, 0.269, 0.5, 0.119
    threshold = (0.5 + 0.2689414) / 2  # median of 4 values, linear interpolation (torch.quantile)
    hard0 = [1.0 if p >= threshold else 0.0 for p in p0]
    assert hard0 == [1.0, 0.0, 1.0, 0.0]
    for step_frac, coef in ((0.05, 0.025), (0.5, 0.5)):  # inside the warm-up: 0.5 * step_frac; after: 0.5
        assert aux_coefficient(step_frac, 0.5, 0.1) == pytest.approx(coef)
        expected = 0.0
        for (a, b), (w0, w1), h in zip(logits.tolist(), weak.tolist(), hard0):
            t0, t1 = (1 - coef) * w0 + coef * h, (1 - coef) * w1 + coef * (1 - h)
            lse = math.log(math.exp(a) + math.exp(b))
            expected += -(t0 * (a - lse) + t1 * (b - lse)) / 4
        assert float(aux_confidence_loss(logits, weak, step_frac, 0.5, 0.1)) == pytest.approx(expected, abs=1e-6)
    plain = torch.nn.functional.cross_entropy(logits, weak)
    assert float(aux_confidence_loss(logits, weak, 0.5, 0.0, 0.1)) == pytest.approx(float(plain))


def test_head_training_lowers_the_loss_and_learns_the_signal():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    head = train_head(x, y, HeadConfig(epochs=20, lr=1e-2), seed=0)
    assert head.losses[-1] < 0.6 * head.losses[0]
    assert ((predict_proba(head, x) >= 0.5) == (y == 1)).mean() > 0.9


@pytest.mark.parametrize("task", ["sciq", "harm"])
def test_halves_split_never_leaks(task):
    exs = w2s.load_binary_task(task, limit=120)
    for seed in range(3):
        weak, student, test = w2s.split_halves(exs, 0.3, seed)
        assert sorted(weak + student + test) == list(range(len(exs)))
        groups = [{exs[i].group for i in part} for part in (weak, student, test)]
        assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
        texts = [{(exs[i].prompt, exs[i].response) for i in part} for part in (weak, student, test)]
        assert not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    if task == "sciq":  # each question gives its answer (1) and one distractor (0), in the same part
        assert sum(e.label for e in exs) * 2 == len(exs)


def _synthetic(n=160, seed=0):
    """Texts carry no signal (the bag-of-words supervisor is at chance); the 'mid' feature slice a weak
    one and the full features a strong one."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 24)).astype(np.float32)
    x[:, 0] += 0.6 * (2 * y - 1)  # weak signal in the first third (the smollm2-mid slice)
    x[:, 8:] += 1.5 * (2 * y - 1)[:, None] * rng.uniform(0.5, 1.0, 16)  # strong signal in the rest
    exs = [w2s.BinaryExample(f"g{i}", "p", f"text {rng.integers(1000)}", int(y[i])) for i in range(n)]
    return exs, x


def test_run_control_flow_on_synthetic_features(monkeypatch, tmp_path):
    exs, x = _synthetic()
    monkeypatch.setattr(w2s, "load_binary_task", lambda task, limit=0: exs)
    monkeypatch.setattr(w2s, "features_for", lambda e, cfg, progress, task: x)
    cfg = w2s.W2SConfig(tasks=("sst2", "harm"), seeds=2, epochs=10, lr=3e-3, bootstrap=100)
    m = w2s.run(tmp_path, quick=True, seeds=None, learner="embedded", progress=lambda *a: None, config=cfg)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["pgr_median"] == m["pgr_median"] and (tmp_path / "results.md").is_file() and (tmp_path / "pgr.png").is_file()
    assert set(saved["pgr"]) == {"sst2", "harm"}
    assert set(saved["pgr"]["sst2"]) == {"bow", "smollm2-mid"}  # rules only applies to the harm task
    assert set(saved["pgr"]["harm"]) == {"bow", "smollm2-mid", "rules"}
    acc = saved["accuracy"]["sst2"]["smollm2-mid"]
    assert acc["ceiling"]["mean"] > 0.9 and acc["weak"]["mean"] < 0.8  # genuinely weaker supervisor
    p = saved["pgr"]["sst2"]["smollm2-mid"]["aux"]
    assert p["pgr"] is not None and p["n_seeds"] == 2
    assert len(saved["runs"]) == 2 * (2 + 3)
