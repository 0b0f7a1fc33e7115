"""w2s: PGR arithmetic and edge cases, the aux confidence loss by hand, leak-free halves, control flow."""

import json
import math

import numpy as np
import pytest
import torch

from superalign.experiments.w2s import run as w2s
from superalign.experiments.w2s.loss import HeadConfig, aux_coefficient, aux_confidence_loss, predict_proba, train_head


def test_pgr_arithmetic_and_edge_cases():
    assert w2s.pgr(0.6, 0.7, 0.8) == pytest.approx(0.5)
    assert w2s.pgr(0.6, 0.8, 0.8) == pytest.approx(1.0)
    assert w2s.pgr(0.6, 0.5, 0.8) == pytest.approx(-0.5)  # student below its supervisor
    assert w2s.pgr(0.6, 0.9, 0.8) == pytest.approx(1.5)  # student beyond the ceiling
    assert w2s.pgr(0.7, 0.9, 0.7) is None  # ceiling == weak: undefined, no division
    assert w2s.pgr(0.8, 0.9, 0.7) is None  # ceiling < weak


def test_pgr_bootstrap_reports_undefined_instead_of_blowing_up():
    run = {
        "acc": {"weak": 0.8, "student": 0.8, "ceiling": 0.8},
        "correct": {
            "weak": [1.0, 1.0, 0.0, 1.0, 1.0],
            "student": [1.0, 1.0, 0.0, 1.0, 1.0],
            "ceiling": [1.0, 1.0, 0.0, 1.0, 1.0],
        },
    }
    out = w2s.pgr_bootstrap([run, run, run], "student", 200)
    assert out["pgr"] is None and out["undefined_share"] == 1.0 and out["ci"] == [None, None]
    json.dumps(out)  # strict JSON


def test_pgr_bootstrap_reads_correctness_as_digit_strings_or_lists():
    rng = np.random.default_rng(0)
    lists = [
        {"acc": {}, "correct": {k: rng.integers(0, 2, 40).tolist() for k in ("weak", "student", "ceiling")}}
        for _ in range(3)
    ]
    for r in lists:
        r["acc"] = {k: float(np.mean(v)) for k, v in r["correct"].items()}
    strings = [{"acc": r["acc"], "correct": {k: "".join(map(str, v)) for k, v in r["correct"].items()}} for r in lists]
    assert w2s.pgr_bootstrap(lists, "student", 200) == w2s.pgr_bootstrap(strings, "student", 200)
    np.testing.assert_array_equal(w2s.correct_array("0110"), [0, 1, 1, 0])


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
    cfg = w2s.W2SConfig(
        tasks=("sst2", "harm"),
        seeds=2,
        epochs=10,
        lr=3e-3,
        bootstrap=100,
        student="probe",
        weak=("bow", "smollm2-mid", "rules"),
    )
    m = w2s.run(tmp_path, quick=True, seeds=None, learner="embedded", progress=lambda *a: None, config=cfg)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert (
        saved["pgr_median"] == m["pgr_median"]
        and (tmp_path / "results.md").is_file()
        and (tmp_path / "pgr.png").is_file()
    )
    assert set(saved["pgr"]) == {"sst2", "harm"}
    assert set(saved["pgr"]["sst2"]) == {"bow", "smollm2-mid"}  # rules only applies to the harm task
    assert set(saved["pgr"]["harm"]) == {"bow", "smollm2-mid", "rules"}
    acc = saved["accuracy"]["sst2"]["smollm2-mid"]
    assert acc["ceiling"]["mean"] > 0.9 and acc["weak"]["mean"] < 0.8  # genuinely weaker supervisor
    p = saved["pgr"]["sst2"]["smollm2-mid"]["aux"]
    assert p["pgr"] is not None and p["n_seeds"] == 2
    assert len(saved["runs"]) == 2 * (2 + 3)


def test_weak_supervisor_names_are_validated():
    assert w2s.W2SConfig(weak=("smollm2-L2", "bow")).weak == ("smollm2-L2", "bow")
    for bad in ("smollm2-L0", "smollm2-L31", "gpt2", "smollm2-Lx"):
        with pytest.raises(ValueError, match="unknown weak supervisor"):
            w2s.W2SConfig(weak=(bad,))


def _text_task(n=150, seed=0):
    """Label 1 responses start with a positive word, label 0 with a negative one; the rest is noise words.
    Groups of two, so the group split has something to keep together."""
    import random

    rng = random.Random(seed)
    noise = ["apple", "river", "stone", "cloud", "music", "paper", "green", "quiet", "table", "north"]
    pos, neg = ["wonderful", "great", "lovely"], ["terrible", "awful", "dreadful"]
    return [
        w2s.BinaryExample(
            f"g{i // 2}",
            "Is this review positive?",
            f"{rng.choice(pos if i % 3 else neg)} " + " ".join(rng.choice(noise) for _ in range(5)),
            int(i % 3 != 0),
        )
        for i in range(n)
    ]


def test_finetuned_student_run_resumes_to_the_same_rows(monkeypatch, tmp_path):
    """The fine-tuned student end to end on the tiny model: a straight 2-seed run equals a 1-seed run
    grown to 2 seeds with --resume, and the student learns the lexical signal (ceiling well above chance)."""
    from superalign.backends.embedded import tiny_model_dir

    exs = _text_task()
    monkeypatch.setattr(w2s, "load_binary_task", lambda task, limit=0: exs)
    cfg = w2s.W2SConfig(
        tasks=("sst2", "harm"),
        seeds=2,
        weak=("bow", "rules"),
        model_dir=str(tiny_model_dir()),
        ft_blocks=1,
        ft_epochs=8,
        ft_head_lr=3e-2,
        ft_lr=1e-3,
        bootstrap=100,
    )
    straight = w2s.run(tmp_path / "a", quick=True, seeds=None, learner="embedded", progress=lambda *a: None, config=cfg)
    one = w2s.run(tmp_path / "b", quick=True, seeds=1, learner="embedded", progress=lambda *a: None, config=cfg)
    assert one["complete"] and {r["seed"] for r in one["runs"]} == {0}
    seen = []
    grown = w2s.run(
        tmp_path / "b",
        quick=True,
        seeds=2,
        learner="embedded",
        progress=lambda *a: seen.append(a[0]),
        config=cfg,
        resume=True,
    )
    assert [r for r in grown["runs"]] == [r for r in straight["runs"]]
    assert not any("seed 0" in label for label in seen)  # the finished seed was kept, not retrained
    assert len(straight["runs"]) == 2 * (1 + 2)  # rules only on harm
    ceiling = straight["accuracy"]["sst2"]["bow"]["ceiling"].mean
    assert ceiling >= 0.85, ceiling  # majority class: 0.67
    assert "fine-tuned" in (tmp_path / "a" / "results.md").read_text()
    with pytest.raises(Exception, match="ft_epochs"):
        w2s.run(
            tmp_path / "b",
            quick=True,
            seeds=2,
            learner="embedded",
            progress=lambda *a: None,
            config=cfg.model_copy(update={"ft_epochs": 2}),
            resume=True,
        )
