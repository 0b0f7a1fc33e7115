"""Attacker self-improvement across rounds against a FIXED learner (MART-style), measured.

Each round r, with the attacker model A_r:
  1. train search: `adaptive_attack` on the *training* objectives (A_r rewrites every follow-up turn);
  2. A_{r+1} = `self_improve.improve_attacker(A_r, train attempts)`: fine-tuned (LoRA, merged) on the
     requests it wrote that broke the learner, each given the rewrite request it answered (`sft`, the
     default, as in MART), or on (attack that worked ≻ attack that failed) pairs per objective (`dpo`);
  3. eval search: the same budget on a fixed *held-out* set of objectives with A_r, measured: ASR over
     all attempts, ASR of the attacker's own rewrites, objectives broken.
The learner, the judge, the budget, the eval objectives and the search seed stay the same every round,
so a rising eval curve is the attacker learning what works against this learner, not noise in the set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from superalign.attacker.adaptive import Judge, adaptive_attack, summary
from superalign.attacker.self_improve import Method
from superalign.config import AttackerConfig, TrainConfig
from superalign.records import Query, stable_id


def split_objectives(seeds: Sequence[Query], eval_share: float = 0.5) -> tuple[list[Query], list[Query]]:
    """(train, eval) objectives by a hash of the text: the attacker never trains on an eval objective."""
    train: list[Query] = []
    held: list[Query] = []
    for q in seeds:
        (held if int(stable_id("mart-split", q.text), 16) / 16**16 < eval_share else train).append(q)
    return train, held


def rewrite_stats(attempts: Sequence[Any], prefix: str = "") -> dict[str, Any]:
    """How the attacker model's own rewrites did: count, successes, success rate (None without any)."""
    rewritten = [a for a in attempts if a.rewritten]
    hits = sum(a.success for a in rewritten)
    return {
        f"{prefix}rewrites": len(rewritten),
        f"{prefix}rewrite_successes": hits,
        f"{prefix}rewrite_asr": round(hits / len(rewritten), 4) if rewritten else None,
    }


def self_improvement_rounds(
    seeds: Sequence[Query],
    learner: Any,
    attacker: Any,
    judge_fn: Judge,
    budget: int,
    rounds: int,
    cfg: AttackerConfig,
    train_cfg: TrainConfig,
    seed: int = 0,
    params: Any = None,
    log: Callable[[str], None] | None = None,
    method: Method = "sft",
    train_budget: int | None = None,
) -> list[dict[str, Any]]:
    """One row per round (0 = the untrained attacker): eval ASR, rewrite ASR, objectives broken, and the
    number of attacker training examples (`sft`) or pairs (`dpo`) that produced the next round's attacker.
    `train_budget`: learner queries of each training search (default `budget`); a larger one yields more
    successes to learn from while the eval searches keep `budget`."""
    from superalign.attacker.self_improve import improve_attacker

    train_obj, eval_obj = split_objectives(seeds)
    # Every follow-up turn is the attacker's own text, and every objective gets all its turns: what is
    # measured is the attacker model, so the search must not route the budget away from its rewrites.
    cfg = cfg.model_copy(update={"rewrite_share": 1.0, "continuation": "always"})
    rows = []
    for r in range(rounds + 1):
        ev = adaptive_attack(eval_obj, learner, judge_fn, budget, cfg, seed, attacker=attacker, params=params)
        s = summary(ev.attempts)
        row = {
            "round": r,
            "eval_asr": s["asr"],
            "eval_objectives_broken": s["objectives_broken"],
            "eval_objectives": s["objectives"],
            **rewrite_stats(ev.attempts),
        }
        if r < rounds:
            tr = adaptive_attack(
                train_obj,
                learner,
                judge_fn,
                train_budget or budget,
                cfg,
                seed + 1 + r,
                attacker=attacker,
                params=params,
            )
            attacker, stats, n_train = improve_attacker(attacker, tr.attempts, train_cfg, seed=seed + r, method=method)
            row.update(
                {
                    "train_queries": tr.learner_queries,
                    "train_asr": summary(tr.attempts)["asr"],
                    **rewrite_stats(tr.attempts, "train_"),
                    "attacker_method": method,
                    "attacker_examples": n_train,
                    "attacker_loss_first": None if stats is None or not stats.losses else stats.losses[0],
                    "attacker_loss_last": None if stats is None else stats.last_loss,
                }
            )
        rows.append(row)
        if log:
            log(
                f"self-improve round {r}: eval ASR {row['eval_asr']:.3f}, rewrite ASR {row['rewrite_asr']}, "
                f"{row.get('attacker_examples', 0)} attacker training {'examples' if method == 'sft' else 'pairs'}"
            )
    return rows


def plot_rounds(rows: Sequence[dict[str, Any]], path: Any) -> None:
    """eval ASR and rewrite ASR per self-improvement round (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    xs = [r["round"] for r in rows]
    ax.plot(xs, [r["eval_asr"] for r in rows], marker="o", label="ASR, held-out objectives")
    ax.plot(
        xs,
        [r["rewrite_asr"] if r["rewrite_asr"] is not None else float("nan") for r in rows],
        marker="s",
        label="ASR of the attacker's rewrites",
    )
    ax.set_xlabel("attacker self-improvement round")
    ax.set_ylabel("attack success rate")
    ax.set_ylim(0, 1)
    ax.set_xticks(xs)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
