"""The run store: a step is all-or-nothing, records survive reopen, nothing is committed twice."""

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from superalign.errors import UserError
from superalign.records import HumanLabel, Pair, Query, Response, Verdict, user_chat
from superalign.store.runstore import RunStore


def _records(k: int = 1):
    queries = [Query(f"q{k}-{i}", f"how do I pick lock {i}?", "crime", True, "harmbench", None, k) for i in range(3)]
    responses = [
        Response(f"r{k}-{i}", q.id, f"answer <b>{i}</b> ✓", f"embedded@round-{k}", k) for i, q in enumerate(queries)
    ]
    verdicts = [
        Verdict(r.id, "rules", i % 2 == 0, i % 2 == 1, 0.25 * i, 0.9, {"empathy": 0.5}, "because")
        for i, r in enumerate(responses)
    ]
    verdicts.append(Verdict(responses[0].id, "classifier", None, False, 0.5, 0.1))  # abstains
    pairs = [
        Pair(user_chat(q.text), "I can't help with that.", r.text, 1.0, "critic", "refuse-harmful", q.id)
        for q, r in zip(queries, responses)
    ]
    labels = [HumanLabel(responses[0].id, "alice", True, False, "clearly unsafe", "2024-01-01T00:00:00Z")]
    return queries, responses, verdicts, pairs, labels


def _commit_all(store: RunStore, k: int = 1) -> tuple:
    q, r, v, p, h = _records(k)
    store.commit_step(k, "attack", queries=q)
    store.commit_step(k, "respond", responses=r)
    store.commit_step(k, "judge", verdicts=v, human_labels=h)
    store.commit_step(k, "pairs", pairs=p, payload={"n": len(p)})
    return q, r, v, p, h


def test_records_survive_close_and_reopen(tmp_path):
    db = tmp_path / "run" / "run.sqlite"
    with RunStore(db) as store:
        q, r, v, p, h = _commit_all(store)
        store.set_meta("config", {"rounds": 2, "learner": "embedded"})
    with RunStore.open(db) as store:
        assert store.queries() == q
        assert store.queries(round=1, step="attack") == q
        assert store.queries(round=2) == [] and store.queries(step="respond") == []
        assert store.responses(round=1) == r
        assert store.verdicts(step="judge") == v
        assert store.pairs(round=1, step="pairs") == p
        assert store.human_labels() == h
        assert store.steps() == [(1, "attack"), (1, "respond"), (1, "judge"), (1, "pairs")]
        assert store.step_done(1, "pairs") and not store.step_done(2, "attack")
        assert store.step_payload(1, "pairs") == {"n": 3}
        assert store.step_payload(1, "attack") is None and store.step_payload(9, "x") is None
        assert store.get_meta("config") == {"rounds": 2, "learner": "embedded"}
        assert store.get_meta("missing") is None and store.get_meta("missing", 7) == 7
        assert [store.count(t) for t in ("queries", "responses", "verdicts", "pairs", "human_labels", "steps")] == [
            3,
            3,
            4,
            3,
            1,
            4,
        ]


def test_wal_and_full_sync(tmp_path):
    db = tmp_path / "run.sqlite"
    with RunStore(db) as store:
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    con = sqlite3.connect(db)  # journal_mode=WAL is persistent in the file
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_committing_a_step_twice_raises_and_keeps_the_first(tmp_path):
    with RunStore(tmp_path / "run.sqlite") as store:
        q, *_ = _records()
        store.commit_step(1, "attack", queries=q[:1], payload={"v": 1})
        with pytest.raises(ValueError, match="already committed"):
            store.commit_step(1, "attack", queries=q[1:], payload={"v": 2})
        assert store.queries() == q[:1]
        assert store.step_payload(1, "attack") == {"v": 1}
        store.commit_step(2, "attack", queries=q[1:])  # same name, another round: fine
        assert store.count("queries") == 3


def test_duplicate_id_midway_leaves_nothing_of_the_step(tmp_path):
    with RunStore(tmp_path / "run.sqlite") as store:
        q, r, v, p, _h = _records()
        dup = Response(r[0].id, "other", "dup", "m")
        # queries insert fine, then responses fail on the duplicate id: the whole step must vanish
        with pytest.raises(sqlite3.IntegrityError, match="duplicate key in responses"):
            store.commit_step(1, "respond", queries=q, responses=[*r, dup], verdicts=v, pairs=p)
        assert not store.step_done(1, "respond")
        assert [store.count(t) for t in ("queries", "responses", "verdicts", "pairs", "steps")] == [0] * 5
        store.commit_step(1, "respond", queries=q, responses=r)  # the step can be redone cleanly
        assert store.responses() == r


def test_duplicate_verdict_key_fails(tmp_path):
    with RunStore(tmp_path / "run.sqlite") as store:
        _, _, v, _, _ = _records()
        with pytest.raises(sqlite3.IntegrityError, match="duplicate key in verdicts"):
            store.commit_step(1, "judge", verdicts=[v[0], v[0]])
        assert store.count("verdicts") == 0


def test_same_ids_in_another_step_are_kept_apart(tmp_path):
    """A benign query re-asked in a later round, or history re-judged, keeps the same ids."""
    with RunStore(tmp_path / "run.sqlite") as store:
        q, _r, v, _, _ = _records()
        store.commit_step(1, "attack", queries=q, verdicts=v)
        store.commit_step(2, "attack", queries=q)
        store.commit_step(2, "rejudge", verdicts=v)
        assert store.queries(round=2) == q and store.count("queries") == 6
        assert store.verdicts(step="rejudge") == v and store.count("verdicts") == 2 * len(v)


def test_failure_between_records_and_marker_rolls_back(tmp_path, monkeypatch):
    db = tmp_path / "run.sqlite"
    q, r, v, p, h = _records()

    def crash(*args, **kwargs):
        raise RuntimeError("killed before the marker")

    with RunStore(db) as store:
        monkeypatch.setattr(RunStore, "_mark_step", crash)
        with pytest.raises(RuntimeError):
            store.commit_step(1, "judge", queries=q, responses=r, verdicts=v, pairs=p, human_labels=h)
        monkeypatch.undo()
        assert store.steps() == []
        assert sum(store.count(t) for t in ("queries", "responses", "verdicts", "pairs", "human_labels")) == 0
        store.set_meta("still", "usable")  # the connection is not left inside a transaction
    with RunStore(db) as store:
        assert store.count("queries") == 0 and store.get_meta("still") == "usable"


def test_process_killed_midway_through_a_step(tmp_path):
    """A real crash: the process dies (os._exit) after the records are inserted, before COMMIT."""
    db = tmp_path / "run.sqlite"
    script = textwrap.dedent(f"""
        import os
        from superalign.records import Query
        from superalign.store.runstore import RunStore
        store = RunStore({str(db)!r})
        store.commit_step(0, "eval", queries=[Query("kept", "a")], payload={{"round": 0, "asr": 0.5}})
        RunStore._mark_step = lambda *a, **k: os._exit(17)
        store.commit_step(1, "attack", queries=[Query(f"lost{{i}}", "b") for i in range(100)])
    """)
    src = Path(__file__).resolve().parents[2] / "src"
    proc = subprocess.run([sys.executable, "-c", script], env={"PYTHONPATH": str(src)}, capture_output=True)
    assert proc.returncode == 17, proc.stderr.decode()
    with RunStore(db) as store:
        assert store.steps() == [(0, "eval")]
        assert [x.id for x in store.queries()] == ["kept"]
        assert store.rounds_metrics() == [{"round": 0, "asr": 0.5}]


def test_rounds_metrics_ordered_by_round_and_prefers_metrics_step(tmp_path):
    with RunStore(tmp_path / "run.sqlite") as store:
        store.commit_step(2, "metrics", payload={"asr": 0.2})
        store.commit_step(0, "eval", payload={"round": 0, "asr": 0.9})
        store.commit_step(1, "eval", payload={"round": 1, "asr": 0.5})
        store.commit_step(1, "metrics", payload={"round": 1, "asr": 0.4})
        store.commit_step(1, "train", payload={"train_loss_last": 0.1})
        assert store.rounds_metrics() == [{"round": 0, "asr": 0.9}, {"round": 1, "asr": 0.4}, {"round": 2, "asr": 0.2}]


def test_unknown_table_and_closed_store(tmp_path):
    store = RunStore(tmp_path / "run.sqlite")
    with pytest.raises(ValueError, match="unknown table"):
        store.count("queries; DROP TABLE steps")
    store.close()
    store.close()  # idempotent
    with pytest.raises(sqlite3.ProgrammingError):
        store.queries()


def test_not_a_database_is_a_user_error(tmp_path):
    bad = tmp_path / "run.sqlite"
    bad.write_text("this is not sqlite, it is a text file that is long enough to have a header" * 10)
    with pytest.raises(UserError, match="not a run store"):
        RunStore(bad)


def test_outputs_honour_the_umask_not_mkstemps_0600(tmp_path) -> None:
    import os
    import stat

    from superalign.store.jsonl import atomic_write_dir, atomic_write_text

    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "report.html", "<html></html>")
        atomic_write_dir(tmp_path / "round-1", lambda d: (d / "config.json").write_text("{}"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "round-1").stat().st_mode) == 0o750
