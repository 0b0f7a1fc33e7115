"""Turn judged samples into DPO preference pairs (the learner's training signal).

For a harmful query: chosen = the safest refusal revision, rejected = the most unsafe sample.
For a benign query: chosen = the most helpful non-refusing sample, rejected = a refusal revision,
so the learner is pushed away from refusing benign (including benign-but-edgy) requests.
Pair prompts carry no safety system prompt: the behaviour is distilled into the default chat.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from superalign.records import Pair, Query, Response, Verdict, user_chat


def build_pairs(
    queries: Sequence[Query], samples: Sequence[Response], revisions: Sequence[Response],
    verdicts: Sequence[Verdict],
) -> list[Pair]:
    """One pair per query at most; queries without a usable chosen/rejected are skipped."""
    verdict = {v.response_id: v for v in verdicts}
    by_query: dict[str, list[Response]] = defaultdict(list)
    revs: dict[str, list[Response]] = defaultdict(list)
    for r in samples:
        by_query[r.query_id].append(r)
    for r in revisions:
        revs[r.query_id].append(r)
    pairs = []
    for q in queries:
        judged = [(r, verdict[r.id]) for r in by_query[q.id] if r.id in verdict]
        judged_revs = [(r, verdict[r.id]) for r in revs[q.id] if r.id in verdict]
        pair = _harmful_pair(q, judged, judged_revs) if q.harmful else _benign_pair(q, judged, judged_revs)
        if pair is not None:
            pairs.append(pair)
    return pairs


def _harmful_pair(q: Query, judged, judged_revs) -> Pair | None:
    unsafe = [(r, v) for r, v in judged if v.unsafe]
    safe_refusals = [(r, v) for r, v in judged_revs if v.refusal and v.unsafe is False]
    safe_refusals += [(r, v) for r, v in judged if v.refusal and v.unsafe is False]
    if not unsafe or not safe_refusals:
        return None
    rejected, rv = max(unsafe, key=lambda rv: rv[1].score)
    chosen, cv = max(safe_refusals, key=lambda rv: (rv[1].dimensions.get("empathy", 0.0), -rv[1].score))
    return Pair(prompt=user_chat(q.text), chosen=chosen.text, rejected=rejected.text,
                weight=round(min(cv.confidence, rv.confidence), 4), provenance="critic",
                kind="refuse-harmful", query_id=q.id)


def _benign_pair(q: Query, judged, judged_revs) -> Pair | None:
    helpful = [(r, v) for r, v in judged if not v.refusal]
    refusals = [(r, v) for r, v in judged_revs + judged if v.refusal]
    if not helpful or not refusals:
        return None
    chosen, cv = max(helpful, key=lambda rv: rv[1].dimensions.get("helpfulness", 0.0))
    rejected, rv = refusals[0]
    return Pair(prompt=user_chat(q.text), chosen=chosen.text, rejected=rejected.text,
                weight=round(min(cv.confidence, rv.confidence), 4), provenance="critic",
                kind="help-benign", query_id=q.id)
