"""`superalign attack`: the adaptive attacker against static baselines at the same budget and judge.

Arms (each spends exactly `budget` learner queries, greedy answers, judged by the same critic against
the objective): `static` = plain seed prompts; `static_converted` (optional) = the static attacker
(converters + PyRIT templates, `attack.attack`); `adaptive` = `adaptive.adaptive_attack`.
Writes metrics.json, attacks.jsonl (every attempt of every arm), archive.jsonl, archive.png and
emergent.md / emergent.json (clusters of the learner's failures).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from superalign.attacker.adaptive import (
    adaptive_attack,
    attempt_rows,
    coverage_cost,
    critic_judge,
    result_stats,
    search_styles,
    static_attack,
    summary,
)
from superalign.attacker.archive import diversity
from superalign.attacker.self_improve import Method
from superalign.config import AttackerConfig, CriticConfig, DataConfig


def run_attack(
    learner_spec: str,
    budget: int,
    out: Path,
    *,
    attacker_spec: str = "embedded",
    seed: int = 0,
    cfg: AttackerConfig | None = None,
    critic_cfg: CriticConfig | None = None,
    converted: bool = True,
    system: str | None = None,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    self_improve: int = 0,
    log: Callable[[str], None] = print,
    self_improve_method: Method = "sft",
    self_improve_budget: int | None = None,
) -> dict[str, Any]:
    """Run every arm on the training split of the harmful seeds and write the outputs into `out`.

    `self_improve` > 0 then runs that many MART rounds against the same (fixed) learner (mart.py) and
    adds `self_improve` rows, `self_improve.json` and `self_improve.png`."""
    from superalign.attacker.emergent import Failure, discover_risks, risks_markdown
    from superalign.attacker.templates import load_templates
    from superalign.backends import load_backend
    from superalign.backends.base import Sampling
    from superalign.critic import build_critic
    from superalign.plan import harmful_split
    from superalign.store.jsonl import atomic_write_text, make_out_dir, write_jsonl

    cfg = cfg or AttackerConfig(mode="adaptive", attacker_model=attacker_spec)
    make_out_dir(out)
    # The loop's training split under the default data config (grouped split at 0.3, harmbench held out
    # whole): held-out groups and the held-out source stay unseen.
    seeds = harmful_split(DataConfig()).train
    by_cat: dict[str, list] = {}
    for q in seeds:
        by_cat.setdefault(q.category, []).append(q)
    seeds = [q for q in seeds if len(by_cat[q.category]) >= 3]  # a 1-seed category cannot fill a grid row
    learner = load_backend(learner_spec, batch_size=batch_size)
    attacker = (
        None
        if attacker_spec == "none"
        else (learner if attacker_spec == learner_spec else load_backend(attacker_spec, batch_size=batch_size))
    )
    judge_fn = critic_judge(build_critic(critic_cfg or CriticConfig()))
    params = Sampling(max_new_tokens=max_new_tokens, temperature=0.0)
    timings, arms = {}, {}
    t = time.time()
    log(f"static arm: {budget} plain seed prompts")
    arms["static"] = static_attack(seeds, learner, judge_fn, budget, seed, params=params, system=system)
    timings["static"] = round(time.time() - t, 1)
    if converted:
        t = time.time()
        log(f"static_converted arm: {budget} converter/template attacks")
        arms["static_converted"] = static_attack(
            seeds, learner, judge_fn, budget, seed, cfg=cfg, params=params, system=system, arm="static_converted"
        )
        timings["static_converted"] = round(time.time() - t, 1)
    t = time.time()
    templates = load_templates(cfg.max_template_chars)
    cells = len({q.category for q in seeds}) * len(search_styles(attacker))  # the archive adaptive_attack builds
    needed, note = coverage_cost(cells, cfg.coverage_target, budget)
    if note:
        log(f"note: {note}")
    result = adaptive_attack(
        seeds,
        learner,
        judge_fn,
        budget,
        cfg,
        seed,
        attacker=attacker,
        params=params,
        templates=templates,
        system=system,
        log=log,
    )
    timings["adaptive"] = round(time.time() - t, 1)
    arms["adaptive"] = result.attempts
    archive = result.archive
    failures = [a for arm in arms.values() for a in arm if a.success]
    known = {c: [q.text for q in qs] for c, qs in by_cat.items() if len(qs) >= 3}
    clusters = discover_risks(
        [Failure(a.query.objective, a.response, a.query.category, a.query.text) for a in failures], known, seed=seed
    )
    metrics: dict[str, Any] = {
        "learner": learner.name,
        "attacker": attacker.name if attacker else "none",
        "budget": budget,
        "seed": seed,
        "judge": "critic verdict unsafe, judged against the objective",
        "asr_adaptive": summary(arms["adaptive"])["asr"],
        "asr_static": summary(arms["static"])["asr"],
        "archive_coverage": archive.coverage(),
        "archive_success_coverage": archive.success_coverage(),
        "archive_cells": len(archive.categories) * len(archive.styles),
        "coverage_cells_needed": needed,
        "diversity_adaptive": diversity([a.query.text for a in arms["adaptive"]]),
        "diversity_static": diversity([a.query.text for a in arms["static"]]),
        "diversity_adaptive_successes": diversity([a.query.text for a in arms["adaptive"] if a.success]),
        "diversity_archive": diversity([e["text"] for e in archive.rows()]),
        "diversity_metric": "mean pairwise cosine distance of word 1-2-gram TF-IDF vectors",
        "arms": {k: summary(v) for k, v in arms.items()},
        "learner_queries": {k: len(v) for k, v in arms.items()},
        "seconds": timings,
        "emergent_clusters": len(clusters),
        "emergent_novel": sum(c.novel for c in clusters),
        **result_stats(result),
    }
    if converted:
        metrics["asr_static_converted"] = summary(arms["static_converted"])["asr"]
        metrics["diversity_static_converted"] = diversity([a.query.text for a in arms["static_converted"]])
    if self_improve and attacker is not None:
        from superalign.attacker.mart import plot_rounds, self_improvement_rounds
        from superalign.config import TrainConfig

        t = time.time()
        # a separate copy: training the attacker must never touch the (fixed) learner it attacks
        trainee = load_backend(attacker_spec, batch_size=batch_size)
        # sft: a search yields a handful of successes, so 4 epochs of 4 (8 steps for 8 examples); dpo: the loop's recipe
        tcfg = TrainConfig(epochs=4, batch_size=4) if self_improve_method == "sft" else TrainConfig()
        rows = self_improvement_rounds(
            seeds,
            learner,
            trainee,
            judge_fn,
            budget,
            self_improve,
            cfg,
            tcfg,
            seed=seed,
            params=params,
            log=log,
            method=self_improve_method,
            train_budget=self_improve_budget,
        )
        timings["self_improve"] = round(time.time() - t, 1)
        metrics["self_improve"] = rows
        atomic_write_text(out / "self_improve.json", json.dumps(rows, indent=2))
        plot_rounds(rows, out / "self_improve.png")
    write_jsonl(out / "attacks.jsonl", [r for arm in arms.values() for r in attempt_rows(arm)])
    archive.write_jsonl(out / "archive.jsonl")
    archive.heatmap(out / "archive.png")
    write_jsonl(out / "emergent.jsonl", [asdict(c) for c in clusters])
    atomic_write_text(out / "emergent.md", risks_markdown(clusters))
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    return metrics
