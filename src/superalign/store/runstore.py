"""The run store: every record of a run, and which steps are done, in one SQLite file.

The unit of crash safety is the *step*: `commit_step` writes a step's records and its marker in one
transaction, so after a crash a step is either fully there (marker + all records) or not at all, and
a resumed run simply redoes the steps whose marker is missing (docs/design.md §1, §2).

Each record table holds the record's key columns, the `round` and `step` it was committed
under, and a JSON `data` column with `record.to_dict()`; readers rebuild records with `from_dict`
in insertion order. The store is passed in, never imported as a global.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from superalign.errors import UserError
from superalign.faults import tick
from superalign.records import HumanLabel, Pair, Query, Response, Verdict
from superalign.store.integrity import check_store_file

T = TypeVar("T", Query, Response, Verdict, Pair, HumanLabel)  # the records classes a table holds

SCHEMA_VERSION = 1

# A round's metrics are the payload of its "metrics" step, else of its "eval" step (what loop.py writes).
METRICS_STEPS: tuple[str, ...] = ("metrics", "eval")

# Keys are unique within a step (a duplicate there is a bug upstream), not across the run: the same
# benign query is re-asked in later rounds, and history may be re-judged under a new constitution.
# Each UNIQUE (round, step, ...) index also serves the readers' round/step filters. `seq` is an explicit
# INTEGER PRIMARY KEY so insertion order survives VACUUM (implicit rowids may be renumbered).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS queries (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL,
    round INTEGER NOT NULL, step TEXT NOT NULL, data TEXT NOT NULL, UNIQUE (round, step, id));
CREATE TABLE IF NOT EXISTS responses (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL,
    round INTEGER NOT NULL, step TEXT NOT NULL, data TEXT NOT NULL, UNIQUE (round, step, id));
CREATE TABLE IF NOT EXISTS verdicts (
    seq INTEGER PRIMARY KEY, response_id TEXT NOT NULL, critic TEXT NOT NULL,
    round INTEGER NOT NULL, step TEXT NOT NULL, data TEXT NOT NULL, UNIQUE (round, step, response_id, critic));
CREATE TABLE IF NOT EXISTS human_labels (
    seq INTEGER PRIMARY KEY, response_id TEXT NOT NULL, reviewer TEXT NOT NULL,
    round INTEGER NOT NULL, step TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pairs (
    seq INTEGER PRIMARY KEY, idx INTEGER NOT NULL,
    round INTEGER NOT NULL, step TEXT NOT NULL, data TEXT NOT NULL, UNIQUE (round, step, idx));
CREATE TABLE IF NOT EXISTS steps (
    round INTEGER NOT NULL, name TEXT NOT NULL, payload TEXT, finished_at TEXT NOT NULL,
    PRIMARY KEY (round, name));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS queries_id ON queries (id);
CREATE INDEX IF NOT EXISTS responses_id ON responses (id);
CREATE INDEX IF NOT EXISTS verdicts_response_id ON verdicts (response_id);
CREATE INDEX IF NOT EXISTS human_labels_round_step ON human_labels (round, step);
"""

TABLES: tuple[str, ...] = ("queries", "responses", "verdicts", "human_labels", "pairs", "steps", "meta")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _is_access_error(exc: sqlite3.OperationalError) -> bool:
    return any(w in str(exc) for w in ("unable to open", "readonly", "read-only"))


def _open_error(path: Path, exc: sqlite3.OperationalError) -> UserError:
    """A store SQLite cannot open for writing (e.g. a read-only run directory): say so, not "not a run store"."""
    return UserError(
        f"{path}: cannot open the run store for writing ({exc}); SQLite needs write access to "
        "the file and its directory: make them writable, or copy the run somewhere writable"
    )


class RunStore:
    """A run's SQLite store (WAL journal, synchronous=FULL: a committed step survives power loss).

    Open with `RunStore(path)` or `RunStore.open(path)`; use as a context manager or call `close()`.
    The file and its parent directory are created if missing; opening an existing file keeps its data.
    A file that is not SQLite, or is empty, truncated or damaged, raises UserError before anything is
    written (store/integrity.py).
    """

    def __init__(self, path: str | Path, *, timeout_s: float = 30.0) -> None:
        """Open (or create) the store at `path`. `timeout_s`: how long to wait for another writer's lock."""
        self.path = Path(path)
        check_store_file(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a step is exactly one transaction.
        try:
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                str(self.path), timeout=timeout_s, isolation_level=None
            )
        except sqlite3.OperationalError as exc:
            raise _open_error(self.path, exc) from None
        conn = self._conn
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            self.close()
            if isinstance(exc, sqlite3.OperationalError) and _is_access_error(exc):
                raise _open_error(self.path, exc) from None
            if isinstance(exc, sqlite3.OperationalError) and "disk I/O" in str(exc):
                raise UserError(
                    f"{self.path}: SQLite could not read or write it ({exc}); that is the disk or another process, "
                    "not a damaged store. Check free space (df), then run the command again"
                ) from None
            raise UserError(
                f"{self.path}: not a run store ({exc}); give the run.sqlite of a `superalign run`"
            ) from None
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(stmt)
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (_dumps(SCHEMA_VERSION),)
            )
            conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            conn.close()
            self._conn = None
            raise

    @classmethod
    def open(cls, path: str | Path, **kwargs: Any) -> RunStore:
        """Same as `RunStore(path)`."""
        return cls(path, **kwargs)

    def close(self) -> None:
        """Close the connection (idempotent). Any later call raises."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r}{'' if self._conn else ', closed'})"

    @property
    def conn(self) -> sqlite3.Connection:
        """The open connection (raises if closed). For read-only ad-hoc queries; write via the methods."""
        if self._conn is None:
            raise sqlite3.ProgrammingError(f"{self!r}: the store is closed")
        return self._conn

    def _rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    # -- steps: the unit of crash safety ---------------------------------------------------------

    def commit_step(
        self,
        round: int,
        name: str,
        *,
        queries: Iterable[Query] = (),
        responses: Iterable[Response] = (),
        verdicts: Iterable[Verdict] = (),
        pairs: Iterable[Pair] = (),
        human_labels: Iterable[HumanLabel] = (),
        payload: dict[str, Any] | None = None,
    ) -> None:
        """Write all given records and the step marker `(round, name)` in ONE transaction.

        Either everything is written or nothing is (an exception or a crash midway leaves no record of
        the step and no marker). Raises ValueError if the step is already committed (never duplicates),
        sqlite3.IntegrityError if two records of the step share a key (query/response id, verdict
        (response_id, critic)): a duplicate id is a bug upstream,
        TypeError if a record or the payload is not JSON-serialisable. `payload` is any JSON object,
        read back by `step_payload`.
        """
        conn = self.conn
        # Serialise first: a bad record fails before we take the write lock.
        q_rows = [(q.id, round, name, _dumps(q.to_dict())) for q in queries]
        r_rows = [(r.id, round, name, _dumps(r.to_dict())) for r in responses]
        v_rows = [(v.response_id, v.critic, round, name, _dumps(v.to_dict())) for v in verdicts]
        p_rows = [(round, name, i, _dumps(p.to_dict())) for i, p in enumerate(pairs)]
        h_rows = [(h.response_id, h.reviewer, round, name, _dumps(h.to_dict())) for h in human_labels]
        payload_json = None if payload is None else _dumps(payload)

        conn.execute("BEGIN IMMEDIATE")  # take the write lock now, so the done-check below stays true
        try:
            if self._step_exists(round, name):
                raise ValueError(
                    f"step (round={round}, name={name!r}) is already committed in {self.path}; "
                    "check step_done() before redoing a step"
                )
            self._insert(
                "queries", "INSERT INTO queries (id, round, step, data) VALUES (?, ?, ?, ?)", q_rows, round, name
            )
            self._insert(
                "responses", "INSERT INTO responses (id, round, step, data) VALUES (?, ?, ?, ?)", r_rows, round, name
            )
            self._insert(
                "verdicts",
                "INSERT INTO verdicts (response_id, critic, round, step, data) VALUES (?, ?, ?, ?, ?)",
                v_rows,
                round,
                name,
            )
            self._insert("pairs", "INSERT INTO pairs (round, step, idx, data) VALUES (?, ?, ?, ?)", p_rows, round, name)
            self._insert(
                "human_labels",
                "INSERT INTO human_labels (response_id, reviewer, round, step, data) VALUES (?, ?, ?, ?, ?)",
                h_rows,
                round,
                name,
            )
            self._mark_step(round, name, payload_json)
            tick("store-commit")  # a kill here must leave no trace of the step
            conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _insert(self, table: str, sql: str, rows: Sequence[tuple[Any, ...]], round: int, name: str) -> None:
        if not rows:
            return
        try:
            self.conn.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise sqlite3.IntegrityError(
                f"step (round={round}, name={name!r}): duplicate key in {table} ({exc}); "
                "record ids must be unique within a step"
            ) from exc

    def _mark_step(self, round: int, name: str, payload_json: str | None) -> None:
        finished_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.conn.execute(
            "INSERT INTO steps (round, name, payload, finished_at) VALUES (?, ?, ?, ?)",
            (round, name, payload_json, finished_at),
        )

    def _step_exists(self, round: int, name: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM steps WHERE round = ? AND name = ?", (round, name)).fetchone()
        return row is not None

    def step_done(self, round: int, name: str) -> bool:
        """True iff `commit_step(round, name, ...)` has committed."""
        return self._step_exists(round, name)

    def step_payload(self, round: int, name: str) -> dict[str, Any] | None:
        """The payload committed with the step; None if the step is not done or had no payload."""
        row = self.conn.execute("SELECT payload FROM steps WHERE round = ? AND name = ?", (round, name)).fetchone()
        return None if row is None or row[0] is None else json.loads(row[0])

    def steps(self) -> list[tuple[int, str]]:
        """All committed steps as (round, name), in commit order."""
        return [(r, n) for r, n in self.conn.execute("SELECT round, name FROM steps ORDER BY rowid")]

    def rounds_metrics(self) -> list[dict[str, Any]]:
        """Per-round metrics ordered by round: the payload of each round's "metrics" step, or of its
        "eval" step when it has no "metrics" step. Each dict has a "round" key."""
        best: dict[int, tuple[int, dict[str, Any]]] = {}
        marks = ",".join("?" * len(METRICS_STEPS))
        sql = f"SELECT round, name, payload FROM steps WHERE name IN ({marks}) AND payload IS NOT NULL"
        for rnd, name, payload in self.conn.execute(sql, METRICS_STEPS):
            rank = METRICS_STEPS.index(name)
            if rnd not in best or rank < best[rnd][0]:
                best[rnd] = (rank, json.loads(payload))
        out = []
        for rnd in sorted(best):
            metrics = dict(best[rnd][1])
            metrics.setdefault("round", rnd)
            out.append(metrics)
        return out

    # -- records ---------------------------------------------------------------------------------

    def _read(self, table: str, cls: type[T], round: int | None, step: str | None) -> list[T]:
        sql = f"SELECT data FROM {table} WHERE (? IS NULL OR round = ?) AND (? IS NULL OR step = ?) ORDER BY seq"
        rows = self.conn.execute(sql, (round, round, step, step))
        return [cls.from_dict(json.loads(d)) for (d,) in rows]

    def queries(self, round: int | None = None, step: str | None = None) -> list[Query]:
        """Stored queries (optionally those committed under `round` and/or `step`), in insertion order."""
        return self._read("queries", Query, round, step)

    def responses(self, round: int | None = None, step: str | None = None) -> list[Response]:
        """Stored responses, filtered and ordered like `queries`."""
        return self._read("responses", Response, round, step)

    def verdicts(self, round: int | None = None, step: str | None = None) -> list[Verdict]:
        """Stored verdicts, filtered and ordered like `queries`."""
        return self._read("verdicts", Verdict, round, step)

    def pairs(self, round: int | None = None, step: str | None = None) -> list[Pair]:
        """Stored preference pairs, filtered and ordered like `queries` (within a step: as given)."""
        return self._read("pairs", Pair, round, step)

    def human_labels(self, round: int | None = None, step: str | None = None) -> list[HumanLabel]:
        """Stored human labels, filtered and ordered like `queries`."""
        return self._read("human_labels", HumanLabel, round, step)

    def add_human_labels(self, labels: Iterable[tuple[int, str, HumanLabel]]) -> int:
        """Append human labels, each given as (round, step, label), in ONE transaction (all or none);
        returns how many were written.

        Unlike `commit_step` this writes no step marker: labels arrive after the step whose responses they
        judge was committed, and a response may be labelled again (readers take the latest).
        """
        rows = [(h.response_id, h.reviewer, rnd, step, _dumps(h.to_dict())) for rnd, step, h in labels]
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO human_labels (response_id, reviewer, round, step, data) VALUES (?, ?, ?, ?, ?)", rows
            )
            conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        return len(rows)

    def count(self, table: str) -> int:
        """Number of rows in `table` (one of TABLES); ValueError for any other name."""
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    # -- meta ------------------------------------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable `value` under `key` (replacing any previous value), committed now."""
        text = _dumps(value)
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, text),
            )
            conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def get_meta(self, key: str, default: Any = None) -> Any:
        """The value stored under `key`, or `default` if none."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])
