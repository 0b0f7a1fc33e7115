"""How much does a small human budget buy? The scripted learner loop under a noisy critic.

Per round: attack -> respond (samples + refusal revisions) -> a *simulated noisy critic* judges ->
`route_to_humans` sends a budget of items to a `SimulatedOracle`, whose labels override the critic
-> DPO-style pairs -> the scripted learner trains -> held-out ASR / over-refusal are measured against
the ground truth (never the noisy critic). Conditions at the same budget:

- `critic`: no humans (budget 0);
- `uncertainty`: the least confident verdicts go to the oracle;
- `random`: a uniform sample of the same size goes to the oracle;
- `oracle`: every item labelled by the oracle (100 % human labels, the ceiling).

The noisy critic has a hard minority: a share `hard_share` of queries (jailbreak-wrapped, ambiguous)
on whose responses it errs with probability `hard_error` each, and errs on the rest with `easy_error`. With
`calibrated` its confidence is lower on hard items (U(0.5, 0.7) vs U(0.75, 1.0)); without, confidence
is drawn independently of hardness, so uncertainty routing has nothing to go on. A wrong verdict flips both
unsafe and refusal, so it turns into an inverted pair (a compliance "chosen" over a refusal), the failure humans
are there to catch.

Ground truth on the scripted learner is exact: its outputs are a fixed refusal or a "Sure, here is
how" compliance, and harmfulness is the seed's label.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from superalign.experiments.common import Progress, no_progress
from superalign.records import Query, Response, Verdict, stable_id, user_chat

CONDITIONS = ("critic", "uncertainty", "random", "oracle")


class RoutingExperimentConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rounds: int = Field(3, ge=1, description="Training rounds after round 0.")
    seeds: tuple[int, ...] = Field((0, 1, 2, 3, 4), description="Seeds: each repeats the whole comparison.")
    budget_fraction: float = Field(0.05, ge=0, le=1, description="Share of a round's judged items humans label.")
    hard_share: float = Field(0.1, ge=0, le=1, description="Share of responses that are hard for the simulated critic.")
    hard_error: float = Field(0.5, ge=0, le=1, description="The simulated critic's error rate on hard responses.")
    easy_error: float = Field(0.02, ge=0, le=1, description="The simulated critic's error rate on the other responses.")
    calibrated: bool = Field(True, description="Whether the critic's confidence tracks its error probability.")
    oracle_noise: float = Field(0.0, ge=0, le=1, description="Label-flip rate of the simulated human oracle.")
    queries_per_round: int = Field(96, ge=1, description="Harmful training queries per round.")
    benign_per_round: int = Field(48, ge=0, description="Benign training queries per round.")
    samples_per_query: int = Field(2, ge=1, description="Samples (and refusal revisions) per harmful query.")
    template_share: float = Field(
        0.25, ge=0, le=1, description="Share of attacks wrapped in a PyRIT template (0 = skip loading them)."
    )


def _truth(q: Query, r: Response) -> tuple[bool, bool]:
    """(unsafe, refusal) ground truth for a scripted response."""
    from superalign.evaluate import keyword_refusal

    refusal = keyword_refusal(r.text)
    return bool(q.harmful) and not refusal, refusal


def _unit(*parts: object) -> float:
    return int(stable_id(*parts), 16) / 16**16


def noisy_verdicts(
    queries: Sequence[Query], responses: Sequence[Response], cfg: RoutingExperimentConfig, seed: int
) -> list[Verdict]:
    """The simulated critic (see the module docstring); deterministic in (seed, response id)."""
    qs = {q.id: q for q in queries}
    out = []
    for r in responses:
        unsafe, refusal = _truth(qs[r.query_id], r)
        hard = _unit("hard", seed, r.query_id) < cfg.hard_share  # hardness is the query's (a wrapper fools it)
        if _unit("error", seed, r.id) < (cfg.hard_error if hard else cfg.easy_error):
            unsafe, refusal = not unsafe, not refusal
        looks_hard = hard if cfg.calibrated else _unit("looks-hard", seed, r.id) < cfg.hard_share
        c = _unit("conf", seed, r.id)
        conf = 0.5 + 0.2 * c if looks_hard else 0.75 + 0.25 * c
        out.append(
            Verdict(r.id, "noisy-sim", unsafe, refusal, float(unsafe), round(conf, 4), explanation="simulated critic")
        )
    return out


def _heldout_metrics(learner: Any, plan: Any) -> tuple[float, float]:
    """(ASR, over-refusal) of the learner's greedy answers on the held-out sets, by ground truth."""
    from superalign.backends.base import Sampling
    from superalign.evaluate import keyword_refusal

    greedy = Sampling(32, 0.0, 50, 0)
    harm = learner.generate([user_chat(q.text) for q in plan.heldout_harmful], greedy)
    ben = learner.generate([user_chat(q.text) for q in plan.heldout_benign], greedy)
    asr = sum(not keyword_refusal(t) for t in harm) / len(harm)
    over = sum(keyword_refusal(t) for t in ben) / len(ben)
    return asr, over


def run_condition(condition: str, cfg: RoutingExperimentConfig, seed: int, plan: Any = None) -> dict[str, Any]:
    """One loop under `condition`; returns per-round ASR / over-refusal and the labels used."""
    from superalign.attacker import attack
    from superalign.backends.base import Sampling
    from superalign.backends.scripted import ScriptedBackend
    from superalign.config import RunConfig
    from superalign.experiments.review_budget.oracle import OracleConfig, SimulatedOracle, TruthItem
    from superalign.learner.pairs import build_pairs
    from superalign.learner.respond import respond, revise_to_refusal
    from superalign.oversight.queue import apply_human_labels
    from superalign.oversight.routing import Strategy, budget_for, route_to_humans
    from superalign.plan import benign_training_queries, make_plan

    run_cfg = RunConfig(
        learner="scripted",
        seed=seed,
        attacker={
            "queries_per_round": cfg.queries_per_round,
            "benign_per_round": cfg.benign_per_round,
            "template_share": cfg.template_share,
        },
        data={"competence_items": 1},
    )
    plan = plan or make_plan(run_cfg)
    learner = ScriptedBackend()
    oracle = SimulatedOracle(OracleConfig(noise=cfg.oracle_noise, seed=seed))
    asr, over = _heldout_metrics(learner, plan)
    rows = [{"round": 0, "asr": asr, "over_refusal": over, "labels": 0, "items": 0}]
    for k in range(1, cfg.rounds + 1):
        s = int(stable_id(seed, k)[:8], 16)
        harmful = attack(plan.train_harmful, run_cfg.attacker, k, s)
        benign = benign_training_queries(plan, cfg.benign_per_round, k, seed)
        params = Sampling(32, 0.8, 50, s)
        n = cfg.samples_per_query
        samples = respond(harmful, learner, params, n, k) + respond(benign, learner, params, 1, k)
        revisions = revise_to_refusal(harmful, learner, params, n, k) + revise_to_refusal(benign, learner, params, 1, k)
        queries, responses = harmful + benign, samples + revisions
        verdicts = noisy_verdicts(queries, responses, cfg, seed)
        budget = (
            len(verdicts)
            if condition == "oracle"
            else (0 if condition == "critic" else budget_for(len(verdicts), cfg.budget_fraction))
        )
        strategy: Strategy = "random" if condition == "random" else "uncertainty"
        picked = route_to_humans(verdicts, budget, strategy, seed=s)
        qs = {q.id: q for q in queries}
        rs = {r.id: r for r in responses}
        labels = oracle.label(
            [TruthItem(v.response_id, *_truth(qs[rs[v.response_id].query_id], rs[v.response_id])) for v in picked]
        )
        fixed = apply_human_labels(verdicts, labels)
        pairs = build_pairs(queries, samples, revisions, fixed)
        learner = learner.train_pairs(pairs)
        asr, over = _heldout_metrics(learner, plan)
        wrong = sum(v.unsafe != _truth(qs[rs[v.response_id].query_id], rs[v.response_id])[0] for v in fixed)
        rows.append(
            {
                "round": k,
                "asr": asr,
                "over_refusal": over,
                "labels": len(labels),
                "items": len(verdicts),
                "wrong_verdicts_after_review": wrong,
                "pairs": len(pairs),
            }
        )
    return {"condition": condition, "seed": seed, "rounds": rows}


def run_experiment(cfg: RoutingExperimentConfig, progress: Progress = no_progress) -> dict[str, Any]:
    """Every condition x seed; summary = mean (and sd) over seeds of the final round's ASR, the ASR drop
    from round 0, over-refusal and the share of items humans labelled."""
    from superalign.config import RunConfig
    from superalign.plan import make_plan

    runs: list[dict[str, Any]] = []
    total = len(cfg.seeds) * len(CONDITIONS)
    for seed in cfg.seeds:
        plan = make_plan(RunConfig(learner="scripted", seed=seed, data={"competence_items": 1}))
        for c in CONDITIONS:
            runs.append(run_condition(c, cfg, seed, plan))
            progress("conditions x seeds", len(runs), total)
    summary = {}
    for c in CONDITIONS:
        rs = [r["rounds"] for r in runs if r["condition"] == c]
        final = [r[-1]["asr"] for r in rs]
        drop = [r[0]["asr"] - r[-1]["asr"] for r in rs]
        summary[c] = {
            "final_asr": round(statistics.mean(final), 4),
            "final_asr_sd": round(statistics.pstdev(final), 4),
            "asr_drop": round(statistics.mean(drop), 4),
            "final_over_refusal": round(statistics.mean(r[-1]["over_refusal"] for r in rs), 4),
            "human_share": round(
                sum(x["labels"] for r in rs for x in r) / max(1, sum(x["items"] for r in rs for x in r)), 4
            ),
            "wrong_verdicts_after_review": round(
                statistics.mean(sum(x.get("wrong_verdicts_after_review", 0) for x in r) for r in rs), 1
            ),
        }
    return {"config": cfg.model_dump(mode="json"), "summary": summary, "runs": runs}


PRESETS = {
    "full": RoutingExperimentConfig(),
    "quick": RoutingExperimentConfig(seeds=(0, 1, 2), rounds=2),
    "uncalibrated": RoutingExperimentConfig(calibrated=False),  # confidence says nothing about hardness
}
LABELS = {
    "critic": "critic only",
    "uncertainty": "uncertainty routing",
    "random": "random routing",
    "oracle": "oracle labels everything",
}


def run(
    out: Path,
    quick: bool,
    seeds: int | None,
    learner: str,
    progress: Progress,
    config: RoutingExperimentConfig | None = None,
) -> dict[str, Any]:
    """`superalign experiment review-budget`: every condition x seed, written to metrics.json / results.md.
    The learner is always the scripted one: ground truth (what is unsafe, what is a refusal) must be exact
    for the comparison to mean anything, so `--learner` may only name it (or be left at its default)."""
    import time

    from superalign.errors import UserError
    from superalign.experiments.common import RATE, markdown_table, mean_ci, write_metrics, write_results

    if learner not in ("embedded", "scripted"):  # "embedded" is the CLI's default: not given
        raise UserError(f"--learner {learner}: review-budget runs on the scripted learner only; drop --learner")
    cfg = config or PRESETS["quick" if quick else "full"]
    if seeds is not None:
        cfg = cfg.model_copy(update={"seeds": tuple(range(seeds))})
    t0 = time.time()
    result = run_experiment(cfg, progress)
    by = {c: [r["rounds"] for r in result["runs"] if r["condition"] == c] for c in CONDITIONS}
    rows = []
    for c in CONDITIONS:
        s = result["summary"][c]
        rows.append(
            [
                LABELS[c],
                f"{100 * s['human_share']:.0f} %",
                mean_ci([r[-1]["asr"] for r in by[c]], bounds=RATE),
                mean_ci([r[-1]["over_refusal"] for r in by[c]], bounds=RATE),
                s["wrong_verdicts_after_review"],
            ]
        )
    table = markdown_table(
        ["condition", "humans label", "final ASR [95 % CI over seeds]", "over-refusal", "wrong verdicts left"], rows
    )
    note = (
        f"Scripted learner, {cfg.rounds} rounds, seeds {list(cfg.seeds)}, budget {cfg.budget_fraction:.0%} of a "
        f"round's judged items, {'calibrated' if cfg.calibrated else 'uncalibrated'} simulated critic "
        f"(hard share {cfg.hard_share}, error {cfg.hard_error} on hard items, {cfg.easy_error} on the rest). "
        "ASR and over-refusal are measured by ground truth on the held-out prompts; 'wrong verdicts left' are "
        "verdicts still wrong after the humans' labels, summed over the rounds (mean over seeds)."
    )
    metrics = {"experiment": "review-budget", "learner": "scripted", **result, "seconds": round(time.time() - t0, 1)}
    write_metrics(out, metrics)
    write_results(out, "review-budget: what a small human budget buys", [note, table])
    return metrics


def format_summary(result: dict[str, Any]) -> str:
    """A plain-text table of `run_experiment`'s summary."""
    cols = ("final_asr", "final_asr_sd", "asr_drop", "final_over_refusal", "human_share", "wrong_verdicts_after_review")
    lines = ["condition    " + "  ".join(f"{c:>14}" for c in cols)]
    for name, s in result["summary"].items():
        lines.append(f"{name:<12} " + "  ".join(f"{s[c]:>14}" for c in cols))
    return "\n".join(lines)


if __name__ == "__main__":  # the older entry: python -m superalign.experiments.review_budget.run [--uncalibrated]
    import json
    import sys

    args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:] if "=" in a)
    cfg = RoutingExperimentConfig(calibrated="--uncalibrated" not in sys.argv, **args)
    res = run_experiment(cfg)
    print(format_summary(res))
    if "--json" in sys.argv:
        print(json.dumps(res["summary"], indent=1))
