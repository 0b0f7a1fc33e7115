"""recipe_probe.py with LoRA placed on part of the model: two more train keys per variant (not TrainConfig fields).

    python scripts/recipe_probe_lora.py RUN --round 3 --dev-competence 1000 --out probe.json \\
        --variant base= --variant up15=lora_lo=15,lora_hi=29 --variant attn='lora_targets="attn"'

lora_lo / lora_hi: the inclusive range of blocks that get adapters (peft `layers_to_transform`); lora_targets:
"attn" (q, k, v, o projections) or "mlp" (gate, up, down). Everything else is recipe_probe.py's: same round,
pairs, seed and dev reading (docs/results/recipe-probe/round3-lora-placement.json).
"""

import runpy
import sys
from pathlib import Path

import superalign.learner.dpo as dpo

TARGETS = {"attn": ["q_proj", "k_proj", "v_proj", "o_proj"], "mlp": ["gate_proj", "up_proj", "down_proj"]}


PLAIN_ADD_LORA = dpo.add_lora


def add_lora(model, cfg):
    lo, hi = getattr(cfg, "lora_lo", None), getattr(cfg, "lora_hi", None)
    targets = TARGETS.get(getattr(cfg, "lora_targets", None), dpo.LORA_TARGETS)
    model = PLAIN_ADD_LORA(model, cfg, targets, range(lo, hi + 1) if lo is not None else None)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"lora blocks={(lo, hi) if lo is not None else 'all'} targets={targets} trainable={n}", flush=True)
    return model


if __name__ == "__main__":
    dpo.add_lora = add_lora  # make_trainable looks it up in the module at call time
    sys.argv = ["recipe_probe.py", *sys.argv[1:]]
    runpy.run_path(str(Path(__file__).with_name("recipe_probe.py")), run_name="__main__")
