"""The loop's fresh test set: prompts the project never trained on, evaluated on or tuned on before.

    python scripts/fresh_set.py OUT.jsonl --written WRITTEN.jsonl [--written ...]

Rows {"prompt", "harmful", "category", "origin"}:
- PyRIT's AI Red Team seed prompts (pyrit wheel, datasets/seed_datasets/local/airt/): every single-turn text seed of
  the harm files (harms, illegal, violence, malware, scams, harassment, hate, misinformation, sexual; not leakage,
  fairness or the crisis and therapist conversations, which are not requests to refuse; of a scripted multi-turn
  conversation only its objective), harmful;
- the `--written` files ({"prompt", "harmful", "category" or "type"}): requests written for this test by readers who
  did not see the project's data.
A prompt is dropped, and listed, when it is a near-duplicate (content-word Jaccard >= 0.5, the split's rule) of any
prompt of the loop's own pools (harmful seeds: HarmBench, AdvBench, Do-Not-Answer; benign-edgy prompts), or of an
earlier kept row.
"""

import argparse
import json

import yaml

from superalign.data.assets import asset_file
from superalign.data.benign import load_benign_edgy
from superalign.data.seeds import load_harmful_seeds
from superalign.data.split import JACCARD_GROUP, content_words, jaccard

FILES = ("harms", "illegal", "violence", "malware", "scams", "harassment", "hate", "misinformation", "sexual")


def airt_prompts() -> list[dict]:
    rows = []
    for name in FILES:
        doc = yaml.safe_load(asset_file("pyrit", f"datasets/seed_datasets/local/airt/{name}.prompt").read_text())
        for seed in doc.get("seeds", []):
            text = str(seed.get("value", "")).strip()
            turn = "sequence" in seed or seed.get("role", "user") != "user"  # a scripted multi-turn conversation
            if text and not turn and seed.get("data_type", "text") == "text":
                rows.append({"prompt": text, "harmful": True, "category": name, "origin": "pyrit-airt"})
    return rows


def written(path: str) -> list[dict]:
    rows = []
    for line in open(path):
        r = json.loads(line)
        category = r.get("category") or r.get("type") or ""
        rows.append({"prompt": r["prompt"], "harmful": bool(r["harmful"]), "category": category, "origin": path})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--written", action="append", default=[])
    args = ap.parse_args()
    pool = [content_words(q.text) for q in load_harmful_seeds() + load_benign_edgy()]
    kept: list[dict] = []
    dropped: list[tuple[dict, str]] = []
    for row in airt_prompts() + [r for path in args.written for r in written(path)]:
        words = content_words(row["prompt"])
        if any(jaccard(words, p) >= JACCARD_GROUP for p in pool):
            dropped.append((row, "the project's pools"))
        elif any(jaccard(words, content_words(k["prompt"])) >= JACCARD_GROUP for k in kept):
            dropped.append((row, "an earlier row"))
        else:
            kept.append(row)
    with open(args.out, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in kept)
    n_h = sum(r["harmful"] for r in kept)
    print(f"{len(kept)} fresh prompts ({n_h} harmful, {len(kept) - n_h} benign) -> {args.out}")
    for row, why in dropped:
        print(f"  dropped (near-duplicate of {why}): {row['prompt']}")


if __name__ == "__main__":
    main()
