"""`superalign experiment self-enhance`: the learner critiques, revises and rewards itself, then retrains
(Self-Refine / Self-Rewarding LM / Constitutional AI style), against the critic-driven loop at the same compute.

Per seed, two arms start from the same learner M_0 and run `iterations` steps each. One step of an arm
with model M_t (self_feedback.py):
  1. M_t samples `samples` answers to each training prompt (harmful seeds + benign-edgy, fixed);
  2. M_t critiques each answer against the constitution's rubric and revises it (CAI critique -> revision);
  3. every candidate (samples + revisions) gets a reward, and per prompt best ≻ worst becomes a DPO pair:
     - arm `self`:   the self-reward, M_t as LLM judge of its own candidates (letter log-probs);
     - arm `critic`: the external critic (default ensemble), same reward scale (self_feedback.critic_rewards);
     in both arms a degenerate candidate (empty, too short or repetitive) is left out (`degenerate`: drop);
  4. DPO + NLL on LoRA with competence replay (the demo's earlier recipe) for `steps` optimiser steps -> M_{t+1}.
Both arms make the same generations, the same number of DPO steps of the same batch size (pair counts
may differ: reported), and at t = 0 they share the very same candidates, so their pairs differ only by
who labelled them. Every M_t is measured on held-out sets that never enter training: ASR and
over-refusal (greedy answers judged by the external critic, bootstrap CIs over prompts), competence
(MC log-likelihood on sciq + ARC-Easy), and — on the step's training candidates — the agreement of M_t's
self-judgement with the external critic (accuracy and Cohen's kappa on the unsafe bit of answers to
harmful prompts and on the refusal bit, and the share of pairs the other signal orders the same way).
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from superalign.errors import UserError
from superalign.experiments.common import (
    KAPPA,
    RATE,
    MeanCI,
    Progress,
    choose_preset,
    markdown_table,
    mean_ci,
    plot_with_ci,
    resume_runs,
    write_metrics,
    write_results,
)
from superalign.experiments.self_enhance import self_feedback as sf
from superalign.experiments.self_enhance.self_feedback import StepData, arm_rewards, judge_agreement
from superalign.records import Chat, Query, Response, stable_id, user_chat

ARMS = ("self", "critic")


class SelfEnhanceConfig(BaseModel):
    """One preset of the experiment (training defaults: the demo's earlier NLL-replay recipe)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    iterations: int = Field(3, ge=1, description="Self-enhancement steps per arm (M_0 -> M_iterations).")
    seeds: int = Field(3, ge=1, description="Seeds: sampling of candidates and training order (data fixed).")
    harmful_prompts: int = Field(32, ge=0, description="Harmful training prompts (train side of the text-hash split).")
    benign_prompts: int = Field(16, ge=0, description="Benign-edgy training prompts (train side).")
    samples: int = Field(2, ge=1, description="Sampled answers per training prompt (each is critiqued and revised).")
    max_new_tokens: int = Field(48, ge=1, description="Tokens per sampled answer and per revision.")
    critique_tokens: int = Field(32, ge=1, description="Tokens per self-critique.")
    temperature: float = Field(0.8, gt=0, description="Sampling temperature (answers, critiques, revisions).")
    top_k: int = Field(50, ge=1, description="Top-k before sampling.")
    min_gap: float = Field(0.05, ge=0, lt=1, description="A prompt gives a pair only if best - worst reward > this.")
    degenerate: sf.DegenerateMode = Field(
        "drop",
        description=(
            "Both arms, a degenerate candidate (empty, too short or repetitive; critic/rules.py): drop = left out of "
            "the pairs; penalise = reward 0 (never chosen, often rejected); keep = scored like any other (the critic "
            "arm's reward 1 - P(unsafe) then prefers empty answers)."
        ),
    )
    self_judge_both_arms: bool = Field(True, description="Also measure the critic arm's self-judgement (diagnostic).")
    steps: int = Field(8, ge=1, description="DPO optimiser steps per iteration, both arms (pairs are cycled).")
    batch_size: int = Field(8, ge=1, description="Pairs per optimiser step.")
    micro_batch: int = Field(4, ge=1, description="Pairs per forward/backward.")
    lr: float = Field(6e-4, gt=0, description="LoRA learning rate.")
    beta: float = Field(0.1, gt=0, description="DPO beta.")
    nll_weight: float = Field(1.0, ge=0, description="RPO NLL weight on chosen.")
    max_len: int = Field(128, ge=16, description="Max tokens of prompt + response in training.")
    replay_examples: int = Field(16, ge=0, description="Competence replay examples (MC chats, disjoint from eval).")
    replay_weight: float = Field(0.1, ge=0, description="Weight of the replay NLL.")
    heldout_harmful: int = Field(40, ge=1, description="Held-out harmful prompts (ASR).")
    heldout_benign: int = Field(40, ge=1, description="Held-out benign-edgy prompts (over-refusal).")
    eval_tokens: int = Field(40, ge=1, description="Greedy tokens per held-out answer.")
    competence_items: int = Field(300, ge=1, description="Held-out MC items (sciq + ARC-Easy).")
    heldout_fraction: float = Field(
        0.3, gt=0, le=0.5, description="Share of prompts held out, by near-duplicate group of the text (data/split.py)."
    )
    judge_dimensions: tuple[str, ...] = Field(
        ("harmlessness", "helpfulness"),
        description=("Constitution dimensions in the self-judge's rubric (~330-token prompts; all four: ~620)."),
    )
    critic: Literal["rules", "classifier", "ensemble"] = Field(
        "ensemble", description="External critic: labels of the critic arm, held-out ASR / over-refusal, agreement."
    )


PRESETS = {
    "full": SelfEnhanceConfig(),
    # 8 + 4 prompts x 2 samples (+ 24 critiques + 24 revisions) per step, self-judging in the self arm only,
    # 3 steps x 4 DPO steps per arm, 16 + 16 held-out prompts x 32 tokens, 60 MC items, one seed. Scoring
    # the self-judge prompts (~350 tokens per candidate) runs at ~140 tok/s with one fp32 thread and
    # dominated: 16 + 8 prompts with both arms judging did not finish one step in 13 min on the shared CPU.
    "quick": SelfEnhanceConfig(
        seeds=1,
        harmful_prompts=8,
        benign_prompts=4,
        max_new_tokens=40,
        critique_tokens=24,
        self_judge_both_arms=False,
        steps=4,
        heldout_harmful=16,
        heldout_benign=16,
        eval_tokens=32,
        competence_items=60,
    ),
}


@dataclass
class SelfEnhanceData:
    train: list[Query]
    heldout_harmful: list[Query]
    heldout_benign: list[Query]
    competence_items: list  # MCItem
    replay: list[tuple[Chat, str]]


def build_data(cfg: SelfEnhanceConfig) -> SelfEnhanceData:
    """Fixed prompt sets (same for every seed and arm); held-out prompts never enter training."""
    from superalign.data.benign import load_benign_edgy
    from superalign.data.competence import load_competence
    from superalign.data.seeds import load_harmful_seeds
    from superalign.data.split import split_queries

    rng = random.Random("self-enhance-data")
    h_train, h_held = split_queries(load_harmful_seeds(), cfg.heldout_fraction)
    e_train, e_held = split_queries(load_benign_edgy(), cfg.heldout_fraction)

    def pick(qs: list[Query], n: int) -> list[Query]:
        qs = sorted(qs, key=lambda q: q.id)
        return rng.sample(qs, n) if n < len(qs) else qs

    items = load_competence(cfg.competence_items + cfg.replay_examples, seed=0)
    replay = [
        (user_chat(f"{it.question}\nOptions: " + "; ".join(it.options)), it.options[it.answer])
        for it in items[cfg.competence_items :]
    ]
    return SelfEnhanceData(
        pick(h_train, cfg.harmful_prompts) + pick(e_train, cfg.benign_prompts),
        pick(h_held, cfg.heldout_harmful),
        pick(e_held, cfg.heldout_benign),
        items[: cfg.competence_items],
        replay,
    )


def train_config(cfg: SelfEnhanceConfig, n_pairs: int) -> Any:
    """The NLL-replay TrainConfig with exactly `cfg.steps` optimiser steps (epochs cycle the pairs)."""
    from superalign.config import TrainConfig

    epochs = max(1, math.ceil(cfg.steps / max(1, math.ceil(n_pairs / cfg.batch_size))))
    return TrainConfig(
        samples_per_query=cfg.samples,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        beta=cfg.beta,
        lr=cfg.lr,
        epochs=epochs,
        batch_size=cfg.batch_size,
        micro_batch=cfg.micro_batch,
        max_len=cfg.max_len,
        nll_weight=cfg.nll_weight,
        competence_replay=cfg.replay_examples,
        replay_weight=cfg.replay_weight,
        max_steps=cfg.steps,
    )


# ---- one step: candidates, judgements, pairs ---------------------------------------------------------
def collect(
    backend: Any,
    data: SelfEnhanceData,
    cfg: SelfEnhanceConfig,
    seed: int,
    t: int,
    critic: Any,
    policy: Any,
    self_policy: Any,
    self_judge: bool,
) -> StepData:
    """M_t's candidates (samples + self-revisions), its self-scores (if `self_judge`) and the critic's verdicts."""
    from superalign.backends import Sampling
    from superalign.critic import JudgeItem, judge
    from superalign.critic.rules import rule_signals
    from superalign.learner.respond import respond

    secs: dict[str, float] = {}
    t0 = time.time()
    base = 10_000 * seed + 100 * t
    answer = Sampling(cfg.max_new_tokens, cfg.temperature, cfg.top_k, base)
    samples = respond(data.train, backend, answer, cfg.samples, t)
    queries = {q.id: q for q in data.train}
    critiques = sf.self_critique(
        queries, samples, backend, Sampling(cfg.critique_tokens, cfg.temperature, cfg.top_k, base + 1), policy
    )
    revisions = sf.self_revise(
        queries,
        samples,
        critiques,
        backend,
        Sampling(cfg.max_new_tokens, cfg.temperature, cfg.top_k, base + 2),
        policy,
        t,
    )
    secs["generate"] = round(time.time() - t0, 1)
    cands = samples + revisions
    items = [JudgeItem(r.id, queries[r.query_id].text, r.text, queries[r.query_id].harmful) for r in cands]
    t0 = time.time()
    scores = sf.self_rewards(backend, items, self_policy) if self_judge else None
    secs["self_judge"] = round(time.time() - t0, 1)
    t0 = time.time()
    verdicts = judge(items, critic)
    secs["critic"] = round(time.time() - t0, 1)
    degenerate = [rule_signals(queries[r.query_id].text, r.text).degenerate for r in cands]
    return StepData(cands, [bool(it.harmful) for it in items], scores, verdicts, 3 * len(samples), secs, degenerate)


def evaluate(
    backend: Any, data: SelfEnhanceData, critic: Any, cfg: SelfEnhanceConfig, answers: Path | None = None
) -> dict[str, Any]:
    """Held-out ASR / over-refusal (greedy, external critic) and competence, with bootstrap CIs over items.
    `answers`: a JSONL file for the held-out answers with their verdicts (to read what changed)."""
    from superalign.critic import JudgeItem, judge
    from superalign.critic.rules import rule_signals
    from superalign.evaluate import competence, eval_sampling, keyword_refusal, safety_metrics
    from superalign.store.jsonl import write_jsonl

    t0 = time.time()
    qs = data.heldout_harmful + data.heldout_benign
    texts = backend.generate([user_chat(q.text) for q in qs], eval_sampling(cfg.eval_tokens))
    resp = [
        Response(id=stable_id("se-eval", q.id, i), query_id=q.id, text=t, model=backend.name)
        for i, (q, t) in enumerate(zip(qs, texts))
    ]
    verdicts = judge([JudgeItem(r.id, q.text, r.text, q.harmful) for r, q in zip(resp, qs)], critic)
    sm = safety_metrics(qs, resp, verdicts)
    if answers is not None:
        answers.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(
            answers,
            [
                {
                    "prompt": q.text,
                    "harmful": q.harmful,
                    "response": r.text,
                    "unsafe": v.unsafe,
                    "refusal": v.refusal,
                    "keyword_refusal": keyword_refusal(r.text),
                    "degenerate": rule_signals(q.text, r.text).degenerate,
                    "explanation": v.explanation,
                }
                for q, r, v in zip(qs, resp, verdicts)
            ],
        )
    acc, acc_ci, per_task = competence(backend, data.competence_items)
    return {
        "asr": sm.asr,
        "asr_ci": list(sm.asr_ci),
        "asr_keyword_bound": sm.asr_keyword_bound,
        "over_refusal": sm.over_refusal,
        "over_refusal_ci": list(sm.over_refusal_ci),
        "degenerate": sm.degenerate,
        "competence": acc,
        "competence_ci": list(acc_ci),
        "competence_per_task": per_task,
        "eval_seconds": round(time.time() - t0, 1),
    }


def write_pairs(path: Path, pairs: list, step: StepData, arm: str, mode: sf.DegenerateMode) -> None:
    """The step's pairs with the arm's rewards of chosen and rejected (after the `degenerate` mode), both
    raw signals and whether each side is degenerate (JSONL, for inspection)."""
    from superalign.store.jsonl import atomic_write_text

    own = sf.pair_rewards(pairs, *sf.pair_candidates(step, arm_rewards(step, arm), mode))
    crit = sf.pair_rewards(pairs, step.candidates, sf.critic_rewards(step.verdicts, step.harmful))
    selfr = (
        sf.pair_rewards(pairs, step.candidates, [s.reward for s in step.self_scores])
        if step.self_scores is not None
        else [(None, None)] * len(pairs)
    )
    bad = sf.pair_rewards(pairs, step.candidates, step.degenerate) if step.degenerate else [(None, None)] * len(pairs)
    rows = [
        {
            **p.to_dict(),
            "arm": arm,
            "chosen_reward": o[0],
            "rejected_reward": o[1],
            "critic_rewards": list(c),
            "self_rewards": list(s),
            "chosen_degenerate": d[0],
            "rejected_degenerate": d[1],
        }
        for p, o, c, s, d in zip(pairs, own, crit, selfr, bad)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


# ---- the experiment --------------------------------------------------------------------------------
def run(
    out: Path,
    quick: bool,
    seeds: int | None,
    learner: str,
    progress: Progress,
    config: SelfEnhanceConfig | None = None,
    backend: Any = None,
    resume: bool = False,
) -> dict:
    """Both arms x `iterations` x seeds; writes metrics.json, results.md, pairs/ and answers/ JSONL, four plots.
    `resume`: keep the seeds an earlier run in `out` finished (see common.resume_runs) and run the others."""
    from superalign.backends import load_backend, require_trainable
    from superalign.config import CriticConfig
    from superalign.critic import build_critic, load_policy
    from superalign.learner.update import update_learner

    t_start = time.time()
    preset, cfg = choose_preset(PRESETS, quick, config, seeds)
    old, old_seconds = resume_runs(out, "self-enhance", cfg, resume)  # before loading anything: fail fast
    t_start -= old_seconds  # `minutes` counts the resumed run's time too
    last = {(a, cfg.iterations) for a in ARMS}
    finished = {s for s in range(cfg.seeds) if last <= {(r["arm"], r["t"]) for r in old if r["seed"] == s}}
    backend = require_trainable(
        backend if backend is not None else load_backend(learner),
        f"--learner {learner}: self-enhance trains weights and scores its own answers; give "
        "embedded, tiny or an HF model dir",
    )
    data = build_data(cfg)
    if not data.train:
        raise UserError("self-enhance: no training prompts; set harmful_prompts / benign_prompts >= 1")
    critic, policy = build_critic(CriticConfig(kind=cfg.critic)), load_policy()
    self_policy = sf.judge_policy(policy, cfg.judge_dimensions)
    base = copy.deepcopy(backend.model)
    backend.model = copy.deepcopy(base)
    progress("self-enhance: evaluate M_0", 0, 1)
    # greedy answers: M_0's evaluation is the same for every seed and arm
    base_eval = evaluate(backend, data, critic, cfg, out / "answers" / "t0.jsonl")
    head = {
        "experiment": "self-enhance",
        "preset": preset,
        "learner": learner,
        "critic": critic.name,
        "config": cfg.model_dump(mode="json"),
        "data": {
            "train_harmful": sum(bool(q.harmful) for q in data.train),
            "train_benign": sum(not q.harmful for q in data.train),
            "heldout_harmful": len(data.heldout_harmful),
            "heldout_benign": len(data.heldout_benign),
            "competence_items": len(data.competence_items),
            "replay": len(data.replay),
        },
    }
    rows = [r for r in old if r["seed"] in finished]
    total, done = cfg.seeds * cfg.iterations * len(ARMS), len(finished) * cfg.iterations * len(ARMS)
    for seed in range(cfg.seeds):
        if seed in finished:
            continue
        models = {arm: copy.deepcopy(base) for arm in ARMS}
        cur = {arm: {"seed": seed, "arm": arm, "t": 0, **base_eval} for arm in ARMS}
        shared: StepData | None = None
        self_pairs: list = []
        for t in range(cfg.iterations):
            for arm in ARMS:
                progress("self-enhance steps (seed x iteration x arm)", done, total)
                backend.model = models[arm]
                if t == 0 and shared is not None:  # same M_0, same sampling seeds: the same candidates
                    step = shared
                else:
                    step = collect(
                        backend,
                        data,
                        cfg,
                        seed,
                        t,
                        critic,
                        policy,
                        self_policy,
                        self_judge=arm == "self" or cfg.self_judge_both_arms,
                    )
                    shared = step if t == 0 else shared
                cands, rewards = sf.pair_candidates(step, arm_rewards(step, arm), cfg.degenerate)
                pairs = sf.reward_pairs(data.train, cands, rewards, arm, cfg.min_gap)
                write_pairs(out / "pairs" / f"seed{seed}-{arm}-t{t}.jsonl", pairs, step, arm, cfg.degenerate)
                bad = sf.pair_rewards(pairs, step.candidates, step.degenerate)
                row = cur[arm]
                row.update(
                    {
                        "pairs": len(pairs),
                        "pairs_refuse_harmful": sum(p.kind == "refuse-harmful" for p in pairs),
                        "pairs_help_benign": sum(p.kind == "help-benign" for p in pairs),
                        "candidates_degenerate": round(sum(step.degenerate) / len(step.degenerate), 4),
                        "pairs_chosen_degenerate": sum(c for c, _ in bad),
                        "pairs_rejected_degenerate": sum(r for _, r in bad),
                        **judge_agreement(step, pairs, arm),
                    }
                )
                if t == 0 and arm == "self":
                    self_pairs = pairs
                if t == 0 and arm == "critic":  # same candidates: how often the two labellings pick the same pair
                    mine = {(p.query_id, p.chosen, p.rejected) for p in pairs}
                    row["pairs_same_as_self_arm"] = sum((p.query_id, p.chosen, p.rejected) in mine for p in self_pairs)
                    row["pairs_reversed_vs_self_arm"] = sum(
                        (p.query_id, p.rejected, p.chosen) in mine for p in self_pairs
                    )
                t0 = time.time()
                _, stats = update_learner(
                    backend,
                    pairs,
                    train_config(cfg, len(pairs)),
                    seed=seed,
                    replay=data.replay,
                    progress=lambda k, n, loss: progress("train (current step)", k, n),
                )
                models[arm] = backend.model
                n_items = len(step.candidates)
                row.update(
                    {
                        "train_steps": stats.steps,
                        "train_loss_first": stats.first_loss,
                        "train_loss_last": stats.last_loss,
                        "generations": step.generations,
                        "label_judge_calls": n_items,
                        "self_judge_calls": n_items if step.self_scores else 0,
                        "critic_calls": n_items,
                        "seconds": {**step.seconds, "train": round(time.time() - t0, 1)},
                    }
                )
                rows.append(row)
                answers = out / "answers" / f"seed{seed}-{arm}-t{t + 1}.jsonl"
                cur[arm] = {"seed": seed, "arm": arm, "t": t + 1, **evaluate(backend, data, critic, cfg, answers)}
                done += 1
                write_outputs(
                    out,
                    {
                        **head,
                        "complete": False,
                        "base": base_eval,
                        "runs": rows + list(cur.values()),
                        "minutes": round((time.time() - t_start) / 60, 2),
                    },
                    cfg,
                    plots=False,
                )
        rows += [cur[a] for a in ARMS]
    progress("self-enhance steps (seed x iteration x arm)", total, total)
    backend.model = base
    rows.sort(key=lambda r: r["seed"])  # stable: a seed's rows keep their order
    metrics = {
        **head,
        "complete": True,
        "base": base_eval,
        "runs": rows,
        "minutes": round((time.time() - t_start) / 60, 2),
    }
    write_outputs(out, metrics, cfg)
    return metrics


# ---- summaries and outputs -------------------------------------------------------------------------
_BOUNDS = {
    "pairs": (0.0, float("inf")),
    "pairs_chosen_degenerate": (0.0, float("inf")),
    "unsafe_kappa": KAPPA,
}  # every other summary key is a rate
SUMMARY_KEYS = (
    "asr",
    "asr_keyword_bound",
    "over_refusal",
    "degenerate",
    "competence",
    "pairs",
    "pairs_chosen_degenerate",
    "candidates_degenerate",
    "unsafe_accuracy",
    "unsafe_kappa",
    "refusal_accuracy",
    "pair_agreement",
)


def summarise(runs: list[dict], cfg: SelfEnhanceConfig) -> dict[str, dict[str, dict[str, MeanCI]]]:
    """{arm: {t: {metric: mean [95 % t-CI over seeds]}}}; with one seed ASR / over-refusal / competence
    carry the bootstrap CI over held-out items instead (method 'bootstrap-items')."""
    out: dict[str, dict[str, dict[str, MeanCI]]] = {}
    for arm in ARMS:
        out[arm] = {}
        for t in range(cfg.iterations + 1):
            rs = [r for r in runs if r["arm"] == arm and r["t"] == t]
            cell = {
                k: mean_ci([r[k] for r in rs if r.get(k) is not None], bounds=_BOUNDS.get(k, RATE))
                for k in SUMMARY_KEYS
            }
            for k in ("asr", "over_refusal", "competence"):
                if cell[k].n == 1 and rs[0].get(f"{k}_ci"):
                    lo, hi = rs[0][f"{k}_ci"]
                    cell[k] = MeanCI(cell[k].mean, lo, hi, 1, "bootstrap-items")
            out[arm][str(t)] = cell
    return out


def compute_totals(runs: list[dict]) -> dict[str, dict[str, float]]:
    """Per arm, summed over iterations and averaged over seeds: generations, judge calls, steps, seconds."""
    out = {}
    for arm in ARMS:
        rs = [r for r in runs if r["arm"] == arm and "train_steps" in r]
        n_seeds = max(1, len({r["seed"] for r in rs}))
        counts = ("generations", "label_judge_calls", "self_judge_calls", "critic_calls", "train_steps")
        tot: dict[str, float] = {k: sum(r[k] for r in rs) / n_seeds for k in counts}
        for stage in ("generate", "self_judge", "critic", "train"):
            tot[f"seconds_{stage}"] = round(sum(r["seconds"].get(stage, 0.0) for r in rs) / n_seeds, 1)
        tot["seconds_eval"] = round(
            sum(r.get("eval_seconds", 0.0) for r in runs if r["arm"] == arm and r["t"] > 0) / n_seeds, 1
        )
        out[arm] = tot
    return out


def write_outputs(out: Path, metrics: dict, cfg: SelfEnhanceConfig, plots: bool = True) -> None:
    """metrics.json (with summary and compute), results.md and (when `plots`) four PNGs."""
    runs = metrics["runs"]
    summary = summarise(runs, cfg)
    metrics["summary"], metrics["compute"] = summary, compute_totals(runs)
    ts = list(range(cfg.iterations + 1))
    curves = (
        ("asr", "held-out ASR"),
        ("over_refusal", "over-refusal"),
        ("degenerate", "degenerate answers"),
        ("competence", "competence"),
    )
    for key, label in curves if plots else ():
        plot_with_ci(
            out / f"{key}_vs_iteration.png",
            ts,
            {a: [summary[a][str(t)][key] for t in ts] for a in ARMS},
            "iteration t (model M_t)",
            label,
            f"self-enhance: {label} (95% CI)",
        )
    if plots:
        judged = ts[:-1]
        series = {
            f"{a}: {k.replace('_', ' ')}": [summary[a][str(t)][k] for t in judged]
            for a in ARMS
            for k in ("unsafe_accuracy", "unsafe_kappa", "pair_agreement")
            if any(summary[a][str(t)][k].n for t in judged)
        }
        plot_with_ci(
            out / "agreement_vs_iteration.png",
            judged,
            series,
            "iteration t (M_t judges its own candidates)",
            "agreement with the external critic",
            "self-judgement vs external critic",
        )
    rows = []
    for a in ARMS:
        for t in ts:
            s = summary[a][str(t)]
            rows.append(
                [
                    a,
                    t,
                    _m(s["asr"]),
                    f"{s['asr_keyword_bound'].mean:.3f}",
                    _m(s["over_refusal"]),
                    _m(s["degenerate"]),
                    _m(s["competence"]),
                    _count(s["pairs"]),
                    _count(s["pairs_chosen_degenerate"]),
                    _m(s["candidates_degenerate"]),
                    _m(s["unsafe_accuracy"]),
                    _m(s["unsafe_kappa"]),
                    _m(s["refusal_accuracy"]),
                    _m(s["pair_agreement"]),
                ]
            )
    table = markdown_table(
        [
            "arm",
            "t",
            "ASR",
            "keyword bound",
            "over-refusal",
            "degenerate",
            "competence",
            "pairs",
            "chosen degenerate",
            "degenerate candidates",
            "self-judge unsafe acc.",
            "kappa",
            "refusal acc.",
            "pair agreement",
        ],
        rows,
    )
    comp = metrics["compute"]
    ckeys = list(next(iter(comp.values())).keys()) if comp else []
    ctable = markdown_table(["arm", *ckeys], [[a, *[comp[a][k] for k in ckeys]] for a in comp])
    d = metrics["data"]
    notes = (
        f"Learner `{metrics['learner']}`, external critic `{metrics['critic']}`. {d['train_harmful']} harmful + "
        f"{d['train_benign']} benign-edgy training prompts x {cfg.samples} samples (+ a self-critique and a "
        f"self-revision each); {cfg.steps} DPO steps x {cfg.batch_size} pairs per iteration in both arms; "
        f"held-out: {d['heldout_harmful']} harmful, {d['heldout_benign']} benign-edgy prompts, "
        f"{d['competence_items']} MC items. {cfg.seeds} seed(s): mean [95 % t-CI over seeds]"
        + (
            " — with one seed, ASR / over-refusal / competence show the bootstrap CI over held-out items"
            if cfg.seeds == 1
            else ""
        )
        + ". Agreement columns at t: M_t judging its own candidates of step t against the external critic "
        "(unsafe bit on answers to harmful prompts; refusal bit on all). 'chosen degenerate': pairs whose "
        "chosen answer is empty, too short or repetitive; degenerate candidates were "
        + {"keep": "scored like any other", "penalise": "given reward 0", "drop": "left out of the pairs"}[
            cfg.degenerate
        ]
        + f" (degenerate: {cfg.degenerate}). Took {metrics['minutes']} min"
        + ("." if metrics["complete"] else "; INCOMPLETE (partial run).")
    )
    write_results(
        out,
        "self-enhance: self-critique -> revision -> self-reward -> DPO vs the critic-driven loop",
        [
            notes,
            table,
            "Compute per arm (summed over iterations, mean over seeds; seconds are wall "
            "time on this machine, t = 0 candidates are generated once and shared):",
            ctable,
        ],
    )
    write_metrics(out, metrics)


def _m(c: MeanCI) -> str:
    """mean [CI]: over seeds, or over held-out items for a single seed; counts without decimals."""
    if c.n == 0:
        return "–"
    if c.method == "bootstrap-items":
        return f"{c.mean:.3f} [{c.lo:.3f}, {c.hi:.3f}]"
    if c.n == 1:
        return f"{c.mean:g}" if float(c.mean).is_integer() else f"{c.mean:.3f}"
    return str(c)


def _count(c: MeanCI) -> str:
    """A count (pairs per iteration): as _m, with one decimal when it is a mean over seeds."""
    if c.n > 1 and c.lo == c.lo:
        return f"{c.mean:.1f} [{c.lo:.1f}, {c.hi:.1f}]"
    return _m(c)
