"""Per-seed and pooled table of `superalign attack` runs kept here as b<budget>-s<seed>/metrics.json.

    python docs/results/attack-budget/summarise.py   # prints a markdown table per budget
"""
import json
import statistics
import sys
from pathlib import Path

here = Path(__file__).parent
runs: dict[int, list[dict]] = {}
for path in sorted(here.glob("b*-s*/metrics.json")):
    m = json.loads(path.read_text())
    runs.setdefault(m["budget"], []).append(m)
for budget, ms in sorted(runs.items()):
    print(f"\nbudget {budget} learner queries per arm ({len(ms)} seeds)\n")
    print("| seed | static ASR | adaptive ASR | ratio | coverage | explore queries | past tense (successes / tries) "
          "| first-turn / follow-up successes | diversity adaptive / static |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in sorted(ms, key=lambda m: m["seed"]):
        pt, ts = m["style_stats"]["past_tense"], m["turn_stats"]
        print(f"| {m['seed']} | {m['asr_static']:.3f} | {m['asr_adaptive']:.3f} | {m['asr_adaptive'] / m['asr_static']:.2f}× "
              f"| {m['archive_coverage']:.3f} | {m['explore_queries']} | {pt['successes']} / {pt['tries']} "
              f"| {ts['first']['successes']}/{ts['first']['tries']} · {ts['followup']['successes']}/{ts['followup']['tries']} "
              f"| {m['diversity_adaptive']:.3f} / {m['diversity_static']:.3f} |")
    a = statistics.mean(m["asr_adaptive"] for m in ms)
    s = statistics.mean(m["asr_static"] for m in ms)
    ratios = [m["asr_adaptive"] / m["asr_static"] for m in ms]
    print(f"| pooled | {s:.3f} | {a:.3f} | **{a / s:.2f}×** (per-seed {min(ratios):.2f}–{max(ratios):.2f}) "
          f"| {min(m['archive_coverage'] for m in ms):.2f}–{max(m['archive_coverage'] for m in ms):.2f} | | | | |")
sys.exit(0)
