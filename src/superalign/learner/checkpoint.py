"""Learner checkpoints: merged HF directories, written atomically, and the round's LoRA delta as a peft adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_checkpoint(learner: Any, directory: str | Path, adapter_from: int | None = None) -> Path:
    """Write the learner to `directory` atomically (temp dir, fsync, rename): loadable or absent.

    `adapter_from` (the round the training started from): also write the round's LoRA delta under
    `directory/adapter/` in peft's format, with `superalign.json` naming that round, so a vLLM server can serve
    the round as base model + adapters (backends/vllm.py stacks the deltas of the rounds it descends from)."""
    from superalign.store.jsonl import atomic_write_dir

    def build(tmp: Path) -> None:
        if hasattr(learner, "save"):
            learner.save(tmp)
        else:
            learner.model.save_pretrained(tmp)
            learner.tokenizer.save_pretrained(tmp)
        if adapter_from is not None:
            save_adapter(getattr(learner, "last_adapter", None), tmp / "adapter", adapter_from)

    return atomic_write_dir(directory, build, replace=True)


def save_adapter(snapshot: tuple[dict[str, Any], Any] | None, directory: Path, trained_from: int) -> None:
    """A peft adapter folder (adapter_model.safetensors + adapter_config.json) and `superalign.json`
    {"trained_from": round}. Without a snapshot (no pairs: the weights did not change) only the latter."""
    import json

    directory.mkdir(parents=True, exist_ok=True)
    if snapshot is not None:
        from safetensors.torch import save_file

        state, config = snapshot
        save_file(state, str(directory / "adapter_model.safetensors"))
        config.save_pretrained(str(directory))
    (directory / "superalign.json").write_text(
        json.dumps({"trained_from": trained_from, "empty": snapshot is None}), encoding="utf-8"
    )
