"""Fast preference training (DPO / cDPO / IPO / rDPO) with LoRA or full fine-tuning, RPO + competence replay.

loss = preference loss (learner/losses.py, cfg.loss_type) + nll_weight * NLL(chosen) (RPO, keeps the policy
       close) + replay_weight * NLL on competence replay examples (keeps competence; cfg.replay_loss: kl puts
       the per-token KL(reference || policy) on them instead, `replay_kl`).
Why it is fast (benchmarks/dpo_bench.py, docs/training.md): reference log-probs are computed once per round
and cached (TRL recomputes them every step), chosen and rejected go through one forward, batches are
length-sorted, and the LM head + log-softmax run on response tokens only. The preference loss equals TRL's
DPOTrainer on the same batch (tests/learner/test_trl_equality.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from superalign.config import TrainConfig
from superalign.learner.losses import dpo_loss, preference_loss, response_nll  # noqa: F401 (dpo_loss: re-exported)
from superalign.records import Chat, Pair, ReplayExample

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
_OOM_HINT = "lower train.micro_batch or train.max_len, set train.gradient_checkpointing: true, or use dtype: bfloat16"


@dataclass
class TrainStats:
    steps: int = 0
    losses: list[float] = field(default_factory=list)
    reward_accuracy: float = 0.0  # share of pairs whose implicit reward margin > 0 in the last epoch
    seconds: float = 0.0
    reference_seconds: float = 0.0  # the one reference pass of the round (included in `seconds`)

    @property
    def first_loss(self) -> float | None:
        return self.losses[0] if self.losses else None  # None, not NaN: rounds.jsonl stays valid JSON

    @property
    def last_loss(self) -> float | None:
        return self.losses[-1] if self.losses else None


def encode_example(
    tokenizer: Any, render: Callable[[Chat], str], prompt: Chat | str, response: str, max_len: int
) -> tuple[list[int], int]:
    """(ids, n_prompt): prompt rendered with the chat template, response + end-of-turn token. A `str` prompt is
    raw text (a replay example of train.replay_format mc): no template and no end token, as the text is scored."""
    if isinstance(prompt, str):
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r = tokenizer(response, add_special_tokens=False)["input_ids"]
    else:
        p = tokenizer(render(prompt), add_special_tokens=False)["input_ids"]
        end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        if not isinstance(end, int) or end == tokenizer.unk_token_id:
            end = tokenizer.eos_token_id
        r = tokenizer(response, add_special_tokens=False)["input_ids"] + [end]
    p = p[-max(max_len - len(r), max_len // 2) :]  # keep the prompt's end; the response wins the budget
    r = r[: max_len - len(p)]
    return p + r, len(p)


def sequence_logps(model: Any, examples: Sequence[tuple[list[int], int]], pad_id: int) -> tuple[Any, Any]:
    """(sum of response-token log-probs, response token counts) per example, one forward pass.

    The LM head and log-softmax run on response positions only: prompt positions never need the
    49k-way softmax (about a fifth of the compute and most of the activation memory).
    """
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    dev = next(base.parameters()).device
    width = max(len(ids) for ids, _ in examples)
    ids = torch.tensor([e + [pad_id] * (width - len(e)) for e, _ in examples], device=dev)
    attn = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e, _ in examples], device=dev)
    mask = torch.zeros_like(ids, dtype=torch.bool)
    for i, (e, n_prompt) in enumerate(examples):
        mask[i, n_prompt : len(e)] = True
    full = bool(attn.all())  # no padding: no mask tensor, so SDPA takes its plain causal path
    hidden = base.model(input_ids=ids, attention_mask=None if full else attn, use_cache=False).last_hidden_state[:, :-1]
    m = mask[:, 1:]
    logits = base.lm_head(hidden[m]).float()
    lp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:][m][:, None]).squeeze(-1)
    rows = torch.arange(len(examples), device=dev)[:, None].expand_as(m)[m]
    total = torch.zeros(len(examples), dtype=lp.dtype, device=dev).index_add(0, rows, lp)
    return total, m.sum(-1)


def replay_kl(model: Any, examples: Sequence[tuple[list[int], int]], pad_id: int) -> Any:
    """Per example, the mean over its positions of KL(reference || policy), summed over the vocabulary.

    Every position that predicts a next token of the example counts (prompt and answer; padding does not):
    for an example of L tokens, the L - 1 next-token distributions. The reference is `model` with its LoRA
    adapter switched off (peft's `disable_adapter`, no gradient): the round's start weights, with no second
    copy of them. Both log-softmaxes run in float32 over the full vocabulary.
    """
    import torch

    if not hasattr(model, "disable_adapter"):
        raise ValueError("replay_loss: kl needs a LoRA (peft) model: its reference is the model with the adapter off")
    base = model.get_base_model()
    dev = next(base.parameters()).device
    width = max(len(ids) for ids, _ in examples)
    ids = torch.tensor([e + [pad_id] * (width - len(e)) for e, _ in examples], device=dev)
    attn = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e, _ in examples], device=dev)
    m = attn[:, 1:].bool()  # position t predicts token t + 1 of the same example
    mask = None if bool(attn.all()) else attn  # no padding: SDPA's plain causal path, as in sequence_logps

    def log_probs() -> Any:
        hidden = base.model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state[:, :-1]
        return torch.log_softmax(base.lm_head(hidden[m]).float(), dim=-1)

    with torch.no_grad(), model.disable_adapter():
        ref = log_probs()
    per_token = (ref.exp() * (ref - log_probs())).sum(-1)
    rows = torch.arange(len(examples), device=dev)[:, None].expand_as(m)[m]
    total = torch.zeros(len(examples), dtype=per_token.dtype, device=dev).index_add(0, rows, per_token)
    return total / m.sum(-1)


def pair_logps_shared(
    model: Any, chosen: Sequence[tuple[list[int], int]], rejected: Sequence[tuple[list[int], int]], pad_id: int
) -> tuple[Any, Any]:
    """`sequence_logps(model, chosen + rejected)`, with each pair's common prompt run through the model once.

    A row holds prompt + chosen + rejected; the rejected tokens take the prompt's positions onward
    (position ids restart) and a 4D mask hides the chosen tokens from them, so every response token sees
    exactly what it sees in its own sequence. With SmolLM2's chat template the prompt is about half of a
    pair's tokens, so a forward / backward does ~30 % less work. Falls back to `sequence_logps` when a
    pair's prompts differ (truncation of a long response can cut them differently) and for attention
    kernels that take no 4D mask (anything but sdpa and eager, e.g. flash-attention 2).
    """
    import torch

    k = len(chosen)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    attn = getattr(base.config, "_attn_implementation", "sdpa")
    if attn not in ("sdpa", "eager") or any(
        c[1] != r[1] or c[0][: c[1]] != r[0][: r[1]] for c, r in zip(chosen, rejected)
    ):
        return sequence_logps(model, list(chosen) + list(rejected), pad_id)  # no 4D masks / prompts differ
    rows, pos, src, tgt, owner = [], [], [], [], []
    for i, ((c_ids, n), (r_ids, _)) in enumerate(zip(chosen, rejected)):
        lc, lr = len(c_ids) - n, len(r_ids) - n
        rows.append(c_ids + r_ids[n:])
        pos.append(list(range(n + lc)) + list(range(n, n + lr)))
        # the token at row index t is predicted by the hidden state of the token before it in its own sequence
        src += [(i, n - 1 + j) for j in range(lc)] + [(i, n - 1 if j == 0 else n + lc + j - 1) for j in range(lr)]
        tgt += c_ids[n:] + r_ids[n:]
        owner += [i] * lc + [k + i] * lr
    dev = next(base.parameters()).device
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], device=dev)
    position_ids = torch.tensor([p + list(range(len(p), len(p) + width - len(p))) for p in pos], device=dev)
    q = torch.arange(width, device=dev)
    causal = q[None, :] <= q[:, None]  # [query, key]
    mask = causal[None].repeat(len(rows), 1, 1)
    for i, ((c_ids, n), _) in enumerate(zip(chosen, rejected)):
        end_c = len(c_ids)
        mask[i, end_c:, n:end_c] = False  # rejected (and padding) queries do not see the chosen response
    # an additive float mask: eager attention adds it to the scores, SDPA accepts it as well
    dtype = next(base.parameters()).dtype
    bias = torch.zeros(mask.shape, dtype=dtype, device=dev).masked_fill_(~mask, torch.finfo(dtype).min)
    hidden = base.model(
        input_ids=ids, attention_mask=bias[:, None], position_ids=position_ids, use_cache=False
    ).last_hidden_state
    at = torch.tensor(src, device=dev)
    logits = base.lm_head(hidden[at[:, 0], at[:, 1]]).float()
    lp = torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(tgt, device=dev)[:, None]).squeeze(-1)
    who = torch.tensor(owner, device=dev)
    total = torch.zeros(2 * k, dtype=lp.dtype, device=dev).index_add(0, who, lp)
    return total, torch.bincount(who, minlength=2 * k)


def _pair_logps(model: Any, chosen: list, rejected: list, pad_id: int, share_prompt: bool) -> tuple[Any, Any]:
    if share_prompt:
        return pair_logps_shared(model, chosen, rejected, pad_id)
    return sequence_logps(model, chosen + rejected, pad_id)


def add_lora(
    model: Any, cfg: TrainConfig, targets: Sequence[str] | None = None, layers: Sequence[int] | None = None
) -> Any:
    """`model` wrapped in a fresh LoRA adapter (rank cfg.lora_r) on `targets` (default LORA_TARGETS) of every block,
    or of the blocks in `layers` only (peft's layers_to_transform)."""
    from peft import LoraConfig, get_peft_model

    lcfg = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=0.0,
        target_modules=list(targets or LORA_TARGETS),
        task_type="CAUSAL_LM",
        layers_to_transform=None if layers is None else list(layers),
        layers_pattern=None if layers is None else "layers",
    )
    import warnings

    with warnings.catch_warnings():  # peft reads transformers' deprecated alias; not the user's concern
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, lcfg)


def make_trainable(model: Any, cfg: TrainConfig) -> Any:
    """The model to optimise: a fresh LoRA wrapper (B = 0, so it still equals the input) or the model itself."""
    if cfg.adapter == "lora":
        return add_lora(model, cfg)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def enable_checkpointing(model: Any, cfg: TrainConfig) -> None:
    """Gradient checkpointing (cfg.gradient_checkpointing): activations are recomputed in the backward pass,
    non-reentrant (works with frozen base weights under LoRA without input-grad hooks)."""
    if cfg.gradient_checkpointing:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        kwargs = {"use_reentrant": False}
        if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.2x; the old name warns there
            base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def finish_trainable(backend: Any, model: Any) -> Any:
    """Merge LoRA weights (if any) and hand the trained model back to `backend` in eval mode."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if any(getattr(m, "gradient_checkpointing", False) is True for m in base.modules()):
        disable = getattr(base, "activation_checkpointing_disable", None) or base.gradient_checkpointing_disable
        disable()
    backend.last_adapter = lora_snapshot(model)  # the round's LoRA delta, for servers that load adapters (vLLM)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.eval()
    backend.model = model
    return model


def lora_snapshot(model: Any) -> tuple[dict[str, Any], Any] | None:
    """(the LoRA weights of the "default" adapter as CPU tensors in peft's saved naming, its LoraConfig), or None
    for a model without adapters (full fine-tuning)."""
    if not hasattr(model, "peft_config") or "default" not in getattr(model, "peft_config", {}):
        return None
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(model, adapter_name="default")
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}, model.peft_config["default"]


def optimiser(model: Any, cfg: TrainConfig, n_batches: int) -> tuple[list, Any, int]:
    """Put `model` in train mode; (its trainable parameters, AdamW over them, the number of optimiser
    steps: `cfg.epochs` passes over `n_batches`, capped by `cfg.max_steps`)."""
    import torch

    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    total = cfg.epochs * n_batches
    return params, torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0), min(total, cfg.max_steps or total)


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (little padding per forward)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def reference_logps(
    model: Any,
    enc: list,
    batches: list[list[int]],
    pad: int,
    cache: dict[tuple[tuple[int, ...], int], float] | None = None,
    share_prompt: bool = True,
    width: int | None = None,
) -> dict[int, tuple[float, float]]:
    """Chosen / rejected log-probs under the model as it is now (the round's reference), computed once.

    `cache` maps an encoded sequence (ids, prompt length) to its reference log-prob; sequences already in
    it are not scored again and new ones are added. Share one cache only between trainings that start
    from the same weights (noisy-labels shares one across its runs): the cached value is this model's,
    whatever model a later call passes.
    """
    import torch

    memo = {} if cache is None else cache
    keys = [((tuple(c[0]), c[1]), (tuple(r[0]), r[1])) for c, r, _ in enc]
    todo = sorted(
        (i for i, (kc, kr) in enumerate(keys) if kc not in memo or kr not in memo),
        key=lambda i: len(enc[i][0][0]) + len(enc[i][1][0]),
    )
    if width is None:
        width = max((len(b) for b in batches), default=1)  # pairs per forward, as in a training step
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for at in range(0, len(todo), width):
            chunk = todo[at : at + width]
            lp, _ = _pair_logps(model, [enc[i][0] for i in chunk], [enc[i][1] for i in chunk], pad, share_prompt)
            for j, i in enumerate(chunk):
                memo[keys[i][0]], memo[keys[i][1]] = float(lp[j]), float(lp[len(chunk) + j])
    model.train(was_training)
    return {i: (memo[kc], memo[kr]) for i, (kc, kr) in enumerate(keys)}


def _accumulate(
    model: Any,
    enc: list,
    ref: dict,
    batch: list[int],
    replay: list,
    cfg: TrainConfig,
    pad: int,
    micro: int | None = None,
) -> tuple[float, Any]:
    """Backward the loss of one optimiser step in micro-batches (same gradient, a fraction of the memory).

    Returns (mean preference loss of the batch, implicit reward margins). Activations of 16 fp32 sequences
    through the 30 layers peaked at ~9 GB; micro-batches of `cfg.micro_batch` pairs keep it near 2 GB.
    """
    import torch

    w_sum = float(sum(enc[i][2] for i in batch)) or 1e-6
    pref_total, margins = 0.0, []
    micro = micro or cfg.micro_batch
    for at in range(0, len(batch), micro):
        mb = batch[at : at + micro]
        lp, n_tok = _pair_logps(model, [enc[i][0] for i in mb], [enc[i][1] for i in mb], pad, cfg.share_prompt)
        k = len(mb)
        pi_c, pi_r = lp[:k], lp[k:]
        ref_c = torch.tensor([ref[i][0] for i in mb], dtype=lp.dtype, device=lp.device)
        ref_r = torch.tensor([ref[i][1] for i in mb], dtype=lp.dtype, device=lp.device)
        w = torch.tensor([enc[i][2] for i in mb], dtype=lp.dtype, device=lp.device)
        losses = preference_loss(
            cfg.loss_type, pi_c, pi_r, ref_c, ref_r, n_tok[:k], n_tok[k:], cfg.beta, cfg.label_smoothing
        )
        loss = (w * losses).sum() / w_sum
        if cfg.nll_weight > 0:
            loss = loss + cfg.nll_weight * response_nll(pi_c, n_tok[:k]).sum() / len(batch)
        loss.backward()
        pref_total += float((w * losses).detach().sum()) / w_sum
        margins.append((pi_c.detach() - ref_c) - (pi_r.detach() - ref_r))
    if replay and cfg.replay_loss == "kl":
        (cfg.replay_weight * replay_kl(model, replay, pad).mean()).backward()
    elif replay:
        s_lp, s_n = sequence_logps(model, replay, pad)
        (cfg.replay_weight * response_nll(s_lp, s_n).mean()).backward()
    return pref_total, torch.cat(margins)


def train_dpo(
    backend: Any,
    pairs: Sequence[Pair],
    cfg: TrainConfig,
    seed: int = 0,
    replay: Sequence[ReplayExample] = (),
    progress: Callable[[int, int, float], None] | None = None,
    ref_cache: dict[tuple[tuple[int, ...], int], float] | None = None,
) -> tuple[Any, TrainStats]:
    """Train `backend.model` (an HFBackend) on the pairs (LoRA or full, cfg.adapter); returns (model, stats).

    The backend's model is replaced by the trained (LoRA: merged) model, so `backend` serves the new weights.
    `replay` are (chat, answer) SFT examples mixed into every step with weight cfg.replay_weight (their answer's
    NLL, or with cfg.replay_loss kl their KL to the round's start weights, `replay_kl`).
    stats.losses are the (weighted) mean preference losses per step, without the NLL terms.
    `ref_cache` (see `reference_logps`) reuses reference log-probs across trainings from the same weights.
    """
    import time

    import torch

    t0 = time.time()
    tok, pad = backend.tokenizer, backend.tokenizer.pad_token_id
    torch.manual_seed(seed)
    rng = random.Random(seed)
    enc = [
        (
            encode_example(tok, backend.render, p.prompt, p.chosen, cfg.max_len),
            encode_example(tok, backend.render, p.prompt, p.rejected, cfg.max_len),
            p.weight,
        )
        for p in pairs
    ]
    sft = [encode_example(tok, backend.render, c, a, cfg.max_len) for c, a in replay]
    stats = TrainStats()
    if not enc:
        backend.last_adapter = None  # nothing trained: no delta
        return backend.model, stats
    batches = length_batches([len(c[0]) + len(r[0]) for c, r, _ in enc], cfg.batch_size)
    model = make_trainable(backend.model, cfg)
    enable_checkpointing(model, cfg)
    from superalign.device import is_cuda_model

    on_cpu = not is_cuda_model(model)  # the CPU path runs exactly as before; CUDA batches back off on OOM
    # Reference once per round, before the first update (LoRA: B = 0, so the wrapped model IS the reference).
    t_ref = time.time()
    if on_cpu:
        ref = reference_logps(model, enc, batches, pad, ref_cache, cfg.share_prompt)
    else:  # on an accelerator: fewer pairs per forward after an out-of-memory error (one log line each)
        from superalign.device import backoff_batches

        memo = {} if ref_cache is None else ref_cache
        ref, _ = backoff_batches(
            lambda w: reference_logps(model, enc, batches, pad, memo, cfg.share_prompt, w),
            max((len(b) for b in batches), default=1),
            "the reference pass",
            hint=_OOM_HINT,
        )
    stats.reference_seconds = round(time.time() - t_ref, 3)
    params, opt, total = optimiser(model, cfg, len(batches))
    micro = cfg.micro_batch
    sft_cycle = list(range(len(sft)))
    rng.shuffle(sft_cycle)
    n_sft = max(1, cfg.batch_size // 2) if sft else 0
    for _ in range(cfg.epochs):
        rng.shuffle(batches)
        wins, seen = 0, 0
        for b in batches:
            if stats.steps >= total:
                break
            opt.zero_grad(set_to_none=True)
            pick = [sft[sft_cycle[(stats.steps * n_sft + k) % len(sft)]] for k in range(n_sft)] if n_sft else []
            if on_cpu:
                batch_loss, margins = _accumulate(model, enc, ref, b, pick, cfg, pad)
            else:  # a micro-batch that runs out of memory: the step is redone with half as many pairs per pass
                from superalign.device import backoff_batches

                def attempt(m: int, b: list[int] = b, pick: list = pick) -> tuple[float, Any]:
                    opt.zero_grad(set_to_none=True)
                    return _accumulate(model, enc, ref, b, pick, cfg, pad, micro=m)

                (batch_loss, margins), micro = backoff_batches(attempt, micro, "a DPO step", hint=_OOM_HINT)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            stats.steps += 1
            stats.losses.append(round(batch_loss, 5))
            wins += int((margins > 0).sum())
            seen += len(b)
            if progress:
                progress(stats.steps, total, stats.losses[-1])
        if seen:
            stats.reward_accuracy = wins / seen
    model = finish_trainable(backend, model)
    stats.seconds = round(time.time() - t0, 2)
    return model, stats
