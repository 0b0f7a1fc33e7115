"""How much of the held-out harmful set has a near-paraphrase in training, before and after split hygiene.

    PYTHONPATH=src python scripts/split_leakage.py [--fraction 0.3] [--source harmbench]

For the old split (sha1 of each seed's exact normalised text) and the new one (near-duplicate groups,
content-word Jaccard >= 0.5, held out whole; with and without one whole seed set held out), prints the
share of held-out harmful seeds that have a *training* seed at content-word Jaccard >= 0.5 (checked pair
by pair, independently of the grouping code), the sizes of the sets, and how long the grouping takes on
each data set. Output: docs/results/split-hygiene/leakage.txt.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time
from collections import Counter
from collections.abc import Sequence

from superalign.data.benign import load_benign_edgy, load_benign_general
from superalign.data.seeds import load_harmful_seeds
from superalign.data.split import (
    JACCARD_GROUP,
    content_words,
    is_heldout,
    jaccard,
    query_groups,
    split_queries,
    split_with_source,
)
from superalign.records import Query


def leaked(heldout: Sequence[Query], train: Sequence[Query], threshold: float = JACCARD_GROUP) -> list[Query]:
    """The held-out queries with a training query at content-word Jaccard >= threshold (all pairs)."""
    train_words = [content_words(q.objective or q.text) for q in train]
    out = []
    for q in heldout:
        w = content_words(q.objective or q.text)
        if any(jaccard(w, t) >= threshold for t in train_words):
            out.append(q)
    return out


def header() -> list[str]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown (not a git checkout)", ""
    try:
        cpu = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
                if ln.startswith("Model name")
            ),
            platform.processor() or "unknown",
        )
    except (OSError, subprocess.CalledProcessError):
        cpu = platform.processor() or "unknown"
    return [f"commit: {commit}{' (with uncommitted changes)' if dirty else ''}", f"cpu: {cpu}"]


def report(name: str, train: Sequence[Query], heldout: Sequence[Query]) -> str:
    bad = leaked(heldout, train)
    by_src = Counter(q.source for q in heldout)
    bad_src = Counter(q.source for q in bad)
    per = ", ".join(f"{s} {bad_src[s]}/{n} = {bad_src[s] / n:.1%}" for s, n in sorted(by_src.items()))
    share = len(bad) / len(heldout) if heldout else 0.0
    return (
        f"{name}: {len(bad)}/{len(heldout)} = {share:.1%} of held-out seeds have a training seed at Jaccard >= "
        f"{JACCARD_GROUP} (by set: {per})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fraction", type=float, default=0.3)
    ap.add_argument("--source", default="harmbench", help="the seed set held out whole (data.heldout_source)")
    a = ap.parse_args()
    lines = header()
    seeds = load_harmful_seeds()
    per_set = ", ".join(f"{s} {n}" for s, n in Counter(q.source for q in seeds).items())
    lines.append(
        f"harmful seeds: {len(seeds)} ({per_set}), held-out fraction {a.fraction}, "
        f"near-duplicate threshold: content-word Jaccard >= {JACCARD_GROUP}"
    )
    keys = query_groups(seeds)
    sizes = Counter(keys)
    lines.append(
        f"near-duplicate groups: {len(sizes)}; {sum(1 for n in sizes.values() if n > 1)} with 2+ seeds, "
        f"holding {sum(n for n in sizes.values() if n > 1)} seeds; largest {max(sizes.values())}"
    )
    lines.append("")

    old_held = [q for q in seeds if is_heldout(q.objective or q.text, a.fraction)]
    old_train = [q for q in seeds if not is_heldout(q.objective or q.text, a.fraction)]
    lines.append(f"old split (exact normalised text): train {len(old_train)}, held-out {len(old_held)}")
    lines.append("  " + report("leakage", old_train, old_held))
    hb_ab = [q for q in old_held if q.source in ("harmbench", "advbench")]
    lines.append(
        f"  harmbench + advbench held-out only: {len(leaked(hb_ab, old_train))}/{len(hb_ab)} = "
        f"{len(leaked(hb_ab, old_train)) / len(hb_ab):.1%}"
    )
    lines.append("")

    train, held = split_queries(seeds, a.fraction)
    lines.append(f"new grouped split, no source held out: train {len(train)}, held-out {len(held)}")
    lines.append("  " + report("leakage", train, held))
    lines.append("")

    s = split_with_source(seeds, a.fraction, a.source)
    lines.append(
        f"new grouped split, {a.source} held out whole (the default config): train {len(s.train)}, "
        f"held-out in-distribution {len(s.heldout)}, held-out source ({a.source}) {len(s.source)}, "
        f"excluded (other sets' near-duplicates of {a.source}: never trained, never evaluated) "
        f"{len(s.excluded)}"
    )
    lines.append("  " + report("leakage, in-distribution held-out", s.train, s.heldout))
    lines.append("  " + report(f"leakage, held-out source {a.source}", s.train, s.source))
    src = [q for q in seeds if q.source == a.source]
    other = [q for q in old_train if q.source != a.source]
    lines.append(
        f"  for comparison, {a.source} seeds with a neighbour in the old split's train side: "
        f"{len(leaked(src, old_train))}/{len(src)} = {len(leaked(src, old_train)) / len(src):.1%} "
        f"(that side holds {len(old_train) - len(other)} {a.source} seeds); in its other sets only: "
        f"{len(leaked(src, other))}/{len(src)} = {len(leaked(src, other)) / len(src):.1%}"
    )
    lines.append("")

    lines.append("grouping time (query_groups, one call, best of 3):")
    for name, qs in (
        ("harmful seeds", seeds),
        ("benign edgy", load_benign_edgy()),
        ("benign general (2000, the plan)", load_benign_general(2000)),
        ("benign general (all, the prompt head)", load_benign_general()),
    ):
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            query_groups(qs)
            best = min(best, time.perf_counter() - t)
        lines.append(f"  {name}: {len(qs)} texts, {best:.3f} s")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
