"""The run: pilot gates on the passage items, then (a `protocols` preset whose gates pass) the protocols.

Gate 1: the passage-reading judge beats the naive judge by >= `min_gain_passage`; gate 2: with both options
masked in the passage, by >= `min_gain_masked`. If either fails the run writes the gate result and stops:
without an information gap the judge can be helped across, no protocol result would mean anything.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from superalign.data.passages import PassageItem, load_passage_items
from superalign.experiments.common import Progress, write_metrics
from superalign.experiments.debate.config import PRESETS, DebateConfig, preset_name
from superalign.experiments.debate.judge import CachedJudge, JudgeRequest, judge_for, passage_context
from superalign.experiments.debate.passages import mask_options, mentions, sentences
from superalign.experiments.debate.report import write_outputs
from superalign.experiments.debate.scoring import condition_summary, gate, item_correct
from superalign.stats import bootstrap_indices

GATE_CONDITIONS = ("naive", "passage", "passage_masked")


def stage_progress(progress: Progress, label: str) -> Callable[[int, int], None]:
    """`progress` bound to one stage label."""

    def tick(done: int, total: int) -> None:
        progress(label, done, total)

    return tick


def gate_requests(items: list[PassageItem], cfg: DebateConfig) -> dict[str, list[JudgeRequest]]:
    """The judge's requests per gate condition: nothing, the passage, the passage with both options masked."""
    out: dict[str, list[JudgeRequest]] = {c: [] for c in GATE_CONDITIONS}
    for it in items:
        masked = mask_options(it.passage, it.options, cfg.mask_token)
        out["naive"].append(JudgeRequest(it.question, it.correct, it.distractor))
        out["passage"].append(JudgeRequest(it.question, it.correct, it.distractor, passage_context(it.passage)))
        out["passage_masked"].append(JudgeRequest(it.question, it.correct, it.distractor, passage_context(masked)))
    return out


def cloze_requests(items: list[PassageItem], cfg: DebateConfig, condition: str) -> list[JudgeRequest]:
    """The cloze diagnostic's requests: the bare passage (masked or not) as context, or none."""

    def context(it: PassageItem) -> str:
        if condition == "naive":
            return ""
        return it.passage if condition == "passage" else mask_options(it.passage, it.options, cfg.mask_token)

    return [JudgeRequest(it.question, it.correct, it.distractor, context(it)) for it in items]


def data_summary(items: list[PassageItem], cfg: DebateConfig) -> dict[str, Any]:
    """How often the passage names the answer / the distractor, and whether masking leaves either."""
    n = len(items)
    masked = [mask_options(it.passage, it.options, cfg.mask_token) for it in items]
    return {
        "items": n,
        "answer_in_passage": round(sum(mentions(it.passage, it.correct) for it in items) / n, 4),
        "distractor_in_passage": round(sum(mentions(it.passage, it.distractor) for it in items) / n, 4),
        "option_left_after_mask": sum(
            mentions(m, it.correct) or mentions(m, it.distractor) for m, it in zip(masked, items)
        ),
        "mean_sentences": round(sum(len(sentences(it.passage)) for it in items) / n, 2),
        "mean_passage_words": round(sum(len(it.passage.split()) for it in items) / n, 1),
    }


def run_gates(items: list[PassageItem], judge: CachedJudge, cfg: DebateConfig, progress: Progress) -> dict[str, Any]:
    """Score the gate conditions (letter judge, and the text-reply diagnostic), summarise, decide the gates."""
    import numpy as np

    reqs = gate_requests(items, cfg)
    idx = bootstrap_indices(len(items), cfg.bootstrap, seed=0)
    replies: tuple[str, ...] = ("letter", "text") if cfg.text_judge else ("letter",)
    raw: dict[str, dict[str, Any]] = {r: {} for r in replies}
    for c in GATE_CONDITIONS:
        tick = stage_progress(progress, f"debate gates: {c} (prompts)")
        if cfg.text_judge:
            raw["letter"][c], raw["text"][c] = judge.p_correct_both(reqs[c], tick)
        else:
            raw["letter"][c] = judge.p_correct(reqs[c], tick)
    if cfg.cloze_judge:
        replies += ("cloze",)
        raw["cloze"] = {}
        for c in GATE_CONDITIONS:
            tick = stage_progress(progress, f"debate gates: {c} (cloze diagnostic)")
            raw["cloze"][c] = judge.cloze_p_correct(cloze_requests(items, cfg, c), tick)
    summaries = {r: {c: condition_summary(raw[r][c], idx) for c in GATE_CONDITIONS} for r in replies}
    ok = {r: {c: item_correct(raw[r][c]) for c in GATE_CONDITIONS} for r in replies}

    def gates_of(r: str) -> list[dict[str, Any]]:
        return [
            gate("passage - naive", ok[r]["passage"], ok[r]["naive"], cfg.min_gain_passage, idx),
            gate("masked passage - naive", ok[r]["passage_masked"], ok[r]["naive"], cfg.min_gain_masked, idx),
        ]

    letter_gates = gates_of("letter")
    return {
        "conditions": summaries["letter"],
        "gates": letter_gates,
        "gates_passed": all(g["passed"] for g in letter_gates),
        "text_judge": {"conditions": summaries["text"], "gates": gates_of("text")} if cfg.text_judge else None,
        "cloze_judge": {"conditions": summaries["cloze"], "gates": gates_of("cloze")} if cfg.cloze_judge else None,
        "items": [
            {
                "id": it.id,
                **{
                    f"{r}:{c}": [round(float(v), 5) for v in np.asarray(raw[r][c][i])]
                    for r in replies
                    for c in GATE_CONDITIONS
                },
            }
            for i, it in enumerate(items)
        ],
    }


def run(
    out: Path,
    quick: bool,
    seeds: int | None,
    learner: str,
    progress: Progress,
    config: DebateConfig | None = None,
) -> dict[str, Any]:
    """Run the preset (`config`, else quick / full) into `out`: metrics.json, results.md. `seeds` is unused
    (the protocols are deterministic given the items; CIs come from resampling items)."""
    from superalign.experiments.common import machine

    t0 = time.time()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    host = machine()
    cfg = config or PRESETS["quick" if quick else "full"]
    items = load_passage_items(cfg.pilot_items)
    judge = judge_for(learner, cfg.dtype, cfg.batch_size)
    metrics: dict[str, Any] = {
        "experiment": "debate",
        "preset": preset_name(cfg),
        "learner": learner,
        "config": cfg.model_dump(mode="json"),
        "machine": host,
        "data": data_summary(items, cfg),
    }
    t1 = time.time()
    gates = run_gates(items, judge, cfg, progress)
    timing = {"gates": round(time.time() - t1, 1)}
    metrics.update(
        gates_passed=gates["gates_passed"],
        gate_passage_gain=gates["gates"][0]["gain"],
        gate_masked_gain=gates["gates"][1]["gain"],
    )
    if not gates["gates_passed"]:
        failed = [g["name"] for g in gates["gates"] if not g["passed"]]
        metrics["stopped"] = f"gate failed: {', '.join(failed)}; no protocol was run"
    elif cfg.stage == "pilot":
        metrics["stopped"] = "pilot preset: gates only"
    else:
        raise NotImplementedError("the protocols run only after a pilot whose gates pass")
    now = resource.getrusage(resource.RUSAGE_SELF)
    seconds = time.time() - t0
    metrics.update(
        complete=True,
        gates=gates,
        model_prompts_scored=judge.scored,
        timing_s=timing,
        cpu_seconds=round(now.ru_utime + now.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 1),
        seconds=round(seconds, 1),
        minutes=round(seconds / 60, 2),
    )
    write_outputs(out, metrics, cfg)
    write_metrics(out, metrics)
    return metrics
