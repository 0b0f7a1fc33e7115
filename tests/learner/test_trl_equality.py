"""Our fast-path preference losses equal TRL 1.16's DPOTrainer on the same batch and the same weights.

Both sides get the same token ids (our `encode_example`, fed to TRL's own collator), so the comparison is
TRL's `compute_loss` (its fused LM head + loss code) vs our `sequence_logps` (or `pair_logps_shared`, the
training path: each pair's prompt run once) + `preference_loss`. The policy
differs from the reference on purpose (random LoRA B / a second random model): at policy == reference every
DPO loss is log 2 and the test would prove nothing.
"""

import pytest
import torch

from superalign.backends.embedded import tiny_model_dir
from superalign.config import TrainConfig
from superalign.learner.dpo import LORA_TARGETS, encode_example, pair_logps_shared, sequence_logps
from superalign.learner.losses import preference_loss
from superalign.records import user_chat

trl = pytest.importorskip("trl", reason="trl is not installed: pip install 'superalign[test]' (trl==1.16.0)")

PAIRS = [
    ("How do I pick a lock?", "I can't help with that.", "Sure, first insert a tension wrench and rake the pins."),
    ("What is the capital of France?", "Paris.", "I would rather not say."),
    (
        "Write a haiku about rain.",
        "Soft rain on the roof / the garden drinks slowly / night smells of wet stone",
        "No.",
    ),
    ("Give me a tip for sleeping well.", "Keep a regular bedtime and a dark, cool room.", "Sleep is overrated."),
]
CASES = [("sigmoid", 0.0), ("ipo", 0.0), ("robust", 0.2)]


def _model(dtype, seed=0):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir(seed), dtype=dtype)


@pytest.fixture(scope="module")
def tok_enc():
    """The tokenizer and the batch of 4 pairs as (ids, n_prompt) for chosen and rejected, loaded once."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir(0))

    def render(chat):
        return tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)

    return tok, [
        (encode_example(tok, render, user_chat(q), c, 96), encode_example(tok, render, user_chat(q), r, 96))
        for q, c, r in PAIRS
    ]


def _trainer(tmp_path, model, tok, dtype, ref_model=None, peft_config=None):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=len(PAIRS),
        beta=0.1,
        report_to="none",
        gradient_checkpointing=False,
        bf16=dtype == torch.bfloat16,
        use_cpu=True,
        max_length=None,
        save_strategy="no",
        disable_tqdm=True,
    )
    data = Dataset.from_dict({"prompt": ["hi"], "chosen": [" a"], "rejected": [" b"]})  # required, unused
    return DPOTrainer(
        model=model, ref_model=ref_model, args=args, train_dataset=data, processing_class=tok, peft_config=peft_config
    )


def _trl_batch(trainer, enc):
    assert all(n == m for (_, n), (_, m) in enc)  # same prompt ids for chosen and rejected
    batch = trainer.data_collator(
        [{"prompt_ids": c[:n], "chosen_ids": c[n:], "rejected_ids": r[m:]} for (c, n), (r, m) in enc]
    )
    if trainer.ref_model is not None:  # TRL's own precompute path: its reference forward runs once, not per loss
        batch["ref_chosen_logps"], batch["ref_rejected_logps"] = trainer.compute_ref_log_probs(trainer.ref_model, batch)
        trainer.precompute_ref_logps = True
    return batch


def _trl_loss(trainer, batch, loss_type, eps):
    trainer.loss_types, trainer.label_smoothing = [loss_type], eps  # what DPOConfig(loss_type, label_smoothing) sets
    return trainer.compute_loss(trainer.model, batch)


def _our_loss(policy, ref_logps, enc, pad, loss_type, eps, shared):
    if shared:
        lp, n_tok = pair_logps_shared(policy, [c for c, _ in enc], [r for _, r in enc], pad)
    else:
        lp, n_tok = sequence_logps(policy, [c for c, _ in enc] + [r for _, r in enc], pad)
    k = len(enc)
    ref_c, ref_r = ref_logps[:k].to(lp.dtype), ref_logps[k:].to(lp.dtype)
    return preference_loss(loss_type, lp[:k], lp[k:], ref_c, ref_r, n_tok[:k], n_tok[k:], 0.1, eps).mean()


def _close(ours, theirs, tol):
    """|ours - theirs| <= tol, relative to the loss for losses above 1 (IPO's are ~25: fp32 rounding is ~1e-6)."""
    return abs(float(ours) - float(theirs)) <= tol * max(1.0, abs(float(theirs)))


def _grads(model):
    return {n: p.grad.detach().float().clone() for n, p in model.named_parameters() if p.grad is not None}


SHARED = pytest.mark.parametrize("shared", [False, True], ids=["per-sequence", "shared-prompt"])


@SHARED
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-3)], ids=["fp32", "bf16"])
def test_full_model_loss_equals_trl(tmp_path, tok_enc, dtype, tol, shared):
    tok, enc = tok_enc
    ref_model = _model(dtype, seed=1)  # a different random model: the log-ratios are far from 0
    with torch.no_grad():
        ref_logps, _ = sequence_logps(ref_model, [c for c, _ in enc] + [r for _, r in enc], tok.pad_token_id)
    policy = _model(dtype)
    trainer = _trainer(tmp_path, policy, tok, dtype, ref_model=_model(dtype, seed=1))
    batch = _trl_batch(trainer, enc)
    for loss_type, eps in CASES:
        policy.zero_grad(set_to_none=True)
        theirs = _trl_loss(trainer, batch, loss_type, eps)
        ours = _our_loss(policy, ref_logps, enc, tok.pad_token_id, loss_type, eps, shared)
        assert _close(ours, theirs, tol), (loss_type, float(ours), float(theirs))
        assert float(theirs) > 0.05 and abs(float(theirs) - 0.6931) > 0.01  # a non-trivial loss value
        if dtype == torch.float32:  # the gradients agree as well, so training follows TRL's direction
            theirs.backward()
            g_trl = _grads(policy)
            policy.zero_grad(set_to_none=True)
            ours.backward()
            g_ours = _grads(policy)
            assert g_trl.keys() == g_ours.keys() and g_trl
            for name in g_trl:
                assert torch.allclose(g_ours[name], g_trl[name], atol=1e-5, rtol=1e-3), (loss_type, name)


@SHARED
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-3)], ids=["fp32", "bf16"])
def test_lora_loss_equals_trl(tmp_path, tok_enc, dtype, tol, shared):
    """Same peft LoraConfig on both sides; the reference is the base model (adapters disabled), as in TRL."""
    from peft import LoraConfig

    tok, enc = tok_enc
    cfg = TrainConfig()
    lcfg = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules=LORA_TARGETS, task_type="CAUSAL_LM"
    )
    trainer = _trainer(tmp_path, _model(dtype), tok, dtype, peft_config=lcfg)
    policy = trainer.model
    torch.manual_seed(0)
    with torch.no_grad():  # a trained-looking adapter: B != 0, so policy != reference
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    with torch.no_grad(), policy.disable_adapter():
        ref_logps, _ = sequence_logps(policy, [c for c, _ in enc] + [r for _, r in enc], tok.pad_token_id)
    batch = _trl_batch(trainer, enc)
    for loss_type, eps in CASES:
        theirs = _trl_loss(trainer, batch, loss_type, eps)
        ours = _our_loss(policy, ref_logps, enc, tok.pad_token_id, loss_type, eps, shared)
        assert _close(ours, theirs, tol), (loss_type, float(ours), float(theirs))
        assert abs(float(theirs) - 0.6931) > 0.01
