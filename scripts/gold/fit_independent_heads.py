"""Fit the evaluation judge's heads on PyRIT's labelled sets and ship them as numbers.

    python scripts/gold/fit_independent_heads.py     # writes src/superalign/critic/independent_heads.npz

Run after any change to the recipe (independent.INDEPENDENT_HEADS_VERSION) or the feature extractor; the judge
refits by itself (and caches) whenever the shipped file does not match, so a stale file costs time only.
"""

from superalign.critic.content import ContentFeatures, save_heads
from superalign.critic.independent import (
    INDEPENDENT_HEADS_VERSION,
    SHIPPED_INDEPENDENT_HEADS,
    fit_independent_heads,
    pyrit_digest,
)

if __name__ == "__main__":
    heads = fit_independent_heads(ContentFeatures(), progress=print)
    save_heads(heads, SHIPPED_INDEPENDENT_HEADS, pyrit_digest(), INDEPENDENT_HEADS_VERSION)
    print(f"wrote {SHIPPED_INDEPENDENT_HEADS} ({heads.meta})")
