"""`superalign experiment judge-quality`: self-enhancement as a study of judge quality.

The model answers SciQ questions from their support passage (answers.py). On the dev items the gates come first:
greedy accuracy in [0.2, 0.8] and best-of-k >= single sample + 0.10 (k sampled answers; best-of-k = any of them
right). If either fails the run writes that result and stops: with no room to improve, or samples that never
differ, no ranker could matter. Otherwise the model samples k answers to each training item once; every ranker
(rankers.py) picks the best of the *same* answers; each ranker's picks train one LoRA SFT arm from the same
starting model; each arm's greedy accuracy on the held-out test items is compared with the untrained model's
(paired bootstrap over test items). Gate 3 (positive control): the oracle arm gains. The figure plots each arm's
gain against its ranker's measured accuracy at picking a right answer where the k answers disagree.
"""

from __future__ import annotations

import copy
import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from superalign.backends.base import Sampling
from superalign.data.passages import PassageItem
from superalign.experiments.common import Progress, write_metrics
from superalign.experiments.judge_quality import rankers as rk
from superalign.experiments.judge_quality.answers import (
    Split,
    answer_chat,
    contains_answer,
    exact_answer,
    first_line,
    normalise,
    split_items,
)
from superalign.experiments.judge_quality.config import PRESETS, JudgeQualityConfig, preset_name
from superalign.experiments.judge_quality.report import write_outputs
from superalign.experiments.judge_quality.sampling import sample_k
from superalign.stats import bootstrap_indices, diff_cell, mean_cell, wilson

SEEDLESS = (
    "self-consistency",
    "mean-logprob",
    "self-judge",
    "gemma-judge",
)  # rankers whose scores do not depend on the seed


def check_disjoint(split: Split) -> dict[str, int]:
    """The three blocks share no item id and no question text (ValueError otherwise); their sizes."""
    blocks = {"dev": split.dev, "test": split.test, "train": split.train}
    for a, xs in blocks.items():
        for b, ys in blocks.items():
            if a < b and (
                {x.id for x in xs} & {y.id for y in ys} or {x.question for x in xs} & {y.question for y in ys}
            ):
                raise ValueError(f"items shared between {a} and {b}")
    return {k: len(v) for k, v in blocks.items()}


def rate(k: int, n: int) -> dict[str, Any]:
    """k / n with its 95 % Wilson interval."""
    lo, hi = wilson(k, n)
    return {"mean": round(k / n, 4), "ci": [round(lo, 4), round(hi, 4)], "k": k, "n": n}


def greedy(backend: Any, items: Sequence[PassageItem], cfg: JudgeQualityConfig) -> list[str]:
    """Each item's greedy answer, cut at its first blank line."""
    replies = backend.generate([answer_chat(it) for it in items], Sampling(max_new_tokens=cfg.max_new_tokens))
    return [first_line(r) for r in replies]


def sampled(backend: Any, items: Sequence[PassageItem], cfg: JudgeQualityConfig, seed: int) -> list[list[str]]:
    """`cfg.samples` sampled answers per item (one prefill each), cut at their first blank line."""
    params = Sampling(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_k=cfg.top_k, seed=seed)
    return [
        [first_line(r) for r in rows]
        for rows in sample_k(backend, [answer_chat(it) for it in items], cfg.samples, params)
    ]


def dev_gates(
    items: Sequence[PassageItem], greedy_answers: list[str], samples: list[list[str]], cfg: JudgeQualityConfig
) -> dict[str, Any]:
    """Gate 1 (greedy accuracy in range) and gate 2 (best-of-k - single >= threshold) on the dev items, with the
    exact-match diagnostic beside the phrase match."""
    import numpy as np

    idx = bootstrap_indices(len(items), cfg.bootstrap, seed=1)
    out: dict[str, Any] = {}
    for name, match in (("phrase", contains_answer), ("exact", exact_answer)):
        g = np.array([match(a, it.correct) for a, it in zip(greedy_answers, items)], float)
        s = np.array([[match(a, it.correct) for a in row] for row, it in zip(samples, items)], float)
        single, best = s.mean(axis=1), s.max(axis=1)
        out[name] = {
            "greedy": rate(int(g.sum()), len(g)),
            "single": mean_cell(single, idx),
            "best_of_k": rate(int(best.sum()), len(best)),
            "best_minus_single": diff_cell(best, single, idx),
            "decidable": round(float(((best == 1) & (s.min(axis=1) == 0)).mean()), 4),
        }
    m = out["phrase"]
    gates = [
        {
            "name": f"greedy accuracy in [{cfg.greedy_min}, {cfg.greedy_max}]",
            "value": m["greedy"]["mean"],
            "ci": m["greedy"]["ci"],
            "passed": cfg.greedy_min <= m["greedy"]["mean"] <= cfg.greedy_max,
        },
        {
            "name": f"best-of-{cfg.samples} - single >= {cfg.min_best_of_k_gain}",
            "value": m["best_minus_single"]["diff"],
            "ci": m["best_minus_single"]["ci"],
            "passed": m["best_minus_single"]["diff"] >= cfg.min_best_of_k_gain - 1e-12,
        },
    ]
    return {"match": out, "gates": gates, "passed": all(g["passed"] for g in gates)}


def build_rankers(
    names: Sequence[str], flips: Sequence[float], model: Any, seed: int, outside: Any = None
) -> list[rk.Ranker]:
    """The rankers of one seed, in the order of `names` (oracle-flip: one per flip rate; gemma-judge reads
    `outside`, left out when it is None)."""
    out: list[rk.Ranker] = []
    for n in names:
        if n == "oracle":
            out.append(rk.Oracle(0.0, seed))
        elif n == "oracle-flip":
            out += [rk.Oracle(f, seed) for f in flips]
        elif n == "self-consistency":
            out.append(rk.SelfConsistency())
        elif n == "mean-logprob":
            out.append(rk.MeanLogprob(model))
        elif n == "self-judge":
            out.append(rk.SelfJudge(model))
        elif n == "gemma-judge":
            if outside is not None:
                out.append(rk.OutsideJudge(outside))
        elif n == "random":
            out.append(rk.RandomRanker(seed))
        else:
            raise ValueError(f"unknown ranker {n!r}")
    return out


def measure(backend: Any, items: Sequence[PassageItem], cfg: JudgeQualityConfig) -> dict[str, Any]:
    """A model on the test items: per-item greedy correctness, and diversity (distinct normalised answers among
    k samples on the first `diversity_items`; distinct greedy answers over all items; greedy answer length)."""
    answers = greedy(backend, items, cfg)
    div = sampled(backend, items[: cfg.diversity_items], cfg, seed=7) if cfg.diversity_items else []
    distinct = [len({normalise(a) for a in row}) / cfg.samples for row in div]
    return {
        "correct": [int(contains_answer(a, it.correct)) for a, it in zip(answers, items)],
        "answers": answers,
        "sample_distinct": round(sum(distinct) / len(distinct), 4) if distinct else None,
        "greedy_distinct": round(len({normalise(a) for a in answers}) / len(answers), 4),
        "greedy_words": round(sum(len(a.split()) for a in answers) / len(answers), 2),
    }


def train_arm(
    backend: Any, base: Any, groups: Sequence[rk.Group], best: list[int], cfg: JudgeQualityConfig, seed: int
) -> dict[str, Any]:
    """LoRA SFT from `base` on each group's picked answer; `backend.model` holds the trained model after."""
    from superalign.config import TrainConfig
    from superalign.learner.sft import train_sft

    tc = TrainConfig(
        adapter="lora",
        lr=cfg.lr,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        micro_batch=cfg.micro_batch,
        lora_r=cfg.lora_r,
        lora_alpha=2 * cfg.lora_r,
        max_len=cfg.max_len,
    )
    backend.model = copy.deepcopy(base)
    examples = [(answer_chat(g.item), g.answers[b]) for g, b in zip(groups, best)]
    stats = train_sft(backend, examples, tc, seed=seed)
    backend.model.eval()
    return {
        "steps": stats.steps,
        "loss_first": stats.losses[0] if stats.losses else None,
        "loss_last": stats.losses[-1] if stats.losses else None,
    }


def run(
    out: Path,
    quick: bool,
    seeds: int | None,
    learner: str,
    progress: Progress,
    config: JudgeQualityConfig | None = None,
) -> dict[str, Any]:
    """Run the preset (`config`, else quick / full) into `out`: metrics.json, results.md, gain_vs_accuracy.png."""
    from superalign.backends import load_backend
    from superalign.experiments.common import machine

    t0, cpu0 = time.time(), resource.getrusage(resource.RUSAGE_SELF)
    cfg = config or PRESETS["quick" if quick else "full"]
    if seeds:
        cfg = cfg.model_copy(update={"seeds": seeds})
    split = split_items(cfg.dev_items, cfg.test_items, cfg.train_items)
    metrics: dict[str, Any] = {
        "experiment": "judge-quality",
        "preset": preset_name(cfg),
        "learner": learner,
        "config": cfg.model_dump(mode="json"),
        "machine": machine(),
        "split": check_disjoint(split),
    }
    from superalign.backends.gemma import INSTALL_HINT, gemma_available

    if "gemma-judge" in cfg.rankers and not gemma_available():
        metrics["not_built"] = (
            f"gemma-judge ranker: the optional Gemma-3-270M wheels are not installed ({INSTALL_HINT})"
        )
    backend = load_backend(learner, batch_size=cfg.gen_batch, dtype="float32")
    started: dict[str, float] = {}  # seconds from the start at which each stage began

    def stage(name: str, i: int, n: int) -> None:
        progress(f"judge-quality: {name}", i, n)
        started[name] = round(time.time() - t0, 1)

    stage("dev gates", 0, 1)
    dev_greedy, dev_samples = greedy(backend, split.dev, cfg), sampled(backend, split.dev, cfg, seed=0)
    gates = dev_gates(split.dev, dev_greedy, dev_samples, cfg)
    metrics.update(
        gates=gates,
        gates_passed=gates["passed"],
        dev_answers=[
            {"id": it.id, "answer": it.correct, "greedy": g, "samples": s}
            for it, g, s in zip(split.dev, dev_greedy, dev_samples)
        ],
    )
    write_metrics(out, {**metrics, "complete": False})  # the gates survive a run stopped before the arms finish
    if not gates["passed"]:
        failed = [g["name"] for g in gates["gates"] if not g["passed"]]
        metrics["stopped"] = f"gate failed: {'; '.join(failed)}; no arm was trained"
    elif cfg.stage == "pilot":
        metrics["stopped"] = "pilot preset: gates only"
    else:
        metrics.update(train_arms(backend, split, cfg, stage))
    now = resource.getrusage(resource.RUSAGE_SELF)
    seconds = time.time() - t0
    metrics.update(
        complete=True,
        stage_started_s=started,
        cpu_seconds=round(now.ru_utime + now.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 1),
        seconds=round(seconds, 1),
        minutes=round(seconds / 60, 2),
    )
    write_outputs(out, metrics, cfg)
    write_metrics(out, metrics)
    return metrics


def outside_judge(cfg: JudgeQualityConfig) -> Any:
    """The gemma-judge ranker's model (Gemma-3-270M, float32), or None when the ranker is not asked for or its
    optional wheels are not installed (the run then says so in `not_built` and trains no such arm)."""
    from superalign.backends.gemma import gemma_available

    if "gemma-judge" not in cfg.rankers or not gemma_available():
        return None
    from superalign.backends import load_backend

    return load_backend("gemma", batch_size=cfg.gen_batch, dtype="float32")


def train_arms(backend: Any, split: Split, cfg: JudgeQualityConfig, stage: Any) -> dict[str, Any]:
    """Sample the training answers once, rank them with every ranker, train and measure one arm per ranker and
    seed; summarise gains (paired bootstrap over test items) and ranker accuracies (Wilson)."""
    import numpy as np

    stage("training answers", 0, 1)
    train_samples = sampled(backend, split.train, cfg, seed=1)
    groups = [
        rk.Group(it, tuple(row), tuple(contains_answer(a, it.correct) for a in row))
        for it, row in zip(split.train, train_samples)
    ]
    stage("base model on test", 0, 1)
    base_m = measure(backend, split.test, cfg)
    base = copy.deepcopy(backend.model)
    arms: dict[str, dict[str, Any]] = {}
    fixed: dict[str, list[list[float]]] = {}  # scores that do not depend on the seed, computed once
    outside = outside_judge(cfg)
    for seed in range(cfg.first_seed, cfg.first_seed + cfg.seeds):
        rankers = build_rankers(cfg.rankers, cfg.flips, backend, seed, outside)
        for r_i, ranker in enumerate(rankers):
            backend.model = base  # model-based rankers judge with the starting model
            stage(f"seed {seed}: rank + train + test {ranker.name}", r_i, len(rankers))
            scores = fixed.get(ranker.name) or ranker.scores(groups)
            if ranker.name in SEEDLESS:
                fixed[ranker.name] = scores
            picks = rk.pick(scores, seed)
            right, dec = rk.pick_accuracy(groups, picks)
            keep = [i for i, g in enumerate(groups) if cfg.train_on == "all" or any(g.correct)]
            trained = train_arm(backend, base, [groups[i] for i in keep], [picks.best[i] for i in keep], cfg, seed)
            trained["examples"] = len(keep)
            m = measure(backend, split.test, cfg)
            a = arms.setdefault(ranker.name, {"runs": []})
            a["runs"].append(
                {
                    "seed": seed,
                    "pick_right": right,
                    "decidable": dec,
                    "pair_accuracy": round(rk.pair_accuracy(groups, scores), 4),
                    "best": picks.best,
                    "worst": picks.worst,
                    "train": trained,
                    **m,
                }
            )
    if outside is not None:
        outside.close()
    backend.model = base
    idx = bootstrap_indices(len(split.test), cfg.bootstrap, seed=2)
    base_c = np.array(base_m["correct"], float)
    summary: dict[str, dict[str, Any]] = {}
    for name, a in arms.items():
        runs = a["runs"]
        per_item = np.mean([r["correct"] for r in runs], axis=0)
        right, dec = sum(r["pick_right"] for r in runs), sum(r["decidable"] for r in runs)
        summary[name] = {
            "test_accuracy": mean_cell(per_item, idx),
            "gain": diff_cell(per_item, base_c, idx),
            "pick_accuracy": rate(right, dec) if dec else None,
            "pair_accuracy": round(float(np.mean([r["pair_accuracy"] for r in runs])), 4),
            "sample_distinct": _mean([r["sample_distinct"] for r in runs]),
            "greedy_distinct": _mean([r["greedy_distinct"] for r in runs]),
            "greedy_words": _mean([r["greedy_words"] for r in runs]),
        }
        if "random" in arms and name != "random":
            rand = np.mean([r["correct"] for r in arms["random"]["runs"]], axis=0)
            summary[name]["gain_over_random"] = diff_cell(per_item, rand, idx)
    oracle = summary.get("oracle")
    control = (
        {
            "name": "oracle arm gains (positive control)",
            "value": oracle["gain"]["diff"],
            "ci": oracle["gain"]["ci"],
            # a positive control passes only when the gain is shown: its paired interval lies above 0
            "passed": oracle["gain"]["ci"][0] > 0,
            "ci_excludes_0": oracle["gain"]["ci"][0] > 0,
        }
        if oracle
        else None
    )
    decidable = sum(g.decidable for g in groups)
    return {
        "train_answers": {
            "best_of_k": rate(sum(any(g.correct) for g in groups), len(groups)),
            "single": round(sum(sum(g.correct) for g in groups) / (len(groups) * cfg.samples), 4),
            "decidable": decidable,
        },
        "base": {k: v for k, v in base_m.items() if k not in ("correct", "answers")}
        | {"test_accuracy": rate(int(base_c.sum()), len(base_c))},
        "arms": summary,
        "positive_control": control,
        "raw": {
            "train": [
                {"id": g.item.id, "answer": g.item.correct, "samples": list(g.answers), "correct": list(g.correct)}
                for g in groups
            ],
            "test_ids": [it.id for it in split.test],
            "base_test": {"correct": base_m["correct"], "answers": base_m["answers"]},
            "arms": {n: a["runs"] for n, a in arms.items()},
        },
    }


def _mean(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return round(sum(vals) / len(vals), 4) if vals else None
