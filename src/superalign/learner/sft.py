"""Supervised fine-tuning on (chat, answer) examples: critique-revisions, competence data, co-optimisation.

Same machinery as learner/dpo.py (response-only LM head, length-sorted batches, micro-batch gradient
accumulation, LoRA or full fine-tuning) and the same in-place contract: `backend.model` is replaced by
the trained (LoRA: merged) model.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from superalign.config import TrainConfig
from superalign.learner.dpo import (
    TrainStats,
    encode_example,
    finish_trainable,
    length_batches,
    make_trainable,
    optimiser,
    sequence_logps,
)
from superalign.learner.losses import response_nll
from superalign.records import Chat


def train_sft(
    backend: Any,
    examples: Sequence[tuple[Chat, str]],
    cfg: TrainConfig,
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainStats:
    """Minimise the mean per-token NLL of each answer given its chat (response tokens only).

    Uses cfg.adapter, lr, epochs, batch_size (examples per step), micro_batch, max_len, lora_r/alpha and
    max_steps. stats.losses are the mean per-token NLL (nats) of each step's batch before its update.
    """
    import time

    import torch

    t0 = time.time()
    stats = TrainStats()
    tok, pad = backend.tokenizer, backend.tokenizer.pad_token_id
    enc = [encode_example(tok, backend.render, chat, answer, cfg.max_len) for chat, answer in examples]
    if not enc:
        return stats
    torch.manual_seed(seed)
    rng = random.Random(seed)
    batches = length_batches([len(ids) for ids, _ in enc], cfg.batch_size)
    model = make_trainable(backend.model, cfg)
    params, opt, total = optimiser(model, cfg, len(batches))
    for _ in range(cfg.epochs):
        rng.shuffle(batches)
        for b in batches:
            if stats.steps >= total:
                break
            opt.zero_grad(set_to_none=True)
            batch_nll = 0.0
            for at in range(0, len(b), cfg.micro_batch):
                lp, n_tok = sequence_logps(model, [enc[i] for i in b[at : at + cfg.micro_batch]], pad)
                loss = response_nll(lp, n_tok).sum() / len(b)
                loss.backward()
                batch_nll += float(loss.detach())
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            stats.steps += 1
            stats.losses.append(round(batch_nll, 5))
            if progress:
                progress(stats.steps, total, stats.losses[-1])
    finish_trainable(backend, model)
    stats.seconds = round(time.time() - t0, 2)
    return stats
