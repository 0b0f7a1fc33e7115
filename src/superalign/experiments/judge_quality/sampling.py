"""k sampled answers per prompt from one prefill: the passage prompt (~300 tokens) runs once, not k times.

`HFBackend.generate` prefills every row, so 4 samples of a passage question cost 4 prefills; on 2 CPU cores
the prefill is most of the time (answers are ~10 tokens). Here each prompt's KV cache is filled once and
repeated k times, then the k rows decode with their own seeded generators and the backend's own top-k pick.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from superalign.backends.base import Sampling, row_seed
from superalign.records import Chat


def sample_k(
    backend: Any,
    chats: Sequence[Chat],
    k: int,
    params: Sampling,
    progress: Callable[[int, int], None] | None = None,
) -> list[list[str]]:
    """k completions per chat (temperature > 0), decoded text stripped; row j of prompt i samples with
    `row_seed(params.seed, i * k + j)`, so a prompt's answers do not depend on its batch."""
    import torch

    tok = backend.tokenizer
    pad, dev = tok.pad_token_id, backend.device
    prompts = [backend.encode(backend.render(c))[-backend.max_context :] for c in chats]
    per_batch = max(1, backend.batch_size // k)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    out: list[list[str]] = [[] for _ in prompts]
    stop = torch.tensor(backend.stop_ids, device=dev)
    for at in range(0, len(order), per_batch):
        if progress:
            progress(at, len(order))
        idx = order[at : at + per_batch]
        width = max(len(prompts[i]) for i in idx)
        ids = torch.tensor([[pad] * (width - len(prompts[i])) + prompts[i] for i in idx], device=dev)
        mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in idx], device=dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        gens = [torch.Generator().manual_seed(row_seed(params.seed, i * k + j)) for i in idx for j in range(k)]
        new: list[list[int]] = [[] for _ in gens]
        alive = torch.ones(len(gens), dtype=torch.bool, device=dev)
        with torch.inference_mode():
            first = backend.model(
                input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1
            )
            past = first.past_key_values
            past.batch_repeat_interleave(k)
            logits = first.logits[:, -1, :].repeat_interleave(k, dim=0)
            mask, pos = mask.repeat_interleave(k, dim=0), pos[:, -1:].repeat_interleave(k, dim=0)
            for _ in range(params.max_new_tokens):
                nxt = backend._pick(logits.float(), params, gens)
                alive &= ~torch.isin(nxt, stop)
                for r, (t, a) in enumerate(zip(nxt.tolist(), alive.tolist())):
                    if a:
                        new[r].append(t)
                if not bool(alive.any()):
                    break
                mask = torch.cat([mask, torch.ones(len(gens), 1, dtype=mask.dtype, device=dev)], dim=1)
                pos = pos + 1
                step = backend.model(
                    input_ids=nxt[:, None], attention_mask=mask, position_ids=pos, past_key_values=past, use_cache=True
                )
                past, logits = step.past_key_values, step.logits[:, -1, :]
        for n, i in enumerate(idx):
            out[i] = [tok.decode(new[n * k + j], skip_special_tokens=True).strip() for j in range(k)]
    if progress:
        progress(len(order), len(order))
    return out
