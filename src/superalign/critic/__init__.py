"""The critic stage: judge learner responses (refusal, unsafe compliance, dimensions, explanation).

    verdicts = judge(items, build_critic(cfg.critic))

`constitution.py` (versioned values + profiles, data/constitution.yaml), `rules.py` (patterns),
`scrub.py` (the response is data: unicode tricks, judge-directed text and decoy refusals removed before
scoring), `classifier.py` (trained heads),
`verdicts.py` (evidence -> Verdict: edit this to change how verdicts are made), `critic.py` (the
protocol and critics), `llm_judge.py` (a judge over any backend), `calibration.py` (ECE, reliability
plots, calibrators, honest abstention metrics), `agreement.py` (the critic against PyRIT's human labels).
"""

from __future__ import annotations

from collections.abc import Sequence

from superalign.critic.critic import (
    ClassifierCritic,
    Critic,
    EnsembleCritic,
    JudgeItem,
    RulesCritic,
    build_critic,
)
from superalign.critic.constitution import Constitution, Policy, load_constitution, load_policy
from superalign.records import Verdict

__all__ = ["ClassifierCritic", "Constitution", "Critic", "EnsembleCritic", "JudgeItem", "Policy", "RulesCritic",
           "build_critic", "judge", "load_constitution", "load_policy"]


def judge(items: Sequence[JudgeItem], critic: Critic) -> list[Verdict]:
    """The judge stage: one Verdict per item, in order (empty in, empty out)."""
    if not items:
        return []
    verdicts = critic.judge(items)
    if len(verdicts) != len(items):
        raise RuntimeError(f"critic {critic.name!r} returned {len(verdicts)} verdicts for {len(items)} items")
    return verdicts
