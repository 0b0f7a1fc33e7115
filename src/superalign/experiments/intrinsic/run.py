"""`superalign experiment intrinsic`: self-reflection, self-awareness and empathy, trained and measured.

Every trained condition starts from the same base learner and is measured on held-out data (prompts
split from training by near-duplicate group of the text; MC items disjoint from the calibration / training items):

- **Self-reflection** (reflect.py): base direct vs base reflect-at-inference (draft -> own
  critique -> final) vs SFT on the critic-filtered reflected finals of training prompts, answering
  directly. Held-out ASR (default critic), keyword bound, over-refusal, competence (sciq + ARC-Easy).
- **Self-awareness** (awareness.py): option probabilities on MC items; ECE, AURC and selective
  accuracy at `threshold` (below it the model says "I'm not sure."), before and after temperature
  scaling (fitted on the calibration items); and in the chat format, where "I'm not sure." is one more
  reply the model can give, before and after SFT that maps the calibration items the base model got
  wrong to "I'm not sure." and the right ones to the answer.
- **Empathy** (empathy.py): DPO on the pair pool's pairs with the usual refusal revisions as
  chosen vs with stakeholder-naming (empathic) revisions as chosen, same prompts, rejected answers and
  steps; measured by the stakeholder score and the critic's empathy dimension on held-out prompts.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from superalign.errors import UserError
from superalign.experiments.common import PoolSettings, Progress, choose_preset, mean_ci, pair_pool, write_metrics

SAFETY_KEYS = (
    "asr",
    "asr_keyword_bound",
    "over_refusal",
    "competence",
    "stakeholder_harmful",
    "stakeholder_benign",
    "critic_empathy_harmful",
)


class IntrinsicConfig(BaseModel):
    """One preset of the experiment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seeds: int = Field(
        1,
        ge=1,
        description="Training seeds per trained condition (CIs over seeds when >= 2, else bootstrap over items).",
    )
    heldout_harmful: int = Field(40, ge=1, description="Held-out harmful prompts (ASR, stakeholder score).")
    heldout_benign: int = Field(40, ge=1, description="Held-out benign-edgy prompts (over-refusal).")
    max_new_tokens: int = Field(48, ge=1, description="Greedy tokens per held-out answer (and per reflection step).")
    critique_tokens: int = Field(40, ge=1, description="Tokens of the learner's critique of its own draft.")
    competence_items: int = Field(
        200, ge=10, description="Held-out MC items (competence, calibration, selective accuracy)."
    )
    calibration_items: int = Field(200, ge=10, description="Disjoint MC items: temperature fit and unsure-SFT data.")
    threshold: float = Field(
        0.5, gt=0, lt=1, description='Confidence below which the selective model says "I\'m not sure.".'
    )
    sft_steps: int = Field(12, ge=1, description="Optimiser steps of each SFT (reflections, unsure).")
    sft_lr: float = Field(3e-4, gt=0, description="LoRA learning rate of the SFTs.")
    dpo_steps: int = Field(10, ge=1, description="Optimiser steps of each DPO (refusal vs empathic chosen).")
    dpo_lr: float = Field(5e-4, gt=0, description="LoRA learning rate of the DPOs.")
    batch_size: int = Field(4, ge=1, description="Examples (SFT) or pairs (DPO) per optimiser step.")
    reflect_temperature: float = Field(
        0.0, ge=0, description="Sampling temperature of the three reflection steps (0 = greedy)."
    )
    filter_reflections: bool = Field(
        True,
        description=(
            "Train only on reflected finals the critic accepts (safe on harmful, not a refusal on benign prompts)."
        ),
    )
    pool: PoolSettings = Field(
        PoolSettings(), description="The shared pair pool (cached): DPO pairs and training prompts."
    )


QUICK_POOL = PoolSettings(
    harmful_train=24, benign_train=12, harmful_heldout=12, benign_heldout=12, max_new_tokens=32
)  # = noisy-labels' quick pool: the cached pool is shared
PRESETS = {
    "full": IntrinsicConfig(seeds=3),
    # 16 + 16 held-out prompts, 80 + 80 MC items, 8-step trainings: sized for <= 15 min on 2 idle cores.
    "quick": IntrinsicConfig(
        heldout_harmful=16,
        heldout_benign=16,
        max_new_tokens=40,
        critique_tokens=32,
        competence_items=80,
        calibration_items=80,
        sft_steps=8,
        dpo_steps=8,
        pool=QUICK_POOL,
    ),
}


def heldout_prompts(n_harmful: int, n_benign: int, fraction: float, seed: int = 0) -> tuple[list, list]:
    """Held-out harmful and benign-edgy queries (the held-out side of data/split.py), sampled by `seed`."""
    import random

    from superalign.data.benign import load_benign_edgy
    from superalign.data.seeds import load_harmful_seeds
    from superalign.data.split import split_queries

    rng = random.Random(f"intrinsic-{seed}")
    _, h = split_queries(load_harmful_seeds(), fraction)
    _, b = split_queries(load_benign_edgy(), fraction)
    pick = lambda qs, n: rng.sample(sorted(qs, key=lambda q: q.id), min(n, len(qs)))  # noqa: E731
    return pick(h, n_harmful), pick(b, n_benign)


def answer_metrics(queries: list, texts: list[str], critic: Any) -> dict[str, Any]:
    """ASR / keyword bound / over-refusal (evaluate.safety_metrics) and the empathy measures, per answer set."""
    from superalign.critic import JudgeItem, judge
    from superalign.evaluate import bootstrap_ci, safety_metrics
    from superalign.experiments.intrinsic.empathy import stakeholder_score
    from superalign.records import Response

    responses = [
        Response(id=f"r{i}", query_id=q.id, text=t, model="learner") for i, (q, t) in enumerate(zip(queries, texts))
    ]
    verdicts = judge([JudgeItem(r.id, q.text, r.text, q.harmful) for q, r in zip(queries, responses)], critic)
    sm = safety_metrics(queries, responses, verdicts)
    st_h = [stakeholder_score(t) for q, t in zip(queries, texts) if q.harmful]
    st_b = [stakeholder_score(t) for q, t in zip(queries, texts) if not q.harmful]
    emp = [v.dimensions.get("empathy", float("nan")) for q, v in zip(queries, verdicts) if q.harmful]
    mean = lambda xs: round(sum(xs) / len(xs), 4) if xs else float("nan")  # noqa: E731
    return {
        "asr": (sm.asr, sm.asr_ci),
        "asr_keyword_bound": (sm.asr_keyword_bound, None),
        "over_refusal": (sm.over_refusal, sm.over_refusal_ci),
        "stakeholder_harmful": (mean(st_h), bootstrap_ci(st_h)),
        "stakeholder_benign": (mean(st_b), bootstrap_ci(st_b)),
        "critic_empathy_harmful": (mean(emp), bootstrap_ci(emp)),
    }


def direct_answers(backend: Any, queries: list, max_new_tokens: int) -> list[str]:
    from superalign.evaluate import eval_sampling
    from superalign.records import user_chat

    return backend.generate([user_chat(q.text) for q in queries], eval_sampling(max_new_tokens))


def measure_direct(backend: Any, queries: list, items: list, critic: Any, cfg: IntrinsicConfig) -> dict[str, Any]:
    """Safety, empathy and competence of the backend answering held-out prompts directly."""
    from superalign.evaluate import competence

    m = answer_metrics(queries, direct_answers(backend, queries, cfg.max_new_tokens), critic)
    acc, ci, _ = competence(backend, items)
    m["competence"] = (acc, ci)
    return m


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """{metric: {mean, ci, n, method}}: one run keeps its bootstrap CI over items; several get a t-CI over seeds."""
    out = {}
    for k in per_seed[0]:
        if len(per_seed) == 1:
            v, ci = per_seed[0][k]
            out[k] = {
                "mean": v,
                "ci": list(ci) if ci else None,
                "n": 1,
                "method": "bootstrap over items" if ci else "-",
            }
        else:
            out[k] = {**mean_ci([r[k][0] for r in per_seed]).to_dict(), "method": "t over seeds"}
    return out


def train_prompts(pool: Any) -> tuple[list, list[bool]]:
    """The pool's training prompts as queries (one per pair) with their harmfulness, from the pair kinds."""
    from superalign.records import Query

    seen, qs, harmful = set(), [], []
    for p in pool.train:
        if p.query_id in seen:
            continue
        seen.add(p.query_id)
        text = next(m["content"] for m in p.prompt if m["role"] == "user")
        h = p.kind == "refuse-harmful"
        qs.append(Query(id=p.query_id, text=text, category="harm" if h else "benign", harmful=h))
        harmful.append(h)
    return qs, harmful


def empathic_pairs(pool: Any, backend: Any, seed: int) -> list:
    """The pool's training pairs with every refuse-harmful chosen replaced by an empathic revision."""
    from superalign.backends import Sampling
    from superalign.experiments.intrinsic.empathy import empathic_revisions
    from superalign.records import Pair, Query

    harm = [p for p in pool.train if p.kind == "refuse-harmful"]
    qs = [Query(id=p.query_id, text=next(m["content"] for m in p.prompt if m["role"] == "user")) for p in harm]
    revs = iter(empathic_revisions(qs, backend, Sampling(32, 0.8, 50, seed * 1000 + 77)))
    return [
        Pair(**{**p.to_dict(), "chosen": next(revs), "provenance": "self-empathy"}) if p.kind == "refuse-harmful" else p
        for p in pool.train
    ]


def measure_awareness(backend: Any, items: list, cal: list, threshold: float) -> tuple[dict[str, Any], list[bool]]:
    """The base model's calibration block (MC format at T = 1 and at the temperature fitted on `cal`; chat
    format with "I'm not sure." as a reply) and which calibration items it gets right in the chat format
    (the unsure-SFT labels)."""
    from superalign.critic.calibration import expected_calibration_error
    from superalign.experiments.intrinsic import awareness as aw

    answers = [it.answer for it in items]
    lp_eval, lp_cal = aw.option_logps(backend, items), aw.option_logps(backend, cal)
    temp = aw.fit_temperature(lp_cal, [it.answer for it in cal])
    aware: dict[str, Any] = {"temperature": temp}
    for name, t in (("mc T=1", 1.0), (f"mc T={temp:.2f} (fitted)", temp)):
        conf, right = aw.top_confidence([aw.softmax_t(lp, t) for lp in lp_eval], answers)
        aware[name] = {
            "ece": expected_calibration_error(conf, right),
            "aurc": aw.aurc(conf, right),
            "accuracy": round(sum(right) / len(right), 4),
            **aw.selective_at(conf, right, threshold),
            "conf": conf,
            "right": right,
        }
    aware["chat before unsure-SFT"] = aw.abstention_report(aw.chat_choice_probs(backend, items), answers)
    cal_right = aw.top_confidence([p[:-1] for p in aw.chat_choice_probs(backend, cal)], [it.answer for it in cal])[1]
    return aware, cal_right


def run(
    out: Path, quick: bool, seeds: int | None, learner: str, progress: Progress, config: IntrinsicConfig | None = None
) -> dict:
    """Measure the base learner, train each intrinsic behaviour in, measure again; write metrics.json,
    results.md and plots."""
    from superalign.backends import load_backend, require_trainable
    from superalign.config import CriticConfig, TrainConfig
    from superalign.critic import build_critic
    from superalign.data.competence import load_competence
    from superalign.evaluate import competence
    from superalign.experiments.intrinsic import awareness as aw
    from superalign.experiments.intrinsic.reflect import (
        ReflectSettings,
        keep_by_critic,
        reflect_then_answer,
        reflection_sft_examples,
    )
    from superalign.experiments.intrinsic.report import write_report
    from superalign.learner.dpo import train_dpo
    from superalign.learner.sft import train_sft

    t0 = time.time()
    preset, cfg = choose_preset(PRESETS, quick, config, seeds, learner)
    backend = require_trainable(
        load_backend(learner), f"--learner {learner}: intrinsic trains weights; give embedded, tiny or an HF model dir"
    )
    critic = build_critic(CriticConfig(kind=cfg.pool.critic))
    harmful, benign = heldout_prompts(cfg.heldout_harmful, cfg.heldout_benign, cfg.pool.heldout_fraction)
    queries = harmful + benign
    mc = load_competence(cfg.competence_items + cfg.calibration_items, seed=0)
    items, cal = mc[: cfg.competence_items], mc[cfg.competence_items :]
    answers = [it.answer for it in items]
    rs = ReflectSettings(cfg.max_new_tokens, cfg.critique_tokens, cfg.max_new_tokens, cfg.reflect_temperature)
    stage, n_stages = 0, 5 + 4 * cfg.seeds

    def step(label: str) -> None:
        nonlocal stage
        progress(f"intrinsic: {label}", stage, n_stages)
        stage += 1

    step("pair pool")
    pool = pair_pool(cfg.pool, progress, backend=backend)
    base = copy.deepcopy(backend.model)
    step("base: direct answers + competence")
    conditions: dict[str, list[dict]] = {"base direct": [measure_direct(backend, queries, items, critic, cfg)]}
    step("base: reflect-then-answer")
    refl = reflect_then_answer([q.text for q in queries], backend, rs)
    conditions["base reflect-at-inference"] = [answer_metrics(queries, [r.final for r in refl], critic)]
    conditions["base reflect-at-inference"][0]["competence"] = conditions["base direct"][0][
        "competence"
    ]  # same weights
    step("base: calibration")
    aware, cal_right = measure_awareness(backend, items, cal, cfg.threshold)
    write_metrics(
        out,
        {
            "experiment": "intrinsic",
            "complete": False,
            "config": cfg.model_dump(mode="json"),
            "conditions": {k: summarise(v) for k, v in conditions.items()},
            "awareness": _strip_lists(aware),
        },
    )
    step("training data: reflections on training prompts, empathic revisions")
    tq, th = train_prompts(pool)
    train_refl = reflect_then_answer([q.text for q in tq], backend, rs)
    keep = keep_by_critic(train_refl, th, critic) if cfg.filter_reflections else None
    reflect_data = reflection_sft_examples(train_refl, keep)
    emp_pairs = empathic_pairs(pool, backend, 0)
    if not reflect_data or not pool.train:
        raise UserError(
            f"intrinsic: {len(reflect_data)} reflected answers kept, {len(pool.train)} pool pairs; "
            "raise the pool's prompt counts (PoolSettings) or use a learner that answers"
        )
    sft_cfg = TrainConfig(
        lr=cfg.sft_lr,
        epochs=100,
        batch_size=cfg.batch_size,
        micro_batch=cfg.batch_size,
        max_len=160,
        max_steps=cfg.sft_steps,
    )
    dpo_cfg = TrainConfig(
        lr=cfg.dpo_lr,
        epochs=100,
        batch_size=cfg.batch_size,
        micro_batch=cfg.batch_size,
        max_len=160,
        max_steps=cfg.dpo_steps,
    )
    train_log: list[dict] = []
    aware["chat after unsure-SFT"] = []
    for seed in range(cfg.seeds):
        for name, kind in (
            ("SFT on reflections, direct", "reflect"),
            ("unsure-SFT", "unsure"),
            ("DPO refusal-chosen", "dpo"),
            ("DPO empathic-chosen", "empathy"),
        ):
            step(f"seed {seed}: {name}")
            backend.model = copy.deepcopy(base)
            sft_data = {"reflect": reflect_data, "unsure": aw.unsure_sft_examples(cal, cal_right)}
            dpo_data = {"dpo": pool.train, "empathy": emp_pairs}
            if kind in sft_data:
                n_examples, stats = len(sft_data[kind]), train_sft(backend, sft_data[kind], sft_cfg, seed=seed)
            else:
                n_examples, stats = len(dpo_data[kind]), train_dpo(backend, dpo_data[kind], dpo_cfg, seed=seed)[1]
            train_log.append(
                {
                    "condition": name,
                    "seed": seed,
                    "examples": n_examples,
                    "steps": stats.steps,
                    "loss_first": stats.first_loss,
                    "loss_last": stats.last_loss,
                    "seconds": stats.seconds,
                }
            )
            if kind == "unsure":
                rep = aw.abstention_report(aw.chat_choice_probs(backend, items), answers)
                aware["chat after unsure-SFT"].append({**rep, "competence_mc": competence(backend, items)[0]})
            else:
                conditions.setdefault(name, []).append(measure_direct(backend, queries, items, critic, cfg))
    backend.model = base
    metrics = {
        "experiment": "intrinsic",
        "complete": True,
        "preset": preset,
        "learner": learner,
        "config": cfg.model_dump(mode="json"),
        "pool": pool.stats,
        "n_heldout_harmful": len(harmful),
        "n_heldout_benign": len(benign),
        "n_competence_items": len(items),
        "n_calibration_items": len(cal),
        "reflection_data": {
            "train_prompts": len(tq),
            "kept": len(reflect_data),
            "examples": [r.__dict__ for r in refl[:3]] + [r.__dict__ for r in train_refl[:2]],
        },
        "empathy_pairs_example": [p.chosen for p in emp_pairs if p.provenance == "self-empathy"][:3],
        "conditions": {k: summarise(v) for k, v in conditions.items()},
        "awareness": aware,
        "training": train_log,
        "minutes": round((time.time() - t0) / 60, 2),
    }
    progress("intrinsic: report", n_stages, n_stages)
    write_report(out, metrics, cfg)
    write_metrics(out, {**metrics, "awareness": _strip_lists(aware)})
    return metrics


def _strip_lists(aware: dict[str, Any]) -> dict[str, Any]:
    """The awareness block without the per-item confidence lists (they go into the plots, not the JSON)."""

    def strip(d: Any) -> Any:
        if isinstance(d, list):
            return [strip(x) for x in d]
        return {k: v for k, v in d.items() if k not in ("conf", "right")} if isinstance(d, dict) else d

    return {k: strip(v) for k, v in aware.items()}
