"""`RoundMetrics`: one row of a run's `rounds.jsonl`, the per-round metrics contract (docs/design.md §3, §4).

The fields ARE the columns: `store/run_outputs.py` validates every row through this record before writing it
(`extra="forbid"`: a key not declared here is a bug, refused), and the loop validates its `eval` payload
before committing it. Field names are a public contract: add fields, never rename.

Presence carries meaning, so a row keeps exactly the keys it was given (`to_row`, `exclude_unset`): a
column that does not apply is absent (no dev set: no `dev_asr`), while a column that applies but has no
value is null (round 0's `trained_from`; `promoted` = None while the gate's decision is pending;
`scaled_by` = None when no alpha met the dev limits; `asr_ppi_ci` = None when no honest interval exists).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

# [lo, hi] of a 95 % interval (NaN ends where there is nothing to estimate from)
Interval = Annotated[list[float], Field(min_length=2, max_length=2)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_row(self) -> dict[str, Any]:
        """The JSON row: the keys this record was given, in field order (nested records likewise)."""
        return self.model_dump(exclude_unset=True)


class SubsetASR(_Frozen):
    """Held-out ASR on one subset of the harmful held-out queries (`plan.heldout_subset`)."""

    n: int = Field(description="Harmful held-out queries in the subset.")
    asr: float = Field(description="ASR on the subset by the training critic.")
    asr_independent: float | None = Field(None, description="ASR on the subset by the evaluation judge.")


class StyleASR(_Frozen):
    """Of one attack style's training queries, the share of sampled answers the critic judged unsafe."""

    asr: float = Field(description="Share of the style's sampled answers judged unsafe.")
    n: int = Field(description="Sampled answers of the style judged.")


class RoundMetrics(_Frozen):
    """One round's metrics: one row of `rounds.jsonl` (round 0 = the base model, before any training)."""

    round: int = Field(ge=0, description="The round; 0 evaluates the base model.")

    # held-out safety by the training critic (evaluate.judge_heldout)
    asr: float = Field(description="Share of held-out harmful queries whose greedy answer the critic judged unsafe.")
    asr_ci: Interval = Field(description="Wilson 95 % interval of `asr`.")
    asr_keyword_bound: float = Field(description="Share of harmful answers without a refusal phrase (upper bound).")
    asr_abstained: float = Field(description="Share of harmful answers on which the critic abstained.")
    over_refusal: float = Field(description="Share of held-out benign(-edgy) queries refused.")
    over_refusal_ci: Interval = Field(description="Wilson 95 % interval of `over_refusal`.")
    degenerate: float = Field(description="Share of all held-out answers that are empty, too short or repetitive.")
    critic: str = Field(description="Name of the training critic that judged the answers.")

    # held-out safety by the evaluation judge (eval_judge; absent without one)
    asr_independent: float | None = Field(None, description="ASR by the evaluation judge.")
    asr_independent_ci: Interval | None = Field(None, description="Wilson 95 % interval of `asr_independent`.")
    over_refusal_independent: float | None = Field(None, description="Over-refusal by the evaluation judge.")
    goodhart_gap: float | None = Field(None, description="`asr` - `asr_independent`.")
    eval_judge: str | None = Field(None, description="Name of the evaluation judge.")
    asr_by_subset: dict[str, SubsetASR] | None = Field(
        None, description="ASR per held-out subset (in-distribution, source:<held-out seed set>)."
    )

    # competence (evaluate.competence)
    competence: float = Field(description="MC accuracy by summed option log-likelihood (sciq + ARC-Easy).")
    competence_ci: Interval = Field(description="Percentile-bootstrap 95 % interval of `competence`.")
    competence_by_task: dict[str, float] = Field(description="MC accuracy per task.")
    competence_drop: float | None = Field(
        None, description="Round 0's competence minus this round's, on the same items (absent at round 0)."
    )
    competence_drop_ci: Interval | None = Field(
        None, description="Paired 95 % interval of `competence_drop` (only items whose score changed count)."
    )

    # the round's training (step `train`; null at round 0)
    human_labels: int = Field(ge=0, description="Human labels in the run store when the round was evaluated.")
    pairs: int = Field(ge=0, description="Preference pairs the round trained on (0 at round 0).")
    trained_from: int | None = Field(description="The round whose version this round trained from (null: round 0).")
    train_loss_first: float | None = Field(description="DPO loss of the first training step.")
    train_loss_last: float | None = Field(description="DPO loss of the last training step.")
    reward_accuracy: float | None = Field(description="Share of pairs whose implicit reward margin > 0 (last epoch).")

    # what was evaluated
    model: str = Field(description="The evaluated model, name@version (e.g. embedded@round-1).")
    n_harmful: int = Field(ge=0, description="Harmful held-out queries.")
    n_benign: int = Field(ge=0, description="Benign held-out queries.")
    n_competence: int = Field(ge=0, description="MC items scored for `competence`.")
    minutes: float = Field(description="Wall minutes since the run (or its resume) started, at this evaluation.")

    # dev prompts and dev MC items (step `eval_dev`; absent without a dev set)
    dev_asr: float | None = Field(None, description="ASR on the dev harmful prompts (training critic).")
    dev_over_refusal: float | None = Field(None, description="Over-refusal on the dev benign prompts.")
    dev_n_harmful: int | None = Field(None, description="Dev harmful prompts.")
    dev_n_benign: int | None = Field(None, description="Dev benign prompts.")
    dev_competence: float | None = Field(None, description="MC accuracy on the dev MC items.")
    dev_n_competence: int | None = Field(None, description="Dev MC items.")
    dev_competence_drop: float | None = Field(
        None,
        description=(
            "Round 0's dev competence minus this round's, per task weighted to the reported items' task mix (what "
            "the gate reads)."
        ),
    )
    dev_competence_drop_ci: Interval | None = Field(None, description="Paired 95 % interval of the drop.")
    dev_competence_drop_unweighted: float | None = Field(
        None, description="The same drop as a plain mean over the dev items (their own task mix)."
    )

    # prediction-powered ASR (ppi.ppi_round; absent until held-out answers carry human labels)
    asr_ppi: float | None = Field(None, description="PPI estimate of held-out ASR (judge + human labels).")
    asr_ppi_ci: Interval | None = Field(None, description="Its 95 % interval; null where no honest one exists.")
    human_labels_eval: int | None = Field(None, description="Human labels of held-out answers used by `asr_ppi`.")
    asr_labelled: float | None = Field(None, description="ASR of the labelled answers alone.")
    asr_ppi_lam: float | None = Field(None, description="PPI++ weight on the judge (0: labels alone, 1: plain PPI).")
    asr_ppi_note: str | None = Field(None, description="Why the interval is missing or may be too narrow.")

    # the gate and the round's training side (rounds >= 1)
    promoted: bool | None = Field(None, description="The gate's decision on the round's version (null: pending).")
    scaled_by: float | None = Field(None, description="oversight.shrink_alphas: the alpha kept (null: none met).")
    attack_asr_by_style: dict[str, StyleASR] | None = Field(
        None, description="Training-attack ASR per attack style, learner before the round's update."
    )
    train_refusal_benign: float | None = Field(None, description="Share of benign training answers refused.")
    train_unsafe_harmful: float | None = Field(None, description="Share of harmful training answers judged unsafe.")
    attack_asr: float | None = Field(None, description="The adaptive attacker's ASR on the training objectives.")
    attack_coverage: float | None = Field(None, description="Filled share of the adaptive attacker's archive.")
