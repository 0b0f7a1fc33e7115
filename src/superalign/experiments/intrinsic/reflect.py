"""Self-reflection: draft -> own critique -> final answer, at inference and as SFT data.

    reflections = reflect_then_answer(prompts, learner, ReflectSettings())   # three batched generate calls
    finals = [r.final for r in reflections]
    examples = reflection_sft_examples(reflections, keep)                    # (user chat, final) for train_sft

The learner critiques its own draft (is it harmful to anyone, does it wrongly refuse, is it correct) and
then writes the final answer with the draft and critique in view. Trained in, the model learns to give
the reflected final answer *directly* (one generate call, no scaffold in the training prompt): the SFT
prompt is the plain user chat and the target is the reflected final answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from superalign.backends.base import Sampling
from superalign.records import Chat, user_chat

CRITIC_SYSTEM = "You are a careful reviewer. You point out harm, wrong refusals and mistakes in answers, briefly."
CRITIQUE_REQUEST = (
    "Request: {prompt}\n\nDraft answer: {draft}\n\n"
    "Critique this draft in one or two sentences. Could it hurt anyone? Does it refuse a harmless request? "
    "Is it correct and helpful?"
)
FINAL_SYSTEM = (
    "You are a safe and helpful assistant. You reflect on your draft before answering: if the request could "
    "hurt people you refuse in one sentence and suggest a safe alternative; if it is harmless you answer it "
    "helpfully and correctly."
)
FINAL_REQUEST = "{prompt}\n\n(Your draft: {draft}\nYour critique of it: {critique})\n\nWrite only your final answer."


@dataclass(frozen=True)
class ReflectSettings:
    """Token budgets of the three steps (greedy when temperature is 0)."""

    draft_tokens: int = 48
    critique_tokens: int = 40
    final_tokens: int = 48
    temperature: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class Reflection:
    """One reflect-then-answer episode. `final` is what the user sees."""

    prompt: str
    draft: str
    critique: str
    final: str


def critique_chat(prompt: str, draft: str) -> Chat:
    """The chat asking the learner to critique its own draft."""
    return user_chat(CRITIQUE_REQUEST.format(prompt=prompt, draft=_short(draft)), CRITIC_SYSTEM)


def final_chat(prompt: str, draft: str, critique: str) -> Chat:
    """The chat asking for the final answer with draft and critique in view."""
    return user_chat(FINAL_REQUEST.format(prompt=prompt, draft=_short(draft), critique=_short(critique)), FINAL_SYSTEM)


def reflect_then_answer(
    prompts: Sequence[str], learner: Any, settings: ReflectSettings = ReflectSettings()
) -> list[Reflection]:
    """Draft, critique, final for every prompt: three batched `generate` calls, in that order."""
    s = settings

    def params(tokens: int, step: int) -> Sampling:
        return Sampling(max_new_tokens=tokens, temperature=s.temperature, seed=s.seed * 10 + step)

    drafts = learner.generate([user_chat(p) for p in prompts], params(s.draft_tokens, 0))
    critiques = learner.generate([critique_chat(p, d) for p, d in zip(prompts, drafts)], params(s.critique_tokens, 1))
    finals = learner.generate(
        [final_chat(p, d, c) for p, d, c in zip(prompts, drafts, critiques)], params(s.final_tokens, 2)
    )
    return [Reflection(p, d, c, f.strip()) for p, d, c, f in zip(prompts, drafts, critiques, finals)]


def keep_by_critic(reflections: Sequence[Reflection], harmful: Sequence[bool], critic: Any) -> list[bool]:
    """Which reflected finals are worth training on: a harmful request's final the critic does not judge
    unsafe, a benign request's final it does not judge a refusal; empty or degenerate finals never."""
    from superalign.critic import JudgeItem, judge

    items = [JudgeItem(f"reflect-{i}", r.prompt, r.final, h) for i, (r, h) in enumerate(zip(reflections, harmful))]
    keep = []
    for r, h, v in zip(reflections, harmful, judge(items, critic)):
        ok = v.unsafe is False if h else not v.refusal
        degenerate = v.dimensions.get("helpfulness", 1.0) <= 0.05  # verdicts.py scores degenerate text 0.05
        keep.append(bool(r.final.strip()) and ok and not degenerate)
    return keep


def reflection_sft_examples(
    reflections: Sequence[Reflection], keep: Sequence[bool] | None = None
) -> list[tuple[Chat, str]]:
    """(plain user chat, reflected final answer) for every kept reflection: the SFT data of 'reflection
    trained in'. The draft and critique are not in the example: the model learns to answer as it would
    after reflecting."""
    keep = [True] * len(reflections) if keep is None else keep
    return [(user_chat(r.prompt), r.final) for r, k in zip(reflections, keep, strict=True) if k and r.final.strip()]


def _short(text: str, words: int = 60) -> str:
    """At most `words` words: long drafts would crowd a 135M model's context."""
    parts = text.split()
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")
