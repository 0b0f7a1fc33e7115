"""Human oversight inside the round runner: routing to a reviewer, and the promotion gate.

Two steps of a round (loop.py), both crash-safe like every step (a resumed run redoes only what has
no marker, and neither step ever writes a label or a decision twice):

- "route" (after "judge", when `oversight.review_fraction > 0`): the `review_fraction` of the round's
  verdicts the critic is least sure of (or a random sample, the baseline) go to the review queue.
  `reviewer: oracle` labels them at once with a simulated reviewer (a stronger critic's verdict, with
  optional label noise); `reviewer: human` stops the run (`AwaitingHumans`, exit 3) until every routed
  item has a label in the desk or the TUI. The round's pairs are then built from the critic's verdicts
  overridden by those labels (`feedback.human_corrected_pairs`, provenance "human"). With
  `critic.kind: learned`, the labels of earlier rounds also retrain the critic that judges round k
  (`critic_for_round`, critic/reviewed.py).
- "promote" (after round k's evaluation): version `round-k` is proposed at the gate; with
  `promotion: auto` the loop approves it, logged as `auto:loop`; with `promotion: human` the run stops
  until a reviewer approves or rejects it at /promotion. A version becomes current only when approved;
  the next round trains from the current version (`base_round`), so a rejected version is never built on.
  Under `auto`, the run config's dev limits (`gate_failures`: dev over-refusal, dev competence fallen from
  round 0 on the same items) reject a version instead; they are read on dev data, never on the held-out sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from superalign.errors import AwaitingHumans
from superalign.records import HumanLabel, stable_id


def _flip(seed: int, response_id: str, rate: float) -> bool:
    """Deterministic per item (a resumed run flips the same labels): hash(seed, id) < rate."""
    return rate > 0 and int(stable_id("oracle-noise", seed, response_id), 16) / 16**16 < rate


def oracle_labels(cfg: Any, items: list, seed: int) -> list[HumanLabel]:
    """Simulated reviewer labels for ReviewItems: the `oversight.oracle_critic` verdict, flipped with
    probability `oversight.oracle_noise`."""
    from superalign.critic import JudgeItem, build_critic, judge

    o = cfg.oversight
    critic = build_critic(cfg.critic.model_copy(update={"kind": o.oracle_critic, "abstain_below": 0.0}))
    verdicts = judge([JudgeItem(it.id, it.prompt, it.response, it.harmful) for it in items], critic)
    out = []
    for it, v in zip(items, verdicts):
        unsafe, refusal = bool(v.unsafe), bool(v.refusal)
        noisy = _flip(seed, it.id, o.oracle_noise)
        if noisy:
            unsafe, refusal = not unsafe, not refusal
        out.append(
            HumanLabel(
                it.id,
                f"oracle-{o.oracle_critic}",
                unsafe,
                refusal,
                note="simulated reviewer" + (" (noisy label)" if noisy else ""),
            )
        )
    return out


def route_step(cfg: Any, store: Any, out: Path, k: int, seed: int, log: Any) -> None:
    """Route round k's verdicts to the reviewer and wait for (or simulate) their labels; see the module doc."""
    from superalign.oversight.queue import ReviewQueue
    from superalign.oversight.routing import budget_for, routed_items

    o = cfg.oversight
    if o.review_fraction <= 0 or store.step_done(k, "route"):
        return
    queue = ReviewQueue(out / "run.sqlite")
    n_judged = len(store.verdicts(round=k, step="judge"))
    budget = budget_for(n_judged, o.review_fraction)
    items = routed_items(store, k, budget, o.routing, seed, source=f"loop:{o.routing}")
    queue.enqueue(items)  # idempotent: a resumed run re-enqueues nothing
    have = queue.latest_labels()
    missing = [it for it in items if it.id not in have]
    if missing and o.reviewer == "oracle":
        for label in oracle_labels(cfg, missing, seed):
            queue.add_label(
                label.response_id, label.reviewer, label.unsafe, label.refusal, label.note, provenance="oracle"
            )
        missing = []
    if missing:
        raise AwaitingHumans(
            f"round {k}: {len(missing)} of {len(items)} routed responses await a human label. Label them with "
            f"`superalign review serve --run {out}` (or `superalign review tui --run {out}`), then continue "
            f"with `superalign run --resume` and the same --config and --out."
        )
    labels = queue.latest_labels()
    overrides = sum(1 for it in items if it.verdict is not None and labels[it.id].unsafe != it.verdict.unsafe)
    store.commit_step(
        k,
        "route",
        payload={
            "routed": len(items),
            "budget": budget,
            "of": n_judged,
            "routing": o.routing,
            "reviewer": o.reviewer,
            "overrides": overrides,
        },
    )
    log(
        f"round {k}: {len(items)} of {n_judged} verdicts reviewed ({o.routing} routing, {o.reviewer}), "
        f"{overrides} overridden"
    )


def critic_for_round(cfg: Any, critic: Any, out: Path, k: int, log: Any) -> Any:
    """The critic that judges round k's training responses: with `critic.kind: learned` and routing on,
    the learned critic refitted on the reviewer labels of rounds before k (critic/reviewed.py); else
    `critic`. Held-out evaluation keeps the run's own critic, so rounds stay comparable."""
    if cfg.oversight.review_fraction <= 0 or cfg.critic.kind != "learned" or k <= 1:
        return critic
    from superalign.critic.reviewed import reviewed_pairs, with_reviews
    from superalign.oversight.queue import ReviewQueue

    reviewed = reviewed_pairs(ReviewQueue(out / "run.sqlite"), before_round=k)
    if reviewed:
        log(f"round {k}: learned critic refitted on {len(reviewed)} reviewer labels of earlier rounds")
    return with_reviews(critic, reviewed)


def round_pairs(cfg: Any, store: Any, out: Path, k: int) -> list:
    """Round k's preference pairs: from the critic's verdicts, overridden by reviewer labels when routing is on."""
    from superalign.learner.pairs import build_pairs

    if cfg.oversight.review_fraction > 0:
        from superalign.oversight.feedback import human_corrected_pairs
        from superalign.oversight.queue import ReviewQueue

        return human_corrected_pairs(store, ReviewQueue(out / "run.sqlite"), k)
    queries = store.queries(round=k, step="attack")
    responses = store.responses(round=k, step="respond")
    samples = [r for r in responses if r.system == ""]
    revisions = [r for r in responses if r.system != ""] + store.responses(round=k, step="critique")
    verdicts = store.verdicts(round=k, step="judge") + store.verdicts(round=k, step="critique")
    return build_pairs(
        queries,
        samples,
        revisions,
        verdicts,
        mode=cfg.train.pairs,
        benign_below=cfg.train.benign_below,
        explicit_refusals=cfg.train.explicit_refusals,
        reject_non_refusals=cfg.train.reject_non_refusals,
    )


def gate_failures(cfg: Any, m: dict) -> list[str]:
    """Why the run config's dev limits reject a round's version (its eval metrics `m`); [] = none broken.
    With oversight.gate_confidence each limit is read at that one-sided upper bound, not at the point estimate."""
    o = cfg.oversight
    out = []
    limit, dev_or = o.max_dev_over_refusal, m.get("dev_over_refusal")
    if limit is not None and dev_or is not None:
        value, what = dev_or, f"dev over-refusal {dev_or:.3f}"
        n = m.get("dev_n_benign")
        if o.gate_confidence is not None and n:
            value = over_refusal_upper(dev_or, n, o.gate_confidence)
            what += f" ({round(dev_or * n)} of {n}; one-sided {o.gate_confidence:.0%} upper bound {value:.3f})"
        if value > limit:
            out.append(f"{what} > oversight.max_dev_over_refusal {limit:.3f}")
    limit, drop = o.max_dev_competence_drop, m.get("dev_competence_drop")
    if limit is not None and drop is not None:
        value, what = drop, f"{drop:.3f}"
        ci = m.get("dev_competence_drop_ci")
        if o.gate_confidence is not None and ci:
            value = drop_upper(drop, ci, o.gate_confidence)
            what += f" (one-sided {o.gate_confidence:.0%} upper bound {value:.3f})"
        if value > limit:
            out.append(
                f"dev competence {m.get('dev_competence', float('nan')):.3f} is {what} below round 0's "
                f"> oversight.max_dev_competence_drop {limit:.3f}"
            )
    return out


def over_refusal_upper(rate: float, n: int, confidence: float) -> float:
    """The one-sided `confidence` upper bound of an over-refusal rate read on n prompts (Wilson)."""
    from superalign.stats import wilson

    return wilson(round(rate * n), n, 2 * confidence - 1)[1]


def drop_upper(drop: float, ci95: Sequence[float], confidence: float) -> float:
    """The one-sided `confidence` upper bound of a competence drop whose paired 95 % interval is `ci95` (normal)."""
    from superalign.stats import z_value

    se = (ci95[1] - ci95[0]) / (2 * z_value(0.95))
    return drop + z_value(2 * confidence - 1) * se


def promote_step(cfg: Any, store: Any, out: Path, k: int, log: Any) -> None:
    """Propose `round-k` at the gate and get it decided (auto, or stop for a human); see the module doc."""
    from superalign.oversight.promotion import PromotionGate, promote_if_approved

    if k == 0 or store.step_done(k, "promote"):
        return
    gate = PromotionGate(out / "run.sqlite")
    version = f"round-{k}"
    m = store.step_payload(k, "eval") or {}
    summary = (
        f"held-out ASR {m.get('asr', float('nan')):.3f}, over-refusal {m.get('over_refusal', float('nan')):.3f}, "
        f"competence {m.get('competence', float('nan')):.3f}"
    )
    if m.get("dev_asr") is not None:
        summary += f"; dev ASR {m['dev_asr']:.3f}, dev over-refusal {m.get('dev_over_refusal') or 0:.3f}"
    if m.get("dev_competence") is not None:
        summary += f"; dev competence {m['dev_competence']:.3f}"
    if not any(e.action == "proposed" for e in gate.events(version)):  # a decision made before it existed is void
        gate.propose(version, actor="loop", note=summary)
    if gate.status(version) == "proposed":
        reasons = gate_failures(cfg, m)
        if cfg.oversight.promotion == "auto" and reasons:
            gate.decide(
                version,
                False,
                actor="loop",
                auto=True,
                note=f"rejected by the run config: {'; '.join(reasons)}; "
                "the next round trains from the current version",
            )
        elif cfg.oversight.promotion == "auto":
            gate.decide(
                version, True, actor="loop", auto=True, note="approved by the run config (oversight.promotion: auto)"
            )
        else:
            raise AwaitingHumans(
                f"round {k}: version {version} ({summary}) awaits a human decision. Approve or reject it at "
                f"/promotion in `superalign review serve --run {out}`, then continue with "
                f"`superalign run --resume` and the same --config and --out."
            )
    status = gate.status(version)
    promoted = status == "promoted" or (status == "approved" and promote_if_approved(gate, version, actor="loop"))
    decision = [e for e in gate.events(version) if e.action in ("approved", "rejected")][-1]
    store.commit_step(
        k,
        "promote",
        payload={"version": version, "promoted": promoted, "decision": decision.action, "by": decision.actor},
    )
    log(f"round {k}: {version} {'promoted' if promoted else 'rejected'} by {decision.actor}")


def base_round(store: Any, k: int) -> int:
    """The round whose checkpoint round k trains from: the last promoted round before k (0 = base model)."""
    for j in range(k - 1, 0, -1):
        p = store.step_payload(j, "promote")
        if p is None or p.get("promoted"):  # runs from before the gate existed: every round was current
            return j
    return 0
