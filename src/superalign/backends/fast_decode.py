"""A decode step for Llama-family models (SmolLM2, Llama) that gives the same logits as transformers' forward
in 27 % less wall time per bf16 step on the 2-core AMX Xeon we measured.

Why it exists: a bf16 decode step of SmolLM2-135M at batch 32 took 56.8 ms through the transformers
forward on the 2-core AMX Xeon, of which the linear layers were ~18 ms: the step is bound by memory traffic
(268 MB of weights + the KV cache per step, ~17 GB/s measured) and by ~45 small kernels per layer. This step
(41.6 ms there, 76 vs 93 ms in fp32) changes three things and nothing else:

- the weights are **packed once** for oneDNN (bf16: `mkldnn._reorder_linear_weight`, the same op
  `torch.compile` uses when it freezes a CPU model) or MKL (fp32), so a linear does not re-layout its weight
  at every call (a 576x1536 bf16 linear at batch 32: 81 -> 50 us);
- q/k/v and gate/up are **one linear each** (weights concatenated);
- rotary embedding is applied to q and k in one pass, with `roll` and a sign-folded sine in place of
  `rotate_half`'s two slices, negation and concatenation (the same products, so the same numbers).

RMSNorm, SiLU, attention (SDPA with the query heads grouped per key/value head, as transformers does for one
query token) and the residual adds are the same operations in the same dtype. In bf16 the logits came out
**bitwise equal** to the transformers forward wherever we compared them (tests/backends/test_fast_decode.py on
the tiny model; 64 SmolLM2 greedy generations in the benchmark). In fp32, MKL's packed GEMM sums in another
order for some shapes (the tiny model's down projection at 4 rows: logits ~1e-7 apart); greedy outputs were
still identical. The prefill still runs through transformers. MKL uses a packed fp32 weight only when the
rows equal the batch size it was packed for, and the plain weight otherwise (rows that finished leave the
batch), so fp32 gains less than bf16.

Packing copies the linear weights (a second ~270 MB in bf16 for SmolLM2), so a decoder is built for one
`generate` call and dropped after it: weights trained between two calls (optimizer steps, LoRA merges that
write through `.data`) can never be served stale. `build_decoder` returns None, with the reason, for any model
it does not cover exactly; the caller then decodes through transformers. This module imports torch: import it
inside the function that decodes (backends/hf.py does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

Linear = Callable[[torch.Tensor], torch.Tensor]


def _packed(weight: torch.Tensor, batch_hint: int) -> Linear:
    """x @ weight.T with the weight laid out once for the CPU GEMM library (plain F.linear where none fits)."""
    w = weight.detach().contiguous()
    try:
        if w.dtype == torch.bfloat16 and torch.ops.mkldnn._is_mkldnn_bf16_supported():
            wp = torch.ops.mkldnn._reorder_linear_weight(w, batch_hint)
            return lambda x: torch.ops.mkldnn._linear_pointwise(x, wp, None, "none", [], "")
        if w.dtype == torch.float32 and torch.backends.mkl.is_available():
            wp = torch.ops.mkl._mkl_reorder_linear_weight(w, batch_hint)
            return lambda x: torch.ops.mkl._mkl_linear(x, wp, w, None, batch_hint)
    except RuntimeError:  # a torch build without these kernels: unpacked, same numbers
        pass
    return lambda x: F.linear(x, w)


def _rms(x: torch.Tensor, norm: Any) -> torch.Tensor:
    """transformers' LlamaRMSNorm, operation for operation (fp32 statistics, weight applied in x's dtype)."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * h.to(x.dtype)


def unsupported_reason(model: Any) -> str | None:
    """Why `model` cannot use the fast step (None when it can)."""
    from torch import nn

    cfg = model.config
    if getattr(cfg, "model_type", None) != "llama":
        return f"model_type {getattr(cfg, 'model_type', None)!r} (the fast step covers llama: SmolLM2, Llama)"
    if hasattr(model, "peft_config"):
        return "a PEFT-wrapped model (merge the adapter first)"
    if model.training:
        return "the model is in training mode"
    p = next(model.parameters())
    if p.device.type != "cpu" or p.dtype not in (torch.float32, torch.bfloat16):
        return f"weights on {p.device.type} in {p.dtype} (the fast step is for CPU fp32 / bf16)"
    if getattr(cfg, "hidden_act", None) != "silu" or (getattr(cfg, "pretraining_tp", 1) or 1) != 1:
        return "a non-SiLU MLP or pretraining_tp > 1"
    if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
        return "projection biases"
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None or type(getattr(model, "lm_head", None)) is not nn.Linear or model.lm_head.bias is not None:
        return "an unexpected module layout"
    for layer in layers:
        a, m = layer.self_attn, layer.mlp
        projs = (a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj)
        if any(type(x) is not nn.Linear or x.bias is not None for x in projs):
            return "projections that are not plain bias-free nn.Linear (an adapter or quantised layer)"
        if not all(hasattr(n, "variance_epsilon") for n in (layer.input_layernorm, layer.post_attention_layernorm)):
            return "a norm other than LlamaRMSNorm"
    return None


class FastLlamaDecoder:
    """One decode step (one new token per row) over a reserved KV cache; see the module docstring."""

    def __init__(self, model: Any, batch_hint: int = 32):
        cfg = model.config
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.inter = cfg.intermediate_size
        base = model.model
        self.embed, self.rotary, self.norm = base.embed_tokens, base.rotary_emb, base.norm
        self.head = _packed(model.lm_head.weight, batch_hint)
        self.layers = []
        with torch.no_grad():
            for layer in base.layers:
                a, m = layer.self_attn, layer.mlp
                qkv = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])
                gate_up = torch.cat([m.gate_proj.weight, m.up_proj.weight])
                self.layers.append(
                    (
                        layer.input_layernorm,
                        _packed(qkv, batch_hint),
                        _packed(a.o_proj.weight, batch_hint),
                        layer.post_attention_layernorm,
                        _packed(gate_up, batch_hint),
                        _packed(m.down_proj.weight, batch_hint),
                        a.scaling,
                    )
                )

    def step(self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, cache: Any) -> torch.Tensor:
        """Logits [rows, vocab] for `ids` [rows, 1] at `positions` [rows, 1]; `mask` [rows, cached + 1] is 1
        for real tokens (0 for left padding) and includes this step; `cache` holds one layer per block
        (backends/kv_cache.py) and receives this step's keys and values."""
        rows, H, KV, d = ids.shape[0], self.heads, self.kv_heads, self.head_dim
        h = self.embed(ids)
        cos, sin = self.rotary(h, positions)  # [rows, 1, d], h's dtype
        half = d // 2
        # rotate_half(x) * sin == roll(x, d/2) * [-sin_1, sin_2]: the same products, fewer kernels
        signed_sin = torch.cat([-sin[..., :half], sin[..., half:]], -1)
        bias = torch.zeros(mask.shape, dtype=h.dtype).masked_fill_(mask == 0, float("-inf"))[:, None, None, :]
        for i, (n1, qkv, out, n2, gate_up, down, scale) in enumerate(self.layers):
            x = qkv(_rms(h, n1)).view(rows, H + 2 * KV, d)
            qk = x[:, : H + KV]
            qk = qk * cos + qk.roll(half, -1) * signed_sin
            q = qk[:, :H].reshape(rows, KV, H // KV, d)  # query heads grouped by their key/value head
            k, v = cache.layers[i].update(qk[:, H:, None, :], x[:, H + KV :, None, :])
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
            h = h + out(att.reshape(rows, 1, H * d))
            y = gate_up(_rms(h, n2))
            h = h + down(F.silu(y[..., : self.inter]) * y[..., self.inter :])
        return self.head(_rms(h, self.norm))[:, 0]


def release_freed_memory() -> None:
    """Hand memory freed by a dropped decoder back to the OS (glibc `malloc_trim`; a no-op elsewhere).

    The packed weights are ~1-7 MB blocks that glibc keeps in its heap once freed: with the step forced on
    in fp32, `make demo`'s peak RSS was 4.5 GB without this and 3.7 GB with it (2.8 GB without the step);
    after each call RSS returns to the model's own size (SmolLM2 fp32: 933 MB before and after)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    except OSError:
        pass


def build_decoder(model: Any, batch_hint: int = 32) -> tuple[FastLlamaDecoder | None, str | None]:
    """(decoder, None) for a covered model, else (None, why not)."""
    why = unsupported_reason(model)
    if why:
        return None, why
    return FastLlamaDecoder(model, batch_hint), None
