"""The critic stage: judge learner responses (refusal, unsafe compliance, dimensions, explanation).

    verdicts = judge(items, build_critic(cfg.critic))

`constitution.py` (versioned values + profiles, data/constitution.yaml), `rules.py` (patterns),
`scrub.py` (the response is data: unicode tricks, judge-directed text and decoy refusals removed before
scoring), `classifier.py` (trained heads),
`verdicts.py` (evidence -> Verdict: edit this to change how verdicts are made), `critic.py` (the
protocol, rules / classifier / ensemble critics and the helpers every critic shares), `content.py` +
`segments.py` (the default critic), `independent.py` (the evaluation judge: PyRIT-fitted heads, no row
shared with the default critic), `learned.py`, `llm_judge.py` (a judge over any backend), `calibration.py`
(ECE, reliability plots, calibrators, honest abstention metrics), `agreement.py` (the critic against PyRIT's
human labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from superalign.critic.constitution import Constitution, Policy, load_constitution, load_policy
from superalign.critic.critic import ClassifierCritic, Critic, EnsembleCritic, JudgeItem, RulesCritic
from superalign.records import Verdict

if TYPE_CHECKING:
    from superalign.config import CriticConfig
    from superalign.critic.classifier import FittedClassifier

__all__ = [
    "ClassifierCritic",
    "Constitution",
    "Critic",
    "EnsembleCritic",
    "JudgeItem",
    "Policy",
    "RulesCritic",
    "build_critic",
    "judge",
    "load_constitution",
    "load_policy",
]


def judge(items: Sequence[JudgeItem], critic: Critic) -> list[Verdict]:
    """The judge stage: one Verdict per item, in order (empty in, empty out)."""
    if not items:
        return []
    verdicts = critic.judge(items)
    if len(verdicts) != len(items):
        raise RuntimeError(f"critic {critic.name!r} returned {len(verdicts)} verdicts for {len(items)} items")
    return verdicts


def build_critic(cfg: CriticConfig, classifier: FittedClassifier | None = None) -> Critic:
    """The critic `cfg.kind` names, applying `cfg.constitution` / `cfg.profile`. Pass a fitted
    `classifier` to reuse one; otherwise the one fitted on the training folds is loaded from the disk cache
    (fitted on first use)."""
    policy = load_policy(cfg.constitution, cfg.profile)
    if cfg.kind == "rules":
        return RulesCritic(abstain_below=cfg.abstain_below, policy=policy)
    if cfg.kind == "llm-judge":
        from superalign.backends import load_backend
        from superalign.critic.llm_judge import LLMJudgeCritic

        return LLMJudgeCritic(
            load_backend(cfg.judge_model, batch_size=cfg.judge_batch_size),
            abstain_below=cfg.abstain_below,
            policy=policy,
            mode=cfg.judge_mode,
        )
    if cfg.kind == "independent":
        import dataclasses

        from superalign.critic.independent import build_independent_judge

        return dataclasses.replace(build_independent_judge(cfg), policy=policy)
    if classifier is None:
        from superalign.critic.classifier import fit_classifier_cached

        classifier = fit_classifier_cached(howto_negatives=cfg.prompt_howto_negatives)
    if cfg.kind == "content":
        import dataclasses

        from superalign.critic.content import build_content_critic

        return dataclasses.replace(build_content_critic(cfg, classifier), policy=policy)
    if cfg.kind == "learned":
        import dataclasses

        from superalign.critic.learned import build_learned_critic

        learned = build_learned_critic(cfg, classifier)
        has_policy = dataclasses.is_dataclass(learned) and any(f.name == "policy" for f in dataclasses.fields(learned))
        return dataclasses.replace(learned, policy=policy) if has_policy else learned
    if cfg.kind == "classifier":
        return ClassifierCritic(classifier, abstain_below=cfg.abstain_below, policy=policy)
    return EnsembleCritic(classifier, abstain_below=cfg.abstain_below, policy=policy)
