"""Judge gold-labelled answers again with given content-critic heads, side by side: which heads read the
loop's answers better, on answers neither was fitted on.

    python scripts/gold/rejudge.py --heads v2=OLD.npz --heads v3=src/superalign/critic/content_heads.npz \
        --howto --out docs/results/critic-heads-v3/rejudge.json

Sets (the dataset's `harmful` label given, as the loop calls the critic):
- `gold-v1 test`, `gold-v2 test` and its random stratum A (`gold-v2 test A`): the gold test splits;
- `held-out answers`: every distinct (prompt, response) of docs/results/*/answers.jsonl that two readers
  labelled (gold_labels.jsonl): the long runs' held-out answers, never in the gold set;
- `fresh answers`: docs/results/loop-fresh/gold_labels.jsonl (prompts no run had seen).
Per set and heads: unsafe accuracy (Wilson 95 %), recall, precision, refusal accuracy, and benign answers called
refusals that the readers call degenerate; per set, the paired accuracy difference of each heads against the
first, with a 95 % bootstrap interval over prompts. `--howto` builds the prompt head with
`critic.prompt_howto_negatives` (the long runs' critic).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
from pathlib import Path

import numpy as np

from superalign.critic.classifier import fit_classifier_cached
from superalign.critic.content import ContentCritic, ContentFeatures, load_shipped_heads
from superalign.critic.critic import JudgeItem
from superalign.data.gold import GOLD_FILE, GOLD_V2_FILE, load_gold
from superalign.stats import rate_cell

RESULTS = Path("docs/results")


def _heads(path: Path, features: ContentFeatures):
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
    heads = load_shipped_heads(path, features, meta["gold_digest"], meta["version"], meta.get("trained_weight", 0.0))
    if heads is None:
        raise SystemExit(f"{path}: heads for another feature extractor")
    return heads


def _sets() -> dict[str, list[dict]]:
    def rows(gs):
        return [{"prompt": g.prompt, "response": g.response, "harmful": g.harmful, **_labels(g.__dict__)} for g in gs]

    v2_test = load_gold("test", GOLD_V2_FILE)
    sets = {
        "gold-v1 test": rows(load_gold("test", GOLD_FILE)),
        "gold-v2 test": rows(v2_test),
        "gold-v2 test A": rows([g for g in v2_test if g.source.endswith("/A")]),
    }
    held: dict[tuple[str, str], dict] = {}
    for gl in sorted(RESULTS.glob("*/gold_labels.jsonl")):
        answers = gl.parent / "answers.jsonl"
        if not answers.is_file():
            continue
        by_id = {json.loads(x)["response_id"]: json.loads(x) for x in answers.read_text().splitlines()}
        for g in map(json.loads, gl.read_text().splitlines()):
            a = by_id.get(g["response_id"])
            if a is not None and g.get("unsafe") is not None:
                held.setdefault((a["prompt"], a["response"]), {**a, **_labels(g)})
    sets["held-out answers"] = list(held.values())
    fresh = [json.loads(x) for x in (RESULTS / "loop-fresh" / "gold_labels.jsonl").read_text().splitlines()]
    sets["fresh answers"] = [{**r, **_labels(r)} for r in fresh]
    return sets


def _labels(r: dict) -> dict:
    # older runs' labels have no `degenerate` field (None: not counted as degenerate)
    return {"g_unsafe": bool(r["unsafe"]), "g_refusal": bool(r["refusal"]), "g_degenerate": bool(r.get("degenerate"))}


def _paired(rows: list[dict], a: list[bool], b: list[bool], seed: int = 0, reps: int = 2000) -> dict:
    """Accuracy of b minus a on the same rows, 95 % bootstrap over prompts."""
    by_prompt: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_prompt.setdefault(r["prompt"], []).append(i)
    groups = list(by_prompt.values())
    diff = [int(y) - int(x) for x, y in zip(a, b)]
    rng = random.Random(seed)
    stats = []
    for _ in range(reps):
        pick = [i for _ in groups for i in rng.choice(groups)]
        stats.append(sum(diff[i] for i in pick) / len(pick))
    stats.sort()
    return {
        "diff": round(sum(diff) / len(diff), 4),
        "ci95": [round(stats[int(0.025 * reps)], 4), round(stats[int(0.975 * reps)], 4)],
        "better": sum(d > 0 for d in diff),
        "worse": sum(d < 0 for d in diff),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heads", action="append", required=True, help="NAME=FILE.npz (the first is the reference)")
    ap.add_argument("--howto", action="store_true", help="prompt head with critic.prompt_howto_negatives")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    features = ContentFeatures()
    clf = fit_classifier_cached(howto_negatives=a.howto)
    critics = {n: ContentCritic(_heads(Path(f), features), clf) for n, f in (h.split("=", 1) for h in a.heads)}
    out: dict = {
        "heads": dict(h.split("=", 1) for h in a.heads),
        "howto_negatives": a.howto,
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "sets": {},
    }
    for name, rows in _sets().items():
        items = [JudgeItem(str(i), r["prompt"], r["response"], bool(r["harmful"])) for i, r in enumerate(rows)]
        block: dict = {"n": len(rows)}
        correct = {}
        for cname, critic in critics.items():
            vs = critic.judge(items)
            pred = [bool(v.unsafe) for v in vs]
            correct[cname] = [p == r["g_unsafe"] for p, r in zip(pred, rows)]
            ben = [(v, r) for v, r in zip(vs, rows) if not r["harmful"]]
            said_refusal = [r for v, r in ben if v.refusal]
            block[cname] = {
                "unsafe_accuracy": rate_cell(correct[cname]),
                "unsafe_recall": rate_cell([p for p, r in zip(pred, rows) if r["g_unsafe"]]),
                "unsafe_precision": rate_cell([r["g_unsafe"] for p, r in zip(pred, rows) if p]),
                "refusal_accuracy": rate_cell([bool(v.refusal) == r["g_refusal"] for v, r in zip(vs, rows)]),
                "benign_called_refusal_but_degenerate": {
                    "k": sum(r["g_degenerate"] for r in said_refusal),
                    "of": len(said_refusal),
                },
            }
        ref = next(iter(critics))
        for cname in list(critics)[1:]:
            block[f"{cname} - {ref}"] = _paired(rows, correct[ref], correct[cname])
        out["sets"][name] = block
        print(
            f"{name:18s} n={len(rows):5d} "
            + " | ".join(
                f"{c}: acc {block[c]['unsafe_accuracy']['rate']:.3f} rec {block[c]['unsafe_recall']['rate']} "
                f"prec {block[c]['unsafe_precision']['rate']} ref {block[c]['refusal_accuracy']['rate']:.3f}"
                for c in critics
            )
        )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
