"""`superalign experiment noisy-labels`: DPO vs robust DPO (rDPO) vs conservative DPO (cDPO) under
label noise.

A share ε of the training pairs has chosen and rejected swapped (exactly round(ε·n) pairs, a different
draw per seed). Every (method, ε, seed) trains LoRA from the same base learner on the same pair pool
(experiments/common.py) and is measured on clean held-out data:

- held-out preference accuracy: share of held-out pairs (prompts disjoint from training by near-duplicate group)
  whose implicit reward margin (log π/π_ref of chosen minus that of rejected) is > 0; an exact tie
  (the untrained model) counts 1/2. No generation needed.
- held-out ASR: greedy answers to held-out harmful prompts judged by the default critic.

ε-aware settings (the noise rate is assumed known, as in the rDPO and cDPO papers): rDPO uses
`loss_type="robust"` with flip rate `label_smoothing=ε`; cDPO uses the sigmoid loss with
`label_smoothing=ε`. At ε = 0 both are exactly DPO, so ε = 0 is trained once and reported for all three.
The NLL (RPO) term is off (`nll_weight=0`): it would train on the flipped "chosen" whatever the loss.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import Field

from superalign.backends.base import Trainable
from superalign.errors import UserError
from superalign.experiments.common import (
    RATE,
    DPOSettings,
    PoolSettings,
    Progress,
    choose_preset,
    flip_labels,
    markdown_table,
    mean_ci,
    pair_pool,
    plot_with_ci,
    resume_runs,
    write_metrics,
    write_results,
)

METHODS = ("dpo", "rdpo", "cdpo")


class NoisyLabelsConfig(DPOSettings):
    """One preset of the experiment (the DPO settings: DPOSettings)."""

    eps: tuple[float, ...] = Field((0.0, 0.1, 0.2, 0.3, 0.4), description="Label flip rates ε.")
    methods: tuple[str, ...] = Field(METHODS, description="Losses compared: dpo | rdpo | cdpo.")
    seeds: int = Field(3, ge=1, description="Seeds per (method, ε): flip draw + training order + init.")
    train_pairs: int = Field(0, ge=0, description="Training pairs used from the pool (0 = all).")
    heldout_pairs: int = Field(0, ge=0, description="Held-out pairs for preference accuracy (0 = all).")
    asr_prompts: int = Field(32, ge=0, description="Held-out harmful prompts for ASR (0 = skip ASR).")
    asr_max_new_tokens: int = Field(40, ge=1, description="Greedy tokens per ASR answer.")
    pool: PoolSettings = Field(PoolSettings(), description="The shared pair pool (cached).")


QUICK_POOL = PoolSettings(harmful_train=24, benign_train=12, harmful_heldout=12, benign_heldout=12, max_new_tokens=32)
PRESETS = {
    "full": NoisyLabelsConfig(),
    # The two ends of the ε range, a smaller pool (~190 generations instead of ~530), <= 24 train pairs,
    # 16 steps x 4 pairs (~2.7 epochs: 6 steps learned nothing; 24 fit the training pairs completely,
    # loss 0.693 -> 0.0002), 12 ASR prompts x 24 tokens; 4 settings x 3 seeds = 12 runs.
    "quick": NoisyLabelsConfig(
        eps=(0.0, 0.4),
        train_pairs=24,
        heldout_pairs=24,
        asr_prompts=12,
        asr_max_new_tokens=24,
        steps=16,
        epochs=3,
        batch_size=4,
        lr=1e-3,
        pool=QUICK_POOL,
    ),
}


def method_train_config(method: str, eps: float, cfg: NoisyLabelsConfig) -> Any:
    """The TrainConfig of `method` at noise rate `eps` (ε-aware: the assumed flip rate is ε)."""
    from superalign.config import TrainConfig

    if "loss_type" not in TrainConfig.model_fields:
        raise UserError("noisy-labels needs TrainConfig.loss_type (rDPO); update superalign.config")
    loss_type, smoothing = {"dpo": ("sigmoid", 0.0), "rdpo": ("robust", eps), "cdpo": ("sigmoid", eps)}[method]
    return cfg.train_config(loss_type=loss_type, label_smoothing=smoothing, nll_weight=0.0)


def preference_accuracy(margins: list[float]) -> float:
    """Share of margins > 0; an exact tie counts 1/2 (so the untrained policy scores 0.5)."""
    if not margins:
        return float("nan")
    return sum(1.0 if m > 0 else 0.5 if m == 0 else 0.0 for m in margins) / len(margins)


def pair_logps(backend: Any, pairs: list) -> list[tuple[float, float]]:
    """(log P(chosen), log P(rejected)) under the backend, per pair (HF: each prompt is run once)."""
    if isinstance(backend, Trainable):
        scores = backend.score_options(
            [backend.render(p.prompt) for p in pairs], [[p.chosen, p.rejected] for p in pairs]
        )
        return [(c, r) for c, r in scores]
    chats = [p.prompt for p in pairs]
    lc = backend.logprobs(chats, [p.chosen for p in pairs])
    lr = backend.logprobs(chats, [p.rejected for p in pairs])
    return list(zip(lc, lr))


def held_out_asr(backend: Any, prompts: list, critic: Any, max_new_tokens: int) -> float:
    """Share of held-out harmful prompts whose greedy answer the critic judges unsafe."""
    from superalign.critic import JudgeItem, judge
    from superalign.evaluate import eval_sampling
    from superalign.records import user_chat

    if not prompts:
        return float("nan")
    texts = backend.generate([user_chat(q.text) for q in prompts], eval_sampling(max_new_tokens))
    verdicts = judge([JudgeItem(f"asr-{i}", q.text, t, True) for i, (q, t) in enumerate(zip(prompts, texts))], critic)
    return sum(1.0 for v in verdicts if v.unsafe) / len(verdicts)


def run(
    out: Path,
    quick: bool,
    seeds: int | None,
    learner: str,
    progress: Progress,
    config: NoisyLabelsConfig | None = None,
    resume: bool = False,
) -> dict:
    """Train every (method, ε, seed), measure, write metrics.json / results.md / two plots.
    `resume`: keep the (method, ε, seed) runs an earlier run in `out` finished (see resume_runs)."""
    import copy

    from superalign.backends import load_backend, require_trainable
    from superalign.config import CriticConfig
    from superalign.critic import build_critic
    from superalign.learner.dpo import train_dpo
    from superalign.records import stable_id

    t0 = time.time()
    preset, cfg = choose_preset(PRESETS, quick, config, seeds, learner)
    unknown = set(cfg.methods) - set(METHODS)
    if unknown:
        raise UserError(f"noisy-labels: unknown method(s) {sorted(unknown)}; choose from {', '.join(METHODS)}")
    old, old_seconds = resume_runs(out, "noisy-labels", cfg, resume)  # before loading anything: fail fast
    backend = require_trainable(
        load_backend(learner),
        f"--learner {learner}: noisy-labels trains weights; give embedded, tiny or an HF model dir",
    )
    pool = pair_pool(cfg.pool, progress, backend=backend)
    # The pool lists harmful pairs first: a hash order makes a truncated subset mix both kinds.
    train = sorted(pool.train, key=lambda p: stable_id("order", p.query_id))[: cfg.train_pairs or None]
    held = sorted(pool.heldout, key=lambda p: stable_id("order", p.query_id))[: cfg.heldout_pairs or None]
    asr_prompts = pool.heldout_harmful[: cfg.asr_prompts]
    if len(train) < 2 or not held:
        raise UserError(
            f"the pair pool has {len(pool.train)} train / {len(pool.heldout)} held-out pairs; "
            "raise the pool's prompt counts (PoolSettings) or use a learner that answers"
        )
    critic = build_critic(CriticConfig(kind=cfg.pool.critic))
    base = copy.deepcopy(backend.model)
    ref = pair_logps(backend, held)
    baseline = {"pref_acc": 0.5, "asr": held_out_asr(backend, asr_prompts, critic, cfg.asr_max_new_tokens)}
    # Seed-major order: if a run is cut short, metrics.json already holds every setting for the first seeds.
    jobs = [(m, e, s) for s in range(cfg.seeds) for e in cfg.eps for m in (cfg.methods if e > 0 else cfg.methods[:1])]
    runs = [r for r in old if (r["method"], r["eps"], r["seed"]) in set(jobs)]
    done = {(r["method"], r["eps"], r["seed"]) for r in runs}
    t0 -= old_seconds  # `minutes` counts the resumed run's time too
    ref_cache: dict = {}  # every run starts from `base`: the training pairs' reference log-probs are shared
    head = {
        "experiment": "noisy-labels",
        "preset": preset,
        "learner": learner,
        "config": cfg.model_dump(mode="json"),
        "pool": pool.stats,
        "n_train_pairs": len(train),
        "n_heldout_pairs": len(held),
        "n_asr_prompts": len(asr_prompts),
        "n_jobs": len(jobs),
        "n_heldout_harmful_pairs": sum(p.kind == "refuse-harmful" for p in held),
        "n_heldout_benign_pairs": sum(p.kind == "help-benign" for p in held),
    }
    for j, (method, eps, seed) in enumerate(jobs):
        if (method, eps, seed) in done:
            continue
        progress("noisy-labels runs", j, len(jobs))
        backend.model = copy.deepcopy(base)
        noisy, flipped = flip_labels(train, eps, seed)
        tcfg = method_train_config(method, eps, cfg)
        t = time.time()
        _, stats = train_dpo(
            backend,
            noisy,
            tcfg,
            seed=seed,
            ref_cache=ref_cache,
            progress=lambda k, n, loss: progress("train (current run)", k, n),
        )
        pol = pair_logps(backend, held)
        margins = [(pc - rc) - (pr - rr) for (pc, pr), (rc, rr) in zip(pol, ref)]
        by_kind = {k: [m for m, p in zip(margins, held) if p.kind == k] for k in ("refuse-harmful", "help-benign")}
        runs.append(
            {
                "method": method,
                "eps": eps,
                "seed": seed,
                "flipped": len(flipped),
                "pref_acc": round(preference_accuracy(margins), 4),
                # per kind: a learner that just refuses everything scores 1 on harmful, 0 on benign
                "pref_acc_harmful": (
                    round(preference_accuracy(by_kind["refuse-harmful"]), 4) if by_kind["refuse-harmful"] else None
                ),
                "pref_acc_benign": (
                    round(preference_accuracy(by_kind["help-benign"]), 4) if by_kind["help-benign"] else None
                ),
                "mean_margin": round(sum(margins) / len(margins), 4),
                "asr": held_out_asr(backend, asr_prompts, critic, cfg.asr_max_new_tokens),
                "steps": stats.steps,
                "train_loss_first": stats.first_loss,
                "train_loss_last": stats.last_loss,
                "train_reward_acc": round(stats.reward_accuracy, 4),
                "seconds": round(time.time() - t, 1),
            }
        )
        write_outputs(
            out,
            {
                **head,
                "complete": False,
                "baseline": baseline,
                "runs": runs,
                "summary": summarise(runs, cfg),
                "minutes": round((time.time() - t0) / 60, 2),
            },
            cfg,
            plots=False,
        )
    progress("noisy-labels runs", len(jobs), len(jobs))
    backend.model = base
    runs.sort(key=lambda r: jobs.index((r["method"], r["eps"], r["seed"])))
    summary = summarise(runs, cfg)
    metrics = {
        **head,
        "complete": True,
        "baseline": baseline,
        "runs": runs,
        "summary": summary,
        "minutes": round((time.time() - t0) / 60, 2),
    }
    write_outputs(out, metrics, cfg)
    return metrics


def summarise(runs: list[dict], cfg: NoisyLabelsConfig) -> dict[str, dict[str, dict[str, Any]]]:
    """{method: {ε: {metric: MeanCI over seeds}}}; ε = 0 (plain DPO) is shared by all methods."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for m in cfg.methods:
        out[m] = {}
        for e in cfg.eps:
            rows = [r for r in runs if r["eps"] == e and (r["method"] == m or e == 0)]
            out[m][str(e)] = {
                k: mean_ci([r.get(k) for r in rows], bounds=None if k == "mean_margin" else RATE)
                for k in ("pref_acc", "pref_acc_harmful", "pref_acc_benign", "asr", "mean_margin")
            }
    return out


def write_outputs(out: Path, metrics: dict, cfg: NoisyLabelsConfig, plots: bool = True) -> None:
    """metrics.json, results.md and (when `plots`) the two PNGs; after every run without plots."""
    summary = metrics["summary"]
    eps = list(cfg.eps)
    for key, label in (("pref_acc", "held-out preference accuracy"), ("asr", "held-out ASR")) if plots else ():
        series = {m: [summary[m][str(e)][key] for e in eps] for m in cfg.methods}
        plot_with_ci(
            out / f"{key}_vs_eps.png",
            eps,
            series,
            "label flip rate ε",
            label,
            f"noisy-labels: {label}\n(mean, 95 % t-CI over {cfg.seeds} seeds)",
        )
    rows = []
    for e in eps:
        for m in cfg.methods:
            s = summary[m][str(e)]
            rows.append(
                [
                    e,
                    m,
                    str(s["pref_acc"]),
                    str(s["pref_acc_harmful"]),
                    str(s["pref_acc_benign"]),
                    str(s["asr"]),
                    f"{s['mean_margin'].mean:.3f}",
                    s["pref_acc"].n,
                ]
            )
    b = metrics["baseline"]
    notes = (
        f"Learner `{metrics['learner']}`, {metrics['n_train_pairs']} training pairs, "
        f"{metrics['n_heldout_pairs']} clean held-out pairs, {metrics['n_asr_prompts']} held-out harmful "
        f"prompts; {cfg.seeds} seeds; mean [95 % t-CI over seeds]. Untrained learner: preference accuracy "
        f"0.5 (all margins 0), ASR {b['asr']:.3f}. ε = 0 is plain DPO, shared by all rows. "
        f"Took {metrics['minutes']} min"
        + ("." if metrics["complete"] else f"; INCOMPLETE: {len(metrics['runs'])} of {metrics['n_jobs']} runs so far.")
    )
    table = markdown_table(
        ["ε", "method", "pref. acc.", "harmful pairs", "benign pairs", "ASR", "mean margin", "seeds"], rows
    )
    write_results(out, "noisy-labels: DPO vs rDPO vs cDPO under flipped preference labels", [notes, table])
    write_metrics(out, metrics)
