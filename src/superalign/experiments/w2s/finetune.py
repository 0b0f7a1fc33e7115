"""A fine-tuned weak-to-strong student: the top transformer blocks of SmolLM2, its final norm and a
linear head train on (weak) labels; the blocks below stay frozen and run once per text.

    bottom = encode_bottom(["Is it positive?"], ["A fine film."], blocks=8)   # frozen blocks, once
    student = train_student(bottom, idx=[0], p1=np.array([0.9]), cfg=FinetuneConfig())
    p = predict_student(student, bottom, idx=[0])                              # P(label = 1)

openai/weak-to-strong fine-tunes the whole student (2 epochs, batch 32). On 2 CPU cores a full
SmolLM2-135M step on 32 x 80 tokens takes ~5 s in bf16, ~1 s for the top 8 of its 30 blocks: training
the top blocks keeps a w2s run affordable (quick preset 13 min, full 94 min on 2 cores) while the
student's representation still moves, unlike a probe on frozen features. `blocks` = the model's layer
count fine-tunes all of it (the lower part is then just the embeddings).

The top part is transformers' own model class with its `layers` cut to the top blocks, fed the
frozen part's un-normed hidden states as `inputs_embeds`, so its forward is the library's (rotary
positions start at 0, causal attention; right padding never reaches a real token). The head reads the
final-norm states: mean over the response tokens and the last token, concatenated (zero-initialised).
The loss is loss.py's soft cross-entropy or auxiliary confidence loss, as for the probe.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class FinetuneConfig:
    """How one fine-tuned student trains."""

    blocks: int = 8  # top transformer blocks trained; the ones below are frozen
    epochs: int = 2  # published: 2
    batch_size: int = 32  # published: 32
    lr: float = 5e-5  # blocks and final norm (published for GPT-2 sizes: 5e-5)
    head_lr: float = 1e-3  # the zero-initialised head: a few dozen steps would barely move it at `lr`
    weight_decay: float = 0.0
    aux_coef: float = 0.0  # 0 = soft cross-entropy; 0.5 = the published aux confidence loss
    warmup_frac: float = 0.1
    bf16: bool = True  # autocast the forward to bf16 (fp32 master weights)


@dataclass
class FrozenBottom:
    """Per-text outputs of the frozen lower blocks, and the pristine top part that students copy."""

    states: list[Any]  # (T_i, hidden) bf16 (or fp32) tensors: un-normed output of the last frozen block
    starts: list[int]  # index of the first response token per text
    top: Any  # the model class with only the top blocks (and the final norm)
    blocks: int


@dataclass
class FinetunedStudent:
    top: Any
    head: Any
    bf16: bool
    losses: list[float] = field(default_factory=list)  # mean training loss per epoch


def load_split(model_dir: str, blocks: int) -> tuple[Any, Any, Any]:
    """(bottom model, top model, tokenizer) of an HF causal LM dir ('' = embedded SmolLM2-135M)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from superalign.critic.learned import PairFeatures

    d = PairFeatures(model_dir=model_dir).resolved_dir()
    tok = AutoTokenizer.from_pretrained(d)
    full = AutoModel.from_pretrained(d, dtype=torch.float32).eval()
    n = len(full.layers)
    if not 1 <= blocks <= n:
        from superalign.errors import UserError

        raise UserError(f"w2s fine-tuned student: blocks={blocks} but the model has {n} layers; give 1..{n}")
    layers, embed = list(full.layers), full.embed_tokens
    full.layers, full.embed_tokens = torch.nn.ModuleList(layers[n - blocks :]), torch.nn.Identity()
    top = copy.deepcopy(full)  # the top blocks, the final norm, rotary embeddings and a config copy
    top.config.num_hidden_layers = blocks  # fed inputs_embeds: no token table
    bottom = full
    bottom.layers, bottom.embed_tokens = torch.nn.ModuleList(layers[: n - blocks]), embed
    bottom.config.num_hidden_layers = n - blocks
    bottom.norm = torch.nn.Identity()  # the top part applies the final norm
    return bottom, top, tok


def encode_bottom(
    prompts: Sequence[str],
    responses: Sequence[str],
    blocks: int,
    model_dir: str = "",
    prompt_tokens: int = 24,
    response_tokens: int = 64,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
    bf16: bool = True,
) -> FrozenBottom:
    """Run every (prompt, response) through the frozen blocks once (bf16 autocast, and states
    stored in bf16 to halve their memory, unless `bf16` is False), batched by length.
    Tokenisation is critic/learned.py's `PairFeatures.token_ids` (chat-formatted, truncated)."""
    import torch

    from superalign.critic.learned import PairFeatures

    bottom, top, tok = load_split(model_dir, blocks)
    feats = PairFeatures(model_dir=model_dir, prompt_tokens=prompt_tokens, response_tokens=response_tokens)
    enc = [feats.token_ids(tok, p, r) for p, r in zip(prompts, responses)]
    order = sorted(range(len(enc)), key=lambda i: len(enc[i][0]))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    states: list[Any] = [None] * len(enc)
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        width = max(len(enc[i][0]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, : len(enc[i][0])] = torch.tensor(enc[i][0])
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            h = bottom(input_ids=ids, use_cache=False).last_hidden_state
        for row, i in enumerate(idx):
            states[i] = h[row, : len(enc[i][0])].to(torch.bfloat16 if bf16 else torch.float32).clone()
        if progress:
            progress(min(b + batch_size, len(order)), len(order))
    return FrozenBottom(states, [start for _, start in enc], top, blocks)


def _batch(bottom: FrozenBottom, idx: Sequence[int]) -> tuple[Any, Any, Any]:
    """Right-padded (B, T, H) inputs, (B,) lengths and (B, T) response weights (rows sum to 1)."""
    import torch

    lens = torch.tensor([len(bottom.states[i]) for i in idx])
    width = int(lens.max())
    hidden = bottom.states[idx[0]].shape[-1]
    x = torch.zeros((len(idx), width, hidden), dtype=torch.float32)
    w = torch.zeros((len(idx), width), dtype=torch.float32)
    for row, i in enumerate(idx):
        n = len(bottom.states[i])
        x[row, :n] = bottom.states[i].float()
        w[row, bottom.starts[i] : n] = 1.0
    w = w / w.sum(1, keepdim=True).clamp(min=1.0)
    return x, lens, w


def _logits(top: Any, head: Any, x: Any, lens: Any, w: Any, bf16: bool) -> Any:
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        h = top(inputs_embeds=x, use_cache=False).last_hidden_state
        pooled = torch.cat([(h * w.unsqueeze(-1).to(h.dtype)).sum(1), h[torch.arange(len(lens)), lens - 1]], dim=1)
        return head(pooled).float()


def train_student(
    bottom: FrozenBottom, idx: Sequence[int], p1: np.ndarray, cfg: FinetuneConfig, seed: int = 0
) -> FinetunedStudent:
    """Fine-tune a fresh copy of the top blocks + a zero-initialised head on targets `p1` = P(label 1)
    (hard or soft) of texts `idx`: AdamW, `cfg.epochs` passes of shuffled minibatches."""
    import torch

    from superalign.experiments.w2s.loss import fit_minibatches

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    top = copy.deepcopy(bottom.top).train()
    hidden = bottom.states[idx[0]].shape[-1]
    head = torch.nn.Linear(2 * hidden, 2)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    opt = torch.optim.AdamW(
        [
            {"params": [p for p in top.parameters() if p.requires_grad], "lr": cfg.lr},
            {"params": list(head.parameters()), "lr": cfg.head_lr},
        ],
        weight_decay=cfg.weight_decay,
    )
    losses = fit_minibatches(
        opt,
        lambda rows: _logits(top, head, *_batch(bottom, [idx[r] for r in rows.tolist()]), cfg.bf16),
        p1,
        cfg.epochs,
        cfg.batch_size,
        cfg.aux_coef,
        cfg.warmup_frac,
        g,
    )
    return FinetunedStudent(top.eval(), head.eval(), cfg.bf16, losses)


def predict_student(
    student: FinetunedStudent, bottom: FrozenBottom, idx: Sequence[int], batch_size: int = 64
) -> np.ndarray:
    """P(label 1) for texts `idx`, batched by length."""
    import numpy as np
    import torch

    order = sorted(range(len(idx)), key=lambda r: len(bottom.states[idx[r]]))
    out = np.zeros(len(idx), dtype=np.float64)
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            rows = order[b : b + batch_size]
            logits = _logits(student.top, student.head, *_batch(bottom, [idx[r] for r in rows]), student.bf16)
            out[rows] = torch.softmax(logits, dim=-1)[:, 1].double().numpy()
    return out
