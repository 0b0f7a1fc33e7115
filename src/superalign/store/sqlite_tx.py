"""Short-lived SQLite connections and write transactions for the tables that live beside the run store
in `run.sqlite` (review queue, promotion gate, value clarifications).

Each call opens its own connection, so one object using these is safe to share between the threads of
a web server. `write_tx` is BEGIN IMMEDIATE ... COMMIT (rolled back on any exception) with
synchronous=FULL: when it returns, the write is durable.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path


@contextmanager
def connect(db: str | Path, timeout_s: float = 30.0) -> Iterator[sqlite3.Connection]:
    """An autocommit connection (we issue BEGIN ourselves), WAL journal, synchronous=FULL; closed after."""
    conn = sqlite3.connect(str(db), timeout=timeout_s, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        yield conn
    finally:
        conn.close()


@contextmanager
def write_tx(
    db: str | Path, timeout_s: float = 30.0, lock: threading.Lock | None = None
) -> Iterator[sqlite3.Connection]:
    """One write transaction. `lock`: writers of this process wait on it instead of in SQLite's busy
    handler, which backs off in sleeps of up to 100 ms (measured ~4x slower with 50 concurrent writers)."""
    with lock or nullcontext(), connect(db, timeout_s) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
