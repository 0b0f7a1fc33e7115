"""Per-layer hidden states of SmolLM2 for (context, candidate) texts: one forward pass, every layer, cached.

    feats = LayerFeatures(layers=(1, 2, 4, 8, 15, 30))
    x = feats.encode(contexts, candidates)      # (n, len(layers), 2, hidden) float32
    x[:, feats.index(15), 0]                    # mean over the candidate's tokens after 15 blocks
    x[:, feats.index(30), 1]                    # the last token after all 30 blocks

The model reads the chat-formatted pair (user: context, clipped to its last `context_tokens` tokens;
assistant: candidate, clipped to its first `candidate_tokens`), as critic/learned.py's PairFeatures does,
but keeps two pools — the mean over the candidate's tokens and the last token — for *each* layer in
`layers` (hidden_states[k] = the residual stream after the first k blocks), so the weak supervisors
(probes after 1, 2, 4 blocks), the bootstrapping chain (8 blocks) and the strong student (15 and 30)
all come from one pass. Each text's array is cached (float16, ~14 KB with six layers) under
`$SUPERALIGN_CACHE/layer-features/<tag>/` keyed by a hash of the text, so a text is encoded once per
machine and settings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superalign.store.vector_cache import load_vectors, save_vector

if TYPE_CHECKING:
    import numpy as np

POOLS = ("mean", "last")
VERSION = 1  # bump when the text format or pooling changes (new cache directory)


@dataclass(frozen=True)
class LayerFeatures:
    """Batched, cached extraction of mean-pooled and last-token states at several depths."""

    model_dir: str = ""  # "" = the embedded SmolLM2-135M-Instruct
    layers: tuple[int, ...] = (1, 2, 4, 8, 15, 30)
    context_tokens: int = 64
    candidate_tokens: int = 64
    batch_size: int = 16
    use_cache: bool = True

    def resolved_dir(self) -> Path:
        if self.model_dir:
            return Path(self.model_dir)
        from superalign.backends.embedded import embedded_model_dir

        return embedded_model_dir()

    def tag(self) -> str:
        ks = ".".join(str(k) for k in self.layers)
        name = self.resolved_dir().name
        return f"{name}-K{ks}-c{self.context_tokens}-r{self.candidate_tokens}-v{VERSION}"

    def cache_dir(self) -> Path:
        from superalign.backends.embedded import cache_root

        return cache_root() / "layer-features" / self.tag()

    def index(self, layer: int) -> int:
        """Position of `layer` in the arrays' layer axis."""
        if layer not in self.layers:
            raise ValueError(f"layer {layer} is not kept (kept: {self.layers})")
        return self.layers.index(layer)

    @staticmethod
    def key(context: str, candidate: str) -> str:
        return hashlib.sha1(f"{context}\x1f{candidate}".encode()).hexdigest()

    def encode(
        self,
        contexts: Sequence[str],
        candidates: Sequence[str],
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """(n, len(layers), 2, hidden) float32: pools per layer, from the cache where present."""
        import numpy as np

        keys = [self.key(c, r) for c, r in zip(contexts, candidates)]
        cache = self.cache_dir()
        out = load_vectors(cache, keys) if self.use_cache else {}
        todo = {k: (c, r) for k, c, r in zip(keys, contexts, candidates) if k not in out}
        if todo:
            model, tok = self.load()
            ids = list(todo)

            def save(i: int, v: np.ndarray) -> None:
                k = ids[i]
                out[k] = v
                if self.use_cache:
                    save_vector(cache, k, v)

            self.forward(model, tok, [todo[k] for k in ids], save, progress)
        if not keys:
            return np.zeros((0, len(self.layers), len(POOLS), 0), dtype=np.float32)
        return np.stack([out[k] for k in keys]).astype(np.float32)

    def load(self) -> tuple[Any, Any]:
        """The base model cut after its deepest kept layer (fp32, eval mode) and its tokenizer."""
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        d = self.resolved_dir()
        tok = AutoTokenizer.from_pretrained(d)
        model = AutoModel.from_pretrained(d, dtype=torch.float32).eval()
        depth = max(self.layers)
        if depth > len(model.layers) or min(self.layers) < 0:
            raise ValueError(f"layers {self.layers}: the model at {d} has {len(model.layers)} blocks")
        model.layers = torch.nn.ModuleList(list(model.layers)[:depth])
        model.config.num_hidden_layers = depth
        return model, tok

    def token_ids(self, tok: Any, context: str, candidate: str) -> tuple[list[int], int]:
        """Chat-formatted ids of one text and the index where the candidate starts."""
        enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
        ctx = enc(context)[-self.context_tokens :] if context else []
        head = enc("<|im_start|>user\n") + ctx + enc("<|im_end|>\n<|im_start|>assistant\n")
        body = enc(candidate)[: self.candidate_tokens] or enc(" ")
        return head + body, len(head)

    def forward(
        self,
        model: Any,
        tok: Any,
        texts: Sequence[tuple[str, str]],
        save: Callable[[int, np.ndarray], None],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Run the texts in length-sorted batches (right padding; causal attention ignores it) and hand each
        text's (len(layers), 2, hidden) float16 array to `save(position, array)`. Only the last block's
        output gets the final norm (hidden_states[-1] in transformers); k < depth is the raw residual."""
        import torch

        enc = [self.token_ids(tok, c, r) for c, r in texts]
        order = sorted(range(len(enc)), key=lambda i: len(enc[i][0]))
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            width = max(len(enc[i][0]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            cand = torch.zeros((len(idx), width), dtype=torch.float32)
            for row, i in enumerate(idx):
                seq, start = enc[i]
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
                cand[row, start : len(seq)] = 1.0
            with torch.inference_mode():
                hs = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            w = (cand / cand.sum(1, keepdim=True)).unsqueeze(-1)
            last = mask.sum(1) - 1
            rows = torch.arange(len(idx))
            per_layer = [torch.stack([(hs[k] * w).sum(1), hs[k][rows, last]], dim=1) for k in self.layers]
            feats = torch.stack(per_layer, dim=1).to(torch.float16).numpy()  # (batch, layers, 2, hidden)
            for row, i in enumerate(idx):
                save(i, feats[row])
            if progress:
                progress(min(b + self.batch_size, len(order)), len(order))
