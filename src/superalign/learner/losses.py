"""Preference losses over per-pair sequence log-probs (plain functions, one per loss_type).

Inputs are 1-D tensors over pairs: policy and reference log-probs of the chosen and rejected responses
(summed over response tokens) and the response token counts. Each function returns the per-pair loss;
the trainer takes the (weighted) mean. Formulas follow TRL 1.16's DPOTrainer (`trl/trainer/
dpo_trainer.py`, `_compute_loss`), checked to 1e-5 in tests/learner/test_trl_equality.py, except cDPO:
TRL >= 0.29 ignores `label_smoothing` in the sigmoid loss, so cDPO here is tested against its closed form.

With  Δ = (π_c − ref_c) − (π_r − ref_r)  (the implicit reward margin / β) and ε = label_smoothing:
  sigmoid (DPO)   −log σ(βΔ)
  sigmoid, ε > 0  −(1−ε) log σ(βΔ) − ε log σ(−βΔ)                       (cDPO, Mitchell 2023)
  ipo             (Δ_c/n_c − Δ_r/n_r − 1/(2β))²   Δ_x = π_x − ref_x      (IPO, length-normalised as TRL)
  robust          [−(1−ε) log σ(βΔ) + ε log σ(−βΔ)] / (1−2ε)             (rDPO, Chowdhury et al. 2024)
"""

from __future__ import annotations

from typing import Any

LOSS_TYPES = ("sigmoid", "ipo", "robust")


def dpo_loss(pi_c: Any, pi_r: Any, ref_c: Any, ref_r: Any, beta: float, label_smoothing: float = 0.0) -> Any:
    """Per-pair sigmoid DPO loss; label_smoothing ε > 0 gives conservative DPO (cDPO)."""
    import torch.nn.functional as F

    logits = beta * ((pi_c - ref_c) - (pi_r - ref_r))
    if label_smoothing == 0:
        return -F.logsigmoid(logits)
    return -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)


def ipo_loss(pi_c: Any, pi_r: Any, ref_c: Any, ref_r: Any, n_c: Any, n_r: Any, beta: float) -> Any:
    """Per-pair IPO loss on per-token (length-normalised) log-ratios, as TRL computes it."""
    delta = (pi_c - ref_c) / n_c.clamp(min=1) - (pi_r - ref_r) / n_r.clamp(min=1)
    return (delta - 1 / (2 * beta)) ** 2


def robust_dpo_loss(pi_c: Any, pi_r: Any, ref_c: Any, ref_r: Any, beta: float, label_smoothing: float) -> Any:
    """Per-pair rDPO loss: unbiased under labels flipped with probability ε = label_smoothing (< 0.5).

    At ε = 0 it is exactly the sigmoid DPO loss.
    """
    import torch.nn.functional as F

    eps = label_smoothing
    logits = beta * ((pi_c - ref_c) - (pi_r - ref_r))
    return (-(1 - eps) * F.logsigmoid(logits) + eps * F.logsigmoid(-logits)) / (1 - 2 * eps)


def preference_loss(
    loss_type: str,
    pi_c: Any,
    pi_r: Any,
    ref_c: Any,
    ref_r: Any,
    n_c: Any,
    n_r: Any,
    beta: float,
    label_smoothing: float = 0.0,
) -> Any:
    """Per-pair loss of `loss_type` (one of LOSS_TYPES); n_c / n_r are response token counts."""
    if loss_type == "sigmoid":
        return dpo_loss(pi_c, pi_r, ref_c, ref_r, beta, label_smoothing)
    if loss_type == "ipo":
        return ipo_loss(pi_c, pi_r, ref_c, ref_r, n_c.to(pi_c.dtype), n_r.to(pi_r.dtype), beta)
    if loss_type == "robust":
        return robust_dpo_loss(pi_c, pi_r, ref_c, ref_r, beta, label_smoothing)
    raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {', '.join(LOSS_TYPES)}")


def response_nll(logps: Any, n_tokens: Any) -> Any:
    """Per-sequence mean negative log-likelihood per response token (SFT, RPO and replay terms)."""
    return -(logps / n_tokens.clamp(min=1))
