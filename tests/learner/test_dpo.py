import math

import pytest
import torch

from superalign.config import TrainConfig
from superalign.learner.dpo import dpo_loss, encode_example, sequence_logps, train_dpo
from superalign.records import Pair, user_chat


def test_dpo_loss_formula_and_cdpo():
    z = torch.zeros(3)
    assert torch.allclose(dpo_loss(z, z, z, z, 0.1), torch.full((3,), math.log(2)))
    pc, pr = torch.tensor([-1.0]), torch.tensor([-5.0])
    plain = dpo_loss(pc, pr, z[:1], z[:1], beta=0.5)
    assert float(plain) < math.log(2)  # chosen already preferred -> loss below log 2
    smoothed = dpo_loss(pc, pr, z[:1], z[:1], beta=0.5, label_smoothing=0.2)
    assert float(smoothed) > float(plain)  # cDPO penalises over-confidence


def test_loss_goes_down_and_preference_moves(fresh_tiny, refusal_pairs):
    """A tiny random model trained on a fixed batch: the DPO loss falls and chosen gains on rejected."""
    pairs = refusal_pairs()
    tok = fresh_tiny.tokenizer
    enc = [
        (
            encode_example(tok, fresh_tiny.render, p.prompt, p.chosen, 96),
            encode_example(tok, fresh_tiny.render, p.prompt, p.rejected, 96),
        )
        for p in pairs
    ]
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


def test_reference_cache_reuses_scores_and_changes_nothing(fresh_tiny, refusal_pairs):
    """Two trainings from the same weights with one shared cache: the second scores no reference
    sequence (flipped pairs are the same sequences swapped) and trains exactly as without the cache."""
    import copy

    from superalign.learner.dpo import reference_logps

    pairs = refusal_pairs(6)
    flipped = [Pair(p.prompt, p.rejected, p.chosen) if i % 2 else p for i, p in enumerate(pairs)]
    cfg = TrainConfig(epochs=1, batch_size=3, lr=1e-3, nll_weight=0.0)
    base = copy.deepcopy(fresh_tiny.model)
    cache: dict = {}
    _, first = train_dpo(fresh_tiny, pairs, cfg, seed=0, ref_cache=cache)
    assert len(cache) == 2 * len(pairs)
    fresh_tiny.model = copy.deepcopy(base)
    tok = fresh_tiny.tokenizer
    enc = [
        (
            encode_example(tok, fresh_tiny.render, p.prompt, p.chosen, cfg.max_len),
            encode_example(tok, fresh_tiny.render, p.prompt, p.rejected, cfg.max_len),
            1.0,
        )
        for p in flipped
    ]
    uncached = reference_logps(fresh_tiny.model, enc, [[0, 1, 2], [3, 4, 5]], tok.pad_token_id)
    cached = reference_logps(fresh_tiny.model, enc, [[0, 1, 2], [3, 4, 5]], tok.pad_token_id, cache)
    assert len(cache) == 2 * len(pairs)  # nothing new was scored
    for i in range(len(pairs)):
        assert cached[i] == pytest.approx(uncached[i], abs=1e-4)
    _, with_cache = train_dpo(fresh_tiny, flipped, cfg, seed=0, ref_cache=cache)
    fresh_tiny.model = copy.deepcopy(base)
    _, without = train_dpo(fresh_tiny, flipped, cfg, seed=0)
    assert with_cache.losses == pytest.approx(without.losses, abs=1e-4)
    assert with_cache.losses != pytest.approx(first.losses, abs=1e-4)  # flips changed the problem


def test_shared_prompt_logps_equal_per_sequence_scores(tiny):
    """Each pair's prompt run once (4D mask, restarted positions) gives the per-sequence log-probs, with
    responses of different lengths in one batch; pairs whose prompts differ fall back to per-sequence."""
    from superalign.learner.dpo import pair_logps_shared

    tok, pad = tiny.tokenizer, tiny.tokenizer.pad_token_id
    rows = [
        ("Tell me a joke.", "No.", "Why did the chicken cross the road? To get to the other side."),
        ("How do I bake bread?", "Mix flour, water, yeast and salt; knead; let it rise; bake at 230 C.", "Buy it."),
        ("Hi", "Hello! How can I help you today?", "Hello there, friend, what brings you here?"),
    ]
    chosen = [encode_example(tok, tiny.render, user_chat(q), c, 96) for q, c, _ in rows]
    rejected = [encode_example(tok, tiny.render, user_chat(q), r, 96) for q, _, r in rows]
    with torch.no_grad():
        plain, n_plain = sequence_logps(tiny.model, chosen + rejected, pad)
        shared, n_shared = pair_logps_shared(tiny.model, chosen, rejected, pad)
        assert n_shared.tolist() == n_plain.tolist()
        assert torch.allclose(shared, plain, atol=1e-4, rtol=1e-5)
        other = encode_example(tok, tiny.render, user_chat("A different prompt"), "Hello!", 96)
        mixed, _ = pair_logps_shared(tiny.model, chosen[:1], [other], pad)  # prompts differ: fallback
        alone, _ = sequence_logps(tiny.model, [chosen[0], other], pad)
        assert torch.allclose(mixed, alone, atol=1e-5)


def test_share_prompt_off_trains_the_same(fresh_tiny, refusal_pairs):
    """TrainConfig.share_prompt=False (one sequence each, for kernels without 4D masks) gives the losses
    of the default shared-prompt path, step by step."""
    import copy

    base = copy.deepcopy(fresh_tiny.model)
    cfg = TrainConfig(epochs=2, batch_size=4, lr=1e-3, nll_weight=0.5)
    _, shared = train_dpo(fresh_tiny, refusal_pairs(), cfg, seed=0)
    fresh_tiny.model = base
    _, plain = train_dpo(fresh_tiny, refusal_pairs(), cfg.model_copy(update={"share_prompt": False}), seed=0)
    assert len(shared.losses) == len(plain.losses) == 4
    assert shared.losses == pytest.approx(plain.losses, abs=1e-4)
    assert shared.last_loss < shared.first_loss


def test_shared_prompt_logps_with_eager_attention():
    """Eager attention adds the 4D mask to the scores: the shared path passes an additive float mask, so
    it matches per-sequence scoring there too (a bool mask would be added as 0 / 1 and silently differ)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from superalign.backends.embedded import tiny_model_dir
    from superalign.learner.dpo import pair_logps_shared

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir(0), attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir(0))

    def render(chat):
        return tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)

    chosen = [encode_example(tok, render, user_chat(q), c, 96) for q, c in (("Hi", "Hello!"), ("2+2?", "It is 4."))]
    rejected = [
        encode_example(tok, render, user_chat(q), r, 96) for q, r in (("Hi", "Go away, I am busy now."), ("2+2?", "5"))
    ]
    with torch.no_grad():
        plain, _ = sequence_logps(model, chosen + rejected, tok.pad_token_id)
        shared, _ = pair_logps_shared(model, chosen, rejected, tok.pad_token_id)
    assert torch.allclose(shared, plain, atol=1e-4, rtol=1e-5)
