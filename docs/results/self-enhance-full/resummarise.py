"""Re-summarise a self-enhance metrics.json with the current code: adds each model's share of degenerate
held-out answers (critic/rules.py), read from the answers/ files the run wrote; the rows are otherwise unchanged."""
import json, sys
from pathlib import Path
from superalign.critic.rules import rule_signals
from superalign.experiments.self_enhance import SelfEnhanceConfig, write_outputs
out = Path(sys.argv[1])
m = json.loads((out / "metrics.json").read_text())
cfg = SelfEnhanceConfig.model_validate(m["config"])

def share(path):
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return round(sum(rule_signals(r["prompt"], r["response"]).degenerate for r in rows) / len(rows), 4)

base = share(out / "answers" / "t0.jsonl")
m["base"]["degenerate"] = base
for r in m["runs"]:
    r["degenerate"] = base if r["t"] == 0 else share(out / "answers" / f"seed{r['seed']}-{r['arm']}-t{r['t']}.jsonl")
write_outputs(out, m, cfg)
