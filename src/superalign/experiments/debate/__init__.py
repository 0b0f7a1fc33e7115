"""`superalign experiment debate`: scalable oversight with a weak judge on hidden passages (SciQ support).

The strong side is SmolLM2-135M reading the item's support passage; the judge is the same model without
it, so only information differs. Modules: `config` (presets pilot / quick / full), `passages` (items,
sentences, verbatim quote checks, option masking), `judge` (the letter judge, both answer orders, cached
scores), `stats` (bootstrap CIs, paired differences, gates), `run` (the run; the module
`superalign experiment debate` loads), `report`.

Every preset first measures the two pilot gates on 200 items — the passage-reading judge beats the naive
judge by >= 0.15, and by >= 0.10 with the options masked in the passage — and stops when one fails.
"""

from superalign.experiments.debate.config import PRESETS, DebateConfig

__all__ = ["PRESETS", "DebateConfig"]
