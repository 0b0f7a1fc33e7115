"""Attacker self-improvement (MART-style): fine-tune the attacker model on its own successful attacks.

Two training signals come out of a search's attempts:

- `sft` (the default, as in MART: the adversarial model is fine-tuned on the prompts that broke the target):
  every successful request the attacker model wrote, given the exact rewrite request it answered (the
  objective, the failed attempt before it, the learner's answer and the critic's explanation).
- `dpo`: per objective with both a success and a failure, (success ≻ failure) pairs on the rewrite request
  after the failure. The rejected side is often the first turn's framed objective, text the attacker model
  never wrote, so the pair mostly teaches "do not repeat the objective"; `sft` trains only on its own text.

Both need a search in which the attacker's own rewrites succeed: with the embedded models that is 4-19 %
of follow-up turns (docs/attacker.md), a few examples per 48-query search.

Training reuses the learner's trainers (`learner.sft.train_sft`; `learner.update.update_learner`: LoRA DPO +
NLL on chosen), merged after, so the attacker learns what works against the current learner.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from superalign.attacker.adaptive import ATTACKER_SYSTEM, ATTACKER_USER, Attempt
from superalign.config import TrainConfig
from superalign.records import Chat, Pair, user_chat

Method = Literal["sft", "dpo"]


def rewrite_chat(objective: str, failed: Attempt) -> list[dict[str, str]]:
    """The attacker's rewrite request after `failed` (the same prompt the search sends)."""
    return user_chat(
        ATTACKER_USER.format(
            objective=objective,
            last=failed.query.text[:500],
            response=failed.response[:300].replace("\n", " "),
            verdict="safe (the attack failed)",
            explanation=failed.explanation[:300],
        ),
        ATTACKER_SYSTEM,
    )


def _text(a: Attempt) -> str:
    """What the attacker model produced (or would produce) for this attempt: the request, not the frame."""
    return a.request or a.query.text


def attacker_examples(attempts: Sequence[Attempt]) -> list[tuple[Chat, str]]:
    """(rewrite request it answered, the request it wrote) for every successful attempt whose request the
    attacker model wrote; the request is rebuilt from the attempt it followed (`Attempt.after`)."""
    by_id = {a.query.id: a for a in attempts}
    out = []
    for a in attempts:
        prev = by_id.get(a.after)
        if a.success and a.rewritten and a.request and prev is not None:
            out.append((rewrite_chat(a.query.objective or prev.query.objective or a.request, prev), a.request))
    return out


def attacker_pairs(attempts: Sequence[Attempt], per_objective: int = 2) -> list[Pair]:
    """Up to `per_objective` (success, failure) pairs per objective that has both, in attempt order."""
    by_obj: dict[str, list[Attempt]] = {}
    for a in attempts:
        by_obj.setdefault(a.query.objective or a.query.text, []).append(a)
    pairs = []
    for objective, group in by_obj.items():
        wins = [a for a in group if a.success]
        losses = [a for a in group if not a.success]
        for win, loss in list(zip(wins * len(losses), losses))[:per_objective]:
            pairs.append(
                Pair(
                    prompt=rewrite_chat(objective, loss),
                    chosen=_text(win),
                    rejected=_text(loss),
                    provenance="self",
                    kind="attacker-success",
                    query_id=win.query.id,
                )
            )
    return pairs


def improve_attacker(
    attacker: Any, attempts: Sequence[Attempt], cfg: TrainConfig, seed: int = 0, method: Method = "sft"
) -> tuple[Any, Any, int]:
    """(trained attacker, training stats, number of training examples or pairs); the attacker is returned
    unchanged when the attempts give nothing to train on."""
    if method == "sft":
        from superalign.learner.sft import train_sft

        examples = attacker_examples(attempts)
        if not examples:
            return attacker, None, 0
        return attacker, train_sft(attacker, examples, cfg, seed=seed), len(examples)
    from superalign.learner.update import update_learner

    pairs = attacker_pairs(attempts)
    if not pairs:
        return attacker, None, 0
    new, stats = update_learner(attacker, pairs, cfg, seed)
    return new, stats, len(pairs)
