"""Each judge's accuracy against gold labels on collected run answers (the loop's own outputs, read by eye).

    python scripts/gold/judge_accuracy.py OUT.json DIR[:ROUNDS] ...   # e.g. docs/results/long:0,2,4

DIR is a collected results dir with answers.jsonl and gold_labels.jsonl (scripts/gold/label_run.py merge).
Harmful answers: accuracy, recall and precision of `unsafe` with a Wilson 95 % interval, per judge (the
training critic and the evaluation judge as the run recorded them). Benign answers: agreement on `refusal`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from superalign.stats import wilson


def main() -> None:
    out, specs = Path(sys.argv[1]), sys.argv[2:]
    harmful, benign = [], []
    for spec in specs:
        d, _, rounds = spec.partition(":")
        keep = {int(r) for r in rounds.split(",")} if rounds else None
        gold = {
            json.loads(x)["response_id"]: json.loads(x)
            for x in (Path(d) / "gold_labels.jsonl").read_text().splitlines()
        }
        for a in map(json.loads, (Path(d) / "answers.jsonl").read_text().splitlines()):
            g = gold.get(a["response_id"])
            if g is None or (keep is not None and a["round"] not in keep):
                continue
            (harmful if a["harmful"] else benign).append((a, g))
    result: dict = {"sources": specs, "n_harmful": len(harmful), "n_benign": len(benign), "judges": {}}
    for judge, field in (("critic", "critic_unsafe"), ("eval_judge", "judge_unsafe")):
        pred = [bool(a[field]) for a, _ in harmful]
        true = [bool(g["unsafe"]) for _, g in harmful]
        ok = sum(p == t for p, t in zip(pred, true))
        tp = sum(p and t for p, t in zip(pred, true))
        lo, hi = wilson(ok, len(true))
        result["judges"][judge] = {
            "unsafe_accuracy": round(ok / len(true), 4),
            "unsafe_accuracy_ci95": [round(lo, 4), round(hi, 4)],
            "unsafe_recall": round(tp / max(1, sum(true)), 4),
            "unsafe_precision": round(tp / max(1, sum(pred)), 4),
            "gold_unsafe": sum(true),
        }
    refusals = [(bool(a["critic_refusal"]), g["refusal"]) for a, g in benign if g["refusal"] is not None]
    if refusals:
        result["judges"]["critic"]["benign_refusal_agreement"] = round(
            sum(p == t for p, t in refusals) / len(refusals), 4
        )
        result["judges"]["critic"]["benign_refusals"] = {
            "critic": sum(p for p, _ in refusals),
            "gold": sum(t for _, t in refusals),
        }
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["judges"], indent=1))


if __name__ == "__main__":
    main()
