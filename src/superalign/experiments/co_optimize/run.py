"""`superalign experiment co-optimize`: competence × conformity schedules, search, capability–capacity gap.

Every schedule (schedules.py: conformity-only, simultaneous, alternating; plus `search`,
search.py) starts from the same weights, gets the same optimiser steps per round (search: K
candidates × steps/K, all counted) and trains on the same shared pair pool (experiments/common.py).
After every round the learner is measured on held-out sets that never enter training:

- competence: MC log-likelihood accuracy on held-out sciq + ARC-Easy items (bootstrap 95 % CI);
- conformity: 1 − ASR on held-out harmful prompts (greedy answers, default critic) and over-refusal on
  held-out benign-edgy prompts;
- capability, capacity and their gap (docs/capability_gap.md, `capability_gap` below).

Data slices (fixed across seeds; seeds vary the training order and sampling): competence items come
from `load_competence(test + dev + train)`: the first `competence_test` are the held-out test, the next
`competence_dev` the search's dev set, the rest the competence *training* examples. Dev conformity uses
harmful / benign-edgy prompts from the training side of the text-hash split that produced no pool pair.
"""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from superalign.errors import UserError
from superalign.experiments.co_optimize.search import DevScore, Direction
from superalign.experiments.common import (
    RATE,
    PoolSettings,
    Progress,
    choose_preset,
    mean_ci,
    pair_pool,
    resume_runs,
    write_metrics,
)
from superalign.records import Chat, Pair, Query, user_chat

FIXED = ("conformity-only", "simultaneous", "alternating")
DIRECTIONS = (  # the search's candidates, first K used: mixture (replay_weight), NLL weight, β, emphasis
    Direction("conformity-lean", replay_weight=0.0, nll_weight=1.0, beta=0.1),
    Direction("competence-lean", replay_weight=0.5, nll_weight=1.0, beta=0.1),
    Direction("close-to-ref", replay_weight=0.2, nll_weight=0.5, beta=0.3),
    Direction("help-benign", replay_weight=0.2, nll_weight=1.0, beta=0.1, emphasis="help-benign"),
)


class CoOptimizeConfig(BaseModel):
    """One preset of the experiment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schedules: tuple[str, ...] = Field((*FIXED, "search"), description="Schedules compared (fixed ones + search).")
    rounds: int = Field(3, ge=1, description="Training rounds after round 0 (the shared start).")
    steps_per_round: int = Field(8, ge=2, description="Optimiser steps per round, every schedule (even).")
    pairs_per_step: int = Field(4, ge=1, description="Preference pairs per step (competence: pairs // 2).")
    micro_batch: int = Field(4, ge=1, description="Pairs per forward/backward.")
    lr: float = Field(5e-4, gt=0, description="LoRA learning rate.")
    beta: float = Field(0.1, gt=0, description="DPO beta (fixed schedules).")
    nll_weight: float = Field(1.0, ge=0, description="RPO NLL weight on chosen (fixed schedules).")
    replay_weight: float = Field(0.2, ge=0, description="Competence loss weight in simultaneous batches.")
    max_len: int = Field(128, ge=16, description="Max tokens of prompt + response in training.")
    seeds: int = Field(3, ge=1, description="Training seeds (data slices are fixed).")
    competence_test: int = Field(300, ge=1, description="Held-out MC items (competence).")
    competence_dev: int = Field(100, ge=1, description="Dev MC items (search scoring).")
    competence_train: int = Field(400, ge=1, description="MC items formatted as chat + answer for training.")
    gap_items: int = Field(60, ge=1, description="Held-out MC items asked in chat for capability / capacity.")
    gap_samples: int = Field(4, ge=1, description="n sampled answers per item (best-of-n capability).")
    gap_temperature: float = Field(0.8, gt=0, description="Temperature of the n samples.")
    answer_tokens: int = Field(24, ge=1, description="Tokens per chat answer to an MC question.")
    asr_prompts: int = Field(0, ge=0, description="Held-out harmful prompts (0 = all of the pool's).")
    benign_prompts: int = Field(0, ge=0, description="Held-out benign-edgy prompts (0 = all of the pool's).")
    safety_tokens: int = Field(40, ge=1, description="Greedy tokens per held-out / dev safety answer.")
    dev_harmful: int = Field(16, ge=1, description="Dev harmful prompts (search conformity).")
    dev_benign: int = Field(16, ge=1, description="Dev benign-edgy prompts (search over-refusal).")
    candidates: int = Field(4, ge=1, le=len(DIRECTIONS), description="Search candidates K per round.")
    rule: Literal["weighted", "maxmin"] = Field("weighted", description="Search scalarisation on the Pareto front.")
    weights: tuple[float, float] = Field((0.5, 0.5), description="(competence, conformity) weights of `weighted`.")
    allow_stay: bool = Field(True, description="The search may keep the start weights when all candidates hurt.")
    pool: PoolSettings = Field(PoolSettings(), description="The shared pair pool (cached).")


PRESETS = {
    "full": CoOptimizeConfig(),
    # 2 rounds x 4 steps, K=2, 100 test items, 16 gap items x (1 greedy + 2 samples), 12 + 12 held-out
    # safety prompts, noisy-labels' quick pair pool (same settings, so the cache is shared).
    "quick": CoOptimizeConfig(
        rounds=2,
        steps_per_round=4,
        seeds=1,
        competence_test=100,
        competence_dev=40,
        competence_train=200,
        gap_items=16,
        gap_samples=2,
        answer_tokens=16,
        asr_prompts=12,
        benign_prompts=12,
        safety_tokens=24,
        dev_harmful=6,
        dev_benign=6,
        candidates=2,
        pool=PoolSettings(harmful_train=24, benign_train=12, harmful_heldout=12, benign_heldout=12, max_new_tokens=32),
    ),
}


@dataclass
class CoData:
    pairs: list[Pair]
    competence_train: list[tuple[Chat, str]]
    test_items: list  # MCItem
    dev_items: list
    heldout_harmful: list[Query]
    heldout_benign: list[Query]
    dev_harmful: list[Query]
    dev_benign: list[Query]


def mc_chat(item: Any) -> Chat:
    """An MC question as the deployed chat sees it (the competence training format, plan.py)."""
    return user_chat(f"{item.question}\nOptions: " + "; ".join(item.options))


def build_data(cfg: CoOptimizeConfig, pool: Any) -> CoData:
    from superalign.data.benign import load_benign_edgy
    from superalign.data.competence import load_competence
    from superalign.data.seeds import load_harmful_seeds
    from superalign.data.split import split_queries

    n_test, n_dev = cfg.competence_test, cfg.competence_dev
    items = load_competence(n_test + n_dev + cfg.competence_train, seed=0)
    train = [(mc_chat(it), it.options[it.answer]) for it in items[n_test + n_dev :]]
    used = {p.query_id for p in pool.train}
    rng = random.Random("co-optimize-dev")
    h_train, _ = split_queries(load_harmful_seeds(), cfg.pool.heldout_fraction)
    e_train, _ = split_queries(load_benign_edgy(), cfg.pool.heldout_fraction)

    def dev(qs: list[Query], n: int) -> list[Query]:
        free = sorted((q for q in qs if q.id not in used), key=lambda q: q.id)
        return rng.sample(free, min(n, len(free)))

    return CoData(
        list(pool.train),
        train,
        items[:n_test],
        items[n_test : n_test + n_dev],
        pool.heldout_harmful[: cfg.asr_prompts or None],
        pool.heldout_benign[: cfg.benign_prompts or None],
        dev(h_train, cfg.dev_harmful),
        dev(e_train, cfg.dev_benign),
    )


# ---- measurements ----------------------------------------------------------------------------------
def answer_correct(text: str, options: tuple[str, ...], answer: int) -> bool:
    """A free-text answer is correct when it names the correct option and no other option (options
    contained in the correct one, e.g. "heat" in "heat energy", do not count against it)."""

    def norm(o: str) -> str:
        return o.strip().strip(".'\" ").lower()  # "a comet." is named by "... is a comet"

    def names(o: str) -> bool:
        return bool(norm(o)) and re.search(r"(?<!\w)" + re.escape(norm(o)) + r"(?!\w)", text.lower()) is not None

    right = options[answer]
    others = [o for i, o in enumerate(options) if i != answer and norm(o) not in norm(right)]
    return names(right) and not any(names(o) for o in others)


def capability_gap(backend: Any, items: list, critic: Any, cfg: CoOptimizeConfig, seed: int) -> dict[str, Any]:
    """capability = mean_i max(LL_i, G_i, S_i1..S_in); capacity = mean_i G_i·(1 − R_i); gap = difference.

    LL_i: the log-likelihood argmax over options is correct (no chat, no way to refuse); G_i: the greedy
    chat answer (what is deployed) is correct; S_ik: sampled chat answer k is correct; R_i: the critic
    judges the greedy answer a refusal. Per item capacity ≤ capability, so 0 ≤ gap ≤ 1.
    """
    from superalign.backends.base import Sampling
    from superalign.critic import JudgeItem, judge
    from superalign.data.competence import mc_prompt
    from superalign.evaluate import bootstrap_ci

    scores = backend.score_options([mc_prompt(it) for it in items], [[" " + o for o in it.options] for it in items])
    ll = [max(range(len(s)), key=s.__getitem__) == it.answer for s, it in zip(scores, items)]
    chats = [mc_chat(it) for it in items]
    greedy = backend.generate(chats, Sampling(cfg.answer_tokens, 0.0))
    n = cfg.gap_samples
    sampled = backend.generate(
        [c for c in chats for _ in range(n)], Sampling(cfg.answer_tokens, cfg.gap_temperature, 50, seed)
    )
    refused = [
        v.refusal
        for v in judge(
            [JudgeItem(f"gap-{i}", c[-1]["content"], t, False) for i, (c, t) in enumerate(zip(chats, greedy))], critic
        )
    ]
    cap, capa = [], []
    for i, it in enumerate(items):
        g = answer_correct(greedy[i], it.options, it.answer)
        s = any(answer_correct(t, it.options, it.answer) for t in sampled[i * n : (i + 1) * n])
        cap.append(float(ll[i] or g or s))
        capa.append(float(g and not refused[i]))
    gap = [a - b for a, b in zip(cap, capa)]

    def m(x: list) -> float:
        return round(sum(x) / len(x), 4)

    return {
        "capability": m(cap),
        "capability_ci": list(bootstrap_ci(cap)),
        "capacity": m(capa),
        "capacity_ci": list(bootstrap_ci(capa)),
        "gap": m(gap),
        "gap_ci": list(bootstrap_ci(gap)),
        "gap_ll_acc": m([float(x) for x in ll]),
        "gap_greedy_acc": m([float(answer_correct(t, it.options, it.answer)) for t, it in zip(greedy, items)]),
        "gap_refusals": m([float(r) for r in refused]),
        "gap_example": greedy[0][:160] if greedy else "",
    }


def safety(backend: Any, harmful: list[Query], benign: list[Query], critic: Any, tokens: int) -> tuple:
    """(SafetyMetrics, responses) from greedy answers judged by `critic`."""
    from superalign.critic import JudgeItem, judge
    from superalign.evaluate import eval_sampling, safety_metrics
    from superalign.records import Response, stable_id

    qs = harmful + benign
    texts = backend.generate([user_chat(q.text) for q in qs], eval_sampling(tokens))
    resp = [Response(stable_id("co", q.id, i), q.id, t, backend.name) for i, (q, t) in enumerate(zip(qs, texts))]
    verdicts = judge([JudgeItem(r.id, q.text, r.text, q.harmful) for q, r in zip(qs, resp)], critic)
    return safety_metrics(qs, resp, verdicts), resp


def evaluate_heldout(backend: Any, data: CoData, critic: Any, cfg: CoOptimizeConfig, seed: int) -> dict[str, Any]:
    from superalign.evaluate import competence

    acc, ci, per_task = competence(backend, data.test_items)
    s, resp = safety(backend, data.heldout_harmful, data.heldout_benign, critic, cfg.safety_tokens)
    return {
        "competence": acc,
        "competence_ci": list(ci),
        "competence_by_task": per_task,
        "conformity": round(1 - s.asr, 4),
        "conformity_ci": [round(1 - s.asr_ci[1], 4), round(1 - s.asr_ci[0], 4)],
        "asr": s.asr,
        "asr_ci": list(s.asr_ci),
        "asr_keyword_bound": s.asr_keyword_bound,
        "over_refusal": s.over_refusal,
        "over_refusal_ci": list(s.over_refusal_ci),
        "balanced_conformity": round(1 - (s.asr + s.over_refusal) / 2, 4),
        "example_harmful_answer": resp[0].text[:160] if resp else "",
        **capability_gap(backend, data.test_items[: cfg.gap_items], critic, cfg, seed),
    }


def dev_score(backend: Any, data: CoData, critic: Any, cfg: CoOptimizeConfig) -> DevScore:
    """Dev competence (MC accuracy) and dev conformity = 1 − (ASR + over-refusal) / 2 (blanket refusal
    does not score: it trades ASR for over-refusal one for one)."""
    from superalign.evaluate import competence

    acc, _, _ = competence(backend, data.dev_items)
    s, _ = safety(backend, data.dev_harmful, data.dev_benign, critic, cfg.safety_tokens)
    return DevScore(acc, round(1 - (s.asr + s.over_refusal) / 2, 4))


# ---- the driver --------------------------------------------------------------------------------------
def _snapshot(backend: Any) -> dict:
    return {k: v.detach().clone() for k, v in backend.model.state_dict().items()}


def _restore(backend: Any, weights: dict) -> None:
    backend.model.load_state_dict(weights)
    backend.model.eval()


def _train_cfg(cfg: CoOptimizeConfig, d: Direction | None = None) -> Any:
    from superalign.config import TrainConfig

    d = d or Direction("fixed", cfg.replay_weight, cfg.nll_weight, cfg.beta)
    return TrainConfig(
        beta=d.beta,
        nll_weight=d.nll_weight,
        replay_weight=d.replay_weight,
        lr=cfg.lr,
        micro_batch=cfg.micro_batch,
        max_len=cfg.max_len,
    )


def _emphasise(pairs: list[Pair], kind: str) -> list[Pair]:
    return [Pair(**{**p.to_dict(), "weight": p.weight * 2}) if kind and p.kind == kind else p for p in pairs]


def _search_step(backend, data, critic, cfg, r: int, seed: int, start: DevScore, progress) -> tuple[list, Any]:
    """One search round; returns (tree nodes, budget spent by all candidates)."""
    from superalign.experiments.co_optimize.schedules import Budget, Phase, competence_per_step, run_phases
    from superalign.experiments.co_optimize.search import search_round

    per = cfg.steps_per_round // cfg.candidates
    spent = [Budget()]
    ref_cache: dict = {}  # every candidate starts from this round's weights: reference log-probs are shared

    def train(d: Direction) -> int:
        c = competence_per_step(cfg.pairs_per_step) if d.replay_weight > 0 else 0
        ph = Phase("mixed" if c else "conformity", per, cfg.pairs_per_step, c)
        logs = run_phases(
            backend,
            [ph],
            _emphasise(data.pairs, d.emphasis),
            data.competence_train,
            _train_cfg(cfg, d),
            seed * 1000 + r,
            ref_cache=ref_cache,
        )
        spent[0] = spent[0] + logs[0].budget
        return logs[0].budget.steps

    nodes = search_round(
        r,
        DIRECTIONS[: cfg.candidates],
        start,
        lambda: _snapshot(backend),
        lambda w: _restore(backend, w),
        train,
        lambda: dev_score(backend, data, critic, cfg),
        cfg.rule,
        cfg.weights,
        cfg.allow_stay,
    )
    return nodes, spent[0]


def _run_schedule(
    name: str, backend, data, critic, cfg, seed: int, base_eval: dict, start_dev, tree: Path, progress
) -> list[dict]:
    from superalign.experiments.co_optimize.schedules import Budget, plan_round, run_phases
    from superalign.experiments.co_optimize.search import append_tree

    rows = [
        {
            "schedule": name,
            "seed": seed,
            "round": 0,
            "steps": 0,
            "pairs_seen": 0,
            "competence_seen": 0,
            "train_seconds": 0.0,
            **base_eval,
        }
    ]
    total, dev = Budget(), start_dev
    for r in range(1, cfg.rounds + 1):
        progress(f"{name} (seed {seed})", r - 1, cfg.rounds)
        t0 = time.time()
        extra: dict[str, Any] = {}
        if name == "search":
            nodes, spent = _search_step(backend, data, critic, cfg, r, seed, dev, progress)
            append_tree(tree, nodes, seed=seed)
            pick = next(n for n in nodes if n.chosen)
            dev = DevScore(pick.competence, pick.conformity)
            extra = {"chosen": pick.name, "candidates": [n.to_dict() for n in nodes]}
        else:
            logs = run_phases(
                backend,
                plan_round(name, cfg.steps_per_round, cfg.pairs_per_step),
                data.pairs,
                data.competence_train,
                _train_cfg(cfg),
                seed * 1000 + r,
            )
            spent = sum((lg.budget for lg in logs), Budget())
            extra = {"losses": {lg.kind: lg.losses for lg in logs}}
        total = total + spent
        seconds = round(time.time() - t0, 1)
        ev = evaluate_heldout(backend, data, critic, cfg, seed * 1000 + r)
        rows.append(
            {
                "schedule": name,
                "seed": seed,
                "round": r,
                "steps": total.steps,
                "pairs_seen": total.pairs_seen,
                "competence_seen": total.competence_seen,
                "train_seconds": seconds,
                **ev,
                **extra,
            }
        )
    progress(f"{name} (seed {seed})", cfg.rounds, cfg.rounds)
    return rows


def run(
    out: Path,
    quick: bool,
    seeds: int | None,
    learner: str,
    progress: Progress,
    config: CoOptimizeConfig | None = None,
    resume: bool = False,
) -> dict:
    """Run every schedule × seed from the same start, write metrics.json, results.md and plots.
    `resume`: keep the (schedule, seed) runs an earlier run in `out` finished (see resume_runs)."""
    from superalign.backends import load_backend, require_trainable
    from superalign.config import CriticConfig
    from superalign.critic import build_critic
    from superalign.experiments.co_optimize.schedules import SCHEDULES

    t0 = time.time()
    preset, cfg = choose_preset(PRESETS, quick, config, seeds, learner)
    bad = [s for s in cfg.schedules if s not in (*SCHEDULES, "search")]
    if bad:
        raise UserError(f"co-optimize: unknown schedule(s) {bad}; choose from {', '.join((*SCHEDULES, 'search'))}")
    if cfg.steps_per_round % 2 or cfg.steps_per_round % cfg.candidates:
        raise UserError(
            f"co-optimize: steps_per_round={cfg.steps_per_round} must be even and divisible by "
            f"candidates={cfg.candidates} (equal budgets); change one of them"
        )
    old, old_seconds = resume_runs(out, "co-optimize", cfg, resume)  # before loading anything: fail fast
    backend = require_trainable(
        load_backend(learner),
        f"--learner {learner}: co-optimize trains weights; give embedded, tiny or an HF model dir",
    )
    pool = pair_pool(cfg.pool, progress, backend=backend)
    if len(pool.train) < 2:
        raise UserError(f"the pair pool has {len(pool.train)} training pairs; raise PoolSettings prompt counts")
    data = build_data(cfg, pool)
    critic = build_critic(CriticConfig(kind=cfg.pool.critic))
    start = _snapshot(backend)
    done = {(r["schedule"], r["seed"]) for r in old if r["round"] == cfg.rounds and r["seed"] < cfg.seeds}
    rows = [r for r in old if (r["schedule"], r["seed"]) in done]
    tree = out / "search_tree.jsonl"
    _keep_tree(tree, {seed for name, seed in done if name == "search"})
    todo = [(seed, name) for seed in range(cfg.seeds) for name in cfg.schedules if (name, seed) not in done]
    base_eval, start_dev = _start_scores(backend, data, critic, cfg, rows, todo, progress)
    for seed, name in todo:
        _restore(backend, start)
        rows += _run_schedule(name, backend, data, critic, cfg, seed, base_eval, start_dev, tree, progress)
        write_metrics(out, _metrics(cfg, preset, pool, rows, old_seconds + time.time() - t0, done=False))
    order = {n: i for i, n in enumerate(cfg.schedules)}
    rows.sort(key=lambda r: (r["seed"], order[r["schedule"]], r["round"]))
    metrics = _metrics(cfg, preset, pool, rows, old_seconds + time.time() - t0, done=True)
    write_metrics(out, metrics)
    _write_outputs(out, cfg, metrics, rows, tree)
    return metrics


_ROW_KEYS = ("schedule", "seed", "round", "steps", "pairs_seen", "competence_seen", "train_seconds")


def _start_scores(backend, data, critic, cfg, rows: list[dict], todo: list, progress) -> tuple[dict, Any]:
    """Held-out scores of the shared start (round 0) and its dev score for the search. A resumed run
    takes the held-out ones from a kept round-0 row; nothing is measured when nothing is left to run."""
    kept = next((r for r in rows if r["round"] == 0), None)
    if kept is not None:
        base_eval = {k: v for k, v in kept.items() if k not in _ROW_KEYS}
    elif todo:
        progress("round 0 (shared start)", 0, 1)
        base_eval = evaluate_heldout(backend, data, critic, cfg, 0)
    else:
        base_eval = {}
    start_dev = dev_score(backend, data, critic, cfg) if any(n == "search" for _, n in todo) else None
    return base_eval, start_dev


def _keep_tree(tree: Path, seeds: set[int]) -> None:
    """Drop the search-tree lines of every seed not in `seeds` (a fresh run keeps none)."""
    from superalign.store.jsonl import atomic_write_text

    if not tree.is_file():
        return
    lines = [
        x for x in tree.read_text(encoding="utf-8").splitlines() if x.strip() and json.loads(x).get("seed") in seeds
    ]
    if lines:
        atomic_write_text(tree, "\n".join(lines) + "\n")
    else:
        tree.unlink()


METRICS = ("competence", "conformity", "over_refusal", "balanced_conformity", "capability", "capacity", "gap")


def _score(row: dict, cfg: CoOptimizeConfig) -> float:
    """The search's scalarisation applied to held-out (competence, balanced conformity)."""
    pair = (row["competence"], row["balanced_conformity"])
    return sum(w * x for w, x in zip(cfg.weights, pair)) if cfg.rule == "weighted" else min(pair)


def _metrics(cfg, preset: str, pool, rows: list[dict], seconds: float, done: bool) -> dict:
    summary: dict[str, dict] = {}
    for name in cfg.schedules:
        for r in range(cfg.rounds + 1):
            sel = [x for x in rows if x["schedule"] == name and x["round"] == r]
            if sel:
                summary.setdefault(name, {})[str(r)] = {
                    m: mean_ci([x[m] for x in sel], bounds=(-1.0, 1.0) if m == "gap" else RATE).to_dict()
                    for m in METRICS
                }
    verdict = None
    final = {n: [x for x in rows if x["schedule"] == n and x["round"] == cfg.rounds] for n in cfg.schedules}
    if done and "search" in cfg.schedules and any(n in FIXED for n in cfg.schedules):
        mean = {n: sum(_score(x, cfg) for x in v) / len(v) for n, v in final.items() if v}
        best = max((n for n in mean if n in FIXED), key=mean.__getitem__)
        verdict = {
            "best_fixed": best,
            "best_fixed_score": round(mean[best], 4),
            "search_score": round(mean["search"], 4),
            "search_beats_best_fixed": mean["search"] > mean[best],
            "score": f"{cfg.rule} {cfg.weights} of held-out (competence, balanced conformity), final round",
        }
    return {
        "experiment": "co-optimize",
        "preset": preset,
        "complete": done,
        "config": cfg.model_dump(mode="json"),
        "pool": pool.stats,
        "seconds": round(seconds, 1),
        "summary": summary,
        "search_vs_fixed": verdict,
        "runs": rows,
    }


def _write_outputs(out: Path, cfg: CoOptimizeConfig, metrics: dict, rows: list[dict], tree: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from superalign.experiments.co_optimize.search import plot_tree, read_tree
    from superalign.experiments.common import markdown_table, write_results

    s = metrics["summary"]
    rounds = range(cfg.rounds + 1)
    fig, axes = plt.subplots(1, len(rounds), figsize=(3.6 * len(rounds), 3.6), dpi=120, squeeze=False, sharey=True)
    for ax, r in zip(axes[0], rounds):  # Pareto plot per round: one marker per schedule, bootstrap/t CIs
        for k, name in enumerate(cfg.schedules):
            sel = [x for x in rows if x["schedule"] == name and x["round"] == r]
            x, y = sel[0]["competence"], sel[0]["conformity"]
            xe = [[x - sel[0]["competence_ci"][0]], [sel[0]["competence_ci"][1] - x]]
            ye = [[sel[0]["asr_ci"][1] - sel[0]["asr"]], [sel[0]["asr"] - sel[0]["asr_ci"][0]]]
            ax.errorbar(x, y, xerr=xe, yerr=ye, fmt="osD^v"[k % 5], capsize=2, label=name, alpha=0.8)
        ax.set_title(f"round {r}" + (" (shared start)" if r == 0 else ""), fontsize=9)
        ax.set_xlabel("held-out competence (MC acc.)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out conformity (1 − ASR)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "pareto.png")
    plt.close(fig)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), dpi=120)
    for ax, m in zip(axes, ("capability", "capacity", "gap")):
        for name in cfg.schedules:
            ax.plot(list(rounds), [s[name][str(r)][m]["mean"] for r in rounds], marker="o", label=name)
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "capability_gap.png")
    plt.close(fig)
    if tree.is_file() and tree.stat().st_size:
        plot_tree(read_tree(tree, seed=0), out / "search_tree.png", "search over learning directions (seed 0)")
    table = []
    for name in cfg.schedules:
        for r in rounds:
            x = [row for row in rows if row["schedule"] == name and row["round"] == r]
            a = s[name][str(r)]

            def cell(m: str, a: dict[str, Any] = a, x: list[dict[str, Any]] = x) -> str:
                ci = a[m]["ci"] if a[m]["n"] > 1 else (x[0].get(f"{m}_ci") if len(x) == 1 else None)
                return f"{a[m]['mean']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")

            table.append(
                [
                    name,
                    r,
                    cell("competence"),
                    cell("conformity"),
                    cell("over_refusal"),
                    cell("capability"),
                    cell("capacity"),
                    cell("gap"),
                    x[0]["steps"],
                    x[0]["pairs_seen"],
                    x[0]["competence_seen"],
                    x[0].get("chosen", ""),
                ]
            )
    heads = [
        "schedule",
        "round",
        "competence",
        "1−ASR",
        "over-refusal",
        "capability",
        "capacity",
        "gap",
        "steps",
        "pairs seen",
        "competence seen",
        "search chose",
    ]
    v = metrics["search_vs_fixed"]
    verdict = (
        (
            f"Search vs best fixed schedule ({v['score']}): search {v['search_score']:.3f}, best fixed "
            f"`{v['best_fixed']}` {v['best_fixed_score']:.3f} → search "
            f"{'beats' if v['search_beats_best_fixed'] else 'does not beat'} it "
            f"(seeds={cfg.seeds}; {'item-level CIs' if cfg.seeds == 1 else '95 % t-CIs over seeds'} above)."
        )
        if v
        else ""
    )
    notes = (
        f"Preset `{metrics['preset']}`, {cfg.seeds} seed(s), {metrics['seconds']:.0f} s. CIs: 95 % bootstrap "
        "over items with 1 seed, t over seeds with more. "
        "Budgets are cumulative; search counts every candidate's steps. "
        "Definitions: docs/capability_gap.md."
    )
    write_results(out, "co-optimize: competence × conformity", [notes, markdown_table(heads, table), verdict])
