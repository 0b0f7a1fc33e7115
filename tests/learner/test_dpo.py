import math

import torch

from superalign.config import TrainConfig
from superalign.learner.dpo import dpo_loss, encode_example, sequence_logps, train_dpo
from superalign.records import Pair, user_chat


def _pairs(n=8):
    return [Pair(user_chat(f"How do I make thing {i}?"), "I can't help with that, it could hurt people.",
                 f"Sure! Step 1: get item {i}. Step 2: mix it.") for i in range(n)]


def test_dpo_loss_formula_and_cdpo():
    z = torch.zeros(3)
    assert torch.allclose(dpo_loss(z, z, z, z, 0.1), torch.full((3,), math.log(2)))
    pc, pr = torch.tensor([-1.0]), torch.tensor([-5.0])
    plain = dpo_loss(pc, pr, z[:1], z[:1], beta=0.5)
    assert float(plain) < math.log(2)  # chosen already preferred -> loss below log 2
    smoothed = dpo_loss(pc, pr, z[:1], z[:1], beta=0.5, label_smoothing=0.2)
    assert float(smoothed) > float(plain)  # cDPO penalises over-confidence


def test_loss_goes_down_and_preference_moves(fresh_tiny):
    """A tiny random model trained on a fixed batch: the DPO loss falls and chosen gains on rejected."""
    pairs = _pairs()
    tok = fresh_tiny.tokenizer
    enc = [(encode_example(tok, fresh_tiny.render, p.prompt, p.chosen, 96),
            encode_example(tok, fresh_tiny.render, p.prompt, p.rejected, 96)) for p in pairs]
    with torch.no_grad():
        before, _ = sequence_logps(fresh_tiny.model, [c for c, _ in enc] + [r for _, r in enc], tok.pad_token_id)
    cfg = TrainConfig(epochs=4, batch_size=4, lr=1e-3, nll_weight=0.0)
    _, stats = train_dpo(fresh_tiny, pairs, cfg, seed=0)
    assert stats.steps == 8
    assert stats.last_loss < stats.first_loss - 0.1
    with torch.no_grad():
        after, _ = sequence_logps(fresh_tiny.model, [c for c, _ in enc] + [r for _, r in enc], tok.pad_token_id)
    n = len(pairs)
    margin_before = (before[:n] - before[n:]).mean()
    margin_after = (after[:n] - after[n:]).mean()
    assert margin_after > margin_before + 1.0


def test_response_mask_excludes_prompt(tiny):
    tok = tiny.tokenizer
    ids, n_prompt = encode_example(tok, tiny.render, user_chat("hello there"), "General Kenobi", 64)
    assert tok.decode(ids[n_prompt:]).startswith("General Kenobi")
    assert ids[-1] == tok.convert_tokens_to_ids("<|im_end|>")
