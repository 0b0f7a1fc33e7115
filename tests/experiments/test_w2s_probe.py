"""w2s-probe: the PGR gate and pooling, inverse-variance pooling by hand, the flip control's noise rate,
the copy rate by hand, leak-free splits, pair-probe antisymmetry, the layer-feature cache, control flow."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from superalign.experiments.w2s_probe import run as wp


def test_gate_marks_small_gaps_undefined():
    assert wp.gated_pgr(0.60, 0.70, 0.80, 0.15) == pytest.approx(0.5)
    assert wp.gated_pgr(0.60, 0.75, 0.75, 0.15) == pytest.approx(1.0)  # a gap of exactly 0.15 passes
    assert wp.gated_pgr(0.70, 0.75, 0.80, 0.15) is None  # gap 0.10: undefined
    assert wp.gated_pgr(0.80, 0.90, 0.70, 0.15) is None  # ceiling below weak
    assert wp.gated_pgr(0.70, 0.75, 0.70, 0.0) is None  # no gap at all: never divided


def test_inverse_variance_pooling_equals_a_hand_computation():
    cells = [(0.5, 0.01), (0.2, 0.04), (None, 0.02), (0.9, None)]  # the last two: undefined / no variance
    out = wp.inverse_variance_pool(cells)
    # weights 1/0.01 = 100 and 1/0.04 = 25: (100 * 0.5 + 25 * 0.2) / 125 = 0.44, SE = sqrt(1 / 125)
    assert out["pooled"] == pytest.approx(0.44)
    assert out["se"] == pytest.approx(math.sqrt(1 / 125))
    assert out["ci"] == pytest.approx([0.44 - 1.959964 * math.sqrt(1 / 125), 0.44 + 1.959964 * math.sqrt(1 / 125)])
    assert out["weights"] == pytest.approx([0.8, 0.2]) and out["n"] == 2
    assert wp.inverse_variance_pool([(None, 0.1)])["pooled"] is None


def test_flip_control_has_the_weak_labels_error_rate():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 500)
    weak = np.where(truth == 1, rng.random(500) < 0.7, rng.random(500) < 0.1).astype(int)  # structured errors
    for seed in range(5):
        flipped = wp.flip_like(truth, weak, seed)
        assert (flipped != truth).sum() == (weak != truth).sum()
        assert set(np.unique(flipped)) <= {0, 1}
    # the flips ignore the weak errors' structure: here weak errs mostly on positives, flips on both classes
    flipped = wp.flip_like(truth, weak, 0)
    err_on_neg = ((flipped != truth) & (truth == 0)).sum() / max(1, (flipped != truth).sum())
    assert 0.3 < err_on_neg < 0.7


def test_copy_rate_on_a_hand_example():
    truth = [1, 1, 1, 0, 0, 0]
    weak = [0, 0, 1, 1, 0, 0]  # wrong on items 0, 1, 3
    student = [0, 1, 1, 1, 1, 0]  # repeats the mistake on 0 and 3, fixes 1 (and breaks 4)
    assert wp.copy_rate(weak, student, truth) == pytest.approx(2 / 3)
    assert wp.copy_rate(truth, student, truth) is None  # a perfect supervisor has no mistakes to copy
    unit = {
        "test": [0, 1, 2, 3, 4, 5],
        "pred": {"weak:L1": "001100", "student:L1": "011110", "flip:L1": "111000", "ceiling": "111000"},
    }
    rates = wp.copy_rates([unit], np.asarray(truth), "L1")
    assert rates == {"student": pytest.approx(2 / 3, abs=1e-4), "flip": 0.0, "ceiling": 0.0}


def test_misfit_regression_recovers_a_known_slope():
    x = [0.01, 0.02, 0.05, 0.08, 0.1]
    out = wp.misfit_regression(x, [1.0 * v + 0.001 for v in x], 200)
    assert out["slope"] == pytest.approx(1.0) and out["intercept"] == pytest.approx(0.001)
    assert out["slope_ci"] == pytest.approx([1.0, 1.0]) and out["r2"] == pytest.approx(1.0)
    assert wp.misfit_regression([0.1, 0.2], [0.1, 0.2], 100)["slope"] is None


@pytest.mark.parametrize("fmt", ["pair", "option"])
def test_items_are_balanced_and_splits_disjoint_by_group(fmt):
    items = wp.load_items("sciq", 120, fmt)
    labels = [it.label for it in items]
    assert abs(sum(labels) - len(labels) / 2) <= 1
    groups = [it.group for it in items]
    w, s, t = wp.split_parts(groups, 0.3, seed=1)
    assert sorted(w + s + t) == list(range(len(items)))
    part_groups = [{groups[i] for i in p} for p in (w, s, t)]
    assert not (part_groups[0] & part_groups[1] or part_groups[0] & part_groups[2] or part_groups[1] & part_groups[2])
    a, b = wp.halves(s, groups, seed=1)
    assert sorted(a + b) == sorted(s) and not ({groups[i] for i in a} & {groups[i] for i in b})
    assert wp.split_parts(groups, 0.3, seed=1) == (w, s, t) != wp.split_parts(groups, 0.3, seed=2)
    if fmt == "pair":
        assert all(len(it.candidates) == 2 for it in items) and len(set(groups)) == len(items)
    else:
        assert all(len(it.candidates) == 1 for it in items) and len(set(groups)) == len(items) // 2


def test_pair_probe_answers_flip_when_the_options_swap():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6))
    y = (x[:, 0] + 0.5 * rng.normal(size=120) > 0).astype(int)
    cfg = wp.W2SProbeConfig(cs=(0.1, 1.0))
    probe = wp.fit_probe(x, y, [str(i) for i in range(120)], cfg, seed=0, centered=False)
    np.testing.assert_allclose(wp.p1(probe, -x), 1 - wp.p1(probe, x), atol=1e-12)
    assert ((wp.p1(probe, x) >= 0.5) == y).mean() > 0.8


def _fake_unit(task, seed, test, truth, acc, rng):
    """Predictions on `test` with about the given accuracy per model."""
    pred = {}
    for key, a in acc.items():
        right = rng.random(len(test)) < a
        pred[key] = "".join(str(int(truth[i] if r else 1 - truth[i])) for i, r in zip(test, right))
    cells = {
        "L1": {
            "weak_label_error": 0.2,
            "flip_label_error": 0.2,
            "brier_weak": 0.2,
            "brier_student": 0.15,
            "misfit_sq": 0.05,
            "misfit_01": 0.1,
            "gain_acc": 0.05,
        }
    }
    return {"task": task, "seed": seed, "n": {}, "test": test, "pred": pred, "cells": cells}


def test_summary_leaves_gated_tasks_out_of_the_pool():
    """Task 'wide' has ceiling - weak ~ 0.3, task 'narrow' ~ 0.05: narrow's PGR is undefined and the pooled
    PGR is wide's alone."""
    rng = np.random.default_rng(0)
    cfg = wp.W2SProbeConfig(tasks=("sst2", "sciq"), weak=("L1",), seeds=2, bootstrap=200)
    models = ["ceiling", "weak:L1", "student:L1", "flip:L1", "s2s:sup", "s2s:student"]
    models += ["weak:L2", "chain:mid", "chain:final", "chain:direct", "chain:ceiling"]
    data, runs = {}, []
    for task, (weak, ceiling) in {"sst2": (0.6, 0.9), "sciq": (0.7, 0.75)}.items():
        n = 600
        truth = rng.integers(0, 2, n)
        data[task] = SimpleNamespace(y=truth, groups=[f"{task}-{i}" for i in range(n)], items=[None] * n, n_texts=n)
        for seed in range(2):
            test = sorted(rng.choice(n, 300, replace=False).tolist())
            acc = {m: 0.8 for m in models} | {"ceiling": ceiling, "weak:L1": weak, "chain:ceiling": ceiling}
            runs.append(_fake_unit(task, seed, test, truth, acc, rng))
    summary = wp.summarise(runs, data, cfg)
    wide, narrow = summary["tasks"]["sst2"]["weak"]["L1"], summary["tasks"]["sciq"]["weak"]["L1"]
    assert wide["student"]["pgr"] is not None and wide["student"]["var"] > 0
    assert narrow["student"]["pgr"] is None and narrow["student"]["gap"] < 0.15
    pool = summary["pooled"]["L1"]["student"]
    assert pool["tasks"] == ["sst2"] and pool["undefined"] == ["sciq"]
    assert pool["pooled"] == pytest.approx(wide["student"]["pgr"], abs=1e-4)
    json.dumps(summary)  # strict JSON-able (no numpy arrays left)


def test_layer_features_pool_each_layer_and_cache(tmp_path, monkeypatch):
    """On the tiny random model: the mean over the candidate's tokens and the last token of each kept
    layer equal a direct forward pass of that one text, padding does not change them, and a second call
    reads the cache."""
    import torch

    from superalign.backends.embedded import tiny_model_dir
    from superalign.experiments.w2s_probe.layer_features import LayerFeatures

    model_dir = str(tiny_model_dir())
    monkeypatch.setenv("SUPERALIGN_CACHE", str(tmp_path))
    lf = LayerFeatures(model_dir=model_dir, layers=(1, 2), batch_size=4)
    ctx = ["Is this good?", "A much longer question about a much longer thing, with many words in it?"]
    cand = ["yes", "Perhaps, if one reads it twice over and thinks about it for a while."]
    x = lf.encode(ctx, cand)
    assert x.shape == (2, 2, 2, 64)
    model, tok = lf.load()
    for i in range(2):
        ids, start = lf.token_ids(tok, ctx[i], cand[i])
        with torch.inference_mode():
            hs = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
        for j, k in enumerate((1, 2)):
            np.testing.assert_allclose(x[i, j, 0], hs[k][0, start:].mean(0).numpy(), atol=2e-3, rtol=2e-3)
            np.testing.assert_allclose(x[i, j, 1], hs[k][0, -1].numpy(), atol=2e-3, rtol=2e-3)
    assert len(list(lf.cache_dir().rglob("*.npy"))) == 2
    monkeypatch.setattr(LayerFeatures, "load", lambda self: pytest.fail("cached texts must not load the model"))
    np.testing.assert_array_equal(lf.encode(ctx, cand), x)


def test_run_on_the_tiny_model_writes_results(tmp_path, monkeypatch):
    from superalign.backends.embedded import tiny_model_dir

    model_dir = str(tiny_model_dir())
    monkeypatch.setenv("SUPERALIGN_CACHE", str(tmp_path / "cache"))
    cfg = wp.W2SProbeConfig(
        tasks=("sciq",),
        limit=60,
        weak=("L1", "bow"),
        student_layers=(1, 2),
        chain=(1, 2),
        seeds=2,
        cs=(0.01,),
        model_dir=model_dir,
        bootstrap=100,
    )
    out = tmp_path / "out"
    out.mkdir()
    m = wp.run(out, True, None, "embedded", lambda *a: None, config=cfg)
    assert m["preset"] == "custom" and m["machine"]["cpus"] >= 1
    cell = m["tasks"]["sciq"]["weak"]["L1"]
    assert cell["weak_label_error"] == cell["flip_label_error"]
    assert set(m["runs"][0]["pred"]) >= {"ceiling", "weak:L1", "student:bow", "flip:bow", "s2s:student", "chain:final"}
    text = (out / "results.md").read_text(encoding="utf-8")
    assert "Pooled PGR" in text and "copy rate" in text
    json.loads((out / "metrics.json").read_text(encoding="utf-8"))

    # killed after its first unit: --resume keeps that unit and gives the same rows as the uninterrupted run
    partial = {k: m[k] for k in ("experiment", "preset", "learner", "config")} | {"complete": False}
    (out / "metrics.json").write_text(json.dumps(partial | {"runs": m["runs"][:1], "seconds": 1.0}), encoding="utf-8")
    again = wp.run(out, True, None, "embedded", lambda *a: None, config=cfg, resume=True)
    assert again["resumed_units"] == 1 and again["complete"]
    assert [(r["task"], r["seed"], r["pred"]) for r in again["runs"]] == [
        (r["task"], r["seed"], r["pred"]) for r in m["runs"]
    ]
    assert again["tasks"]["sciq"]["accuracy"] == m["tasks"]["sciq"]["accuracy"]
