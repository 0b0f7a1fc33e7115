"""Attacker self-improvement (MART-style): fine-tune the attacker model on its own successful attacks.

After a search, every objective with both a success and a failure gives preference pairs for the
attacker: prompt = the rewrite request it would see after the failure (objective, failed prompt, the
learner's answer, the critic's explanation), chosen = the attack that worked, rejected = the one that
did not. Training reuses the learner's trainer (`learner.update.update_learner`: LoRA DPO + NLL on
chosen, merged after), so the attacker learns what works against the current learner.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from superalign.attacker.adaptive import ATTACKER_SYSTEM, ATTACKER_USER, Attempt
from superalign.config import TrainConfig
from superalign.records import Pair, user_chat


def rewrite_chat(objective: str, failed: Attempt) -> list[dict[str, str]]:
    """The attacker's rewrite request after `failed` (the same prompt the search sends)."""
    return user_chat(ATTACKER_USER.format(objective=objective, last=failed.query.text[:500],
                                          response=failed.response[:300].replace("\n", " "),
                                          verdict="safe (the attack failed)", explanation=failed.explanation[:300]),
                     ATTACKER_SYSTEM)


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
            pairs.append(Pair(prompt=rewrite_chat(objective, loss), chosen=win.query.text, rejected=loss.query.text,
                              provenance="self", kind="attacker-success", query_id=win.query.id))
    return pairs


def improve_attacker(attacker: Any, attempts: Sequence[Attempt], cfg: TrainConfig, seed: int = 0) -> tuple[Any, Any, int]:
    """(trained attacker, training stats, number of pairs); the attacker is returned unchanged when no
    objective has both a success and a failure."""
    from superalign.learner.update import update_learner

    pairs = attacker_pairs(attempts)
    if not pairs:
        return attacker, None, 0
    new, stats = update_learner(attacker, pairs, cfg, seed)
    return new, stats, len(pairs)
