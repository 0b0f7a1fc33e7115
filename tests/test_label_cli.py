"""`superalign label export/import` and ppi.ppi_round on a hand-built run store (no model, < 5 s)."""

import json
from dataclasses import dataclass

import numpy as np
import pytest
from typer.testing import CliRunner

from superalign.cli import app
from superalign.errors import UserError
from superalign.ppi import ppi_round
from superalign.records import HumanLabel, Query, Response, Verdict, stable_id
from superalign.stats import ppi_mean
from superalign.store.report import format_table
from superalign.store.runstore import RunStore

N_HARMFUL, N_BENIGN, ROUNDS = 60, 10, (0, 1)


def _truth(k, i):
    """The true human label of round k's answer to harmful query i (round 1 is safer)."""
    return (i * 7 + k) % (3 if k == 0 else 5) == 0


def _eval_payload(k):
    """Round k's eval payload: a complete `metrics.RoundMetrics` row (what the loop commits; made-up numbers)."""
    return {
        "round": k,
        "asr": 0.5,
        "asr_ci": [0.4, 0.6],
        "asr_keyword_bound": 0.5,
        "asr_abstained": 0.0,
        "over_refusal": 0.0,
        "over_refusal_ci": [0.0, 0.3],
        "degenerate": 0.0,
        "critic": "hand-built",
        "competence": 0.5,
        "competence_ci": [0.4, 0.6],
        "competence_by_task": {"sciq": 0.5},
        "human_labels": 0,
        "pairs": 0,
        "trained_from": None if k == 0 else k - 1,
        "train_loss_first": None,
        "train_loss_last": None,
        "reward_accuracy": None,
        "model": f"m@round-{k}",
        "n_harmful": N_HARMFUL,
        "n_benign": N_BENIGN,
        "n_competence": 10,
        "minutes": 0.0,
    }


def _make_run(tmp_path, independent=True):
    run = tmp_path / "run"
    qs = [Query(f"h{i}", f"harmful request {i}", "harm", True) for i in range(N_HARMFUL)] + [
        Query(f"b{i}", f"benign request {i}", "benign", False) for i in range(N_BENIGN)
    ]
    rng = np.random.default_rng(0)
    with RunStore(run / "run.sqlite") as store:
        store.set_meta("config", {"name": "hand-built"})
        for k in ROUNDS:
            rs = [Response(stable_id("eval", q.id, k), q.id, f"answer {k} to {q.text}", "m", k) for q in qs]
            store.commit_step(
                k,
                "eval",
                queries=qs if k == 0 else (),
                responses=rs,
                payload=_eval_payload(k),
            )
            if not independent:
                continue
            vs = []
            for i, r in enumerate(rs):
                y = r.query_id.startswith("h") and _truth(k, int(r.query_id[1:]))
                score = float(np.clip(0.2 + 0.6 * y + rng.normal(0, 0.15), 0, 1))  # biased upwards
                unsafe = None if i % 11 == 0 else score > 0.5  # some abstentions: scored all the same
                vs.append(Verdict(r.id, "independent", unsafe, False, score, 0.9))
            store.commit_step(k, "eval_independent", verdicts=vs)
    return run


@dataclass
class _Result:
    exit_code: int
    output: str


def _cli(*args):
    """`superalign label ...` in-process; a UserError exits 2 with its message, as cli.main does."""
    r = CliRunner().invoke(app, ["label", *map(str, args)])
    if isinstance(r.exception, UserError):
        return _Result(2, r.output + f"error: {r.exception}")
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return _Result(r.exit_code, r.output)


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _fill(path, skip=()):
    rows = _rows(path)
    for j, row in enumerate(rows):
        if j not in skip:
            row["unsafe"] = _truth(row["round"], int(row["prompt"].split()[-1]))
            row["refusal"] = not row["unsafe"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def _direct(store, k):
    """ppi_mean computed by hand from the store: pool = all harmful answers' independent scores."""
    score = {v.response_id: v.score for v in store.verdicts(round=k, step="eval_independent")}
    harm = [r.id for r in store.responses(round=k, step="eval") if r.query_id.startswith("h")]
    labels = {h.response_id: h.unsafe for h in store.human_labels(round=k, step="eval")}
    lab = [rid for rid in harm if rid in labels]
    return ppi_mean([score[r] for r in harm], [score[r] for r in lab], [float(labels[r]) for r in lab])


def test_export_label_import_gives_the_ppi_of_the_labels(tmp_path):
    run = _make_run(tmp_path)
    r = _cli("export", run, "--per-round", 20, "--seed", 3)
    assert r.exit_code == 0, r.output
    out = run / "to_label.jsonl"
    assert "wrote 40 rows" in r.output and str(out) in r.output
    rows = _rows(out)
    assert [sum(x["round"] == k for x in rows) for k in ROUNDS] == [20, 20]
    assert all(x["prompt"].startswith("harmful") for x in rows)  # harmful answers only
    assert all(x["unsafe"] is None and x["refusal"] is None and x["note"] == "" for x in rows)
    assert set(rows[0]) == {"response_id", "round", "prompt", "response", "unsafe", "refusal", "note"}
    assert len({x["response_id"] for x in rows}) == 40

    again = tmp_path / "again.jsonl"  # seeded: the same draw again; another seed, another draw
    assert _cli("export", run, "--per-round", 20, "--seed", 3, "--out", again).exit_code == 0
    assert _rows(again) == rows
    assert _cli("export", run, "--per-round", 20, "--seed", 4, "--out", again, "--force").exit_code == 0
    assert _rows(again) != rows
    assert _cli("export", run, "--per-round", 20).exit_code == 2  # never overwrites a file being filled

    _fill(out, skip={0, 25})  # two rows left unlabelled: skipped, not stored
    r = _cli("import", run, out, "--reviewer", "ana")
    assert r.exit_code == 0, r.output
    assert "stored 38 label(s)" in r.output and "skipped 2 row(s)" in r.output
    assert "asr_ppi" in r.output and "labels_for_+-0.05" in r.output
    assert (run / "rounds.jsonl").is_file() and (run / "report.html").is_file()

    with RunStore(run / "run.sqlite") as store:
        labels = store.human_labels(step="eval")
        assert len(labels) == 38 and {h.reviewer for h in labels} == {"human:ana"}
        for k in ROUNDS:
            row, est = ppi_round(store, k), _direct(store, k)
            assert row["human_labels_eval"] == est.n_labelled == 19
            assert row["asr_ppi"] == pytest.approx(est.estimate)
            assert row["asr_ppi_ci"] == pytest.approx(list(est.ci))
            assert row["asr_labelled"] == pytest.approx(est.classical)
            assert row["asr_ppi_lam"] == pytest.approx(est.lam)
            truth = np.mean([_truth(k, i) for i in range(N_HARMFUL)])
            assert row["asr_ppi_ci"][0] <= truth <= row["asr_ppi_ci"][1]
            assert f"{row['asr_ppi']:.3f}" in r.output
            table = format_table([{"round": k, "asr": 0.5, **row}])  # the loop merges the row: the report shows it
            assert "asr_ppi" in table.splitlines()[0] and f"{row['asr_ppi']:.3f}" in table

    r = _cli("export", run, "--per-round", 100, "--out", tmp_path / "rest.jsonl")  # tops up: the unlabelled rest
    assert r.exit_code == 0 and "wrote 82 rows" in r.output
    assert not {x["response_id"] for x in _rows(tmp_path / "rest.jsonl")} & {h.response_id for h in labels}


def _exported(tmp_path):
    run = _make_run(tmp_path)
    assert _cli("export", run, "--per-round", 3).exit_code == 0
    path = run / "to_label.jsonl"
    rows = _fill(path)
    return run, path, rows


def _write(path, rows, bad_line=None, bad=None):
    lines = [json.dumps(r) for r in rows]
    if bad_line is not None:
        lines[bad_line - 1] = bad
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "case,line,message",
    [
        ("bad-json", 3, "not valid JSON"),
        ("unknown-id", 2, "is not a held-out answer of this run"),
        ("string-unsafe", 4, "'unsafe' must be true/false or null"),
        ("number-unsafe", 1, "'unsafe' must be true/false or null"),
        ("missing-unsafe", 5, "missing key(s) 'unsafe'"),
        ("wrong-round", 6, "keep the round the export wrote"),
        ("repeat", 6, "repeats line 1"),
    ],
)
def test_a_bad_file_names_file_line_and_stores_nothing(tmp_path, case, line, message):
    run, path, rows = _exported(tmp_path)
    row = dict(rows[line - 1])
    if case == "bad-json":
        bad = '{"response_id": "x", "unsafe": tru}'
    elif case == "unknown-id":
        bad = json.dumps({**row, "response_id": "not-an-answer"})
    elif case == "string-unsafe":
        bad = json.dumps({**row, "unsafe": "yes"})
    elif case == "number-unsafe":
        bad = json.dumps({**row, "unsafe": 1})
    elif case == "missing-unsafe":
        bad = json.dumps({k: v for k, v in row.items() if k != "unsafe"})
    elif case == "wrong-round":
        bad = json.dumps({**row, "round": 1 - row["round"]})
    else:
        bad = json.dumps(rows[0])
    _write(path, rows, line, bad)
    r = _cli("import", run, path)
    assert r.exit_code == 2 and f"{path}:{line}:" in r.output and message in r.output, r.output
    with RunStore(run / "run.sqlite") as store:
        assert store.count("human_labels") == 0
    assert not (run / "rounds.jsonl").exists()


def test_import_needs_a_run_and_export_needs_eval_answers(tmp_path):
    r = _cli("import", tmp_path, tmp_path / "x.jsonl")
    assert r.exit_code == 2 and "no run.sqlite" in r.output
    with RunStore(tmp_path / "empty" / "run.sqlite"):
        pass
    r = _cli("export", tmp_path / "empty", "--per-round", 5)
    assert r.exit_code == 2 and "no round has held-out answers" in r.output
    run, path, _rows = _exported(tmp_path / "r")
    path.write_text("")
    r = _cli("import", run, path)
    assert r.exit_code == 2 and "no rows" in r.output


def test_ppi_round_is_empty_without_labels_or_independent_verdicts(tmp_path):
    run = _make_run(tmp_path / "a", independent=False)
    with RunStore(run / "run.sqlite") as store:
        rid = store.responses(round=0, step="eval")[0].id
        store.add_human_labels([(0, "eval", HumanLabel(rid, "human:x", True, False))])
        assert ppi_round(store, 0) == {}  # an old run: no independent judge
    run = _make_run(tmp_path / "b")
    with RunStore(run / "run.sqlite") as store:
        assert ppi_round(store, 0) == {} and ppi_round(store, 1) == {}  # no labels
        benign = [r for r in store.responses(round=0, step="eval") if r.query_id.startswith("b")][0].id
        store.add_human_labels([(0, "eval", HumanLabel(benign, "human:x", True, False))])
        assert ppi_round(store, 0) == {}  # a benign answer's label is not about ASR


def test_latest_label_wins_and_null_labels_are_skipped(tmp_path):
    run = _make_run(tmp_path)
    with RunStore(run / "run.sqlite") as store:
        harm = [r.id for r in store.responses(round=0, step="eval") if r.query_id.startswith("h")]
        a, b, c = harm[:3]
        store.add_human_labels(
            [
                (0, "eval", HumanLabel(a, "h", True, False)),
                (0, "eval", HumanLabel(b, "h", True, False)),
                (0, "eval", HumanLabel(c, "h", None, False)),
            ]
        )
        store.add_human_labels(
            [
                (0, "eval", HumanLabel(a, "h", False, True)),  # a corrected
                (0, "eval", HumanLabel(b, "h", None, False)),
            ]
        )  # unsure: b stays unsafe
        row = ppi_round(store, 0)
        assert row["human_labels_eval"] == 2 and row["asr_labelled"] == 0.5
        assert ppi_round(store, 1) == {}


def test_one_label_gives_an_estimate_but_no_interval(tmp_path):
    run = _make_run(tmp_path)
    with RunStore(run / "run.sqlite") as store:
        rid = [r.id for r in store.responses(round=1, step="eval") if r.query_id.startswith("h")][0]
        store.add_human_labels([(1, "eval", HumanLabel(rid, "h", True, False))])
        row = ppi_round(store, 1)
        assert row["asr_ppi"] == 1.0 and row["asr_ppi_ci"] is None and "at least 2" in row["asr_ppi_note"]
