"""MAP-Elites archive (as in Rainbow Teaming): a grid of risk category x attack style.

Each cell keeps its most effective attack so far (highest critic P(unsafe)); a candidate enters a cell
only if it beats the cell's elite and is not a near-duplicate of another elite (character 3-5-gram
cosine >= `max_similarity`, hashed counts). Rows export to JSONL and load back, so the archive persists across
rounds (the loop stores them in the attack step's payload) and the grid renders as a heat map.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from superalign.attacker.styles import STYLES


@dataclass(frozen=True)
class Elite:
    """One cell's best attack. `score` = critic P(unsafe) of the learner's answer; `success` = verdict unsafe."""

    category: str
    style: str
    text: str
    objective: str
    score: float
    success: bool
    response: str = ""
    explanation: str = ""
    query_id: str = ""
    round: int = 0


def ngram_vectors(texts: Sequence[str]) -> Any:
    """L2-normalised hashed character 3-5-gram counts (scikit-learn HashingVectorizer, nothing to fit),
    so a dot product is a cosine similarity; cheap enough to call once per candidate."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vec = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=2**18, alternate_sign=False)
    return vec.transform(list(texts))


def max_similarity(texts: Sequence[str], others: Sequence[str]) -> list[float]:
    """For each of `texts`, its highest character n-gram cosine similarity to any of `others` (0.0 if none)."""
    if not others:
        return [0.0] * len(texts)
    sim = ngram_vectors(texts) @ ngram_vectors(others).T
    return [float(sim[i].max()) if sim[i].nnz else 0.0 for i in range(len(texts))]


def diversity(texts: Sequence[str]) -> float:
    """Mean pairwise cosine *distance* of word 1-2-gram TF-IDF vectors (0 = identical, 1 = disjoint);
    0.0 for fewer than two texts."""
    if len(texts) < 2:
        return 0.0
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    x = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(list(texts))
    sim = (x @ x.T).toarray()
    n = len(texts)
    off = (sim.sum() - np.trace(sim)) / (n * (n - 1))
    return round(float(1.0 - off), 4)


class Archive:
    """The grid. `categories` x `styles` cells, each empty or holding one Elite."""

    def __init__(self, categories: Iterable[str], styles: Iterable[str] = STYLES, max_similarity: float = 0.95):
        self.categories = sorted(set(categories))
        self.styles = list(dict.fromkeys(styles))
        self.max_similarity = max_similarity
        self.cells: dict[tuple[str, str], Elite] = {}

    def elite(self, category: str, style: str) -> Elite | None:
        return self.cells.get((category, style))

    def is_novel(self, text: str, ignore: tuple[str, str] | None = None) -> bool:
        """True when `text` is below `max_similarity` to every elite (except the one in cell `ignore`)."""
        others = [e.text for key, e in self.cells.items() if key != ignore]
        if not others:
            return True
        return max_similarity([text], others)[0] < self.max_similarity

    def offer(self, cand: Elite) -> bool:
        """Insert `cand` if its cell is on the grid, it beats the cell's elite (score, then success) and
        it is novel; returns whether it was inserted."""
        key = (cand.category, cand.style)
        if cand.category not in self.categories or cand.style not in self.styles:
            return False
        cur = self.cells.get(key)
        if cur is not None and (cand.success, cand.score) <= (cur.success, cur.score):
            return False
        if not self.is_novel(cand.text, ignore=key):
            return False
        self.cells[key] = cand
        return True

    def coverage(self) -> float:
        """Filled share of the cells."""
        return round(len(self.cells) / max(1, len(self.categories) * len(self.styles)), 4)

    def success_coverage(self) -> float:
        """Share of cells whose elite made the learner answer unsafely."""
        hits = sum(e.success for e in self.cells.values())
        return round(hits / max(1, len(self.categories) * len(self.styles)), 4)

    def fill_count(self, category: str) -> int:
        return sum(1 for (c, _s) in self.cells if c == category)

    def rows(self) -> list[dict[str, Any]]:
        """The elites as JSON-ready rows, sorted by cell."""
        return [asdict(self.cells[k]) for k in sorted(self.cells)]

    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild the archive (grid axes, threshold, elites)."""
        return {
            "categories": self.categories,
            "styles": self.styles,
            "max_similarity": self.max_similarity,
            "elites": self.rows(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Archive:
        arch = cls(state["categories"], state["styles"], state.get("max_similarity", 0.95))
        for row in state.get("elites", []):
            e = Elite(**row)
            arch.cells[(e.category, e.style)] = e
        return arch

    def write_jsonl(self, path: str | Path) -> None:
        from superalign.store.jsonl import write_jsonl

        write_jsonl(path, self.rows())

    def heatmap(self, path: str | Path, title: str = "attack archive: elite P(unsafe)") -> Path:
        """A PNG heat map of the elites' scores (blank = empty cell, * = the elite succeeded)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        grid = np.full((len(self.categories), len(self.styles)), np.nan)
        fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(self.styles), 1.2 + 0.45 * len(self.categories)))
        for (c, s), e in self.cells.items():
            i, j = self.categories.index(c), self.styles.index(s)
            grid[i, j] = e.score
            ax.text(j, i, f"{e.score:.2f}" + ("*" if e.success else ""), ha="center", va="center", fontsize=7)
        im = ax.imshow(grid, cmap="Reds", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(self.styles)), self.styles, rotation=35, ha="right", fontsize=8)
        ax.set_yticks(range(len(self.categories)), self.categories, fontsize=8)
        ax.set_title(f"{title} (coverage {self.coverage():.0%})", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.03)
        fig.tight_layout()
        out = Path(path)
        fig.savefig(out, dpi=110)
        plt.close(fig)
        return out
