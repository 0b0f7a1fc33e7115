"""A run directory's derived files, rebuilt from the run store: `rounds.jsonl` (per-round metrics with the
gate's decisions and the adaptive attacker's numbers, one `metrics.RoundMetrics` per row) and `report.html`
(store/report.py). Always safe to rewrite; the loop writes them after every round, `superalign report` and
`superalign label import` on demand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superalign.errors import UserError

if TYPE_CHECKING:
    from superalign.config import RunConfig
    from superalign.metrics import RoundMetrics


def write_outputs(out: Path, store: Any, cfg: RunConfig | None = None) -> Path:
    """rounds.jsonl and report.html, rebuilt from the store (derived files: always safe to rewrite)."""
    from superalign.store.jsonl import write_jsonl
    from superalign.store.report import write_report

    rounds = rounds_with_gate(store)
    write_jsonl(out / "rounds.jsonl", rounds)  # rows as validated by metrics.RoundMetrics
    examples = _examples(store, rounds)
    meta = {"config": json.dumps(store.get_meta("config"), indent=1), "examples": examples}
    return write_report(out, rounds, title=f"superalign run: {(cfg.name if cfg else out.name)}", meta=meta)


def rounds_with_gate(store: Any) -> list[dict]:
    """The rows of rounds.jsonl: `round_metrics(store)` as JSON-ready dicts (each row keeps exactly the keys
    it was given: a column that does not apply to a round is absent, one without a value is null)."""
    return [m.to_row() for m in round_metrics(store)]


def round_metrics(store: Any) -> list[RoundMetrics]:
    """Per-round metrics plus `promoted` (the gate's decision on each trained version; None: pending) and,
    with the adaptive attacker, `attack_asr` / `attack_coverage`: round K's search on the *training*
    objectives against the learner round K started from (set beside held-out ASR: memorising vs generalising),
    each round validated as a `RoundMetrics` (a key it does not declare is a bug and raises)."""
    from pydantic import ValidationError

    from superalign.metrics import RoundMetrics
    from superalign.ppi import ppi_round

    out = []
    base_correct = (store.step_payload(0, "eval_competence") or {}).get("competence_correct")
    for row in store.rounds_metrics():
        row.update(ppi_round(store, row["round"]))  # asr_ppi once held-out answers carry human labels
        row.update(competence_drop(base_correct, store.step_payload(row["round"], "eval_competence"), row["round"]))
        if row.get("round", 0) > 0:
            row["promoted"] = (store.step_payload(row["round"], "promote") or {}).get("promoted")
            shrink = store.step_payload(row["round"], "shrink")
            if shrink is not None:  # oversight.shrink_alphas: the alpha the version was scaled back by (None: none met)
                row["scaled_by"] = shrink.get("alpha")
            judged = store.step_payload(row["round"], "judge") or {}
            for key in ("attack_asr_by_style", "train_refusal_benign", "train_unsafe_harmful"):
                if key in judged:
                    row[key] = judged[key]
            attack = store.step_payload(row["round"], "attack") or {}
            if "asr" in attack:
                row["attack_asr"], row["attack_coverage"] = attack["asr"], attack.get("archive_coverage")
        try:
            out.append(RoundMetrics.model_validate(row))
        except ValidationError as e:
            raise UserError(
                f"round {row.get('round')} of this run's store does not fit the rounds.jsonl contract (RoundMetrics): "
                f"{e}\nthe store was written by another superalign version: read it with that version, or start a "
                "new run"
            ) from e
    return out


def _examples(store: Any, rounds: list[dict], n: int = 6) -> list[dict]:
    """A few held-out harmful prompts with the first and last round's answers, for the report."""
    if not rounds:
        return []
    first, last = rounds[0]["round"], rounds[-1]["round"]
    text = {q.id: q.text for q in store.queries(round=0, step="eval")}
    verdicts = {v.response_id: v for k in {first, last} for v in store.verdicts(round=k, step="eval")}
    out = []
    for k in sorted({first, last}):
        for r in store.responses(round=k, step="eval")[:n]:
            v = verdicts.get(r.id)
            out.append(
                {
                    "round": k,
                    "prompt": text.get(r.query_id, r.query_id),
                    "response": r.text,
                    "verdict_explanation": v.explanation if v else "",
                }
            )
    return out


def competence_drop(base: list[float] | None, payload: dict | None, k: int) -> dict[str, Any]:
    """`competence_drop` (+ paired 95 % interval): round 0's reported competence minus round k's on the same
    items, from the per-item correctness the eval step stored (step `eval_competence`); {} at round 0 (k = 0) or
    when a round has no per-item record (runs written before it was stored)."""
    from superalign.stats import paired_difference_ci

    after = (payload or {}).get("competence_correct")
    if k == 0 or not base or not after or len(base) != len(after):
        return {}
    drop, lo, hi = paired_difference_ci(base, after)
    return {"competence_drop": round(drop, 4), "competence_drop_ci": [round(lo, 4), round(hi, 4)]}
