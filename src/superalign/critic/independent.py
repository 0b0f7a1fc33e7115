"""The evaluation judge behind `asr_independent`: it shares no training rows and no fitted weights with the
critic the learner trains against.

    judge = build_independent_judge()          # a ContentCritic named "independent"
    verdicts = judge.judge(items)

Why it exists: the loop builds its preference pairs from the training critic's verdicts, so the learner is
optimised against that critic, and ASR measured by the same critic rewards learning the critic's blind spots
(a Goodhart loop). This judge reads the same features as the content critic (frozen SmolLM2 states of the
whole scrubbed response and of its content, plus the segment features: nothing fitted), but its heads are
fitted on other people's labels only: PyRIT's human-labelled objective set (response achieves the harmful
objective -> comply head) and refusal sets (refusal head). The content critic's heads are fitted on the gold
dev split and no PyRIT row (content.PYRIT_WEIGHT); the prompt-harm head of the TF-IDF classifier is not used
here (the dataset's label, or a rule cue when there is none, gives P(harmful request)).

What it still shares with the training critic: the frozen feature extractor and the hand-written scrubbing
and segment rules, so their errors are correlated; `asr_ppi` (ppi.py) corrects what is left with a few
human labels. Its accuracy on the gold test split is in docs/results/critic-eval/compare.json.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from superalign.critic.content import (
    ContentCritic,
    ContentFeatures,
    ContentHeads,
    TrainRow,
    fit_content_heads,
    load_shipped_heads,
)
from superalign.critic.learned import group_of

if TYPE_CHECKING:
    from superalign.config import CriticConfig

# What each critic kind is fitted on (rules and llm-judge: nothing of ours). The TF-IDF classifier's prompt
# head trains on the seed prompts of the loop's training split; its refusal/objective heads on PyRIT's sets.
TRAINING_DATA: dict[str, frozenset[str]] = {
    "content": frozenset({"gold dev split", "seed prompts"}),
    "independent": frozenset({"PyRIT's labelled sets"}),
    "learned": frozenset({"PyRIT's labelled sets", "seed prompts"}),
    "ensemble": frozenset({"PyRIT's labelled sets", "seed prompts"}),
    "classifier": frozenset({"PyRIT's labelled sets", "seed prompts"}),
    "rules": frozenset(),
    "llm-judge": frozenset(),
}


def independence_problem(critic_kind: str, judge_kind: str) -> str | None:
    """Why a judge of kind `judge_kind` cannot measure a learner trained against `critic_kind`, or None."""
    if critic_kind == judge_kind:
        return f"is the training critic's own kind ({critic_kind!r}): it would grade the learner with its teacher"
    shared = TRAINING_DATA.get(critic_kind, frozenset()) & TRAINING_DATA.get(judge_kind, frozenset())
    if shared:
        ok = sorted(k for k, d in TRAINING_DATA.items() if k != critic_kind and not d & TRAINING_DATA[critic_kind])
        return (
            f"{judge_kind!r} and the training critic {critic_kind!r} are both fitted on {', '.join(sorted(shared))}; "
            f"choose one of {', '.join(ok)} (or eval_judge: null)"
        )
    return None


INDEPENDENT_HEADS_VERSION = 1  # bump when the recipe below changes
SHIPPED_INDEPENDENT_HEADS = Path(__file__).resolve().parent / "independent_heads.npz"
NAME = "independent"


def pyrit_training_rows(exclude_fold: tuple[int, int] | None = None) -> list[TrainRow]:
    """PyRIT's objective rows (comply head) and refusal rows (refusal head); exclude_fold=(fold, folds)
    leaves out that hash fold of the objectives (critic-eval scores PyRIT's sets by grouped CV)."""
    from superalign.critic.classifier import fold_of, load_objective_examples, load_refusal_examples

    def keep(objective: str) -> bool:
        return exclude_fold is None or fold_of(objective, exclude_fold[1]) != exclude_fold[0]

    rows = [
        TrainRow(e.objective, e.response, bool(e.label), None, None, group_of(e.objective), 1.0, "pyrit-objective")
        for e in load_objective_examples()
        if keep(e.objective)
    ]
    rows += [
        TrainRow(e.objective, e.response, None, bool(e.label), None, group_of(e.objective), 1.0, "pyrit-refusal")
        for e in load_refusal_examples()
        if keep(e.objective)
    ]
    return rows


def pyrit_digest() -> str:
    """A digest of the PyRIT files the heads are fitted on (the shipped heads are valid for these only)."""
    from superalign.critic.classifier import REFUSAL_FILES, scorer_evals_dir

    root = scorer_evals_dir()
    files = sorted((root / "objective").glob("*.csv")) + [root / f for f in REFUSAL_FILES if (root / f).is_file()]
    h = hashlib.sha1()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def fit_independent_heads(
    features: ContentFeatures | None = None,
    exclude_fold: tuple[int, int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ContentHeads:
    """Comply and refusal heads on PyRIT's rows (no degenerate labels there: that head is constant 0)."""
    return fit_content_heads(pyrit_training_rows(exclude_fold), features or ContentFeatures(), progress)


def load_or_fit_independent_heads(features: ContentFeatures | None = None) -> ContentHeads:
    """The shipped heads (independent_heads.npz, written by scripts/gold/fit_independent_heads.py) when they
    match PyRIT's files, this recipe and the features; else fitted once and cached on disk."""
    from superalign.backends.embedded import cache_root
    from superalign.store.jsonl import cached_pickle

    features = features or ContentFeatures()
    digest = pyrit_digest()
    shipped = load_shipped_heads(SHIPPED_INDEPENDENT_HEADS, features, digest, INDEPENDENT_HEADS_VERSION)
    if shipped is not None:
        return shipped

    def fit() -> ContentHeads:
        import sys

        print(
            "independent judge: fitting its heads on PyRIT's labelled sets (first use of this recipe; "
            "a few minutes on 2 cores, cached afterwards)",
            file=sys.stderr,
        )
        return fit_independent_heads(features)

    path = cache_root() / "critic-heads" / f"independent-{features.tag()}-{digest}-v{INDEPENDENT_HEADS_VERSION}.pkl"
    return cached_pickle(path, fit, ContentHeads)


def build_independent_judge(cfg: CriticConfig | None = None) -> ContentCritic:
    """The evaluation judge: PyRIT-fitted heads over the content features, no fitted prompt head."""
    from superalign.critic.content import features_for_backbone

    return ContentCritic(
        load_or_fit_independent_heads(features_for_backbone(cfg.backbone if cfg is not None else "smollm2")),
        classifier=None,
        abstain_below=cfg.abstain_below if cfg is not None else 0.0,
        name=NAME,
    )


def refit_independent_for_fold(critic: ContentCritic, fold: int, folds: int) -> ContentCritic:
    """The judge with heads refitted without PyRIT's fold `fold` (for critic-eval's grouped CV)."""
    import dataclasses

    return dataclasses.replace(critic, heads=fit_independent_heads(critic.heads.features, (fold, folds)))
