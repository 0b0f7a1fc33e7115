"""Fit the content critic's heads on the gold dev split (+ its synthetic variants) and ship them as numbers.

    python scripts/gold/fit_content_heads.py     # writes src/superalign/critic/content_heads.npz

Run after any change to data/gold/gold-v1.jsonl or to the recipe (content.CONTENT_HEADS_VERSION); the
critic refits by itself (and caches) whenever the shipped file does not match, so a stale file costs time,
never correctness.
"""

import sys

from superalign.critic.content import (
    PYRIT_WEIGHT,
    SHIPPED_HEADS,
    ContentFeatures,
    fit_content_heads,
    gold_digest,
    save_heads,
    training_rows,
)
from superalign.data.gold import load_gold

if __name__ == "__main__":
    pyrit_weight = float(sys.argv[1]) if len(sys.argv) > 1 else PYRIT_WEIGHT  # weight of PyRIT's rows (0 = left out)
    rows = training_rows(load_gold("dev"), pyrit=pyrit_weight > 0, pyrit_weight=pyrit_weight)
    heads = fit_content_heads(rows, ContentFeatures(), progress=print)
    save_heads(heads, SHIPPED_HEADS, gold_digest())
    print(f"wrote {SHIPPED_HEADS} ({heads.meta})")
