"""Search over learning directions: try K candidate updates from the current checkpoint, keep one.

Each round, every candidate `Direction` (a data-mixture / loss-weight / β / emphasis setting) is trained
briefly from the *same* start weights (restored between candidates), then scored on DEV competence and
DEV conformity (dev sets are disjoint from the held-out test sets). The chosen candidate follows

**the choice rule** (documented in docs/experiments.md, "search"):

1. Δ = dev score of the candidate − dev score of the start checkpoint, per objective
   (competence, conformity); the start checkpoint itself is the candidate "stay" with Δ = (0, 0) when
   `allow_stay` (so a round whose candidates all hurt keeps the weights it had).
2. Keep the Pareto front: candidates that no other candidate beats on one objective without losing on
   the other (maximising both; equal points are all kept).
3. On the front, maximise the scalarisation: ``weighted`` = w_comp·Δcomp + w_conf·Δconf with
   (w_comp, w_conf) = `weights` (default 0.5, 0.5), or ``maxmin`` = min(Δcomp, Δconf) (the largest
   worst-case improvement). Ties go to the earlier candidate ("stay" is listed first).

Every candidate's training steps count toward the round's budget (K candidates × their steps), whether
chosen or not. The tree (one node per candidate per round) is written as JSONL and plotted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

Rule = Literal["weighted", "maxmin"]
STAY = "stay"


@dataclass(frozen=True)
class Direction:
    """One candidate update. `replay_weight` is the competence : conformity loss weight of the mixed
    batches (0 = preference pairs only); `emphasis` is a pair kind whose weights are doubled."""

    name: str
    replay_weight: float = 0.1
    nll_weight: float = 1.0
    beta: float = 0.1
    emphasis: str = ""  # "" | "refuse-harmful" | "help-benign"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DevScore:
    """Dev-set scores, both in [0, 1], higher is better."""

    competence: float
    conformity: float

    def minus(self, other: DevScore) -> tuple[float, float]:
        return (self.competence - other.competence, self.conformity - other.conformity)


@dataclass
class SearchNode:
    """One candidate of one round: what it was, what it cost, how it scored, whether it was kept."""

    round: int
    name: str
    params: dict[str, Any]
    steps: int
    competence: float
    conformity: float
    delta: tuple[float, float]
    on_front: bool = False
    chosen: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["delta"] = [round(x, 4) for x in self.delta]
        return d


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a is at least as good as b everywhere and strictly better somewhere (maximisation)."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices (ascending) of the points no other point dominates."""
    return [i for i, p in enumerate(points) if not any(dominates(q, p) for j, q in enumerate(points) if j != i)]


def scalarise(delta: Sequence[float], rule: Rule = "weighted", weights: Sequence[float] = (0.5, 0.5)) -> float:
    if rule == "weighted":
        return float(sum(w * d for w, d in zip(weights, delta)))
    if rule == "maxmin":
        return float(min(delta))
    raise ValueError(f"unknown choice rule {rule!r}: weighted | maxmin")


def choose(
    deltas: Sequence[Sequence[float]], rule: Rule = "weighted", weights: Sequence[float] = (0.5, 0.5)
) -> tuple[int, list[int]]:
    """(chosen index, Pareto front) under the choice rule; ties go to the lowest index."""
    if not deltas:
        raise ValueError("choose: no candidates")
    front = pareto_front(deltas)
    best = max(front, key=lambda i: (scalarise(deltas[i], rule, weights), -i))
    return best, front


def search_round(
    round_no: int,
    candidates: Sequence[Direction],
    start: DevScore,
    snapshot: Callable[[], Any],
    restore: Callable[[Any], None],
    train: Callable[[Direction], int],
    score: Callable[[], DevScore],
    rule: Rule = "weighted",
    weights: Sequence[float] = (0.5, 0.5),
    allow_stay: bool = True,
) -> list[SearchNode]:
    """Try every candidate from the same start weights; leave the model at the chosen one's weights.

    `snapshot()` returns the current weights, `restore(w)` puts them back; `train(d)` trains the model
    in place along `d` and returns its optimiser steps; `score()` scores the current model on dev.
    Only candidates on the Pareto front so far keep a weight snapshot (bounded memory).
    Returns the round's nodes ("stay" first when `allow_stay`), exactly one with `chosen=True`.
    """
    start_weights = snapshot()
    nodes: list[SearchNode] = []
    kept: dict[int, Any] = {}
    if allow_stay:
        nodes.append(SearchNode(round_no, STAY, {}, 0, start.competence, start.conformity, (0.0, 0.0)))
        kept[0] = start_weights
    for d in candidates:
        t0 = time.time()
        restore(start_weights)
        steps = train(d)
        s = score()
        nodes.append(
            SearchNode(
                round_no,
                d.name,
                d.to_dict(),
                steps,
                s.competence,
                s.conformity,
                s.minus(start),
                seconds=round(time.time() - t0, 2),
            )
        )
        kept[len(nodes) - 1] = snapshot()
        front_now = set(pareto_front([n.delta for n in nodes]))
        for i in [i for i in kept if i not in front_now]:
            del kept[i]  # dominated now, dominated for good: its weights can never be chosen
    chosen, front = choose([n.delta for n in nodes], rule, weights)
    for i in front:
        nodes[i].on_front = True
    nodes[chosen].chosen = True
    restore(kept[chosen])
    return nodes


def append_tree(path: Path, nodes: Sequence[SearchNode], **extra: Any) -> None:
    """Append the round's nodes to the search-tree JSONL (one object per candidate, plus `extra` fields
    such as the seed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        for n in nodes:
            f.write(json.dumps({**extra, **n.to_dict()}) + "\n")


def read_tree(path: Path, **match: Any) -> list[SearchNode]:
    """The nodes of a search-tree JSONL whose extra fields equal `match` (e.g. seed=0)."""
    names = set(SearchNode.__dataclass_fields__)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [
        SearchNode(**{**{k: v for k, v in r.items() if k in names}, "delta": tuple(r["delta"])})
        for r in rows
        if all(r.get(k) == v for k, v in match.items())
    ]


def plot_tree(nodes: Sequence[SearchNode], path: Path, title: str = "search over learning directions") -> Path:
    """Dev competence vs dev conformity of every candidate, one panel per round; the chosen one is
    circled and arrows join the chosen points of consecutive rounds (the path the search took)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = sorted({n.round for n in nodes})
    fig, axes = plt.subplots(1, len(rounds), figsize=(4.2 * len(rounds), 3.8), dpi=120, squeeze=False)
    prev = None
    for ax, r in zip(axes[0], rounds):
        rn = [n for n in nodes if n.round == r]
        for n in rn:
            ax.scatter(
                n.competence,
                n.conformity,
                s=40,
                marker="s" if n.name == STAY else "o",
                color="tab:green" if n.on_front else "tab:gray",
                zorder=3,
            )
            ax.annotate(n.name, (n.competence, n.conformity), fontsize=7, xytext=(3, 3), textcoords="offset points")
        c = next(n for n in rn if n.chosen)
        ax.scatter(c.competence, c.conformity, s=160, facecolors="none", edgecolors="tab:red", zorder=4)
        start = next((n for n in rn if n.name == STAY), prev)
        if start is not None:
            ax.annotate(
                "",
                (c.competence, c.conformity),
                (start.competence, start.conformity),
                arrowprops={"arrowstyle": "->", "color": "tab:red"},
            )
        prev = c
        ax.set_title(f"round {r} (red: chosen, green: Pareto front)", fontsize=8)
        ax.set_xlabel("dev competence")
        ax.set_ylabel("dev conformity")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
