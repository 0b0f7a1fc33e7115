"""The reserved KV cache (no per-step copy) gives the same logits as transformers' DynamicCache: through a
left-padded prefill, decode steps, rows dropped mid-generation and a capacity too small (it must grow)."""

import torch


def _steps(model, cache, ids, mask, drop_after: int, steps: int) -> list[torch.Tensor]:
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    logits, step_ids = [], ids
    with torch.inference_mode():
        for t in range(steps):
            out = model(
                input_ids=step_ids,
                attention_mask=mask,
                position_ids=pos,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            cache = out.past_key_values
            last = out.logits[:, -1].float()
            logits.append(last)
            nxt = last.argmax(-1)
            if t == drop_after:  # the first row finished: keep the others
                keep = torch.arange(1, nxt.shape[0])
                cache.batch_select_indices(keep)
                nxt, mask, pos = nxt[keep], mask[keep], pos[keep]
            step_ids = nxt[:, None]
            mask = torch.cat([mask, torch.ones(mask.shape[0], 1, dtype=mask.dtype)], dim=1)
            pos = pos[:, -1:] + 1
    return logits


def test_reserved_cache_equals_dynamic_cache(tiny):
    from transformers import DynamicCache

    from superalign.backends.kv_cache import ReservedLayer, reserved_cache

    model = tiny.model
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12, 13], [14, 15, 16, 17]]
    pad = tiny.tokenizer.pad_token_id
    width = max(map(len, prompts))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    n_layers = model.config.num_hidden_layers
    ref = _steps(model, DynamicCache(), ids, mask, drop_after=2, steps=7)
    cache = reserved_cache(n_layers, capacity=width + 2)  # too small on purpose: it has to grow mid-way
    ours = _steps(model, cache, ids, mask, drop_after=2, steps=7)
    assert all(isinstance(layer, ReservedLayer) for layer in cache.layers)
    assert cache.layers[0]._k.shape[-2] > width + 2  # it grew
    assert cache.get_seq_length() == width + 6
    for a, b in zip(ref, ours):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_decode_uses_the_reserved_cache_and_matches_greedy_hf(tiny, monkeypatch):
    """decode_batch builds a reserved cache for a plain (no sliding window) model."""
    from superalign.backends import Sampling, kv_cache

    made = []
    real = kv_cache.reserved_cache
    monkeypatch.setattr(kv_cache, "reserved_cache", lambda n, c: made.append(c) or real(n, c))
    prompt = tiny.encode(tiny.render([{"role": "user", "content": "Name a red planet."}]))
    ours = tiny.decode_batch([prompt], Sampling(max_new_tokens=9))
    assert made == [len(prompt) + 9]
    ref = tiny.model.generate(
        torch.tensor([prompt]), max_new_tokens=9, do_sample=False, pad_token_id=tiny.tokenizer.pad_token_id
    )[0, len(prompt) :].tolist()
    stop = next((i for i, t in enumerate(ref) if t in tiny.stop_ids), len(ref))
    assert ours[0] == ref[:stop]
