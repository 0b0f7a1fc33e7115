"""Weak-to-strong training of a small head on frozen features: plain cross-entropy on (soft) labels,
or the auxiliary confidence loss of Burns et al. 2023 (openai/weak-to-strong, `logconf_loss_fn`).

    head = train_head(x, soft_labels, HeadConfig(aux_coef=0.5), seed=0)
    p = predict_proba(head, x_test)            # P(label = 1), numpy

The aux confidence loss mixes the weak labels with the student's own *hardened* predictions:

    target = (1 - c) * weak + c * harden(student),   c = aux_coef * w(step_frac)

`harden` thresholds the student's P(class 0) at the batch quantile given by the weak labels' mean
P(class 1), so the hardened labels keep the weak labels' class balance. `w` follows the published
code exactly: w = step_frac while step_frac <= warmup_frac, then 1 (a ramp to 0.1, then a jump).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass(frozen=True)
class HeadConfig:
    """How one head trains. `hidden` = 0: a linear (logistic) head; > 0: one hidden ReLU layer."""

    hidden: int = 0
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-2
    aux_coef: float = 0.0  # 0 = plain cross-entropy on the given (soft) labels; 0.5 = published aux loss
    warmup_frac: float = 0.1


def aux_coefficient(step_frac: float, aux_coef: float, warmup_frac: float) -> float:
    """The published schedule: aux_coef * step_frac inside the warm-up, aux_coef afterwards."""
    return aux_coef * (1.0 if step_frac > warmup_frac else step_frac)


def harden(probs: torch.Tensor, weak_mean_p1: torch.Tensor) -> torch.Tensor:
    """One-hot hardened predictions (n, 2): class 0 where P(class 0) >= its `weak_mean_p1` quantile
    over the batch, so about a `1 - weak_mean_p1` share of the batch is called class 0."""
    import torch

    threshold = torch.quantile(probs[:, 0], weak_mean_p1)
    hard0 = (probs[:, 0] >= threshold).float()
    return torch.stack([hard0, 1.0 - hard0], dim=1)


def aux_confidence_loss(
    logits: torch.Tensor, labels: torch.Tensor, step_frac: float, aux_coef: float = 0.5, warmup_frac: float = 0.1
) -> torch.Tensor:
    """Mean cross-entropy of `logits` (n, 2) against the weak (soft, rows sum to 1) `labels` (n, 2)
    mixed with the student's hardened predictions (detached), as in `logconf_loss_fn`."""
    import torch

    logits, labels = logits.float(), labels.float()
    coef = aux_coefficient(step_frac, aux_coef, warmup_frac)
    strong = harden(torch.softmax(logits, dim=-1), labels.mean(dim=0)[1]).detach()
    target = labels * (1.0 - coef) + strong * coef
    return torch.nn.functional.cross_entropy(logits, target)


def soft_xent(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets (n, 2)."""
    import torch

    return torch.nn.functional.cross_entropy(logits.float(), labels.float())


@dataclass
class TrainedHead:
    """A fitted head with the standardisation it was trained under."""

    module: Any  # torch.nn.Module mapping standardised features to 2 logits
    mean: Any  # torch tensor (d,)
    std: Any
    losses: list[float]  # mean training loss per epoch


def train_head(x: np.ndarray, p1: np.ndarray, cfg: HeadConfig, seed: int = 0) -> TrainedHead:
    """Fit a head on features `x` (n, d) to targets `p1` (n,) = P(label 1) in [0, 1] (hard or soft).

    Features are standardised with the training statistics. Adam, `cfg.epochs` passes of shuffled
    minibatches; `step_frac` for the aux loss is (step + 1) / total steps.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only contend with each other
    try:
        return _train(x, p1, cfg, seed)
    finally:
        torch.set_num_threads(threads)


def _train(x: np.ndarray, p1: np.ndarray, cfg: HeadConfig, seed: int) -> TrainedHead:
    import numpy as np
    import torch

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    mean, std = xt.mean(0), xt.std(0).clamp(min=1e-6)
    xt = (xt - mean) / std
    d = xt.shape[1]
    module = (
        torch.nn.Linear(d, 2)
        if cfg.hidden <= 0
        else torch.nn.Sequential(torch.nn.Linear(d, cfg.hidden), torch.nn.ReLU(), torch.nn.Linear(cfg.hidden, 2))
    )
    opt = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    losses = fit_minibatches(
        opt, lambda rows: module(xt[rows]), p1, cfg.epochs, cfg.batch_size, cfg.aux_coef, cfg.warmup_frac, g
    )
    return TrainedHead(module.eval(), mean, std, losses)


def fit_minibatches(
    opt: Any,
    logits_of: Callable[[Any], Any],
    p1: np.ndarray,
    epochs: int,
    batch_size: int,
    aux_coef: float,
    warmup_frac: float,
    generator: Any,
) -> list[float]:
    """The training loop shared by the probe and the fine-tuned student: `epochs` passes of shuffled
    minibatches (`generator` orders them); `logits_of(rows)` gives (len(rows), 2) logits for a LongTensor
    of example rows; soft cross-entropy against `p1` = P(label 1), or the aux confidence loss when
    `aux_coef` > 0 with `step_frac` = (step + 1) / total steps. Returns the mean loss per epoch."""
    import numpy as np
    import torch

    p = torch.as_tensor(np.asarray(p1, dtype=np.float32))
    y = torch.stack([1 - p, p], dim=1)
    n = len(p)
    per_epoch = max(1, -(-n // batch_size))
    total, step, losses = epochs * per_epoch, 0, []
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        run = 0.0
        for b in range(per_epoch):
            rows = order[b * batch_size : (b + 1) * batch_size]
            logits = logits_of(rows)
            if aux_coef > 0:
                loss = aux_confidence_loss(logits, y[rows], (step + 1) / total, aux_coef, warmup_frac)
            else:
                loss = soft_xent(logits, y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            run += float(loss.detach())
            step += 1
        losses.append(run / per_epoch)
    return losses


def predict_proba(head: TrainedHead, x: np.ndarray) -> np.ndarray:
    """P(label 1) per row of `x`."""
    import numpy as np
    import torch

    with torch.inference_mode():
        xt = (torch.as_tensor(np.asarray(x, dtype=np.float32)) - head.mean) / head.std
        return torch.softmax(head.module(xt), dim=-1)[:, 1].numpy()
