"""Training a binary head on noisy point-wise labels: plain cross-entropy vs noise-robust methods.

    acc = fit_predict(x_train, noisy_labels, x_test, method="coteach")
    rows = noise_curve(x, y, groups, rates=(0, .1, .2, .3, .4), seeds=(0, 1, 2))

Methods (all a one-hidden-layer MLP on standardised features, full-batch Adam, same budget):
- "ce":      plain cross-entropy; it ends up memorising the flipped labels.
- "forward": forward loss correction (Patrini et al., 2017): estimate the label-flip matrix T,
             then train on log(softmax(f(x)) @ T). The corrected loss
             is bounded, so a flipped point cannot pull the model arbitrarily far.
- "coteach": co-teaching (Han et al., 2018): two networks each pick the small-loss share
             (1 - estimated noise rate) of the batch and train their peer on it.
T (and co-teaching's forget rate, its mean off-diagonal) is estimated from anchor points of
out-of-fold probabilities of a cross-fitted logistic regression: no oracle noise rate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

METHODS = ("ce", "forward", "coteach")


def flip_labels(y: Sequence[int] | np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Symmetric noise: each label flipped independently with probability `rate`."""
    import numpy as np

    labels = np.asarray(y, dtype=np.int64)
    flip = np.random.default_rng(seed).random(len(labels)) < rate
    return np.where(flip, 1 - labels, labels)


def _mlp(d: int, hidden: int, seed: int) -> Any:
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2))


def _train(x: Any, y: Any, seed: int, steps: int, hidden: int, loss_fn: Callable[[Any, Any], Any]) -> Any:
    import torch

    net = _mlp(x.shape[1], hidden, seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(net(x), y).mean().backward()
        opt.step()
    return net


def estimate_transition(probs: np.ndarray, quantile: float = 0.97) -> np.ndarray:
    """T[i, j] = P(noisy label j | clean label i), read off the anchor points: for each class the
    example whose P(noisy = i) is at the `quantile` (robust to the very top outliers)."""
    import numpy as np

    t = np.zeros((2, 2))
    for i in range(2):
        col = probs[:, i]
        anchor = int(np.argmin(np.abs(col - np.quantile(col, quantile))))
        t[i] = probs[anchor]
    return t / t.sum(1, keepdims=True)


def fit_predict(
    x_train: np.ndarray,
    y_noisy: Sequence[int] | np.ndarray,
    x_test: np.ndarray,
    method: str = "ce",
    seed: int = 0,
    steps: int = 300,
    hidden: int = 64,
) -> np.ndarray:
    """P(label = 1) on x_test from a head trained on (x_train, y_noisy) with `method`."""
    import numpy as np
    import torch

    if method not in METHODS:
        raise ValueError(f"method {method!r}: choose one of {METHODS}")
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    xt = torch.tensor((x_train - mu) / sd, dtype=torch.float32)
    xs = torch.tensor((x_test - mu) / sd, dtype=torch.float32)
    y = torch.tensor(np.asarray(y_noisy), dtype=torch.long)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: extra threads only spin-wait on a loaded 2-core box
    try:
        return _fit_predict(xt, y, xs, method, seed, steps, hidden)
    finally:
        torch.set_num_threads(threads)


def _fit_predict(xt: Any, y: Any, xs: Any, method: str, seed: int, steps: int, hidden: int) -> np.ndarray:
    import numpy as np
    import torch
    import torch.nn.functional as F

    ce = lambda logits, t: F.cross_entropy(logits, t, reduction="none")  # noqa: E731
    if method == "ce":
        net = _train(xt, y, seed, steps, hidden, ce)
    else:
        t = estimate_transition(_out_of_fold_probs(xt.numpy(), y.numpy(), seed))
        if method == "forward":
            tm = torch.tensor(t, dtype=torch.float32)

            def fwd(logits, tt):
                return F.nll_loss(torch.log(torch.softmax(logits, -1) @ tm + 1e-6), tt, reduction="none")

            net = _train(xt, y, seed, steps, hidden, fwd)
        else:
            net = _coteach(xt, y, seed, steps, hidden, forget=float(np.clip((t[0, 1] + t[1, 0]) / 2, 0.0, 0.5)))
    with torch.no_grad():
        return torch.softmax(net(xs), -1)[:, 1].numpy()


def _out_of_fold_probs(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """P(noisy label | x) from a 3-fold cross-fitted logistic regression: a model never scores the
    rows it was fitted on, so it cannot have memorised their (possibly flipped) labels."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
    return cross_val_predict(LogisticRegression(C=0.1, max_iter=1000), x, y, cv=cv, method="predict_proba")


def _coteach(x: Any, y: Any, seed: int, steps: int, hidden: int, forget: float) -> Any:
    """Two nets; each step each keeps the (1 - forget_t) small-loss share by its own loss and its
    peer trains on that share. forget_t ramps from 0 to `forget` over the first third of training."""
    import torch
    import torch.nn.functional as F

    nets = [_mlp(x.shape[1], hidden, seed), _mlp(x.shape[1], hidden, seed + 1000)]
    opts = [torch.optim.Adam(n.parameters(), lr=1e-3, weight_decay=1e-4) for n in nets]
    n = len(y)
    for step in range(steps):
        rate = forget * min(1.0, step / max(1, steps // 3))
        keep = max(1, int(round((1 - rate) * n)))
        losses = [F.cross_entropy(net(x), y, reduction="none") for net in nets]
        picks = [torch.argsort(loss.detach())[:keep] for loss in losses]
        for k, (opt, loss) in enumerate(zip(opts, losses)):
            opt.zero_grad()
            loss[picks[1 - k]].mean().backward()
            opt.step()
    return nets[0]


def noise_curve(
    x: np.ndarray,
    y: Sequence[int] | np.ndarray,
    groups: Sequence[str],
    rates: Sequence[float] = (0, 0.1, 0.2, 0.3, 0.4),
    seeds: Sequence[int] = (0, 1, 2),
    methods: Sequence[str] = METHODS,
    folds: int = 5,
    steps: int = 300,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Held-out accuracy (clean labels) per (method, rate, seed) under grouped K-fold CV: the
    training folds' labels are flipped at `rate` (seeded), the test fold keeps the human labels."""
    import numpy as np
    from sklearn.model_selection import GroupKFold

    labels = np.asarray(y, dtype=np.int64)
    splits = list(GroupKFold(n_splits=folds).split(x, labels, groups=list(groups)))
    rows = []
    for rate in rates:
        for seed in seeds:
            for method in methods:
                right = 0
                for f, (tr, te) in enumerate(splits):
                    noisy = flip_labels(labels[tr], rate, seed * 100 + f)
                    p = fit_predict(x[tr], noisy, x[te], method, seed=seed, steps=steps)
                    right += int(((p >= 0.5).astype(int) == labels[te]).sum())
                rows.append({"method": method, "rate": rate, "seed": seed, "accuracy": right / len(labels)})
            if progress:
                progress(f"noise {rate:.0%} seed {seed} done")
    return rows


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """{method: {rate: {mean, lo, hi, n}}}: mean accuracy over seeds with a t-based 95 % CI."""
    import numpy as np
    from scipy import stats

    out: dict[str, dict[str, dict[str, float]]] = {}
    for method in sorted({r["method"] for r in rows}):
        for rate in sorted({r["rate"] for r in rows}):
            acc = np.array([r["accuracy"] for r in rows if r["method"] == method and r["rate"] == rate])
            half = (
                float(stats.t.ppf(0.975, len(acc) - 1) * acc.std(ddof=1) / np.sqrt(len(acc))) if len(acc) > 1 else 0.0
            )
            m = float(acc.mean())
            out.setdefault(method, {})[f"{rate:.1f}"] = {
                "mean": round(m, 4),
                "lo": round(m - half, 4),
                "hi": round(m + half, 4),
                "n": len(acc),
            }
    return out


def noise_plot(summary: dict[str, dict[str, dict[str, float]]], path: Any, title: str = "") -> None:
    """Held-out accuracy vs flipped-label rate, one line per method with its 95 % CI band (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for method, by_rate in summary.items():
        rates = sorted(by_rate, key=float)
        xs = [float(r) * 100 for r in rates]
        ax.plot(xs, [by_rate[r]["mean"] for r in rates], marker="o", label=method)
        ax.fill_between(xs, [by_rate[r]["lo"] for r in rates], [by_rate[r]["hi"] for r in rates], alpha=0.2)
    ax.set_xlabel("flipped training labels (%)")
    ax.set_ylabel("held-out accuracy (human labels)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def noise_section(
    x: np.ndarray,
    y: Sequence[int],
    groups: Sequence[str],
    out_dir: Any,
    task: str,
    pca: int = 64,
    seeds: Sequence[int] = (0, 1, 2),
    folds: int = 3,
    steps: int = 150,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The `noise` block of critic-eval's metrics.json and DIR/noise_<task>.png: features reduced to
    `pca` dimensions (PCA fitted without labels, so no label leaks), then `noise_curve`."""
    from pathlib import Path

    from sklearn.decomposition import PCA

    z = PCA(n_components=min(pca, x.shape[0] - 1, x.shape[1]), random_state=0).fit_transform(x) if pca else x
    rows = noise_curve(z, y, groups, seeds=seeds, folds=folds, steps=steps, progress=progress)
    summary = summarise(rows)
    png = Path(out_dir) / f"noise_{task}.png"
    noise_plot(summary, png, title=f"{task}: label noise in training folds")
    drop = {m: round(by["0.0"]["mean"] - by["0.4"]["mean"], 4) for m, by in summary.items() if "0.4" in by}
    return {
        "task": task,
        "features": f"SmolLM2 pair features, PCA {pca}",
        "seeds": list(seeds),
        "folds": f"GroupKFold({folds}) by objective; flips in training folds only",
        "steps": steps,
        "summary": summary,
        "drop_0_to_40": drop,
        "plot": png.name,
        "runs": rows,
    }
