"""Prediction-powered ASR of a round (docs/ppi.md): the independent judge's score on EVERY held-out harmful
answer, corrected by human labels on a uniform random sample of them (`superalign label export/import`).

Data contract (read only): held-out queries at (round 0, step "eval"); round k's answers at (k, "eval");
the independent judge's verdicts at (k, "eval_independent"); human labels at (k, "eval").

f, the judge's side, is the verdict's `score` = P(unsafe), not its 0/1 `unsafe`: PPI is unbiased whatever
f is, and its interval is narrower the better f tracks the human labels; a graded score carries more of
that than its thresholded call, and an abstention (unsafe=None) still has a score, so every answer is in
the pool without inventing a call for it. y, the human side, is the label's `unsafe` (the latest label
of a response wins; a label with unsafe=None says nothing about the rate and is skipped).
"""

from __future__ import annotations

import math
from typing import Any

from superalign.records import HumanLabel, Response, Verdict
from superalign.stats import PPIEstimate, ppi_mean

EVAL_STEP = "eval"  # held-out answers, and the human labels of them
INDEPENDENT_STEP = "eval_independent"  # the independent judge's verdicts on the held-out answers
INDEPENDENT_CRITIC = "independent"


def eval_rounds(store: Any) -> list[int]:
    """The rounds whose held-out evaluation is committed, in order."""
    return sorted({rnd for rnd, name in store.steps() if name == EVAL_STEP})


def harmful_eval_answers(store: Any, k: int) -> list[Response]:
    """Round k's answers to the held-out HARMFUL queries, in stored order."""
    harmful = {q.id for q in store.queries(round=0, step=EVAL_STEP) if q.harmful}
    return [r for r in store.responses(round=k, step=EVAL_STEP) if r.query_id in harmful]


def eval_labels(store: Any, k: int) -> dict[str, HumanLabel]:
    """Round k's human labels of held-out answers by response id: the latest with unsafe set."""
    out: dict[str, HumanLabel] = {}
    for h in store.human_labels(round=k, step=EVAL_STEP):  # insertion order: a later label wins
        if h.unsafe is not None:
            out[h.response_id] = h
    return out


def independent_scores(store: Any, k: int) -> dict[str, float | None]:
    """P(unsafe) by response id from round k's independent verdicts (the "independent" critic's where a
    response has several); None for a score that is not a number in [0, 1] (a judge bug, reported)."""
    chosen: dict[str, Verdict] = {}
    for v in store.verdicts(round=k, step=INDEPENDENT_STEP):
        if v.response_id not in chosen or v.critic == INDEPENDENT_CRITIC:
            chosen[v.response_id] = v
    out: dict[str, float | None] = {}
    for rid, v in chosen.items():
        s = v.score
        ok = not isinstance(s, bool) and isinstance(s, (int, float)) and math.isfinite(s) and 0 <= s <= 1
        out[rid] = float(s) if ok else None
    return out


def round_estimate(store: Any, k: int, confidence: float = 0.95) -> tuple[PPIEstimate | None, int]:
    """(The PPI estimate of round k's held-out ASR, how many scored answers were left out for a bad score);
    the estimate is None without independent verdicts or usable labels.

    The pool is every harmful held-out answer the independent judge scored; the labelled items are
    those of them with a human label (assumed a uniform random sample, as `label export` draws them).
    """
    scores = independent_scores(store, k)
    if not scores:
        return None, 0
    answers = [r.id for r in harmful_eval_answers(store, k) if r.id in scores]
    known = {rid: s for rid, s in scores.items() if s is not None}
    pool = [rid for rid in answers if rid in known]
    labels = eval_labels(store, k)
    labelled = [rid for rid in pool if rid in labels]
    if not labelled:
        return None, len(answers) - len(pool)
    return (
        ppi_mean(
            [known[rid] for rid in pool],
            [known[rid] for rid in labelled],
            [float(bool(labels[rid].unsafe)) for rid in labelled],
            confidence=confidence,
        ),
        len(answers) - len(pool),
    )


def ppi_round(store: Any, k: int, confidence: float = 0.95) -> dict[str, Any]:
    """Round k's PPI columns, to merge into its rounds.jsonl row; {} when the round has no independent
    verdicts or no human labels of its harmful held-out answers (older runs: nothing changes).

    asr_ppi: the PPI estimate of held-out ASR; asr_ppi_ci: [lo, hi], or None where no honest interval
    exists (one label); human_labels_eval: the labels used; asr_labelled: the ASR of the labelled answers
    alone; asr_ppi_lam: the weight PPI++ gave the judge (0: labels alone, 1: plain PPI); asr_ppi_note,
    only when there is something to say: why the interval is missing or is Wilson's, that it may be too
    narrow, or that answers with a broken judge score were left out.
    """
    est, bad = round_estimate(store, k, confidence)
    if est is None:
        return {}
    row: dict[str, Any] = {
        "asr_ppi": est.estimate,
        "asr_ppi_ci": None if est.ci is None else [est.ci[0], est.ci[1]],
        "human_labels_eval": est.n_labelled,
        "asr_labelled": est.classical,
        "asr_ppi_lam": est.lam,
    }
    notes = [est.reason] if est.reason else []
    if bad:
        notes.append(f"{bad} answer(s) left out: their independent score is not a number in [0, 1] (a judge bug)")
    if notes:
        row["asr_ppi_note"] = "; ".join(notes)
    return row
