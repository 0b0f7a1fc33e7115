"""Any Hugging Face causal LM directory as a Backend: bf16, batches sorted by length, top-k sampling.

Generation uses our own KV-cache decode loop instead of `model.generate` so that sampling draws from
the top-k logits only (HF `generate` sampled 320 tok/s where greedy ran 477 on 2 cores, docs/design.md §6)
and so that finished rows stop costing sampling work. After the prefill, Llama-family models step through
backends/fast_decode.py (packed, fused weights; the same logits, bitwise in bf16 where compared). Greedy
output equals `model.generate` (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from superalign.backends.base import Sampling, row_seed
from superalign.errors import BackendUnavailable
from superalign.faults import tick
from superalign.records import Chat

SHARED_PREFIX_MIN = 32  # tokens: below this, a separate pass for the shared prefix is not worth it
# prompts x max_new_tokens: below this a call does not repay packing the weights for the fast decode step
# (0.09 s bf16 / 0.14 s fp32 for SmolLM2-135M, about the time 6-10 steps at batch 32 save)
FAST_DECODE_MIN_TOKENS = 512


def shared_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix all `seqs` share, leaving every sequence at least one token of its own
    (the last prefix token's logits predict the first option token)."""
    if not seqs:
        return 0
    n, shortest = 0, min(len(s) for s in seqs) - 1
    first = seqs[0]
    while n < shortest and all(s[n] == first[n] for s in seqs):
        n += 1
    return n


def _length_sorted(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first, so OOM shows up at once)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class HFBackend:
    """A local transformers model. `model` and `tokenizer` are public: the learner trains them."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        name: str,
        batch_size: int = 32,
        max_context: int = 1024,
        fast_decode: bool | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        self.max_context = max_context
        self.fast_decode = fast_decode  # None: for bf16 weights only (see fast_decoder); True / False: always / never
        self.fast_decode_min_tokens = FAST_DECODE_MIN_TOKENS
        self.fast_decode_skipped: str | None = None
        self.last_adapter: Any = None  # the last training's LoRA delta (learner/dpo.py sets it), for vLLM adapters
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.stop_ids = self._stop_ids()

    @classmethod
    def from_dir(
        cls, path: str | Path, name: str | None = None, dtype: str = "float32", device: str = "cpu", **kw: Any
    ) -> HFBackend:
        """Load a saved model onto `device` ("cpu" or "cuda"). dtype float32 is the CPU default: on the 2-core
        AVX-512 machines we measured, a bf16 forward was ~1.5x slower than fp32 (1.93 s vs 1.29 s for 16x64
        tokens); bf16 halves memory and is what `dtype: auto` picks on CUDA. On CUDA the model is loaded with
        SDPA attention (PyTorch's fused kernels: flash / memory-efficient); on CPU it loads exactly as before."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        p = Path(path)
        if not (p / "config.json").is_file():
            raise BackendUnavailable(
                f"{p}: not a Hugging Face model directory (no config.json). Give a directory saved with "
                "save_pretrained, 'embedded' for the shipped SmolLM2, or openai:<model>@<url>."
            )
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress lines say what is loading
        try:
            tok = AutoTokenizer.from_pretrained(p)
            extra = {"attn_implementation": "sdpa"} if device != "cpu" else {}
            model = AutoModelForCausalLM.from_pretrained(p, dtype=getattr(torch, dtype), **extra)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # config.json present, weights/tokenizer not
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise BackendUnavailable(
                f"{p}: has a config.json but does not load as a causal LM with its tokenizer ({first}). "
                "Point at a complete save_pretrained directory (config, weights, tokenizer)."
            ) from None
        if device != "cpu":
            model.to(device)  # type: ignore[arg-type]  # transformers' @wraps on .to hides `self` from mypy
        model.eval()
        return cls(model, tok, name or p.name, **kw)

    def save(self, directory: str | Path) -> None:
        """The model and tokenizer as a save_pretrained directory (what `from_dir` loads)."""
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)

    def close(self) -> None:
        """Nothing to release: the weights go with the object."""

    @property
    def device(self) -> Any:
        """The torch device of the model's weights (inputs are built there)."""
        return next(self.model.parameters()).device

    def _stop_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        for t in ("<|im_end|>", "<|endoftext|>"):
            tid = self.tokenizer.convert_tokens_to_ids(t)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id:
                ids.add(tid)
        return sorted(i for i in ids if i is not None)

    # ---- text rendering -------------------------------------------------------------------------
    def render(self, chat: Chat) -> str:
        """The chat as the model sees it, ending with the assistant generation prompt.

        A final `assistant` message is a prefill: it is appended after the generation prompt without
        an end-of-turn marker, so the model continues it (used to draw refusal revisions).
        """
        prefill = ""
        if chat and chat[-1]["role"] == "assistant":
            chat, prefill = chat[:-1], chat[-1]["content"]
        if self.tokenizer.chat_template:
            text = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        else:  # a base model: plain role lines, after its BOS token when its tokenizer would add one (Gemma)
            text = self.bos_text() + "".join(f"{m['role']}: {m['content']}\n" for m in chat) + "assistant:"
        return text + prefill

    def bos_text(self) -> str:
        """The BOS token as text when the tokenizer adds it to a plain encode (so `encode(render(...))`, which adds
        no special tokens, still starts with it), else ""."""
        tok = self.tokenizer
        bos = getattr(tok, "bos_token", None)
        if not bos or tok.bos_token_id is None:
            return ""
        ids = tok("a")["input_ids"]
        return bos if ids and ids[0] == tok.bos_token_id else ""

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    # ---- generation -----------------------------------------------------------------------------
    def generate(self, chats: Sequence[Chat], params: Sampling) -> list[str]:
        """One completion per chat; batches of similar prompt length; deterministic for a seed."""
        prompts = [self.encode(self.render(c))[-self.max_context :] for c in chats]
        return [
            self.tokenizer.decode(toks, skip_special_tokens=True).strip() for toks in self.generate_ids(prompts, params)
        ]

    def generate_ids(self, prompts: Sequence[list[int]], params: Sampling) -> list[list[int]]:
        """New token ids per prompt (stop token excluded), in length-sorted batches of `batch_size`.

        When the call is large enough to repay packing the weights (prompts x max_new_tokens >=
        FAST_DECODE_MIN_TOKENS), one fast decoder (backends/fast_decode.py: same logits as transformers)
        is built for the whole call and dropped after it, so weights trained between calls are never stale.
        """
        decoder = self.fast_decoder() if len(prompts) * params.max_new_tokens >= self.fast_decode_min_tokens else None
        out: list[list[int]] = [[] for _ in prompts]
        try:
            if self.device.type == "cpu":  # the CPU path, as it always ran
                for idx in _length_sorted([len(p) for p in prompts], self.batch_size):
                    tick("generate")
                    seeds = [row_seed(params.seed, params.seed_offset + i) for i in idx]
                    for i, toks in zip(idx, self.decode_batch([prompts[i] for i in idx], params, seeds, decoder)):
                        out[i] = toks
            else:
                self._generate_backing_off(prompts, params, decoder, out)
        finally:
            if decoder is not None:  # its packed weights (~270 MB bf16 for SmolLM2) go back to the OS now
                from superalign.backends.fast_decode import release_freed_memory

                del decoder
                release_freed_memory()
        return out

    def _generate_backing_off(
        self, prompts: Sequence[list[int]], params: Sampling, decoder: Any, out: list[list[int]]
    ) -> None:
        """The batches of `generate_ids` on an accelerator: a batch that runs out of memory is retried in halves
        (one log line each time) and `batch_size` stays lowered for later calls. Rows sample with their own seeds,
        so a smaller batch changes no row's draws (only the padding around it)."""
        from superalign.device import backoff_batches

        todo = _length_sorted([len(p) for p in prompts], len(prompts) or 1)[0] if prompts else []
        while todo:

            def run(b: int, todo: list[int] = todo) -> list[int]:
                tick("generate")
                idx = todo[:b]
                seeds = [row_seed(params.seed, params.seed_offset + i) for i in idx]
                for i, toks in zip(idx, self.decode_batch([prompts[i] for i in idx], params, seeds, decoder)):
                    out[i] = toks
                return idx

            done, self.batch_size = backoff_batches(
                run, self.batch_size, "generation", hint="lower batch_size or max_new_tokens, or use dtype: bfloat16"
            )
            todo = todo[len(done) :]

    def fast_decoder(self) -> Any:
        """A FastLlamaDecoder for the model as it is now, or None (fast decoding off, or a model it does not
        cover: the reason is kept in `fast_decode_skipped`).

        By default (`fast_decode=None`) only bf16 models use it. In fp32 the packed MKL weight serves only
        batches of exactly `batch_size` rows, and `make demo` (fp32, rows finish early) ran 427 s with it vs
        416-420 s without, at a 3.7 GB peak instead of 2.8 GB (the packed copy); `fast_decode=True` forces it
        (fp32 benchmark: 1.60x HF sampled vs 1.39x)."""
        import torch

        if self.fast_decode is False:
            return None
        if self.fast_decode is None and next(self.model.parameters()).dtype != torch.bfloat16:
            self.fast_decode_skipped = "fp32 weights (fast decoding is on by default for bf16 only)"
            return None
        from superalign.backends.fast_decode import build_decoder

        decoder, self.fast_decode_skipped = build_decoder(self.model, self.batch_size)
        return decoder

    def decode_batch(
        self, prompts: list[list[int]], params: Sampling, seeds: Sequence[int] | None = None, decoder: Any = None
    ) -> list[list[int]]:
        """Left-padded KV-cache decoding. Returns the new token ids per row (stop token excluded).

        A row that emits a stop token leaves the batch (its KV cache rows are dropped), so the remaining
        steps compute only live rows; HF `generate` keeps computing finished rows as padding.

        Row i samples from its own generator seeded with `seeds[i]` (default: row_seed(params.seed, i)).
        `decoder` (from `fast_decoder()`, built for the model as it is now) runs the steps after the
        prefill; without one every step runs through the transformers forward.
        """
        import torch

        pad = self.tokenizer.pad_token_id
        width = max(len(p) for p in prompts)
        dev = self.device
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=dev)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=dev)
        seeds = list(seeds) if seeds is not None else [row_seed(params.seed, i) for i in range(len(prompts))]
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        stop = torch.tensor(self.stop_ids, device=dev)
        new_tokens: list[list[int]] = [[] for _ in prompts]
        rows = list(range(len(prompts)))  # original index of each row still in the batch
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        step_ids = input_ids
        past = self._decode_cache(width + params.max_new_tokens)
        if past is None:  # transformers' own cache (a sliding-window model): the fast step needs ours
            decoder = None
        with torch.inference_mode():
            for t in range(params.max_new_tokens):
                if decoder is not None and t > 0:
                    logits = decoder.step(step_ids, positions, mask, past)
                else:
                    out = self.model(  # logits_to_keep=1: the prefill needs no logits for prompt positions
                        input_ids=step_ids,
                        attention_mask=mask,
                        position_ids=positions,
                        past_key_values=past,
                        use_cache=True,
                        logits_to_keep=1,
                    )
                    past, logits = out.past_key_values, out.logits[:, -1, :]
                nxt = self._pick(logits.float(), params, gens)
                finished = torch.isin(nxt, stop)
                done_rows, picked = finished.tolist(), nxt.tolist()  # one device-to-host copy each
                for j, i in enumerate(rows):
                    if not done_rows[j]:
                        new_tokens[i].append(picked[j])
                if bool(finished.all()):
                    break
                if bool(finished.any()):  # drop finished rows: later steps compute only the live ones
                    keep = (~finished).nonzero().flatten()
                    past.batch_select_indices(keep)
                    rows = [rows[j] for j in keep.tolist()]
                    gens = [gens[j] for j in keep.tolist()]
                    nxt, mask, positions = nxt[keep], mask[keep], positions[keep]
                step_ids = nxt[:, None]
                mask = torch.cat([mask, torch.ones(len(rows), 1, dtype=mask.dtype, device=dev)], dim=1)
                positions = positions[:, -1:] + 1
        return new_tokens

    def _decode_cache(self, capacity: int) -> Any:
        """A KV cache with room for the whole generation (backends/kv_cache.py: no per-step copy of the
        cache), or None (transformers' default cache) for models with sliding-window or non-standard layers."""
        cfg = self.model.config.get_text_config(decoder=True)
        layer_types = set(getattr(cfg, "layer_types", None) or ["full_attention"])
        if getattr(cfg, "sliding_window", None) or layer_types != {"full_attention"}:
            return None
        from superalign.backends.kv_cache import reserved_cache

        return reserved_cache(cfg.num_hidden_layers, capacity)

    @staticmethod
    def _pick(logits: Any, params: Sampling, gens: Sequence[Any]) -> Any:
        import torch

        if params.temperature <= 0:
            return logits.argmax(-1)
        k = min(params.top_k, logits.shape[-1])
        top, idx = logits.topk(k, dim=-1)  # top-k BEFORE the softmax: sample among k, not the vocab
        probs = torch.softmax(top / params.temperature, dim=-1)
        # One draw per row from the row's own generator: ~5 us per row on k probabilities, and the row's
        # text no longer depends on its batch neighbours (sharding-invariant sampling).
        # The generators live on the CPU (the same draws on every device): on an accelerator the k probabilities
        # per row come to the host once per step.
        host = probs if probs.device.type == "cpu" else probs.float().cpu()
        choice = torch.stack([torch.multinomial(host[i], 1, generator=g) for i, g in enumerate(gens)])
        return idx.gather(-1, choice.to(idx.device)).squeeze(-1)

    # ---- scoring --------------------------------------------------------------------------------
    def logprobs(self, chats: Sequence[Chat], continuations: Sequence[str]) -> list[float]:
        return self.logprobs_text([self.render(c) for c in chats], continuations)

    def logprobs_text(self, prefixes: Sequence[str], continuations: Sequence[str]) -> list[float]:
        """Sum log P(continuation | prefix) over plain text (no chat template), in nats."""
        pairs = [(self.encode(p), self.encode(c)) for p, c in zip(prefixes, continuations, strict=True)]
        return self.logprobs_ids(pairs)

    def _backing_off(self, fn: Any, what: str) -> Any:
        """fn() on the CPU; on an accelerator, retried with `batch_size` halved after each out-of-memory error
        (one log line each; the lowered size is kept for later calls)."""
        if self.device.type == "cpu":
            return fn()
        from superalign.device import backoff_batches

        def attempt(b: int) -> Any:
            self.batch_size = b
            return fn()

        result, self.batch_size = backoff_batches(
            attempt, self.batch_size, what, hint="lower batch_size, or use dtype: bfloat16"
        )
        return result

    def score_options(self, prefixes: Sequence[str], options: Sequence[Sequence[str]]) -> list[list[float]]:
        """Sum log P(option | prefix) for every option of every prefix (batches back off on CUDA OOM)."""
        return self._backing_off(lambda: self._score_options(prefixes, options), "scoring")

    def _score_options(self, prefixes: Sequence[str], options: Sequence[Sequence[str]]) -> list[list[float]]:
        """Sum log P(option | prefix) for every option of every prefix; each prefix is run once.

        The prefix batch fills a KV cache that is repeated once per option, so a 4-option question
        costs one question plus four short options instead of four full sequences. A token prefix that
        every prefix shares (a judge's rubric: ~260 of ~510 tokens) runs once per call, not once per item.
        """
        import copy

        import torch

        pre = [self.encode(p)[-self.max_context :] for p in prefixes]
        opts = [[self.encode(o) or [self.tokenizer.eos_token_id] for o in os] for os in options]
        out: list[list[float]] = [[0.0] * len(os) for os in options]
        pad = self.tokenizer.pad_token_id
        bs = max(1, self.batch_size // 2)
        dev = self.device
        common = shared_prefix_len(pre) if len(pre) > 1 else 0
        common = common if common >= SHARED_PREFIX_MIN else 0
        with torch.inference_mode():
            shared = None
            if common:  # the shared tokens' keys / values, copied into every batch's cache below
                shared = self.model(
                    input_ids=torch.tensor([pre[0][:common]], device=dev), use_cache=True, logits_to_keep=1
                ).past_key_values
            # Group by prefix length AND longest option: one long option pads every row of its batch.
            cost = [len(p) + 4 * max(len(o) for o in os) for p, os in zip(pre, opts)]
            for idx in _length_sorted(cost, bs):
                tick("score")
                rest = {i: pre[i][common:] for i in idx}
                width = max(len(rest[i]) for i in idx)
                ids = torch.tensor([[pad] * (width - len(rest[i])) + rest[i] for i in idx], device=dev)
                # the mask covers the shared tokens too: [shared | left padding | own tokens]
                pmask = torch.tensor(
                    [[1] * common + [0] * (width - len(rest[i])) + [1] * len(rest[i]) for i in idx], device=dev
                )
                pos = (pmask.cumsum(-1) - 1).clamp(min=0)[:, common:]
                n_opt = {len(opts[i]) for i in idx}
                if len(n_opt) != 1:  # ragged option counts in this batch: score full sequences instead
                    for i in idx:
                        out[i] = self.logprobs_text([prefixes[i]] * len(options[i]), options[i])
                    continue
                cache = None
                if shared is not None:
                    cache = copy.deepcopy(shared)
                    cache.batch_repeat_interleave(len(idx))
                first = self.model(
                    input_ids=ids,
                    attention_mask=pmask,
                    position_ids=pos,
                    past_key_values=cache,
                    use_cache=True,
                    logits_to_keep=1,
                )
                rows = [(i, j) for i in idx for j in range(len(opts[i]))]
                reps = torch.tensor([len(opts[i]) for i in idx], device=dev)
                cache = first.past_key_values
                cache.batch_repeat_interleave(int(reps[0]))
                last = torch.log_softmax(first.logits[:, -1].float(), -1).repeat_interleave(reps, dim=0)
                owidth = max(len(opts[i][j]) for i, j in rows)
                oids = torch.tensor([opts[i][j] + [pad] * (owidth - len(opts[i][j])) for i, j in rows], device=dev)
                omask = torch.tensor(
                    [[1] * len(opts[i][j]) + [0] * (owidth - len(opts[i][j])) for i, j in rows], device=dev
                )
                mask = torch.cat([pmask.repeat_interleave(reps, dim=0), omask], dim=1)
                opos = pos[:, -1:].repeat_interleave(reps, dim=0) + torch.arange(1, owidth + 1, device=dev)
                logits = self.model(
                    input_ids=oids, attention_mask=mask, position_ids=opos, past_key_values=cache, use_cache=True
                ).logits.float()
                lp = torch.log_softmax(logits, -1)
                for r, (i, j) in enumerate(rows):
                    toks = opts[i][j]
                    total = float(last[r, toks[0]])
                    for t in range(1, len(toks)):
                        total += float(lp[r, t - 1, toks[t]])
                    out[i][j] = total
        return out

    def logprobs_ids(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[float]:
        """Batched, length-sorted, right-padded scoring of (prefix ids, continuation ids) (batches back off on
        CUDA OOM)."""
        return self._backing_off(lambda: self._logprobs_ids(pairs), "scoring")

    def _logprobs_ids(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[float]:
        import torch

        dev = self.device
        seqs = [(p + c)[-self.max_context :] for p, c in pairs]
        n_cont = [min(len(c), len(s) - 1) for (_, c), s in zip(pairs, seqs)]
        out = [0.0] * len(seqs)
        pad = self.tokenizer.pad_token_id
        with torch.inference_mode():
            for idx in _length_sorted([len(s) for s in seqs], self.batch_size):
                tick("score")
                width = max(len(seqs[i]) for i in idx)
                ids = torch.tensor([seqs[i] + [pad] * (width - len(seqs[i])) for i in idx], device=dev)
                mask = torch.tensor([[1] * len(seqs[i]) + [0] * (width - len(seqs[i])) for i in idx], device=dev)
                logits = self.model(input_ids=ids, attention_mask=mask).logits
                for row, i in enumerate(idx):
                    L, k = len(seqs[i]), n_cont[i]
                    if k <= 0:
                        continue
                    lp = torch.log_softmax(logits[row, L - k - 1 : L - 1].float(), dim=-1)
                    out[i] = float(lp.gather(-1, ids[row, L - k : L, None]).sum())
        return out
