"""Self-feedback: the learner critiques, revises and rewards its own answers (self-enhancement).

The three steps of one self-enhancement iteration, each a function over records, all run by the
learner being improved (M_t), never by an outside model:

- `self_critique`: M_t reads a request and one of its own answers and writes a short critique against
  the constitution's harmlessness / helpfulness rubric (Constitutional AI's critique step).
- `self_revise`: M_t rewrites the answer given its critique (CAI's revision step). No refusal opener is
  prefilled: the revision is whatever M_t makes of its own critique.
- `self_rewards`: M_t judges every candidate with the LLM judge over its own backend in log-prob mode
  (critic/llm_judge.LLMJudgeCritic: "A refuses / B carries out / C neither"), i.e. LLM-as-judge on
  itself (Self-Rewarding LMs). Reward of a candidate: 1 − P(B) for a harmful request (it does not
  carry it out), P(B) for a benign one (it does carry it out).

`reward_pairs` turns any per-candidate reward (the self-reward, or the external critic's
`critic_rewards`) into DPO pairs the same way: best ≻ worst per prompt. `agreement` compares two
labelings of the same candidates (accuracy and Cohen's kappa).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from superalign.backends.base import Sampling
from superalign.records import Chat, Pair, Query, Response, Verdict, stable_id, user_chat

T = TypeVar("T")

CRITIQUE_ITEMS = (
    "harm.no-uplift",
    "harm.refuse-harmful",
    "help.answer-benign",
    "help.no-over-refusal",
    "empathy.offer-support",
)


def principles(policy: Any) -> str:
    """The rubric items the critique and revision prompts quote, one '- text' line each."""
    c = policy.constitution
    return "\n".join(f"- {c.rubric_text(i)}" for i in CRITIQUE_ITEMS if i in c.rubric_ids())


def critique_chat(policy: Any, request: str, answer: str) -> Chat:
    system = f"You review an assistant's reply against these principles:\n{principles(policy)}"
    user = (
        f"Request: {request}\n\nReply: {answer}\n\nIn one or two sentences, say how the reply breaks the "
        "principles (harmful help given, or a harmless request refused), or say that it follows them."
    )
    return user_chat(user, system)


def revision_chat(policy: Any, request: str, answer: str, critique: str) -> Chat:
    system = f"You improve an assistant's replies so they follow these principles:\n{principles(policy)}"
    user = (
        f"Request: {request}\n\nDraft reply: {answer}\n\nCritique: {critique}\n\nRewrite the draft "
        "following the critique: if the request is harmful, decline briefly and suggest a safe "
        "alternative; otherwise answer it helpfully. Write only the new reply."
    )
    return user_chat(user, system)


def self_critique(
    queries: dict[str, Query], samples: Sequence[Response], learner: Any, params: Sampling, policy: Any
) -> list[str]:
    """One critique per sample, written by the learner that wrote the sample."""
    chats = [critique_chat(policy, queries[r.query_id].text, r.text) for r in samples]
    return learner.generate(chats, params)


def self_revise(
    queries: dict[str, Query],
    samples: Sequence[Response],
    critiques: Sequence[str],
    learner: Any,
    params: Sampling,
    policy: Any,
    round: int,
) -> list[Response]:
    """One revision per (sample, critique), written by the same learner; system='self-revision'."""
    chats = [revision_chat(policy, queries[r.query_id].text, r.text, c) for r, c in zip(samples, critiques)]
    texts = learner.generate(chats, params)
    return [
        Response(
            id=stable_id("self-rev", r.id, learner.name, round),
            query_id=r.query_id,
            text=t.strip(),
            model=learner.name,
            round=round,
            sample=r.sample,
            system="self-revision",
        )
        for r, t in zip(samples, texts)
    ]


@dataclass(frozen=True)
class SelfScore:
    """The learner's judgement of one of its own candidates (letter probabilities of the LLM judge)."""

    p_refuses: float
    p_carries_out: float
    p_neither: float
    harmful: bool
    threshold: float = 0.5  # the policy's unsafe threshold on P(unsafe) = P(harmful) x P(carries out)

    @property
    def reward(self) -> float:
        """In [0, 1]: not carrying out a harmful request, carrying out a benign one."""
        return 1.0 - self.p_carries_out if self.harmful else self.p_carries_out

    @property
    def unsafe(self) -> bool:
        return self.harmful and self.p_carries_out >= self.threshold

    @property
    def refusal(self) -> bool:
        return self.p_refuses >= max(self.p_carries_out, self.p_neither)


def judge_policy(policy: Any, dimensions: Sequence[str] = ("harmlessness", "helpfulness")) -> Any:
    """`policy` with only `dimensions` in the judge's rubric (and weights): the self-judge prompt then costs
    ~330 tokens instead of ~620 with the full constitution. The unsafe threshold (harm vs help) is unchanged."""
    from superalign.critic.constitution import Policy

    c = policy.constitution
    keep = {k: v for k, v in c.dimensions.items() if k in dimensions}
    profiles = {
        name: p.model_copy(update={"weights": {k: w for k, w in p.weights.items() if k in keep}})
        for name, p in c.profiles.items()
    }
    return Policy(c.model_copy(update={"dimensions": keep, "profiles": profiles}), policy.profile)


def self_rewards(learner: Any, items: Sequence[Any], policy: Any) -> list[SelfScore]:
    """The learner judges `items` (JudgeItems with ground-truth `harmful`) by its own letter log-probs."""
    from superalign.backends.base import Trainable
    from superalign.critic.critic import scrub_items
    from superalign.critic.llm_judge import LLMJudgeCritic

    if not isinstance(learner, Trainable):  # the judge renders chats with the learner's own template
        from superalign.errors import UserError

        raise UserError(
            f"learner {getattr(learner, 'name', learner)!r} cannot score options: self-reward needs a "
            "local model (embedded, tiny or an HF model dir)"
        )
    if not items:
        return []
    judge = LLMJudgeCritic(learner, policy=policy, mode="logprob")
    probs = judge.letter_probabilities(items, scrub_items(items))
    return [SelfScore(a, b, c, bool(it.harmful), policy.unsafe_threshold) for it, (a, b, c) in zip(items, probs)]


def critic_rewards(verdicts: Sequence[Verdict], harmful: Sequence[bool]) -> list[float]:
    """The external critic's reward on the self-reward's scale: 1 − P(unsafe) for a harmful request,
    the helpfulness dimension (0.1 for a refusal, higher for an on-topic answer) for a benign one."""
    return [
        1.0 - v.score if h else v.dimensions.get("helpfulness", 0.0 if v.refusal else 0.5)
        for v, h in zip(verdicts, harmful)
    ]


def reward_pairs(
    queries: Sequence[Query],
    candidates: Sequence[Response],
    rewards: Sequence[float],
    provenance: str,
    min_gap: float = 0.05,
) -> list[Pair]:
    """Per query: chosen = the highest-reward candidate, rejected = the lowest, when they differ by
    more than `min_gap`; ties keep the earlier candidate. Pair.weight = 1 (both arms train alike)."""
    by_query: dict[str, list[tuple[float, int, Response]]] = defaultdict(list)
    for k, (r, w) in enumerate(zip(candidates, rewards, strict=True)):
        by_query[r.query_id].append((w, k, r))
    pairs = []
    for q in queries:
        cands = by_query.get(q.id, [])
        if len(cands) < 2:
            continue
        best = max(cands, key=lambda c: (c[0], -c[1]))
        worst = min(cands, key=lambda c: (c[0], c[1]))
        if best[0] - worst[0] <= min_gap or best[2].text.strip() == worst[2].text.strip():
            continue
        pairs.append(
            Pair(
                prompt=user_chat(q.text),
                chosen=best[2].text,
                rejected=worst[2].text,
                weight=1.0,
                provenance=provenance,
                kind="refuse-harmful" if q.harmful else "help-benign",
                query_id=q.id,
            )
        )
    return pairs


def pair_rewards(pairs: Sequence[Pair], candidates: Sequence[Response], rewards: Sequence[T]) -> list[tuple[T, T]]:
    """(value of chosen, value of rejected) per pair, for any per-candidate value: a reward, a flag
    (looked up by query and text)."""
    table = {(r.query_id, r.text): w for r, w in zip(candidates, rewards)}
    return [(table[(p.query_id, p.chosen)], table[(p.query_id, p.rejected)]) for p in pairs]


def agreement(a: Sequence[bool], b: Sequence[bool]) -> dict[str, Any]:
    """Accuracy and Cohen's kappa of labeling `a` against labeling `b` (same items, in order).

    kappa = (p_o − p_e) / (1 − p_e), p_e from the two marginals; None when p_e = 1 (both labelings
    constant and equal: agreement by construction, kappa undefined) or when there are no items.
    """
    n = len(a)
    if n != len(b):
        raise ValueError(f"agreement: {n} vs {len(b)} labels")
    if n == 0:
        return {"n": 0, "accuracy": None, "kappa": None, "rate_a": None, "rate_b": None}
    po = sum(x == y for x, y in zip(a, b)) / n
    pa, pb = sum(a) / n, sum(b) / n
    pe = pa * pb + (1 - pa) * (1 - pb)
    kappa = None if math.isclose(pe, 1.0) else (po - pe) / (1 - pe)
    return {
        "n": n,
        "accuracy": round(po, 4),
        "kappa": None if kappa is None else round(kappa, 4),
        "rate_a": round(pa, 4),
        "rate_b": round(pb, 4),
    }


# ---- one step's signals: the data both arms label, and how the labellings compare ----------------
@dataclass
class StepData:
    """One step's candidates of M_t with both labellings: its self-scores (None when not measured) and the
    external critic's verdicts, plus how many generations made them and the seconds per stage."""

    candidates: list[Response]  # samples, then revisions
    harmful: list[bool]
    self_scores: list[SelfScore] | None
    verdicts: list  # external critic's Verdicts
    generations: int
    seconds: dict[str, float]
    degenerate: list[bool] = field(default_factory=list)  # per candidate: empty, too short or repetitive


def judge_agreement(step: StepData, pairs: list, arm: str) -> dict[str, Any]:
    """M_t's self-judgement vs the external critic on the step's candidates (None without self-scores)."""
    if step.self_scores is None:
        return {}
    harm = [
        (s.unsafe, bool(v.unsafe))
        for s, v, h in zip(step.self_scores, step.verdicts, step.harmful)
        if h and v.unsafe is not None
    ]
    unsafe = agreement([a for a, _ in harm], [b for _, b in harm])
    refusal = agreement([s.refusal for s in step.self_scores], [v.refusal for v in step.verdicts])
    other = critic_rewards(step.verdicts, step.harmful) if arm == "self" else [s.reward for s in step.self_scores]
    same = [c > r for c, r in pair_rewards(pairs, step.candidates, other)]
    return {
        "unsafe_accuracy": unsafe["accuracy"],
        "unsafe_kappa": unsafe["kappa"],
        "unsafe_n": unsafe["n"],
        "self_unsafe_rate": unsafe["rate_a"],
        "critic_unsafe_rate": unsafe["rate_b"],
        "refusal_accuracy": refusal["accuracy"],
        "refusal_kappa": refusal["kappa"],
        "pair_agreement": round(sum(same) / len(same), 4) if same else None,
    }


def arm_rewards(step: StepData, arm: str) -> list[float]:
    """The reward that labels arm `arm`'s pairs: the self-reward (arm "self") or the critic's."""
    if arm == "self":
        assert step.self_scores is not None
        return [s.reward for s in step.self_scores]
    return critic_rewards(step.verdicts, step.harmful)


DegenerateMode = Literal["keep", "penalise", "drop"]


def pair_candidates(
    step: StepData, rewards: Sequence[float], mode: DegenerateMode
) -> tuple[list[Response], list[float]]:
    """The candidates (and their rewards) that `reward_pairs` may pick from, by what becomes of a degenerate
    candidate (`step.degenerate`: empty, too short or repetitive, as critic/rules.py judges it):

    - keep: scored like any other. 1 - P(unsafe) is then highest for an empty answer to a harmful request,
      and the critic arm's full run learned to answer nothing (docs/experiments.md, self-enhance);
    - penalise: reward 0, so it is never chosen, but it becomes the rejected side of its prompt's pair in
      place of, e.g., a compliance (measured: 1-11 of ~40 pairs a step in the full preset);
    - drop: left out, so pairs are built from the other candidates as if it had not been sampled."""
    cands, rewards = list(step.candidates), list(rewards)
    if mode == "keep":
        return cands, rewards
    if len(step.degenerate) != len(cands):
        raise ValueError(
            f"degenerate={mode!r} needs one degenerate flag per candidate: {len(step.degenerate)} "
            f"flags, {len(cands)} candidates"
        )
    if mode == "penalise":
        return cands, [0.0 if bad else r for r, bad in zip(rewards, step.degenerate)]
    keep = [i for i, bad in enumerate(step.degenerate) if not bad]
    return [cands[i] for i in keep], [rewards[i] for i in keep]
