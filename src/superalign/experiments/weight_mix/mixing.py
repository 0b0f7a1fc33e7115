"""Weight mixtures of two trained deltas: W(a, b) = W0 + a·(Wc − W0) + b·(Wr − W0).

Each delta is a LoRA adapter trained from the base weights W0 and merged (learner/dpo.py `finish_trainable`);
its task vector is the merged weights minus the base (task arithmetic, Ilharco et al. 2023). With a + b = 1
the mixture is a rewarded soup (Ramé et al. 2023), the linear interpolation of the two fine-tuned models.

Why from merged weights and not from the LoRA factors: the scored model is the merged one, and the
factors' product B·A·α/r differs from what the merge wrote into a bf16 or fp32 weight by rounding. The
arithmetic runs in float64, where the difference of two float32 (or bf16) weights is exact, so
W(0, 0) is W0 bit for bit, W(1, 0) is Wc and W(0, 1) is Wr (tests/experiments/test_weight_mix.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def snapshot(model: Any) -> dict[str, Any]:
    """A detached copy of every tensor of `model.state_dict()`."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(base: Mapping[str, Any], trained: Mapping[str, Any]) -> dict[str, Any]:
    """The tensors of `trained` that differ from `base` (LoRA touches only its target projections)."""
    import torch

    return {k: v for k, v in trained.items() if not torch.equal(v, base[k])}


@dataclass
class Deltas:
    """The base weights and each trained model's changed tensors, by delta name ("competence", "refusal")."""

    base: dict[str, Any]
    trained: dict[str, dict[str, Any]]

    def mixture(self, coefficients: Mapping[str, float]) -> dict[str, Any]:
        """The full state dict W0 + Σ_k c_k·(W_k − W0), computed in float64 and cast to each tensor's dtype.
        A coefficient of 0 adds exactly nothing; names not in `coefficients` count as 0."""
        unknown = set(coefficients) - set(self.trained)
        if unknown:
            raise ValueError(f"mixture: unknown delta(s) {sorted(unknown)}; have {sorted(self.trained)}")
        out = dict(self.base)
        keys = {k for name, c in coefficients.items() if c != 0 for k in self.trained[name]}
        for k in keys:
            w0 = self.base[k].double()
            w = w0.clone()
            for name, c in coefficients.items():
                if c != 0 and k in self.trained[name]:
                    w += c * (self.trained[name][k].double() - w0)
            out[k] = w.to(self.base[k].dtype)
        return out


def load_weights(backend: Any, weights: Mapping[str, Any]) -> None:
    """Put `weights` into the backend's model (in place) and leave it in eval mode."""
    backend.model.load_state_dict(dict(weights))
    backend.model.eval()


def same_weights(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Bitwise equality of two state dicts (same keys, same values)."""
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
