"""Model backends behind one protocol (backends/base.py: `Backend`; `Trainable` for the in-process torch model,
`PairTrainable` for the scripted learner). `load_backend(spec)` turns a model spec into a Backend.

Specs: `embedded` (the shipped SmolLM2-135M-Instruct), `gemma` (Gemma-3-270M base, optional wheels: another
family), `tiny` (random 2-layer SmolLM2-shaped model, for tests), `scripted` (deterministic, no torch), an HF model
directory, or `openai:<model>@<base_url>`.
"""

from __future__ import annotations

from pathlib import Path

from superalign.backends.base import Backend, PairTrainable, Sampling, Trainable, require_trainable
from superalign.errors import BackendUnavailable

__all__ = [
    "Backend",
    "PairTrainable",
    "Sampling",
    "Trainable",
    "check_backend_spec",
    "load_backend",
    "require_trainable",
]


def load_backend(
    spec: str, batch_size: int = 32, name: str | None = None, dtype: str = "auto", device: str | None = None
) -> Backend:
    """A Backend for `spec`; raises BackendUnavailable with the fix when it cannot be loaded.

    `device` (auto | cpu | cuda) places a local model; None = the current default (`superalign.device.use_device`,
    "cpu" unless a command or the loop set another). `dtype` "auto" = bfloat16 on cuda and AMX CPUs, else
    float32 (device.resolve_dtype)."""
    from superalign.backends.scripted import STATE_FILE, ScriptedBackend

    if spec == "scripted":
        return ScriptedBackend()
    if spec.startswith("openai:"):
        from superalign.backends.openai_compat import OpenAICompatBackend, parse_openai_spec

        model, url = parse_openai_spec(spec)
        return OpenAICompatBackend(model, url)
    from superalign.backends.hf import HFBackend
    from superalign.device import current_device, resolve_device, resolve_dtype

    device = current_device() if device is None else resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    if spec == "embedded":
        from superalign.backends.embedded import embedded_model_dir

        return HFBackend.from_dir(
            embedded_model_dir(), name=name or "embedded", batch_size=batch_size, dtype=dtype, device=device
        )
    if spec == "gemma":
        from superalign.backends.gemma import gemma_model_dir

        return HFBackend.from_dir(
            gemma_model_dir(), name=name or "gemma", batch_size=batch_size, dtype=dtype, device=device
        )
    if spec == "tiny":
        from superalign.backends.embedded import tiny_model_dir

        return HFBackend.from_dir(
            tiny_model_dir(), name=name or "tiny", batch_size=batch_size, dtype=dtype, device=device
        )
    p = Path(spec).expanduser()
    if (p / STATE_FILE).is_file():
        return ScriptedBackend.load(p)
    if not p.exists():
        from superalign.backends.hub_cache import cached_model_dir

        cached = cached_model_dir(spec)  # a hub id already in the local Hugging Face cache (never downloaded)
        if cached is None:
            raise _not_found(spec)
        return HFBackend.from_dir(cached, name=name or spec, batch_size=batch_size, dtype=dtype, device=device)
    return HFBackend.from_dir(p, name=name, batch_size=batch_size, dtype=dtype, device=device)


NAMED_SPECS = ("embedded", "tiny", "scripted")


def check_backend_spec(spec: str, probe_timeout: float = 5.0) -> None:
    """Raise BackendUnavailable (or UserError for a malformed `openai:` spec) when `spec` names no backend:
    not one of NAMED_SPECS, not a model directory (config.json or a scripted state), or an `openai:`
    server that does not answer GET /models within `probe_timeout` s or does not serve the model.
    Loads no weights: a run calls it before it writes anything."""
    from superalign.backends.scripted import STATE_FILE

    if spec == "gemma":
        from superalign.backends.gemma import INSTALL_HINT, gemma_available

        if not gemma_available():
            raise BackendUnavailable(f"model 'gemma' needs the optional Gemma-3-270M wheels: {INSTALL_HINT}")
        return
    if spec in NAMED_SPECS:
        return
    if spec.startswith("openai:"):
        from superalign.backends.openai_compat import OpenAICompatBackend, parse_openai_spec

        model, url = parse_openai_spec(spec)
        OpenAICompatBackend(model, url, timeout=probe_timeout, max_tries=1).check_served()
        return
    p = Path(spec).expanduser()
    if not p.exists():
        from superalign.backends.hub_cache import cached_model_dir

        if cached_model_dir(spec) is None:
            raise _not_found(spec)
        return
    if not (p / "config.json").is_file() and not (p / STATE_FILE).is_file():
        raise BackendUnavailable(
            f"{p}: not a model directory (no config.json); give a directory saved with "
            "save_pretrained, e.g. a run's checkpoints/round-K"
        )


def _not_found(spec: str) -> BackendUnavailable:
    return BackendUnavailable(
        f"model '{spec}' not found: give 'embedded', 'gemma', 'tiny', 'scripted', an existing HF model directory, "
        "the id of a model already in the local Hugging Face cache (org/name; nothing is downloaded), or "
        "openai:<model>@<base_url>"
    )
