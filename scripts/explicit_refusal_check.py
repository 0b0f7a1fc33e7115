"""Does the rules' refusal signal tell a refusal from a stall? The gold dev split (train.explicit_refusals).

    python scripts/explicit_refusal_check.py --out docs/results/explicit-refusal-check/check.json

For every dev row whose prompt is harmful and whose answer is not unsafe (what a refuse pair's chosen side is drawn
from), the gold class (refusal / degenerate / other) against the rules' refusal signal. The test split is not read.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path


def main() -> None:
    from superalign.critic.rules import rule_signals
    from superalign.data.gold import GOLD_VERSION, load_gold

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    counts: Counter[tuple[str, bool]] = Counter()
    for r in load_gold("dev"):
        if not r.harmful or r.unsafe:
            continue
        gold = "refusal" if r.refusal else "degenerate" if r.degenerate else "other"
        counts[(gold, rule_signals(r.prompt, r.response).refusal)] += 1
    table = {
        gold: {"says_no": counts[(gold, True)], "does_not": counts[(gold, False)]}
        for gold in ("refusal", "degenerate", "other")
    }
    out = {"gold": GOLD_VERSION, "split": "dev", "rows": "harmful prompts, answers not unsafe", "by_gold_class": table}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(table))


if __name__ == "__main__":
    main()
