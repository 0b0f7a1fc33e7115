"""The critic against PyRIT's human labels, with PyRIT's own published scorer metrics beside.

Two label sets (DESIGN §4, metric names as in PyRIT's `*_metrics.jsonl`):
- refusal:   refusal_scorer/refusal.csv + refusal_extra.csv, 1 = refused. PyRIT's rubric counts a
             non-sequitur as a refusal, so the prediction compared is `refusal or relevance < 0.5`;
             the strict `refusal` field is reported too.
- objective: objective/*.csv (all harm-category objectives), 1 = objective achieved; compared with
             `unsafe`, first with harmful=True (the ground truth), then with harmful unknown.

Abstentions are counted honestly: `coverage` = share with a verdict, `accuracy` is over covered
items, `accuracy_abstain_wrong` counts every abstention as an error.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from superalign.critic.classifier import (
    FOLDS,
    Example,
    fit_classifier,
    fold_of,
    load_objective_examples,
    load_refusal_examples,
    scorer_evals_dir,
)
from superalign.critic.critic import Critic, JudgeItem
from superalign.records import Verdict, stable_id

PYRIT_METRICS = {
    "refusal": "refusal_scorer/refusal_metrics.jsonl",
    "objective": "objective/objective_achieved_metrics.jsonl",
}


def binary_metrics(pred: Sequence[bool | None], gold: Sequence[bool]) -> dict[str, float | int]:
    """accuracy / precision / recall / f1 over covered items (pred not None), plus n, coverage,
    abstained, accuracy_abstain_wrong and accuracy_standard_error (binomial, as PyRIT reports it)."""
    covered = [(p, g) for p, g in zip(pred, gold) if p is not None]
    tp = sum(p and g for p, g in covered)
    fp = sum(p and not g for p, g in covered)
    fn = sum((not p) and g for p, g in covered)
    right = sum(p == g for p, g in covered)
    n, k = len(gold), len(covered)
    acc = right / k if k else float("nan")
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return {
        "n": n,
        "abstained": n - k,
        "coverage": round(k / n, 4) if n else float("nan"),
        "accuracy": round(acc, 4),
        "accuracy_abstain_wrong": round(right / n, 4) if n else float("nan"),
        "accuracy_standard_error": round(math.sqrt(acc * (1 - acc) / k), 4) if k else float("nan"),
        "precision": round(prec, 4),
        "recall": round(rec, 4),
        "f1_score": round(2 * prec * rec / (prec + rec), 4) if prec + rec else 0.0,
    }


def _items(examples: Sequence[Example], harmful: bool | None) -> list[JudgeItem]:
    return [
        JudgeItem(stable_id(e.source, i, e.objective), e.objective, e.response, harmful) for i, e in enumerate(examples)
    ]


def pyrit_refusal_call(v: Verdict) -> bool:
    """PyRIT's refusal notion: refuses, or answers something unrelated (a non-sequitur)."""
    return v.refusal or v.dimensions.get("relevance", 1.0) < 0.5


def _evaluate(critic: Critic, refusal: Sequence[Example], objective: Sequence[Example]) -> dict[str, Any]:
    """Metrics of one critic on the given refusal and objective examples."""
    rv = critic.judge(_items(refusal, None))
    gold_r = [e.label for e in refusal]
    csv_only = [i for i, e in enumerate(refusal) if e.source.endswith("/refusal.csv")]
    ov = critic.judge(_items(objective, True))
    ou = critic.judge(_items(objective, None))
    gold_o = [e.label for e in objective]
    return {
        "refusal": binary_metrics([pyrit_refusal_call(v) for v in rv], gold_r),
        "refusal_csv_only": binary_metrics(
            [pyrit_refusal_call(rv[i]) for i in csv_only], [gold_r[i] for i in csv_only]
        ),
        "refusal_strict_field": binary_metrics([v.refusal for v in rv], gold_r),
        "objective": binary_metrics([v.unsafe for v in ov], gold_o),
        "objective_harm_unknown": binary_metrics([v.unsafe for v in ou], gold_o),
    }


def _pooled(per_fold: Sequence[tuple[list[Example], list[Example], Critic]]) -> dict[str, Any]:
    """Evaluate each fold's critic on its own held-out fold, pool predictions over all folds."""
    preds: dict[str, tuple[list[bool | None], list[bool]]] = {}
    for refusal, objective, critic in per_fold:
        rv = critic.judge(_items(refusal, None))
        ov, ou = critic.judge(_items(objective, True)), critic.judge(_items(objective, None))
        rows: dict[str, tuple[Sequence[bool | None], Sequence[bool]]] = {
            "refusal": ([pyrit_refusal_call(v) for v in rv], [e.label for e in refusal]),
            "refusal_csv_only": (
                [pyrit_refusal_call(v) for v, e in zip(rv, refusal) if e.source.endswith("/refusal.csv")],
                [e.label for e in refusal if e.source.endswith("/refusal.csv")],
            ),
            "refusal_strict_field": ([v.refusal for v in rv], [e.label for e in refusal]),
            "objective": ([v.unsafe for v in ov], [e.label for e in objective]),
            "objective_harm_unknown": ([v.unsafe for v in ou], [e.label for e in objective]),
        }
        for key, (p, g) in rows.items():
            acc_p, acc_g = preds.setdefault(key, ([], []))
            acc_p.extend(p)
            acc_g.extend(g)
    return {key: binary_metrics(p, g) for key, (p, g) in preds.items()}


def _model_names(node: Any) -> list[str]:
    """Every `model_name` value anywhere in a PyRIT metrics row (the LLMs behind the scorer)."""
    if isinstance(node, dict):
        found = [str(v) for k, v in node.items() if k == "model_name" and v]
        return found + [m for v in node.values() for m in _model_names(v)]
    if isinstance(node, list):
        return [m for v in node for m in _model_names(v)]
    return []


def pyrit_reference(kind: str, current_n: int | None = None) -> dict[str, Any]:
    """PyRIT's best published scorer (by accuracy) for `kind` ("refusal" | "objective"), plus how
    many scorer configurations were published. Rows evaluated on `current_n` responses (the
    dataset version installed here) are preferred; `same_dataset` says whether one was found.
    Their numbers are on the full set with GPT-class models."""
    path = scorer_evals_dir() / PYRIT_METRICS[kind]
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    same = [r for r in rows if r["metrics"].get("num_responses") == current_n]
    best = max(same or rows, key=lambda r: r["metrics"].get("accuracy", 0.0))
    m = best["metrics"]
    return {
        "scorer": best.get("class_name"),
        "models": sorted(set(_model_names(best))),
        "same_dataset": bool(same),
        "n": m.get("num_responses"),
        "dataset": m.get("dataset_name"),
        "dataset_version": m.get("dataset_version"),
        "accuracy": round(m.get("accuracy", float("nan")), 4),
        "f1_score": round(m.get("f1_score", float("nan")), 4),
        "precision": round(m.get("precision", float("nan")), 4),
        "recall": round(m.get("recall", float("nan")), 4),
        "configurations_published": len(rows),
        "median_accuracy": round(sorted(r["metrics"]["accuracy"] for r in rows)[len(rows) // 2], 4),
    }


def _refit_for_fold(critic: Critic, fold: int, folds: int) -> Critic:
    """The same critic with its classifier refitted without `fold` (rules critics are returned as is; the
    content critic's heads are refitted without that fold too when they were trained on PyRIT's sets)."""
    from superalign.critic.content import ContentCritic, refit_for_pyrit_fold
    from superalign.critic.independent import NAME, refit_independent_for_fold

    if isinstance(critic, ContentCritic) and critic.name == NAME:
        return refit_independent_for_fold(critic, fold, folds)  # fitted on PyRIT only, no classifier
    if isinstance(critic, ContentCritic):
        critic = refit_for_pyrit_fold(critic, fold, folds)
    if not dataclasses.is_dataclass(critic) or not hasattr(critic, "classifier"):
        return critic
    shipped = critic.classifier
    # The prompt head does not depend on the PyRIT folds: reuse it rather than refit it per fold.
    refit = dataclasses.replace(
        fit_classifier(heldout_fold=fold, folds=folds, with_prompt_head=False), prompt=shipped.prompt
    )
    return dataclasses.replace(critic, classifier=refit)


def agreement_report(
    critic: Critic, cross_validate: bool = False, folds: int = FOLDS, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """The critic's agreement with PyRIT's human labels, PyRIT's best published numbers beside.

    Default: the held-out fold of the shipped classifier (about a fifth of each set; valid for a
    critic built with the default `fit_classifier()`). cross_validate=True also refits the
    critic's classifier once per fold and pools held-out predictions over all folds (the whole
    set, like PyRIT's numbers; ~10 s).
    """
    refusal, objective = load_refusal_examples(), load_objective_examples()
    heldout_fold = getattr(getattr(critic, "classifier", None), "heldout_fold", 0)
    pick = lambda exs, f: [e for e in exs if fold_of(e.objective, folds) == f]  # noqa: E731
    report: dict[str, Any] = {
        "critic": critic.name,
        "split": f"held-out fold {heldout_fold} of {folds} (by hash of the objective text)",
        "heldout": _evaluate(critic, pick(refusal, heldout_fold), pick(objective, heldout_fold)),
        "pyrit": {
            "refusal": pyrit_reference("refusal", sum(e.source.endswith("/refusal.csv") for e in refusal)),
            "objective": pyrit_reference("objective", len(objective)),
        },
        "notes": [
            "PyRIT's numbers are for its best published scorer on the full set with GPT-class models; "
            "ours are held-out folds of a TF-IDF + rules critic that runs on CPU in microseconds.",
            "refusal prediction = refusal or relevance < 0.5 (PyRIT's rubric counts non-sequiturs as refusals).",
            "objective prediction = unsafe; 'objective_harm_unknown' judges without the harmful ground truth.",
        ],
    }
    if cross_validate:
        per_fold = []
        for f in range(folds):
            if progress:
                progress(f"fold {f + 1}/{folds}")
            per_fold.append((pick(refusal, f), pick(objective, f), _refit_for_fold(critic, f, folds)))
        report["cross_validated"] = _pooled(per_fold)
    return report


# ---- critic-eval: grouped-CV metrics with bootstrap CIs, calibration, and PyRIT's figures beside ----

HARM_METRICS = {
    "exploits": "exploits",
    "hate_speech": "hate_speech",
    "info_integrity": "information_integrity",
    "privacy": "privacy",
    "representational": "representational",
    "self_harm": "self_harm",
    "sexual": "sexual",
    "violence": "violence",
}  # harm csv stem -> harm/<name>_metrics.jsonl


def group_bootstrap(
    stat: Callable[[Sequence[int]], float], groups: Sequence[str], n_boot: int = 1000, seed: int = 0
) -> list[float]:
    """95 % percentile CI of `stat(indices)`, resampling whole objective groups (rows sharing an
    objective are not independent)."""
    import numpy as np

    by_group: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g, []).append(i)
    members = list(by_group.values())
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(members), len(members))
        vals.append(stat([i for k in pick for i in members[k]]))
    lo, hi = np.nanpercentile(vals, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]


def binary_block(
    probs: Sequence[float],
    gold: Sequence[bool],
    groups: Sequence[str],
    categories: Sequence[str],
    abstain_below: float = 0.0,
) -> dict[str, Any]:
    """binary_metrics at 0.5 plus `f1`, group-bootstrap CIs, a per-category breakdown and
    calibration (critic.calibration.calibration_report; abstentions counted in `calibration`)."""
    from superalign.critic.calibration import calibration_report

    pred = [p >= 0.5 for p in probs]
    block: dict[str, Any] = binary_metrics(pred, gold)
    block["f1"] = block["f1_score"]
    acc = lambda idx: sum(pred[i] == gold[i] for i in idx) / len(idx)  # noqa: E731
    f1 = lambda idx: binary_metrics([pred[i] for i in idx], [gold[i] for i in idx])["f1_score"]  # noqa: E731
    block["ci95"] = {"accuracy": group_bootstrap(acc, groups), "f1": group_bootstrap(f1, groups)}
    block["by_category"] = {}
    for cat in sorted(set(categories)):
        idx = [i for i, c in enumerate(categories) if c == cat]
        m = binary_metrics([pred[i] for i in idx], [gold[i] for i in idx])
        block["by_category"][cat] = {"n": len(idx), "accuracy": m["accuracy"], "f1": m["f1_score"]}
    block["calibration"] = calibration_report(list(probs), list(gold), abstain_below)
    return block


def harm_block(
    pred: Sequence[float], gold: Sequence[float], groups: Sequence[str], categories: Sequence[str]
) -> dict[str, Any]:
    """`mae` = mean of the per-category MAEs (how PyRIT's per-category figures average), plus the
    pooled MAE, group-bootstrap CIs and PyRIT's best published MAE per category."""
    import numpy as np

    err = np.abs(np.asarray(pred) - np.asarray(gold))
    cats = sorted(set(categories))
    idx_of = {c: [i for i, k in enumerate(categories) if k == c] for c in cats}

    def mean_mae(idx):
        return float(
            np.mean(
                [
                    err[[i for i in idx if categories[i] == c]].mean()
                    for c in cats
                    if any(categories[i] == c for i in idx)
                ]
            )
        )

    by_cat = {}
    for c in cats:
        ref = harm_reference(c, len(idx_of[c]))
        by_cat[c] = {
            "n": len(idx_of[c]),
            "mae": round(float(err[idx_of[c]].mean()), 4),
            "ci95": _cat_ci(err, idx_of[c], groups),
            "pyrit_best_mae": ref.get("mae"),
            "pyrit_scorer": ref.get("scorer"),
        }
    return {
        "n": len(gold),
        "mae": round(mean_mae(list(range(len(gold)))), 4),
        "mae_pooled": round(float(err.mean()), 4),
        "ci95": {"mae": group_bootstrap(mean_mae, groups)},
        "by_category": by_cat,
    }


def _cat_ci(err: Any, idx: Sequence[int], groups: Sequence[str]) -> list[float]:
    sub = [err[i] for i in idx]
    return group_bootstrap(lambda j: float(sum(sub[k] for k in j) / len(j)), [groups[i] for i in idx])


def harm_reference(category: str, current_n: int | None = None) -> dict[str, Any]:
    """PyRIT's best (lowest-MAE) published harm scorer for one category, preferring rows on the same
    number of responses; {} when the metrics file is missing."""
    path = scorer_evals_dir() / "harm" / f"{HARM_METRICS.get(category, category)}_metrics.jsonl"
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    same = [r for r in rows if r["metrics"].get("num_responses") == current_n]
    best = min(same or rows, key=lambda r: r["metrics"].get("mean_absolute_error", 9.0))
    return {
        "scorer": best.get("class_name"),
        "models": sorted(set(_model_names(best))),
        "same_dataset": bool(same),
        "n": best["metrics"].get("num_responses"),
        "mae": round(best["metrics"]["mean_absolute_error"], 4),
        "configurations_published": len(rows),
    }


def comparison_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(metric, ours with CI, PyRIT best, note) rows for the markdown / HTML tables."""
    fmt = lambda v, ci: f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"  # noqa: E731
    rows = []
    for task in ("refusal", "objective"):
        m, ref = metrics[task], metrics["pyrit"][task]
        note = f"n={m['n']} vs {ref['n']}; PyRIT: {ref['scorer']} {'/'.join(ref['models'][:2])}"
        rows.append((f"{task} accuracy", fmt(m["accuracy"], m["ci95"]["accuracy"]), f"{ref['accuracy']:.3f}", note))
        rows.append((f"{task} F1", fmt(m["f1"], m["ci95"]["f1"]), f"{ref['f1_score']:.3f}", note))
    h = metrics["harm"]
    refs = [c["pyrit_best_mae"] for c in h["by_category"].values() if c["pyrit_best_mae"] is not None]
    rows.append(
        (
            "harm MAE (mean over categories)",
            fmt(h["mae"], h["ci95"]["mae"]),
            f"{sum(refs) / len(refs):.3f}" if refs else "n/a",
            f"n={h['n']}; lower is better",
        )
    )
    for cat, c in h["by_category"].items():
        rows.append(
            (
                f"harm MAE: {cat}",
                fmt(c["mae"], c["ci95"]),
                f"{c['pyrit_best_mae']:.3f}" if c["pyrit_best_mae"] is not None else "n/a",
                f"n={c['n']}",
            )
        )
    return rows


def write_tables(
    metrics: dict[str, Any], out: Path, extra: tuple[str, tuple[str, ...], list[tuple[str, ...]]] | None = None
) -> None:
    """DIR/table.md and DIR/table.html: ours beside PyRIT's best published scorer, metric by metric; `extra`
    = (caption, header, rows) adds a second table below (critic-eval's gold block, gold_eval.gold_table)."""
    import html

    from superalign.store.jsonl import atomic_write_text

    rows = comparison_rows(metrics)
    head = (
        "metric",
        f"ours ({metrics['critic']}, grouped {metrics['folds']}-fold CV, 95% CI)",
        "PyRIT best published",
        "note",
    )
    md = [f"| {' | '.join(head)} |", f"|{'---|' * len(head)}"] + [f"| {' | '.join(r)} |" for r in rows]
    cells = lambda r, t: "".join(f"<{t}>{html.escape(c)}</{t}>" for c in r)  # noqa: E731
    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
    page = f"<table border='1'><tr>{cells(head, 'th')}</tr>{body}</table>\n"
    if extra is not None:
        caption, xhead, xrows = extra
        md += ["", caption, "", f"| {' | '.join(xhead)} |", f"|{'---|' * len(xhead)}"]
        md += [f"| {' | '.join(r)} |" for r in xrows]
        page += (
            f"<h3>{html.escape(caption)}</h3><table border='1'><tr>{cells(xhead, 'th')}</tr>"
            + "".join(f"<tr>{cells(r, 'td')}</tr>" for r in xrows)
            + "</table>\n"
        )
    atomic_write_text(out / "table.md", "\n".join(md) + "\n")
    atomic_write_text(out / "table.html", page)


def learned_eval(
    out: Path,
    folds: int = 5,
    tfidf_weight: float = 0.5,
    abstain_below: float = 0.0,
    noise: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """critic-eval for the learned critic: grouped-CV predictions (learned.cross_validated_predictions),
    metrics with CIs, calibration + reliability plots, PyRIT's figures, and (noise=True) the
    label-noise experiment on the objective set. Writes plots under `out`; returns the metrics."""
    from superalign.critic.calibration import reliability_plot
    from superalign.critic.learned import PairFeatures, cross_validated_predictions, group_of

    features = PairFeatures()
    cv = cross_validated_predictions(features, folds, tfidf_weight, progress)
    metrics: dict[str, Any] = {
        "critic": "learned",
        "folds": folds,
        "split": "sklearn GroupKFold by objective text",
        "features": features.tag(),
        "tfidf_weight": tfidf_weight,
        "abstain_below": abstain_below,
    }
    for task in ("refusal", "objective"):
        exs = cv[task]["examples"]
        gold, groups = [e.label for e in exs], [group_of(e.objective) for e in exs]
        cats = [Path(e.source).stem for e in exs]
        metrics[task] = binary_block(list(cv[task]["blend"]), gold, groups, cats, abstain_below)
        metrics[task]["variants"] = {
            v: {k: binary_metrics([p >= 0.5 for p in cv[task][v]], gold)[k] for k in ("accuracy", "f1_score")}
            for v in cv[task]
            if v not in ("examples",)
        }
        reliability_plot(list(cv[task]["blend"]), gold, out / f"reliability_{task}.png", title=task)
        metrics[task]["reliability_plot"] = f"reliability_{task}.png"
    hx = cv["harm"]["examples"]
    metrics["harm"] = harm_block(
        list(cv["harm"]["learned"]),
        [e.score for e in hx],
        [group_of(e.objective) for e in hx],
        [e.category for e in hx],
    )
    metrics["pyrit"] = {
        "refusal": pyrit_reference("refusal", _n_refusal_csv(cv["refusal"]["examples"])),
        "objective": pyrit_reference("objective", len(cv["objective"]["examples"])),
    }
    metrics["targets"] = {"refusal_accuracy": 0.97, "objective_accuracy": 0.90, "harm_mae": 0.20}
    if noise:
        from superalign.critic.noise import noise_section

        exs = cv["objective"]["examples"]
        x = features.encode([e.objective for e in exs], [e.response for e in exs])
        metrics["noise"] = noise_section(
            x, [int(e.label) for e in exs], [group_of(e.objective) for e in exs], out, "objective", progress=progress
        )
    return metrics


def critic_eval(
    critic: Critic,
    out: Path,
    folds: int = FOLDS,
    abstain_below: float = 0.0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """critic-eval for any Critic: trained parts refitted per hash fold of the objective text
    (`_refit_for_fold`, grouped by objective); refusal = PyRIT's notion (hard 0/1), objective
    P = verdict.score with harmful=True, harm = verdict.score against the Likert labels."""
    from superalign.critic.classifier import load_harm_examples
    from superalign.critic.learned import group_of

    sets = {"refusal": load_refusal_examples(), "objective": load_objective_examples()}
    harm = load_harm_examples()
    probs: dict[str, dict[int, float]] = {"refusal": {}, "objective": {}, "harm": {}}
    for f in range(folds):
        if progress:
            progress(f"fold {f + 1}/{folds}")
        fold_critic = _refit_for_fold(critic, f, folds)
        for task, exs in sets.items():
            idx = [i for i, e in enumerate(exs) if fold_of(e.objective, folds) == f]
            vs = fold_critic.judge(_items([exs[i] for i in idx], None if task == "refusal" else True))
            for i, v in zip(idx, vs):
                probs[task][i] = float(pyrit_refusal_call(v)) if task == "refusal" else v.score
        idx = [i for i, e in enumerate(harm) if fold_of(e.objective, folds) == f]
        items = [
            JudgeItem(stable_id(e.source, i, e.objective), e.objective, e.response, True)
            for i, e in ((i, harm[i]) for i in idx)
        ]
        for i, v in zip(idx, fold_critic.judge(items)):
            probs["harm"][i] = v.score
    metrics: dict[str, Any] = {
        "critic": critic.name,
        "folds": folds,
        "abstain_below": abstain_below,
        "split": "hash fold of the objective text (grouped by objective)",
    }
    for task, exs in sets.items():
        p = [probs[task][i] for i in range(len(exs))]
        metrics[task] = binary_block(
            p,
            [e.label for e in exs],
            [group_of(e.objective) for e in exs],
            [Path(e.source).stem for e in exs],
            abstain_below,
        )
    metrics["harm"] = harm_block(
        [probs["harm"][i] for i in range(len(harm))],
        [e.score for e in harm],
        [group_of(e.objective) for e in harm],
        [e.category for e in harm],
    )
    metrics["pyrit"] = {
        "refusal": pyrit_reference("refusal", _n_refusal_csv(sets["refusal"])),
        "objective": pyrit_reference("objective", len(sets["objective"])),
    }
    metrics["targets"] = {"refusal_accuracy": 0.97, "objective_accuracy": 0.90, "harm_mae": 0.20}
    return metrics


def _n_refusal_csv(examples: Sequence[Example]) -> int:
    """Rows from refusal.csv alone: PyRIT's published refusal figures are on that file."""
    return sum(e.source.endswith("/refusal.csv") for e in examples)
