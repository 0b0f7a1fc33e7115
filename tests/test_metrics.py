"""`metrics.RoundMetrics` is the rounds.jsonl contract: every committed row and every row of a fresh run
validates and keeps its keys as they were, and a key the record does not declare is refused."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from superalign.config import load_config
from superalign.errors import UserError
from superalign.loop import run_loop
from superalign.metrics import RoundMetrics
from superalign.store.runstore import RunStore

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / "docs" / "results").rglob("rounds.jsonl"))


def _lines(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


def _same(row, back):
    """Same keys and values (NaN equal to NaN, as the JSON text has it); key order aside."""
    return json.dumps(row, sort_keys=True) == json.dumps(back, sort_keys=True)


def test_every_committed_rounds_row_validates_and_keeps_its_keys():
    assert len(COMMITTED) >= 10  # docs/results/*/rounds.jsonl (and the ablation arms') exist
    for path in COMMITTED:
        for row in _lines(path):
            m = RoundMetrics.model_validate(row)
            assert _same(row, m.to_row()), f"{path.relative_to(ROOT)} round {row['round']}"


def _row(**extra):
    return {**_lines(ROOT / "docs" / "results" / "long-shrink" / "rounds.jsonl")[4], **extra}


def test_an_undeclared_or_mistyped_key_is_refused_and_a_missing_column_too():
    RoundMetrics.model_validate(_row())
    with pytest.raises(ValidationError, match="asr_typo"):
        RoundMetrics.model_validate(_row(asr_typo=0.1))
    with pytest.raises(ValidationError, match="asr_by_subset"):  # nested records are closed too
        RoundMetrics.model_validate(_row(asr_by_subset={"in-distribution": {"n": 3, "asr": 0.1, "extra": 1}}))
    with pytest.raises(ValidationError, match="asr_ci"):
        RoundMetrics.model_validate(_row(asr_ci=[0.1]))
    row = _row()
    del row["competence"]
    with pytest.raises(ValidationError, match="competence"):
        RoundMetrics.model_validate(row)
    with pytest.raises(ValidationError, match="frozen"):
        RoundMetrics.model_validate(_row()).asr = 0.0  # type: ignore[misc]


def test_absent_stays_absent_and_null_stays_null():
    row = _row()
    assert row["scaled_by"] is None and "asr_ppi" not in row
    back = RoundMetrics.model_validate(row).to_row()
    assert back["scaled_by"] is None and "asr_ppi" not in back and "attack_asr" not in back
    assert list(back) == [k for k in RoundMetrics.model_fields if k in row]  # field order: the column order


def test_the_store_refuses_an_undeclared_key_when_rounds_are_written(tmp_path):
    from superalign.store.run_outputs import rounds_with_gate

    with RunStore(tmp_path / "run.sqlite") as store:
        store.commit_step(0, "eval", payload=_row(round=0, surprise=1))
        with pytest.raises(UserError, match="(?s)round 0.*surprise.*another superalign version"):
            rounds_with_gate(store)


def test_a_smoke_run_writes_rows_that_are_round_metrics(tmp_path):
    """configs/smoke.yaml (tiny model) with dev prompts, dev MC items and an update scaled back: every kind
    of column a run writes (dev_*, promoted, scaled_by, attack_asr_by_style, ...)."""
    cfg = load_config("configs/smoke.yaml", dtype="float32")
    data = cfg.data.model_copy(update={"dev_harmful": 4, "dev_benign": 4, "dev_competence": 10})
    gate = cfg.oversight.model_copy(update={"max_dev_over_refusal": 0.0, "shrink_alphas": (0.5,)})
    rows = run_loop(cfg.model_copy(update={"data": data, "oversight": gate}), tmp_path, log=lambda m: None)
    lines = _lines(tmp_path / "rounds.jsonl")
    assert [r["round"] for r in lines] == [0, 1] and _same(rows, lines)
    for line in lines:
        assert _same(line, RoundMetrics.model_validate(line).to_row())
        assert list(line) == [k for k in RoundMetrics.model_fields if k in line]
    assert {"dev_asr", "dev_competence_drop", "asr_by_subset"} <= set(lines[0]) and "promoted" not in lines[0]
    assert {"promoted", "scaled_by", "attack_asr_by_style"} <= set(lines[1])
    with RunStore(tmp_path / "run.sqlite") as store:  # the committed eval payload is a RoundMetrics row as well
        RoundMetrics.model_validate(store.step_payload(1, "eval"))
        before, after = (store.step_payload(k, "eval_competence")["competence_correct"] for k in (0, 1))
    # the reported competence's paired drop: round 0 minus round 1 on the same items, its interval around it
    assert "competence_drop" not in lines[0] and len(before) == len(after) == cfg.data.competence_items
    assert lines[0]["competence"] == round(sum(before) / len(before), 4)
    drop, (lo, hi) = lines[1]["competence_drop"], lines[1]["competence_drop_ci"]
    assert drop == round((sum(before) - sum(after)) / len(before), 4) and lo <= drop <= hi
    # scripts/results.py dev: every round's dev answers with the prompt, whose critic verdicts give that round's dev_asr
    import importlib.util

    spec = importlib.util.spec_from_file_location("results_script", Path(__file__).parents[1] / "scripts/results.py")
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    assert results.dev_answers(tmp_path, tmp_path) == 2 * 8
    dev = _lines(tmp_path / "dev_answers.jsonl")
    for line in lines:
        harmful = [d for d in dev if d["round"] == line["round"] and d["harmful"]]
        assert len(harmful) == 4 and all(d["prompt"] and d["critic_unsafe"] is not None for d in harmful)
        assert line["dev_asr"] == round(sum(d["critic_unsafe"] for d in harmful) / 4, 4)
