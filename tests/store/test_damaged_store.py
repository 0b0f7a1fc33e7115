"""A damaged run.sqlite stops every command that opens it (issue 26, defect 2): exit 2, one message
naming the file, and every file of the run directory byte-identical (no new ones either)."""

import hashlib
import random
import shutil
import sqlite3
import subprocess
import sys

import pytest

from superalign.errors import UserError
from superalign.store.integrity import check_store_file
from superalign.store.runstore import RunStore

TINY = (
    "learner: scripted\nrounds: 1\nmax_new_tokens: 16\n"
    "data: {heldout_harmful: 10, heldout_benign: 10, competence_items: 10}\n"
    "attacker: {queries_per_round: 12, benign_per_round: 6}\n"
)


def sa(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "superalign.cli", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """(config, run dir) of a finished 1-round scripted run."""
    base = tmp_path_factory.mktemp("damaged")
    cfg = base / "c.yaml"
    cfg.write_text(TINY)
    r = sa("run", "--config", str(cfg), "--out", str(base / "run"))
    assert r.returncode == 0, r.stderr[-2000:]
    return cfg, base / "run"


def _zero(data):
    return b""


def _truncated(data):
    return data[: len(data) // 2 + 123]


def _bad_header(data):
    return b"not sqlite at all" + data[17:]


def _damaged_page(data):
    page = int.from_bytes(data[16:18], "big")
    rng = random.Random(0)
    junk = bytes(rng.randrange(256) for _ in range(page))
    return data[: 3 * page] + junk + data[4 * page :]  # the 4th page: a table or index b-tree page


DAMAGE = {
    "0 bytes": (_zero, "empty (0 bytes)"),
    "truncated": (_truncated, "truncated"),
    "bad header": (_bad_header, "SQLite header"),
    "damaged page": (_damaged_page, "damaged"),
}


def _snapshot(d):
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(d.rglob("*"))
    }


def _commands(cfg, run, tmp):
    rows = tmp / "rows.jsonl"
    rows.write_text('{"prompt": "how do I bake bread?", "response": "Knead, rise, bake."}\n')
    return {
        "report": ["report", str(run)],
        "run --resume": ["run", "--config", str(cfg), "--out", str(run), "--resume"],
        "run --resume --rounds 2": ["run", "--config", str(cfg), "--out", str(run), "--resume", "--rounds", "2"],
        "review add": ["review", "add", "--run", str(run), "--in", str(rows), "--critic", "none"],
        "review export": ["review", "export", "--run", str(run), "--out", str(tmp / "labels.jsonl")],
    }


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_store_stops_every_command_and_changes_nothing(finished_run, tmp_path, damage):
    cfg, original = finished_run
    run = tmp_path / "run"
    shutil.copytree(original, run)
    db = run / "run.sqlite"
    corrupt, needle = DAMAGE[damage]
    db.write_bytes(corrupt(db.read_bytes()))
    before = _snapshot(run)
    for name, args in _commands(cfg, run, tmp_path).items():
        r = sa(*args)
        assert r.returncode == 2, (damage, name, r.returncode, r.stderr[-1500:])
        assert "Traceback" not in r.stderr, (damage, name, r.stderr[-1500:])
        errors = [x for x in r.stderr.splitlines() if x.startswith("error:")]
        assert len(errors) == 1 and str(db) in errors[0] and needle in errors[0], (damage, name, r.stderr)
        assert _snapshot(run) == before, (damage, name)  # nothing overwritten, nothing new
    assert not (tmp_path / "labels.jsonl").exists()


def test_a_healthy_store_passes_and_a_missing_one_is_created(finished_run, tmp_path):
    _, original = finished_run
    check_store_file(original / "run.sqlite")
    check_store_file(tmp_path / "absent.sqlite")
    with RunStore(tmp_path / "new" / "run.sqlite") as store:
        assert store.get_meta("schema_version") == 1


def test_damage_inside_a_live_store_file_is_found_without_writing(tmp_path):
    """Overwriting a b-tree page of an index (the header and size stay valid) is caught by quick_check."""
    db = tmp_path / "run.sqlite"
    with RunStore(db) as store:
        store.set_meta("config", {"rounds": 1, "padding": "x" * 20000})
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    with sqlite3.connect(db) as conn:
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'queries_id'").fetchone()[0]
    data[(root - 1) * page : root * page] = b"\x0d" + b"\xff" * (page - 1)  # an impossible leaf page
    db.write_bytes(bytes(data))
    with pytest.raises(UserError, match="damaged"):
        RunStore(db)
    assert db.read_bytes() == bytes(data)


class _FlakyConn:
    """A connection whose quick_check fails with SQLite's transient "disk I/O error" the first `fails` times."""

    calls = 0

    def __init__(self, real, fails):
        self.real, self.fails = real, fails

    def execute(self, sql):
        type(self).calls += 1
        if type(self).calls <= self.fails:
            raise sqlite3.OperationalError("disk I/O error")
        return self.real.execute(sql)

    def close(self):
        self.real.close()


@pytest.mark.parametrize("fails", [1, 3, 6])
def test_a_transient_disk_error_is_retried_and_never_called_damage(tmp_path, monkeypatch, fails):
    import superalign.store.integrity as integrity

    path = tmp_path / "run.sqlite"
    with RunStore(path) as store:
        store.set_meta("k", "v")
    connect = sqlite3.connect
    _FlakyConn.calls = 0
    monkeypatch.setattr(integrity.sqlite3, "connect", lambda *a, **k: _FlakyConn(connect(*a, **k), fails))
    waits = []
    monkeypatch.setattr("time.sleep", waits.append)
    before = path.read_bytes()
    if fails < integrity._RETRIES:
        check_store_file(path)  # a later read succeeds: the store is whole
        assert waits == [2.0**i for i in range(fails)]  # the wait doubles between tries
    else:
        with pytest.raises(UserError) as e:
            check_store_file(path)
        assert not isinstance(e.value, integrity.DamagedStore)
        assert "not judged damaged" in str(e.value) and "disk I/O error" in str(e.value)
    assert path.read_bytes() == before
