"""The fast decode step (packed, fused weights) gives exactly transformers' logits, is what generate uses
for large calls, never serves weights trained since the last call, and steps aside for models it does not cover."""

import copy

import pytest
import torch

from superalign.backends import Sampling, load_backend

CHATS = [
    [{"role": "user", "content": t}]
    for t in ("Name a red planet.", "hi", "Explain, step by step, how tides work on Earth.", "2+2?")
]


def _prefill(model, prompts, pad, cache):
    width = max(map(len, prompts))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True, logits_to_keep=1
    )
    return out.logits[:, -1], mask, pos[:, -1:] + 1


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fast_step_is_bitwise_the_transformers_forward(dtype):
    """Same prefill, then 8 steps each way on its own cache, a row dropped half-way: the same logits (bf16: bit
    for bit; fp32: MKL's packed GEMM may sum in another order for some shapes, ~1e-7 apart)."""
    from superalign.backends.fast_decode import build_decoder
    from superalign.backends.kv_cache import reserved_cache

    be = load_backend("tiny", dtype=dtype)
    model, pad = be.model, be.tokenizer.pad_token_id
    decoder, why = build_decoder(model, batch_hint=4)
    assert why is None and decoder is not None
    prompts = [be.encode(be.render(c)) for c in CHATS]
    n = model.config.num_hidden_layers
    with torch.inference_mode():
        ref_cache, fast_cache = reserved_cache(n, 64), reserved_cache(n, 64)
        first, mask, pos = _prefill(model, prompts, pad, ref_cache)
        _prefill(model, prompts, pad, fast_cache)
        nxt = first.float().argmax(-1)
        for t in range(8):
            mask = torch.cat([mask, torch.ones(len(nxt), 1, dtype=mask.dtype)], 1)
            ref = model(
                input_ids=nxt[:, None],
                attention_mask=mask,
                position_ids=pos,
                past_key_values=ref_cache,
                use_cache=True,
                logits_to_keep=1,
            ).logits[:, -1]
            ours = decoder.step(nxt[:, None], pos, mask, fast_cache)
            assert ours.dtype == ref.dtype
            if dtype == "bfloat16":
                assert torch.equal(ours, ref), f"step {t}"
            else:
                torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
            nxt, pos = ref.float().argmax(-1), pos + 1
            if t == 3:  # a row finished: both caches drop it
                keep = torch.tensor([0, 2, 3])
                ref_cache.batch_select_indices(keep)
                fast_cache.batch_select_indices(keep)
                nxt, mask, pos = nxt[keep], mask[keep], pos[keep]


def _with_fast(be, on: bool):
    be.fast_decode, be.fast_decode_min_tokens = on, 0
    return be


def test_generate_uses_the_fast_step_and_matches_hf_generate(monkeypatch):
    from superalign.backends import fast_decode

    be = _with_fast(load_backend("tiny", batch_size=3), True)  # 4 prompts: two batches
    calls = []
    real = fast_decode.FastLlamaDecoder.step
    monkeypatch.setattr(fast_decode.FastLlamaDecoder, "step", lambda self, *a: calls.append(1) or real(self, *a))
    ours = be.generate(CHATS, Sampling(max_new_tokens=12))
    assert calls, "the fast step was not used"
    for chat, text in zip(CHATS, ours):
        prompt = be.encode(be.render(chat))
        ref = be.model.generate(
            torch.tensor([prompt]), max_new_tokens=12, do_sample=False, pad_token_id=be.tokenizer.pad_token_id
        )[0, len(prompt) :].tolist()
        stop = next((i for i, t in enumerate(ref) if t in be.stop_ids), len(ref))
        assert text == be.tokenizer.decode(ref[:stop], skip_special_tokens=True).strip()
    sampled = Sampling(12, 0.9, 20, seed=5)
    assert be.generate(CHATS, sampled) == _with_fast(copy.copy(be), False).generate(CHATS, sampled)


def test_weights_changed_between_calls_are_used(fresh_tiny):
    """peft's merge writes through `.data` (no version bump): the decoder is rebuilt per call, so it follows."""
    be = _with_fast(fresh_tiny, True)
    p = Sampling(max_new_tokens=10)
    before = be.generate_ids([be.encode(be.render(c)) for c in CHATS], p)
    with torch.no_grad():
        for layer in be.model.model.layers:
            layer.mlp.down_proj.weight.data.mul_(-3.0)
            layer.self_attn.o_proj.weight.data.mul_(2.0)
    prompts = [be.encode(be.render(c)) for c in CHATS]
    after = be.generate_ids(prompts, p)
    assert after != before
    assert after == _with_fast(copy.copy(be), False).generate_ids(prompts, p)


def test_on_by_default_for_bf16_only():
    """fp32 keeps the transformers forward unless forced (the demo was not faster with it, and used more memory)."""
    fp32, bf16 = load_backend("tiny", dtype="float32"), load_backend("tiny", dtype="bfloat16")
    assert fp32.fast_decode is None and fp32.fast_decoder() is None and "fp32" in fp32.fast_decode_skipped
    assert bf16.fast_decoder() is not None
    fp32.fast_decode = True
    assert fp32.fast_decoder() is not None


def test_models_it_does_not_cover_fall_back_with_a_reason():
    from transformers import LlamaForCausalLM

    from superalign.backends.fast_decode import unsupported_reason
    from superalign.backends.hf import HFBackend

    tiny = load_backend("tiny")
    cfg = copy.deepcopy(tiny.model.config)
    cfg.attention_bias = True
    torch.manual_seed(0)
    biased = HFBackend(LlamaForCausalLM(cfg).eval(), tiny.tokenizer, "biased")
    _with_fast(biased, True)
    out = biased.generate(CHATS[:2], Sampling(max_new_tokens=6))
    assert len(out) == 2 and "bias" in biased.fast_decode_skipped
    tiny.model.train()
    assert "training" in unsupported_reason(tiny.model)
    tiny.model.eval()
    from peft import LoraConfig, get_peft_model

    wrapped = get_peft_model(copy.deepcopy(tiny.model), LoraConfig(r=2, target_modules=["q_proj"]))
    assert "PEFT" in unsupported_reason(wrapped.eval())
