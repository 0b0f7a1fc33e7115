"""Re-summarise a self-enhance metrics.json with the current code: adds each model's share of degenerate
held-out answers and each step's count of degenerate chosen answers (critic/rules.py), read from the answers/
and pairs/ files the run wrote; the rows are otherwise unchanged. This run predates the `degenerate` setting
and kept degenerate candidates: its config is marked `degenerate: keep` (a missing key would read as the
default, drop)."""
import json, sys
from pathlib import Path
from superalign.critic.rules import rule_signals
from superalign.experiments.self_enhance import SelfEnhanceConfig, write_outputs
out = Path(sys.argv[1])
m = json.loads((out / "metrics.json").read_text())
m["config"].pop("penalise_degenerate", None)  # an interim name of the setting (session 11)
m["config"].setdefault("degenerate", "keep")
cfg = SelfEnhanceConfig.model_validate(m["config"])

def share(path):
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return round(sum(rule_signals(r["prompt"], r["response"]).degenerate for r in rows) / len(rows), 4)

def chosen_degenerate(path):
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return sum(rule_signals(r["prompt"][-1]["content"], r["chosen"]).degenerate for r in rows)

base = share(out / "answers" / "t0.jsonl")
m["base"]["degenerate"] = base
for r in m["runs"]:
    r["degenerate"] = base if r["t"] == 0 else share(out / "answers" / f"seed{r['seed']}-{r['arm']}-t{r['t']}.jsonl")
    pairs = out / "pairs" / f"seed{r['seed']}-{r['arm']}-t{r['t']}.jsonl"
    if "pairs" in r and pairs.is_file():
        r["pairs_chosen_degenerate"] = chosen_degenerate(pairs)
write_outputs(out, m, cfg)
