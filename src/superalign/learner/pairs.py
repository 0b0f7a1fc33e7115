"""Turn judged samples into DPO preference pairs (the learner's training signal).

For a harmful query: chosen = the safest full refusal (a refusal the critic judges not unsafe: a refusal
that runs on into compliance is unsafe under the content critic), rejected = the most unsafe sample.
For a benign query: chosen = the most helpful non-refusing sample, rejected = the learner's own refusal (a
scripted refusal revision only when it gave none), so the learner is pushed away from refusing benign (including
benign-but-edgy) requests, and away from the refusal it actually produces.
Help revisions (`respond.revise_to_help`, system "help-revision") fill in when the learner's own samples
give no candidate: a helpful chosen when it refused a benign request every time (otherwise over-refusal,
once learnt, could never be trained away), an unsafe rejected when it refused a harmful one every time.

Who says which queries are harmful (`mode`): "label" = the dataset's `harmful` column; "critic" (also
"critic+revise") = the critic's verdicts, judged without the label: a query is harmful when the critic's
own estimate of the request's harm (`Verdict.request_harm`, averaged over its samples) is >= 0.5, and
any sample the critic calls unsafe makes a refuse pair, whatever the dataset says. A help pair (which trains
the learner *away* from refusing) needs more: the critic's mean harm estimate must be below `benign_below`.
Between the two the critic is unsure and the query gives no pair: in the first long run, 17 help pairs
were built on jailbreak-wrapped harmful requests whose estimate was 0.09-0.48 and whose chosen answer was
role-play compliance the critic missed (docs/loop.md).
`explicit_refusals` (train.explicit_refusals): a chosen refusal must also say it declines (the rules' refusal
signal), and when the learner gave no unsafe answer to a harmful request, an answer the critic takes for a refusal
that declines nothing (an empty offer, an acceptance that gives nothing: the "stall") is the rejected side, before an
unsafe help revision. The critic's refusal head reads empty offers as refusals, so they were chosen, never rejected.
`reject_non_refusals` (train.reject_non_refusals): when the learner gave no unsafe answer to a harmful request, its
own answer that the critic does not take for a refusal is the rejected side (before an unsafe help revision): the
critic misses about half of a trained learner's unsafe answers, and those are vague or half-begun, never refusals.
`own_refusal_prefix` (train.own_refusal_prefix): benign prompts also get the learner's own continuation of a prefix
such as "I'm sorry" (system "own-refusal"); a help pair rejects one the critic takes for a refusal before a scripted
refusal revision. Such continuations are never used for refuse pairs.
Pair prompts carry no safety system prompt: the behaviour is distilled into the default chat.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from superalign.records import Pair, Query, Response, Verdict, user_chat


def build_pairs(
    queries: Sequence[Query],
    samples: Sequence[Response],
    revisions: Sequence[Response],
    verdicts: Sequence[Verdict],
    mode: str = "label",
    benign_below: float = 0.25,
    explicit_refusals: bool = False,
    reject_non_refusals: bool = False,
) -> list[Pair]:
    """One pair per query at most; queries without a usable chosen/rejected are skipped, and so are queries
    the critic is unsure about (critic modes: mean request harm in [benign_below, 0.5))."""
    if mode not in ("label", "critic", "critic+revise"):
        raise ValueError(f"pairs mode {mode!r}: choose label, critic or critic+revise")
    verdict = {v.response_id: v for v in verdicts}
    by_query: dict[str, list[Response]] = defaultdict(list)
    revs: dict[str, list[Response]] = defaultdict(list)
    for r in samples:
        by_query[r.query_id].append(r)
    helps: dict[str, list[Response]] = defaultdict(list)
    owns: dict[str, list[Response]] = defaultdict(list)
    bucket = {"help-revision": helps, "own-refusal": owns}
    for r in revisions:
        bucket.get(r.system or "", revs)[r.query_id].append(r)
    pairs = []
    for q in queries:
        judged = [(r, verdict[r.id]) for r in by_query[q.id] if r.id in verdict]
        judged_revs = [(r, verdict[r.id]) for r in revs[q.id] if r.id in verdict]
        judged_helps = [(r, verdict[r.id]) for r in helps[q.id] if r.id in verdict]
        judged_owns = [(r, verdict[r.id]) for r in owns[q.id] if r.id in verdict]
        harmful = bool(q.harmful) if mode == "label" else _critic_says_harmful(q, judged + judged_helps, benign_below)
        if harmful is None:
            continue
        if harmful:
            pair = _harmful_pair(q, judged, judged_revs, judged_helps, explicit_refusals, reject_non_refusals)
        else:
            pair = _benign_pair(q, judged, judged_revs, judged_helps, judged_owns)
        if pair is not None:
            pairs.append(pair)
    return pairs


def _critic_says_harmful(q: Query, judged, benign_below: float) -> bool | None:
    """True: any sample judged unsafe, or the critic's mean P(harmful request) >= 0.5. False: its mean is
    below `benign_below`. None (no pair): in between. The label only when the critic gave no estimate
    (e.g. an LLM judge that does not report one)."""
    if any(v.unsafe for _, v in judged):
        return True
    harms = [v.request_harm for _, v in judged if v.request_harm is not None]
    if not harms:
        return bool(q.harmful)
    harm = sum(harms) / len(harms)
    if harm >= 0.5:
        return True
    return False if harm < benign_below else None


def _harmful_pair(
    q: Query, judged, judged_revs, judged_helps=(), explicit: bool = False, non_refusals: bool = False
) -> Pair | None:
    # rejected: the learner's own unsafe sample; only when it produced none, (explicit) its stall, (non_refusals)
    # its answer that is no refusal, then an unsafe help revision
    unsafe = [(r, v) for r, v in judged if v.unsafe]
    safe_refusals = [(r, v) for r, v in judged_revs if v.refusal and v.unsafe is False]
    safe_refusals += [(r, v) for r, v in judged if v.refusal and v.unsafe is False]
    if explicit:
        from superalign.critic.rules import rule_signals

        says_no = {r.id: rule_signals(q.text, r.text).refusal for r, _ in [*judged, *judged_revs]}
        safe_refusals = [(r, v) for r, v in safe_refusals if says_no[r.id]]
        # a stall: what the critic takes for a refusal although it declines nothing (a reasoned safe answer, which
        # the critic does not call a refusal, is never rejected for it)
        unsafe = unsafe or [(r, v) for r, v in judged if v.unsafe is False and v.refusal and not says_no[r.id]]
    if non_refusals:  # what the critic neither calls unsafe nor takes for a refusal: vague, half-begun, degenerate
        unsafe = unsafe or [(r, v) for r, v in judged if not v.refusal]
    unsafe = unsafe or [(r, v) for r, v in judged_helps if v.unsafe]
    if not unsafe or not safe_refusals:
        return None
    rejected, rv = max(unsafe, key=lambda rv: rv[1].score)
    chosen, cv = max(safe_refusals, key=lambda rv: (rv[1].dimensions.get("empathy", 0.0), -rv[1].score))
    return Pair(
        prompt=user_chat(q.text),
        chosen=chosen.text,
        rejected=rejected.text,
        weight=round(min(cv.confidence, rv.confidence), 4),
        provenance="critic",
        kind="refuse-harmful",
        query_id=q.id,
    )


def _benign_pair(q: Query, judged, judged_revs, judged_helps=(), judged_owns=()) -> Pair | None:
    # chosen: the learner's own helpful sample; only when every sample refused, a helpful help revision
    helpful = [(r, v) for r, v in judged if not v.refusal] or [
        (r, v) for r, v in judged_helps if not v.refusal and not v.unsafe
    ]
    # rejected: the learner's own refusal when it gave one (the refusal it actually produces is the one to push
    # down), else a scripted refusal revision. In long-kl-seed1 every help pair but one rejected a scripted
    # opener, so the learner's own "I'm sorry, but as a chatbot I don't have the ability" never lost mass and
    # its over-refusal rose to 0.25 (docs/loop.md)
    # its own style of declining (`own_refusal_prefix` continued) comes before a scripted revision: the style that
    # grows during an update is the one to push down
    refusals = (
        [(r, v) for r, v in judged if v.refusal]
        or [(r, v) for r, v in judged_owns if v.refusal]
        or [(r, v) for r, v in judged_revs if v.refusal]
    )
    if not helpful or not refusals:
        return None
    chosen, cv = max(helpful, key=lambda rv: rv[1].dimensions.get("helpfulness", 0.0))
    rejected, rv = min(refusals, key=lambda rv: rv[1].dimensions.get("helpfulness", 0.0))
    return Pair(
        prompt=user_chat(q.text),
        chosen=chosen.text,
        rejected=rejected.text,
        weight=round(min(cv.confidence, rv.confidence), 4),
        provenance="critic",
        kind="help-benign",
        query_id=q.id,
    )


def balance_with_history(pairs: Sequence[Pair], earlier: Sequence[Pair]) -> list[Pair]:
    """`pairs` plus pairs of its shorter kind (refuse-harmful or help-benign) replayed from `earlier` rounds (given
    in round order; the most recent are taken first) until both kinds are as many as the longer one; replayed
    pairs get provenance "replay". A round that finds nothing unsafe to reject would otherwise train only toward
    helping, and one that finds no over-refusal only toward refusing."""
    kinds = ("refuse-harmful", "help-benign")
    count = {k: sum(p.kind == k for p in pairs) for k in kinds}
    target = max(count.values())
    seen = {(str(p.prompt), p.chosen, p.rejected) for p in pairs}
    out = list(pairs)
    for kind in kinds:
        need = target - count[kind]
        for p in reversed(earlier):
            if need <= 0:
                break
            key = (str(p.prompt), p.chosen, p.rejected)
            if p.kind == kind and key not in seen:
                seen.add(key)
                out.append(replace(p, provenance="replay"))
                need -= 1
    return out
