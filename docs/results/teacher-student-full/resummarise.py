"""Re-summarise a teacher-student metrics.json from its rows with the current code: CIs cut to [0, 1],
model tags instead of memory ids, per-kind label agreement (from the cached pair pool the run used)."""
import json, sys
from pathlib import Path
from superalign.experiments.common import pair_pool
from superalign.experiments.teacher_student import (CRITIC_METRICS, LEARNER_METRICS, TeacherStudentConfig, by_kind,
                                                    kind_metrics, summarise, write_outputs)
from superalign.records import stable_id
out = Path(sys.argv[1])
m = json.loads((out / "metrics.json").read_text())
cfg = TeacherStudentConfig.model_validate(m["config"]).learner_chain
pool = pair_pool(cfg.pool.model_copy(update={"learner": m["learner"]}), lambda *a: None)
pairs = sorted(pool.train, key=lambda p: stable_id("order", p.query_id))[: cfg.train_pairs or None]
assert len(pairs) == m["learner_chain"]["n_pairs"]
tags = {}
for r in m["learner_chain"]["rows"]:  # the order the run met them, per seed: teacher, then its student
    for k in ("teacher_backend", "student_backend"):
        if r.get(k) is not None:
            seen = tags.setdefault(r["seed"], {})
            r[k] = seen.setdefault(r[k], f"seed{r['seed']}-model{len(seen)}")
    r.update(by_kind(r["labels"], pairs))
m["critic_chain"]["summary"] = summarise(m["critic_chain"]["rows"], "chain", CRITIC_METRICS)
lc = m["learner_chain"]
lc["summary"] = summarise(lc["rows"], None, LEARNER_METRICS)
lc["by_kind"] = summarise(lc["rows"], None, kind_metrics(lc["rows"]))["learner"]
write_outputs(out, m)
