"""Reference values of the CPU path, computed once on the code before the GPU work (branch `gpu`'s base,
b9a5ea6) and stored in tests/cpu_reference.json; tests/test_device.py recomputes them with device=cpu
and requires the same tokens and the same losses.

    PYTHONPATH=src python tests/cpu_reference.py --write   # only when the CPU path is meant to change
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REFERENCE = Path(__file__).with_name("cpu_reference.json")
QUESTIONS = ["How do I pick a lock?", "What is the capital of France?", "Write a haiku about rain.",
             "Give me a tip for sleeping well.", "Explain photosynthesis in one sentence."]
PAIRS = [
    ("How do I pick a lock?", "I can't help with that.", "Sure, first insert a tension wrench and rake the pins."),
    ("What is the capital of France?", "Paris.", "I would rather not say."),
    ("Write a haiku about rain.", "Soft rain on the roof / the garden drinks slowly / night smells of wet stone", "No."),
    ("Give me a tip for sleeping well.", "Keep a regular bedtime and a dark, cool room.", "Sleep is overrated."),
]


def compute(**load_kw: Any) -> dict[str, Any]:
    """Tokens of greedy and sampled generation (fp32 and bf16), option scores, and the DPO losses of a few steps
    on the tiny random SmolLM2-shaped model. `load_kw` goes to load_backend (device=... on the new code)."""
    import torch

    from superalign.backends import Sampling, load_backend
    from superalign.config import TrainConfig
    from superalign.learner.dpo import encode_example, sequence_logps, train_dpo
    from superalign.records import Pair, user_chat

    torch.manual_seed(0)
    out: dict[str, Any] = {}
    for dtype in ("float32", "bfloat16"):
        b = load_backend("tiny", batch_size=2, dtype=dtype, **load_kw)
        prompts = [b.encode(b.render(user_chat(q))) for q in QUESTIONS]
        out[f"greedy_{dtype}"] = b.generate_ids(prompts, Sampling(12, 0.0))
        out[f"sampled_{dtype}"] = b.generate_ids(prompts, Sampling(12, 0.8, 50, seed=3))
        # large enough for the fast decoder (bf16) to run: prompts x tokens >= 512
        out[f"sampled_long_{dtype}"] = b.generate_ids(prompts * 8, Sampling(16, 0.8, 50, seed=4))
        out[f"options_{dtype}"] = b.score_options(["Q: 2+2? A:", "Q: sky colour? A:"], [[" 4", " 5"], [" blue", " red", " green"]])
        out[f"logprobs_{dtype}"] = b.logprobs([user_chat(q) for q in QUESTIONS[:2]], ["Yes.", "Paris is the capital."])
    pairs = [Pair(prompt=user_chat(q), chosen=c, rejected=r, weight=w) for (q, c, r), w in zip(PAIRS, (1.0, 0.5, 0.8, 1.0))]
    replay = [(user_chat("Which is a mammal? A) shark B) whale"), "B"), (user_chat("2+3?"), "5")]
    for adapter, lr in (("lora", 5e-3), ("full", 1e-4)):
        b = load_backend("tiny", batch_size=2, dtype="float32", **load_kw)
        cfg = TrainConfig(adapter=adapter, lr=lr, epochs=2, batch_size=2, micro_batch=1, max_len=64,
                          competence_replay=2)
        _, stats = train_dpo(b, pairs, cfg, seed=7, replay=replay)
        out[f"dpo_{adapter}_losses"] = stats.losses
        out[f"dpo_{adapter}_reward_accuracy"] = stats.reward_accuracy
        prompts = [b.encode(b.render(user_chat(q))) for q in QUESTIONS]
        out[f"dpo_{adapter}_greedy_after"] = b.generate_ids(prompts, Sampling(12, 0.0))
        # full-precision log-probs of the pairs under the trained weights: the whole trajectory, to the digit
        enc = [encode_example(b.tokenizer, b.render, p.prompt, t, 64) for p in pairs for t in (p.chosen, p.rejected)]
        with torch.no_grad():
            lp, _ = sequence_logps(b.model, enc, b.tokenizer.pad_token_id)
        out[f"dpo_{adapter}_logps_after"] = [float(x) for x in lp]
    return out


if __name__ == "__main__":
    values = compute()
    if "--write" in sys.argv:
        REFERENCE.write_text("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in values.items()) + "\n}\n")
        print(f"wrote {REFERENCE}")
    else:
        print(json.dumps(values)[:2000])
