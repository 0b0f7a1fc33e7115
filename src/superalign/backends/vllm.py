"""`executor: vllm`: the learner served by a running vLLM OpenAI-compatible server, one LoRA adapter per round.

The driver trains as always (in its process, or `train.launcher`) and writes each round's LoRA delta beside the
merged checkpoint (`checkpoints/round-k/adapter/`, learner/checkpoint.py `save_adapter`). Round k's weights are the base
model plus the deltas of every round on its line of descent (round k trained from round b = `trained_from`, which
trained from ..., back to round 0). vLLM serves LoRA adapters on top of the *base* model it loaded, so `stacked_adapter`
writes one adapter equal to the sum of those deltas: LoRA deltas B_i A_i (scale s_i = alpha_i / r_i) add up to
[s_1 B_1 | ... | s_n B_n] [A_1; ...; A_n], a LoRA of rank r_1 + ... + r_n with scale 1 (exact; the server must
accept that rank: `vllm serve ... --max-lora-rank`). The adapter is registered with vLLM's runtime LoRA loading
(`POST /v1/load_lora_adapter {lora_name, lora_path}`; the server runs with `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`
and `--enable-lora`), generation and scoring go through the `openai:` client (OpenAICompatBackend: concurrent
requests, retries with back-off) with the adapter's name as the model, and the adapter is unloaded when the
round's learner is closed. Round 0 (and any round that trained nothing) is the base model itself.

The server reads `lora_path` from its own filesystem: run it on the driver's machine or share the run directory;
`vllm_lora_dir` maps the run's checkpoints folder to the path the server sees.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from superalign.backends.openai_compat import OpenAICompatBackend
from superalign.errors import BackendUnavailable, UserError

STACKED = "vllm-lora"  # the folder, inside checkpoints/round-k, of the adapter vLLM loads for round k


def adapter_chain(checkpoints: Path, round: int) -> list[Path]:
    """The adapter folders of round `round`'s line of descent, oldest first (rounds that trained nothing are left
    out); [] for round 0. BackendUnavailable when a round on the line has no adapter record (trained before
    `executor: vllm` was set, or with `train.adapter: full`)."""
    chain: list[Path] = []
    k = round
    while k > 0:
        d = checkpoints / f"round-{k}" / "adapter"
        meta = d / "superalign.json"
        if not meta.is_file():
            raise BackendUnavailable(
                f"{d}: no LoRA adapter record for round {k}; executor: vllm serves rounds trained with "
                "train.adapter: lora while executor: vllm was set (start a new run, or serve checkpoints/round-K "
                "as its own model)"
            )
        info = json.loads(meta.read_text(encoding="utf-8"))
        if not info.get("empty") and (d / "adapter_model.safetensors").is_file():
            chain.append(d)
        k = int(info["trained_from"])
    return chain[::-1]


def stacked_adapter(checkpoints: Path, round: int) -> Path | None:
    """The adapter folder that turns the base model into round `round` (None: the base model itself). One delta
    is served as saved; several are stacked into `checkpoints/round-k/vllm-lora/` (written once, atomically)."""
    chain = adapter_chain(checkpoints, round)
    if not chain:
        return None
    if len(chain) == 1:
        return chain[0]
    target = checkpoints / f"round-{round}" / STACKED
    if (target / "adapter_config.json").is_file():
        return target
    from superalign.store.jsonl import atomic_write_dir

    return atomic_write_dir(target, lambda tmp: write_stacked(chain, tmp), replace=True)


def write_stacked(chain: list[Path], out: Path) -> None:
    """One peft LoRA adapter in `out` whose delta is the sum of the adapters in `chain` (see the module docstring)."""
    import torch
    from peft import LoraConfig
    from safetensors.torch import load_file, save_file

    configs = [LoraConfig.from_pretrained(str(d)) for d in chain]
    states = [load_file(str(d / "adapter_model.safetensors")) for d in chain]
    for c in configs:
        if getattr(c, "use_rslora", False) or getattr(c, "use_dora", False):
            raise UserError(f"{c}: rsLoRA / DoRA adapters cannot be stacked for vLLM; use plain LoRA")
    modules = sorted({k[: -len(".lora_A.weight")] for s in states for k in s if k.endswith(".lora_A.weight")})
    rank = sum(c.r for c in configs)
    stacked: dict[str, Any] = {}
    for m in modules:
        a_parts, b_parts = [], []
        for c, s in zip(configs, states):
            a, b = s.get(f"{m}.lora_A.weight"), s.get(f"{m}.lora_B.weight")
            if a is None or b is None:  # a module this round did not adapt: a zero block of its rank
                like_a = next(x[f"{m}.lora_A.weight"] for x in states if f"{m}.lora_A.weight" in x)
                like_b = next(x[f"{m}.lora_B.weight"] for x in states if f"{m}.lora_B.weight" in x)
                a = like_a.new_zeros(c.r, like_a.shape[1])
                b = like_b.new_zeros(like_b.shape[0], c.r)
            a_parts.append(a.float())
            b_parts.append(b.float() * (c.lora_alpha / c.r))
        stacked[f"{m}.lora_A.weight"] = torch.cat(a_parts, dim=0).contiguous()
        stacked[f"{m}.lora_B.weight"] = torch.cat(b_parts, dim=1).contiguous()
    first = configs[0]
    targets = sorted({t for c in configs for t in (c.target_modules or [])})
    cfg = LoraConfig(
        r=rank, lora_alpha=rank, lora_dropout=0.0, target_modules=targets, task_type=first.task_type, bias="none"
    )
    cfg.base_model_name_or_path = first.base_model_name_or_path
    out.mkdir(parents=True, exist_ok=True)
    save_file(stacked, str(out / "adapter_model.safetensors"))
    cfg.save_pretrained(str(out))
    (out / "superalign.json").write_text(
        json.dumps({"stacked": [str(d) for d in chain], "rank": rank}), encoding="utf-8"
    )


class VLLMServer:
    """A running vLLM OpenAI-compatible server: its base model, runtime LoRA loading, per-adapter clients."""

    def __init__(self, url: str, model: str | None = None, timeout: float = 120.0, max_concurrency: int = 32):
        self.url = url.rstrip("/")
        self.timeout, self.max_concurrency = timeout, max_concurrency
        self._client = OpenAICompatBackend(model or "-", self.url, timeout=timeout)
        self._model = model

    def base_model(self) -> str:
        """The served base model: `vllm_model`, or the one model /models lists without a `parent` (vLLM lists
        loaded adapters with their base model as parent)."""
        if self._model:
            return self._model
        import httpx

        try:
            listing = self._client._http().get(self.url + "/models")
            data = listing.json().get("data", []) if listing.status_code == 200 else []
        except (httpx.HTTPError, ValueError) as exc:
            raise self._client._unreachable(str(exc) or type(exc).__name__) from None
        bases = [m["id"] for m in data if not m.get("parent")]
        if len(bases) != 1:
            raise UserError(
                f"vLLM server at {self.url} serves {len(bases)} base models ({', '.join(bases) or 'none'});"
                " name the one the learner is, with vllm_model"
            )
        self._model = bases[0]
        return self._model

    def load_adapter(self, name: str, path: Path | str) -> None:
        """POST /load_lora_adapter; an adapter of that name already loaded (a resumed run) is fine."""
        r = self._client._post("/load_lora_adapter", {"lora_name": name, "lora_path": str(path)})
        if r.status_code < 400 or (r.status_code == 400 and "already" in r.text.lower()):
            return
        if r.status_code in (404, 405):
            raise UserError(
                f"vLLM server at {self.url} has no runtime LoRA loading ({r.status_code} on POST "
                "/load_lora_adapter): start it with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora "
                "(docs/scale.md)"
            )
        hint = (
            " (the stacked adapter's rank exceeds the server's: restart vllm serve with a larger --max-lora-rank)"
            if "rank" in r.text.lower()
            else ""
        )
        raise UserError(
            f"vLLM server at {self.url} did not load LoRA adapter {name} from {path} "
            f"({r.status_code}): {r.text[:300]}{hint}"
        )

    def unload_adapter(self, name: str) -> None:
        """POST /unload_lora_adapter; an adapter the server no longer has is fine."""
        r = self._client._post("/unload_lora_adapter", {"lora_name": name})
        if r.status_code >= 400 and not (r.status_code == 404 or "found" in r.text.lower()):
            raise UserError(
                f"vLLM server at {self.url} did not unload LoRA adapter {name} ({r.status_code}): {r.text[:300]}"
            )

    def client(self, model: str) -> OpenAICompatBackend:
        return OpenAICompatBackend(model, self.url, timeout=self.timeout, max_concurrency=self.max_concurrency)

    def close(self) -> None:
        self._client.close()


class VLLMLearner:
    """Round k's learner on the server: a Backend (the `openai:` client with the round's adapter as model) that
    unloads its adapter on close."""

    def __init__(self, server: VLLMServer, model: str, adapter: str | None, name: str):
        self.server, self.adapter, self.name = server, adapter, name
        self.backend = server.client(model)
        self.backend.name = name

    def generate(self, chats: Any, params: Any) -> list[str]:
        return self.backend.generate(chats, params)

    def logprobs(self, chats: Any, continuations: Any) -> list[float]:
        return self.backend.logprobs(chats, continuations)

    def logprobs_text(self, prefixes: Any, continuations: Any) -> list[float]:
        return self.backend.logprobs_text(prefixes, continuations)

    def score_options(self, prefixes: Any, options: Any) -> list[list[float]]:
        return self.backend.score_options(prefixes, options)

    def close(self) -> None:
        self.backend.close()
        if self.adapter is not None:
            self.server.unload_adapter(self.adapter)
            self.adapter = None


def serve_round(
    server: VLLMServer, checkpoints: Path, round: int, run_key: str, name: str, lora_dir: str | None = None
) -> VLLMLearner:
    """Round `round`'s learner: its stacked adapter registered with the server (round 0 / nothing trained: the
    base model). `run_key` keeps adapter names of different runs on one server apart; `lora_dir` is the path
    under which the server sees `checkpoints` (None: the same path)."""
    path = stacked_adapter(checkpoints, round)
    base = server.base_model()
    if path is None:
        return VLLMLearner(server, base, None, name)
    served = Path(lora_dir) / path.relative_to(checkpoints) if lora_dir else path.resolve()
    adapter = f"superalign-{run_key}-round-{round}"
    server.load_adapter(adapter, served)
    return VLLMLearner(server, adapter, adapter, name)
