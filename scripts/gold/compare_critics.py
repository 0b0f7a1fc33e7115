"""Every critic on the gold set: dev accuracy (the selection metric) and the test block (reported only).

    python scripts/gold/compare_critics.py --out docs/results/critic-eval/compare.json [--critics rules,ensemble,...]

The content critic is fitted on the dev split, so its dev figure here is in-sample: its selection figure is
the grouped dev CV of scripts/gold/dev_cv.py, recorded beside it by hand in docs/critic.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

from superalign.config import CriticConfig
from superalign.critic import build_critic
from superalign.critic.critic import JudgeItem
from superalign.critic.gold_eval import gold_metrics
from superalign.data.gold import GOLD_FILES, GOLD_VERSION, load_gold


def _cpu() -> str:
    """The CPU model and whether it has AMX / AVX-512 (speeds differ a lot between the project's machines)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next(
        (ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")),
        platform.processor() or platform.machine(),
    )
    flags = [f for f in ("amx_bf16", "avx512f", "avx2") if f" {f}" in info]
    return f"{model} ({', '.join(flags)}; {os.cpu_count()} cores)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--critics", default="rules,ensemble,learned,content")
    ap.add_argument("--backbone", default="smollm2", help="content / independent: smollm2 | gemma")
    ap.add_argument("--howto", action="store_true", help="critic.prompt_howto_negatives (the long runs' critic)")
    a = ap.parse_args()
    dev, test = load_gold("dev"), load_gold("test")
    result: dict = {
        "gold": GOLD_VERSION,
        "n_dev": len(dev),
        "n_test": len(test),
        "critics": {},
        "backbone": a.backbone,
        "prompt_howto_negatives": a.howto,
        "machine": _cpu(),
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
    }
    for name in a.critics.split(","):
        cfg = CriticConfig(kind=name, backbone=a.backbone, prompt_howto_negatives=a.howto)  # type: ignore[arg-type]
        critic = build_critic(cfg)
        vs = critic.judge([JudgeItem(r.id, r.prompt, r.response, r.harmful) for r in dev])
        dev_acc = sum(v.unsafe == r.unsafe for v, r in zip(vs, dev)) / len(dev)
        t = time.perf_counter()
        m = gold_metrics(critic, test)
        secs = time.perf_counter() - t
        result["critics"][name] = {
            "dev_accuracy_with_label": round(dev_acc, 4),
            "test": m,
            "seconds_per_item": round(secs / (2 * len(test)), 4),
            # each file's test rows alone: gold-v1's (the figures quoted before gold-v2) and gold-v2's additions
            "test_by_file": {f.name: gold_metrics(critic, load_gold("test", f)) for f in GOLD_FILES},
        }
        w = m["with_label"]
        print(
            f"{name:9s} dev {dev_acc:.3f} | test acc {w['unsafe']['accuracy']:.3f} "
            f"partial {w['kinds']['partial_recall']['rate']} flips {w['kinds']['injection_flips']['count']} "
            f"over-ref {w['kinds']['over_refusal_detected']['rate']} | no label "
            f"{m['without_label']['unsafe']['accuracy']:.3f} | {secs / (2 * len(test)) * 1000:.1f} ms/item"
        )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
