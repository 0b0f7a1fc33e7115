"""Re-summarise this run's metrics.json with the current code. It ran with the interim setting
`penalise_degenerate: true` (session 11), which is `degenerate: penalise` now; the rows are as the run wrote them."""
import json, sys
from pathlib import Path
from superalign.experiments.self_enhance import SelfEnhanceConfig, write_outputs
out = Path(sys.argv[1])
m = json.loads((out / "metrics.json").read_text())
if m["config"].pop("penalise_degenerate", None):
    m["config"]["degenerate"] = "penalise"
write_outputs(out, m, SelfEnhanceConfig.model_validate(m["config"]))
