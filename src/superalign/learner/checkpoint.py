"""Learner checkpoints: merged HF directories, written atomically, and the round's LoRA delta as a peft adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from superalign.backends.base import PairTrainable, Trainable

CHECKPOINT_META = "superalign_checkpoint.json"  # {"alpha": a, "trained_from": b} when a version was scaled back


def save_checkpoint(
    learner: Trainable | PairTrainable,
    directory: str | Path,
    adapter_from: int | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write the learner to `directory` atomically (temp dir, fsync, rename): loadable or absent.

    `adapter_from` (the round the training started from): also write the round's LoRA delta under
    `directory/adapter/` in peft's format, with `superalign.json` naming that round, so a vLLM server can serve
    the round as base model + adapters (backends/vllm.py stacks the deltas of the rounds it descends from)."""
    from superalign.store.jsonl import atomic_write_dir

    def build(tmp: Path) -> None:
        learner.save(tmp)
        if adapter_from is not None:
            save_adapter(
                learner.last_adapter if isinstance(learner, Trainable) else None, tmp / "adapter", adapter_from
            )
        if meta is not None:  # inside the atomic write: the weights and what they are arrive together
            import json

            (tmp / CHECKPOINT_META).write_text(json.dumps(meta), encoding="utf-8")

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


def checkpoint_meta(directory: str | Path) -> dict[str, Any]:
    """What `save_checkpoint(meta=...)` wrote with the weights; {} for a checkpoint as trained."""
    import json

    path = Path(directory) / CHECKPOINT_META
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


class Interpolation:
    """A model's weights between a base and a trained version: `set(alpha)` makes them
    base + alpha * (trained - base), computed in fp32 and cast to the model's dtype (alpha 1 = trained exactly,
    0 = base exactly). `model` (a torch module holding the trained weights) is changed in place."""

    def __init__(self, model: Any, base_state: dict[str, Any]):
        import torch

        with torch.no_grad():
            self.model = model
            self.trained = {n: t.detach().clone() for n, t in model.state_dict().items()}
            missing = set(self.trained) ^ set(base_state)
            if missing:
                raise ValueError(f"base and trained versions differ in their weights: {sorted(missing)[:3]}")
            self.base = base_state

    def set(self, alpha: float) -> None:
        import torch

        with torch.no_grad():
            for name, t in self.model.state_dict().items():
                trained, base = self.trained[name], self.base[name]
                if alpha == 1.0:
                    t.copy_(trained)
                elif alpha == 0.0:
                    t.copy_(base.to(t.dtype))
                else:
                    b = base.float()
                    t.copy_((b + alpha * (trained.float() - b)).to(t.dtype))
