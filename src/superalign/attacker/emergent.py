"""Emergent-risk discovery: cluster the learner's failures and flag clusters no known category explains.

Embedding: word 1-2-gram TF-IDF of "objective + answer", reduced with truncated SVD (LSA) for
clustering. We use TF-IDF/SVD rather than the embedded model's hidden states: it costs milliseconds
on the shared 2-core CPU and its top terms describe a cluster directly. Clustering: scikit-learn
KMeans (k chosen by silhouette over a small range). A cluster is a *candidate new risk* when its
TF-IDF centroid's cosine similarity to every known category's seed centroid is below `novel_below`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Failure:
    """One unsafe answer: the request behind the attack, the answer, and the category it was filed under."""

    objective: str
    response: str
    category: str = ""
    attack: str = ""


@dataclass(frozen=True)
class RiskCluster:
    id: int
    size: int
    top_terms: list[str]
    examples: list[str]  # the objectives nearest the cluster centre
    categories: dict[str, int]  # filed categories of the members
    nearest_category: str
    similarity: float  # cosine to the nearest category's seed centroid
    novel: bool
    members: list[int] = field(default_factory=list)  # indices into the failures


def _choose_k(x: Any, k_max: int, seed: int) -> tuple[int, Any]:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = x.shape[0]
    best = (-2.0, 1, None)
    for k in range(2, min(k_max, n - 1) + 1):
        labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(x)
        if len(set(labels)) < 2:
            continue
        s = silhouette_score(x, labels)
        if s > best[0]:
            best = (s, k, labels)
    if best[2] is None:
        import numpy as np

        return 1, np.zeros(n, dtype=int)
    return best[1], best[2]


def discover_risks(
    failures: Sequence[Failure],
    known: Mapping[str, Sequence[str]],
    k_max: int = 8,
    novel_below: float = 0.12,
    n_terms: int = 8,
    n_examples: int = 3,
    seed: int = 0,
) -> list[RiskCluster]:
    """Clusters of `failures`, largest first, each described and flagged `novel` when its centroid's
    similarity to every `known` category (name -> seed request texts) is below `novel_below`."""
    import numpy as np
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    if not failures:
        return []
    docs = [f"{f.objective} {f.response}" for f in failures]
    seed_docs = [t for texts in known.values() for t in texts]
    vec = TfidfVectorizer(ngram_range=(1, 2), stop_words="english", sublinear_tf=True, max_df=0.5)
    vec.fit(docs + seed_docs)
    x = vec.transform(docs)
    dims = min(50, x.shape[1] - 1, max(1, x.shape[0] - 1))
    z = normalize(TruncatedSVD(dims, random_state=seed).fit_transform(x)) if dims >= 2 else x.toarray()
    _k, labels = _choose_k(z, k_max, seed) if len(failures) >= 4 else (1, np.zeros(len(failures), dtype=int))
    cats = sorted(known)
    cat_centroids = (
        normalize(np.vstack([np.asarray(vec.transform(list(known[c])).mean(axis=0)) for c in cats])) if cats else None
    )
    terms = np.array(vec.get_feature_names_out())
    out = []
    for c in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == c)
        centroid = normalize(np.asarray(x[idx].mean(axis=0)))
        sims = (cat_centroids @ centroid.T).ravel() if cat_centroids is not None else np.zeros(1)
        best = int(np.argmax(sims))
        dist = np.linalg.norm(z[idx] - z[idx].mean(axis=0), axis=1)
        reps = [failures[int(i)].objective for i in idx[np.argsort(dist)][:n_examples]]
        filed: dict[str, int] = {}
        for i in idx:
            filed[failures[int(i)].category] = filed.get(failures[int(i)].category, 0) + 1
        out.append(
            RiskCluster(
                id=int(c),
                size=len(idx),
                top_terms=terms[np.argsort(-centroid.ravel())[:n_terms]].tolist(),
                examples=reps,
                categories=filed,
                nearest_category=cats[best] if cats else "",
                similarity=round(float(sims[best]), 4),
                novel=bool(sims[best] < novel_below),
                members=[int(i) for i in idx],
            )
        )
    return sorted(out, key=lambda r: -r.size)


def risks_markdown(clusters: Sequence[RiskCluster]) -> str:
    """A markdown section listing the clusters, candidate new risks first."""
    lines = [
        "## Failure clusters (emergent-risk discovery)",
        "",
        "| cluster | size | novel? | nearest category (cos) | top terms |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(clusters, key=lambda r: (not r.novel, -r.size)):
        lines.append(
            f"| {r.id} | {r.size} | {'**candidate new risk**' if r.novel else 'no'} | "
            f"{r.nearest_category} ({r.similarity:.2f}) | {', '.join(r.top_terms)} |"
        )
    for r in clusters:
        lines += ["", f"**cluster {r.id}** examples:"] + [f"- {e[:160]}" for e in r.examples]
    return "\n".join(lines) + "\n"
