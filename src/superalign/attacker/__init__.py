"""The Attacker: turns seed queries into attack queries for the learner.

`attack(seeds, cfg, round, seed)` samples seeds stratified by harm category and, per query, keeps it
plain, passes it through a text converter (`converters.py`: roleplay, hypothetical, past_tense,
leetspeak, base64, authority) or wraps it in a PyRIT jailbreak template (`templates.py`). Every
attack query records its lineage (`parent_id`, `objective`) and method (`source`).
"""

from superalign.attacker.attack import attack

__all__ = ["attack"]
