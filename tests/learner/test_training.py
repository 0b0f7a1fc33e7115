"""A few steps of each preference loss (LoRA and full fine-tuning) and of SFT on the tiny random model."""

import copy
import math

import pytest
import torch

from superalign.backends.hf import HFBackend
from superalign.config import TrainConfig
from superalign.learner.dpo import encode_example, sequence_logps, train_dpo
from superalign.learner.sft import train_sft
from superalign.records import user_chat


@pytest.fixture(scope="module")
def base(tiny):
    return tiny.model


@pytest.fixture()
def learner(tiny, base):
    """A private copy of the tiny learner (training replaces its model)."""
    return HFBackend(copy.deepcopy(base), tiny.tokenizer, "tiny-copy")


def _margin(backend, pairs):
    tok = backend.tokenizer
    enc = [encode_example(tok, backend.render, p.prompt, r, 96) for p in pairs for r in (p.chosen, p.rejected)]
    with torch.no_grad():
        lp, _ = sequence_logps(backend.model, enc, tok.pad_token_id)
    return float((lp[0::2] - lp[1::2]).mean())


@pytest.mark.parametrize(
    "loss_type,eps",
    [("sigmoid", 0.0), ("sigmoid", 0.2), ("ipo", 0.0), ("robust", 0.2)],
    ids=["dpo", "cdpo", "ipo", "rdpo"],
)
def test_preference_loss_falls_and_margin_rises(learner, loss_type, eps, refusal_pairs):
    pairs = refusal_pairs(4)
    before = _margin(learner, pairs)
    cfg = TrainConfig(
        loss_type=loss_type, label_smoothing=eps, epochs=5, batch_size=4, micro_batch=4, lr=2e-3, nll_weight=0.0
    )
    model, stats = train_dpo(learner, pairs, cfg, seed=0)
    assert stats.steps == 5 and learner.model is model and not hasattr(model, "peft_config")  # merged
    assert stats.last_loss < stats.first_loss - 0.02 * max(1.0, stats.first_loss)
    assert _margin(learner, pairs) > before + 0.5
    assert stats.reward_accuracy > 0.5


def test_full_fine_tuning_uses_a_reference_cached_before_the_first_update(learner, refusal_pairs):
    pairs = refusal_pairs(4)
    before = _margin(learner, pairs)
    cfg = TrainConfig(adapter="full", epochs=5, batch_size=4, micro_batch=2, lr=1e-3, nll_weight=0.0)
    model, stats = train_dpo(learner, pairs, cfg, seed=0)
    # policy == reference at step 1, so the first loss is exactly log 2
    assert stats.first_loss == pytest.approx(math.log(2), abs=1e-4)
    assert stats.last_loss < stats.first_loss - 0.05
    assert _margin(learner, pairs) > before + 0.5
    assert all(p.requires_grad for p in model.parameters()) and stats.reference_seconds > 0


@pytest.mark.parametrize("adapter", ["lora", "full"])
def test_sft_lowers_the_answer_nll(learner, adapter):
    examples = [(user_chat(f"What is {i} plus {i}?"), f"{i} plus {i} is {2 * i}.") for i in range(6)]
    tok = learner.tokenizer

    def nll():
        enc = [encode_example(tok, learner.render, c, a, 64) for c, a in examples]
        with torch.no_grad():
            lp, n = sequence_logps(learner.model, enc, tok.pad_token_id)
        return float((-lp / n).mean())

    before = nll()
    lr = 1e-2 if adapter == "lora" else 1e-3
    stats = train_sft(learner, examples, TrainConfig(adapter=adapter, epochs=4, batch_size=3, micro_batch=3, lr=lr))
    assert stats.steps == 8 and not hasattr(learner.model, "peft_config")
    assert nll() < before - 0.3  # a random 2-layer model: ln(49152) = 10.8 nats to start
    assert stats.losses[-1] < stats.losses[0]
