"""The promotion gate: a new learner version becomes current only when a human approves it.

Versions are the run's checkpoints (`round-K`). Every decision is an event in the `promotion_events`
table of the run's SQLite file (committed before the call returns): proposed, approved, rejected,
promoted. The current version is the one last *promoted*; `promote_if_approved` promotes a version
only if its latest decision is an approval. Experiments may auto-approve (`auto=True`), which is
logged as such (actor "auto:<who>"), never silently.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from superalign.store.sqlite_tx import write_tx

_SCHEMA = """
CREATE TABLE IF NOT EXISTS promotion_events (
    seq INTEGER PRIMARY KEY, version TEXT NOT NULL, action TEXT NOT NULL, actor TEXT NOT NULL,
    auto INTEGER NOT NULL DEFAULT 0, note TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL)
"""
BASE_VERSION = "round-0"  # the base model: current until a human promotes something else


@dataclass(frozen=True)
class PromotionEvent:
    seq: int
    version: str
    action: str  # proposed | approved | rejected | promoted
    actor: str
    auto: bool
    note: str
    created_at: str


class PromotionGate:
    """The gate over the run file `db` (run.sqlite). One short connection per call: thread-safe."""

    def __init__(self, db: str | Path, timeout_s: float = 30.0) -> None:
        self.db = Path(db)
        self.timeout_s = timeout_s
        self.db.parent.mkdir(parents=True, exist_ok=True)
        with self._tx() as conn:
            conn.execute(_SCHEMA)

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return write_tx(self.db, self.timeout_s)

    def _log(self, conn: sqlite3.Connection, version: str, action: str, actor: str, auto: bool, note: str) -> None:
        conn.execute("INSERT INTO promotion_events (version, action, actor, auto, note, created_at) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (version, action, actor, int(auto), note,
                                                   datetime.now(timezone.utc).isoformat(timespec="seconds")))

    def events(self, version: str | None = None) -> list[PromotionEvent]:
        with self._tx() as conn:
            rows = conn.execute("SELECT * FROM promotion_events WHERE (? IS NULL OR version = ?) ORDER BY seq",
                                (version, version)).fetchall()
        return [PromotionEvent(s, v, a, who, bool(au), n, c) for s, v, a, who, au, n, c in rows]

    def propose(self, version: str, actor: str = "loop", note: str = "") -> None:
        """A new candidate version (e.g. after a training round); it is NOT current yet."""
        with self._tx() as conn:
            self._log(conn, version, "proposed", actor, False, note)

    def decide(self, version: str, approve: bool, actor: str, note: str = "", auto: bool = False) -> None:
        """A human's (or, with `auto`, an experiment's logged) approval or rejection of `version`."""
        if not actor.strip():
            raise ValueError("a decision needs the name of who made it")
        with self._tx() as conn:
            self._log(conn, version, "approved" if approve else "rejected",
                      f"auto:{actor}" if auto else actor, auto, note)

    def status(self, version: str) -> str:
        """The version's latest decision: "approved", "rejected", "proposed", "promoted" or "unknown"."""
        evs = self.events(version)
        return evs[-1].action if evs else "unknown"

    def current(self) -> str:
        """The last promoted version (BASE_VERSION before any promotion)."""
        promoted = [e for e in self.events() if e.action == "promoted"]
        return promoted[-1].version if promoted else BASE_VERSION


def promote_if_approved(gate: PromotionGate, version: str, actor: str = "gate") -> bool:
    """Make `version` current iff its latest decision is an approval; returns whether it is now current.

    The check and the promotion happen in one transaction, so a concurrent rejection cannot slip between."""
    with gate._tx() as conn:
        row = conn.execute("SELECT action FROM promotion_events WHERE version = ? AND action != 'promoted' "
                           "ORDER BY seq DESC LIMIT 1", (version,)).fetchone()
        if row is None or row[0] != "approved":
            return False
        gate._log(conn, version, "promoted", actor, False, "")
    return True


def candidate_versions(run_dir: str | Path) -> list[str]:
    """The run's checkpoint versions (`round-K` directories), in round order."""
    ck = Path(run_dir) / "checkpoints"
    if not ck.is_dir():
        return []
    names = [p.name for p in ck.iterdir() if p.is_dir() and p.name.startswith("round-") and p.name[6:].isdigit()]
    return sorted(names, key=lambda n: int(n[6:]))
