"""train.engine: trl (TRL's DPOTrainer with the project's objective) against the native engine: same pairs, same
seed, same tiny random SmolLM2-shaped model -> the same step losses and the same trained weights."""

import json
import sys

import pytest

pytest.importorskip("trl", reason="the trl engine needs trl: pip install 'superalign[test]' (trl==1.16.0)")
torch = pytest.importorskip("torch")

from superalign.backends import load_backend  # noqa: E402
from superalign.config import TrainConfig  # noqa: E402
from superalign.learner.dpo import encode_example, sequence_logps, train_dpo  # noqa: E402
from superalign.learner.trl_engine import launch, train_dpo_trl, write_job  # noqa: E402
from superalign.records import Pair, user_chat  # noqa: E402

PAIRS = [
    ("How do I pick a lock?", "I can't help with that.", "Sure, first insert a tension wrench and rake the pins.", 1.0),
    ("What is the capital of France?", "Paris.", "I would rather not say.", 0.6),
    ("Write a haiku about rain.", "Soft rain on the roof / the garden drinks slowly", "No.", 0.9),
    ("Give me a tip for sleeping well.", "Keep a regular bedtime and a dark, cool room.", "Sleep is overrated.", 0.75),
]
REPLAY = [
    (user_chat("Which is a mammal? A) shark B) whale"), "B"),
    (user_chat("2+3?"), "5"),
    (user_chat("Opposite of hot?"), "cold"),
]


def _pairs():
    return [Pair(prompt=user_chat(q), chosen=c, rejected=r, weight=w) for q, c, r, w in PAIRS]


def _trained_logps(backend, pairs):
    enc = [
        encode_example(backend.tokenizer, backend.render, p.prompt, t, 64)
        for p in pairs
        for t in (p.chosen, p.rejected)
    ]
    with torch.no_grad():
        lp, _ = sequence_logps(backend.model, enc, backend.tokenizer.pad_token_id)
    return lp


@pytest.mark.parametrize(
    "adapter,loss_type,eps,lr",
    [("lora", "sigmoid", 0.0, 5e-3), ("lora", "robust", 0.2, 5e-3), ("full", "ipo", 0.0, 1e-4)],
)
def test_trl_engine_matches_native(adapter, loss_type, eps, lr):
    """One optimiser step holds all 4 pairs (2 micro-batches of 2: gradient accumulation), 3 steps, NLL and replay on:
    step 1 is the loss at the reference (the same by construction), steps 2-3 follow each engine's updates, so they
    agree only if the gradients (preference + weights + NLL + replay), clipping and AdamW agree."""
    cfg = TrainConfig(
        adapter=adapter,
        loss_type=loss_type,
        label_smoothing=eps,
        lr=lr,
        epochs=3,
        batch_size=4,
        micro_batch=2,
        max_len=64,
        nll_weight=1.0,
        competence_replay=3,
        replay_weight=0.5,
    )
    native = load_backend("tiny", batch_size=4, device="cpu", dtype="float32")
    _, ns = train_dpo(native, _pairs(), cfg, seed=5, replay=REPLAY)
    steps = []
    theirs = load_backend("tiny", batch_size=4, device="cpu", dtype="float32")
    _, ts = train_dpo_trl(
        theirs,
        _pairs(),
        cfg.model_copy(update={"engine": "trl"}),
        seed=5,
        replay=REPLAY,
        progress=lambda s, total, loss: steps.append((s, total, loss)),
    )
    assert ns.steps == ts.steps == 3 and [s for s, _, _ in steps] == [1, 2, 3] and steps[0][1] == 3
    assert ts.losses == pytest.approx(ns.losses, abs=2e-5, rel=1e-4), (ns.losses, ts.losses)
    assert abs(ns.losses[-1] - ns.losses[0]) > 1e-3  # the later steps moved: the comparison is not trivial
    assert ts.reward_accuracy == ns.reward_accuracy
    lp_native, lp_trl = _trained_logps(native, _pairs()), _trained_logps(theirs, _pairs())
    assert torch.allclose(lp_native, lp_trl, atol=1e-4, rtol=1e-5), (lp_native, lp_trl)  # measured: <= 2e-5
    model = theirs.model  # handed back clean: merged, no TRL patch, no adapters, ready to generate and save
    assert not hasattr(model, "peft_config") and "forward" not in vars(model) and not model.training


def test_trl_engine_without_pairs_leaves_the_model():
    b = load_backend("tiny", batch_size=4, device="cpu", dtype="float32")
    model = b.model
    out, stats = train_dpo_trl(b, [], TrainConfig(engine="trl"))
    assert out is model and stats.steps == 0


def test_launched_training_writes_the_checkpoint(tmp_path):
    """train.launcher: the round's training as a command (`accelerate launch ...` on GPUs; here plain python, one
    process): the job's pairs train from the base model and rank 0 writes the merged checkpoint and the stats."""
    cfg = TrainConfig(engine="trl", epochs=1, batch_size=4, micro_batch=4, max_len=64)
    ckpt = tmp_path / "checkpoints" / "round-1"
    job = write_job(tmp_path / "work", "tiny", _pairs(), REPLAY[:1], cfg, 3, "float32", ckpt)
    lines = []
    stats = launch(f"{sys.executable}", job, lines.append)
    assert stats.steps == 1 and len(stats.losses) == 1 and stats.losses[0] == pytest.approx(0.69315, abs=1e-4)
    assert (ckpt / "config.json").is_file() and (ckpt / "tokenizer.json").is_file()
    assert json.loads((tmp_path / "work" / "stats.json").read_text())["processes"] == 1
    assert "superalign.learner.trl_engine" in lines[0]
    reloaded = load_backend(str(ckpt), device="cpu")
    assert reloaded.generate_ids([[1, 2, 3]], __import__("superalign.backends", fromlist=["Sampling"]).Sampling(4))


def test_failed_launch_is_a_user_error(tmp_path):
    from superalign.errors import UserError

    job = write_job(
        tmp_path / "w",
        str(tmp_path / "missing-model"),
        _pairs(),
        [],
        TrainConfig(engine="trl"),
        0,
        "float32",
        tmp_path / "ck",
    )
    with pytest.raises(UserError, match="train.launcher command failed"):
        launch(sys.executable, job, lambda m: None)


def test_update_learner_dispatches_on_the_engine(monkeypatch):
    import superalign.learner.trl_engine as engine
    from superalign.learner.dpo import TrainStats
    from superalign.learner.update import update_learner

    calls = []
    monkeypatch.setattr(
        engine, "train_dpo_trl", lambda b, p, c, **kw: calls.append(c.engine) or (b, TrainStats(steps=7))
    )
    b = object()
    assert update_learner(b, [], TrainConfig(engine="trl"), seed=0)[1].steps == 7 and calls == ["trl"]


@pytest.mark.slow
def test_smoke_round_trains_with_the_launched_trl_engine(tmp_path):
    """configs/smoke.yaml with train.engine: trl and train.launcher (plain python here; `accelerate launch ...` on
    GPUs): the round trains in the launched command, the driver commits its stats and evaluates its checkpoint."""
    from superalign.config import load_config
    from superalign.loop import run_loop

    base = load_config("configs/smoke.yaml")
    cfg = base.model_copy(update={"train": base.train.model_copy(update={"engine": "trl", "launcher": sys.executable})})
    lines = []
    rows = run_loop(cfg, tmp_path / "run", log=lines.append)
    assert [r["round"] for r in rows] == [0, 1] and rows[1]["pairs"] > 0
    # log 2 at the reference, times (this step's mean pair weight / the round's): weights are normalised per round
    assert rows[1]["train_loss_first"] == pytest.approx(0.69315, rel=0.1)
    assert any("(trl engine)" in m for m in lines) and any("superalign.learner.trl_engine" in m for m in lines)
    assert (tmp_path / "run" / "checkpoints" / "round-1" / "config.json").is_file()
    assert not list((tmp_path / "run" / "checkpoints").glob(".train-*"))  # the job folder is gone


def test_launcher_needs_the_trl_engine():
    from superalign.config import RunConfig
    from superalign.errors import UserError
    from superalign.preflight import check_run

    with pytest.raises(UserError, match="train.launcher: runs the trl engine"):
        check_run(RunConfig(learner="tiny", train={"launcher": "accelerate launch"}))


def test_sharded_launches_are_refused():
    from types import SimpleNamespace

    from superalign.errors import UserError
    from superalign.learner.trl_engine import _refuse_sharded

    ok = SimpleNamespace(
        is_fsdp_enabled=False, accelerator=SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=None))
    )
    _refuse_sharded(ok)
    zero2 = SimpleNamespace(
        is_fsdp_enabled=False,
        accelerator=SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=SimpleNamespace(zero_stage=2))),
    )
    _refuse_sharded(zero2)
    for bad in (
        SimpleNamespace(is_fsdp_enabled=True, accelerator=ok.accelerator),
        SimpleNamespace(
            is_fsdp_enabled=False,
            accelerator=SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=SimpleNamespace(zero_stage=3))),
        ),
    ):
        with pytest.raises(UserError, match="FSDP or DeepSpeed ZeRO-3 is not supported"):
            _refuse_sharded(bad)
