"""Respond stage: the learner's samples for each query, plus refusal revisions for the pair builder.

A *revision* is the learner's own continuation of a refusal opener under a safety system prompt
(prefilling). It gives natural, on-policy refusal text that the critic then filters, instead of one
fixed refusal template (which collapses this model, docs/design.md §7).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from superalign.backends.base import Sampling
from superalign.records import Query, Response, stable_id, user_chat

SAFETY_SYSTEM = (
    "You are a safe and helpful assistant. You refuse harmful, dangerous or illegal requests, "
    "explain why in one sentence, and suggest a safe, legal alternative."
)
REFUSAL_OPENERS = (
    "I can't help with that.",
    "I'm sorry, but I can't help with that.",
    "I won't help with this, because it could hurt people.",
    "I can't assist with that request.",
    "Sorry, I can't provide that.",
    "I'm not able to help with that, since it could cause real harm.",
    "I have to decline this one.",
    "That's not something I can help with.",
    "I can't give instructions for that.",
    "No, I won't help with that, as it's harmful.",
)


def refusal_opener(query_id: str, k: int = 0) -> str:
    """The `k`-th refusal opener for a query: varied by query and k, the same in every run."""
    return REFUSAL_OPENERS[(int(query_id[:8], 16) + k) % len(REFUSAL_OPENERS)]


def respond(
    queries: Sequence[Query], learner: Any, params: Sampling, n: int, round: int, first: int = 0
) -> list[Response]:
    """`n` samples per query from the learner's default chat (no extra system prompt), numbered from `first` (a
    second call for the same queries, e.g. the greedy answer, gets other response ids)."""
    chats, meta = [], []
    for q in queries:
        for k in range(first, first + n):
            chats.append(user_chat(q.text))
            meta.append((q, k))
    texts = learner.generate(chats, params)
    return [
        Response(
            id=stable_id("resp", q.id, learner.name, round, k),
            query_id=q.id,
            text=t,
            model=learner.name,
            round=round,
            sample=k,
        )
        for (q, k), t in zip(meta, texts)
    ]


def revise_to_refusal(queries: Sequence[Query], learner: Any, params: Sampling, n: int, round: int) -> list[Response]:
    """`n` refusal revisions per query: an opener (varied by query and k) continued by the learner."""
    chats, meta = [], []
    for q in queries:
        for k in range(n):
            opener = refusal_opener(q.id, k)
            chats.append(user_chat(q.text, SAFETY_SYSTEM) + [{"role": "assistant", "content": opener + " "}])
            meta.append((q, k, opener))
    texts = learner.generate(chats, params)
    out = []
    for (q, k, opener), t in zip(meta, texts):
        text = f"{opener} {first_sentences(t, 2)}".strip()
        out.append(
            Response(
                id=stable_id("rev", q.id, learner.name, round, k),
                query_id=q.id,
                text=text,
                model=learner.name,
                round=round,
                sample=k,
                system="revision",
            )
        )
    return out


def refusal_stubs(queries: Sequence[Query], model_name: str, round: int) -> list[Response]:
    """One bare refusal per query (system "revision"): the opener `revise_to_refusal` gives the query's first
    revision, with nothing after it. On a benign request the learner's refusal revision often runs on into help
    ("I can't help with that. The Black Death spread across Europe…"), which the content critic rightly takes for
    no refusal, so the help pair has no refusal to reject and the query trains nothing (docs/loop.md)."""
    return [
        Response(
            id=stable_id("stub", q.id, model_name, round),
            query_id=q.id,
            text=refusal_opener(q.id),
            model=model_name,
            round=round,
            sample=0,
            system="revision",
        )
        for q in queries
    ]


def own_refusals(queries: Sequence[Query], learner: Any, prefix: str, params: Sampling, round: int) -> list[Response]:
    """One continuation of `prefix` per query in the learner's default chat (no system prompt; system
    "own-refusal"): how the learner itself would decline. On benign prompts "I'm sorry" gives its own deflection
    ("I'm sorry for any misunderstanding, but as a chatbot…"), the style its over-refusal takes after an update,
    for a help pair to reject; the critic decides which continuations are refusals (some turn into help)."""
    chats = [user_chat(q.text) + [{"role": "assistant", "content": prefix}] for q in queries]
    texts = learner.generate(chats, params)
    return [
        Response(
            id=stable_id("own-ref", q.id, learner.name, round),
            query_id=q.id,
            text=_join(prefix, first_sentences(t, 2)),
            model=learner.name,
            round=round,
            sample=0,
            system="own-refusal",
        )
        for q, t in zip(queries, texts)
    ]


def _join(prefix: str, rest: str) -> str:
    """The prefix and its (stripped) continuation as one text, with a space unless the continuation opens with
    punctuation ("I'm sorry" may go on ", but…" or "for any…")."""
    if rest[:1] in (",", ".", ";", ":", "!", "?"):
        return prefix + rest
    return f"{prefix} {rest}".strip()


HELPFUL_SYSTEM = (
    "You are a helpful assistant. The user's request is safe and ordinary: answer it directly and usefully, "
    "without refusing or lecturing."
)
HELP_OPENERS = ("Sure.", "Of course.", "Here's an answer.", "Good question.", "Happy to help.")


def revise_to_help(queries: Sequence[Query], learner: Any, params: Sampling, round: int) -> list[Response]:
    """One helpful revision per query: a helpful opener continued by the learner under a helpful system prompt
    (the mirror of `revise_to_refusal`). When the learner refuses a benign request in every sample, this is
    the helpful answer a help pair needs as *chosen*; on a harmful request it is usually compliance, which
    the critic calls unsafe, so it can serve as *rejected* after the learner stopped complying on its own."""
    chats, meta = [], []
    for q in queries:
        opener = HELP_OPENERS[int(q.id[:8], 16) % len(HELP_OPENERS)]
        chats.append(user_chat(q.text, HELPFUL_SYSTEM) + [{"role": "assistant", "content": opener + " "}])
        meta.append((q, opener))
    texts = learner.generate(chats, params)
    return [
        Response(
            id=stable_id("help-rev", q.id, learner.name, round),
            query_id=q.id,
            text=f"{opener} {t.strip()}".strip(),
            model=learner.name,
            round=round,
            sample=0,
            system="help-revision",
        )
        for (q, opener), t in zip(meta, texts)
    ]


def first_sentences(text: str, n: int) -> str:
    """The first `n` sentences (short revisions leave the model less room to drift back to compliance)."""
    import re

    parts = re.split(r"(?<=[.!?])\s+", text.strip().split("\n\n")[0])
    return " ".join(parts[:n]).strip()


CRITIQUE_CONTEXT = (
    'Your earlier answer to this request was:\n"{answer}"\n\nA reviewer found this problem with it: {critique}\n\n'
    "Write a new answer that gives none of what was asked, says in one sentence why, and offers a safe alternative."
)


def critique_of(explanation: str, evidence: str) -> str:
    """The critic's explanation as the learner reads it: its first sentence (rubric item and quoted span)."""
    head = explanation.split("]", 1)[-1].strip() if explanation.startswith("[") else explanation
    first = head.split(". ", 1)[0].strip().rstrip(".")
    return f"{first}." if first else f'it gives what was asked: "{evidence[:120]}".'


def revise_from_critique(
    items: Sequence[tuple[Query, Response, str]], learner: Any, params: Sampling, round: int
) -> list[Response]:
    """One revision per (query, unsafe answer, critique): the learner reads its own answer and the critic's
    explanation (Constitutional-AI critique -> revision) and rewrites it; an opener starts the rewrite, as
    in `revise_to_refusal`. The pair prompt never contains the critique: only the rewrite is trained on."""
    chats, meta = [], []
    for q, r, critique in items:
        opener = refusal_opener(q.id, r.sample + 3)
        context = CRITIQUE_CONTEXT.format(answer=first_sentences(r.text, 3)[:400], critique=critique)
        chats.append(
            [
                {"role": "system", "content": SAFETY_SYSTEM},
                {"role": "user", "content": q.text},
                {"role": "assistant", "content": r.text[:400]},
                {"role": "user", "content": context},
                {"role": "assistant", "content": opener + " "},
            ]
        )
        meta.append((q, r, opener))
    texts = learner.generate(chats, params)
    return [
        Response(
            id=stable_id("critique-rev", q.id, r.id, learner.name, round),
            query_id=q.id,
            text=f"{opener} {first_sentences(t, 2)}".strip(),
            model=learner.name,
            round=round,
            sample=r.sample,
            system="critique-revision",
        )
        for (q, r, opener), t in zip(meta, texts)
    ]
