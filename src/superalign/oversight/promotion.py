"""The promotion gate: a new learner version becomes current only when a human approves it.

Versions are the run's checkpoints (`round-K`). Every decision is an event in the `promotion_events`
table of the run's SQLite file (committed before the call returns): proposed, approved, rejected,
promoted. The current version is the one last *promoted*; `promote_if_approved` promotes a version
only if its latest decision is an approval. Experiments may auto-approve (`auto=True`), which is
logged as such (actor "auto:<who>"), never silently.

A human decision must name a version that is proposed and still pending (its latest event is
"proposed"): approving `round-2` before the loop proposed it, or deciding a version twice, is refused
(`DecisionRefused`), so no approval can exist before a reviewer could see the proposal's metrics.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from superalign.errors import UserError
from superalign.store.integrity import check_store_file
from superalign.store.sqlite_tx import write_tx

_SCHEMA = """
CREATE TABLE IF NOT EXISTS promotion_events (
    seq INTEGER PRIMARY KEY, version TEXT NOT NULL, action TEXT NOT NULL, actor TEXT NOT NULL,
    auto INTEGER NOT NULL DEFAULT 0, note TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL)
"""
BASE_VERSION = "round-0"  # the base model: current until a human promotes something else


class DecisionRefused(UserError):
    """A decision on a version that is not proposed and pending; nothing was written."""

    def __init__(self, version: str, status: str) -> None:
        self.version, self.status = version, status
        why = (
            "it was never proposed (the loop proposes round-K after evaluating it)"
            if status == "unknown"
            else f"it is {status}, not pending (a version is decided once)"
        )
        super().__init__(f"cannot decide version {version!r}: {why}; decide a version whose status is proposed")


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
        check_store_file(self.db)
        self.db.parent.mkdir(parents=True, exist_ok=True)
        with self._tx() as conn:
            conn.execute(_SCHEMA)

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return write_tx(self.db, self.timeout_s)

    def _log(self, conn: sqlite3.Connection, version: str, action: str, actor: str, auto: bool, note: str) -> None:
        conn.execute(
            "INSERT INTO promotion_events (version, action, actor, auto, note, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (version, action, actor, int(auto), note, datetime.now(UTC).isoformat(timespec="seconds")),
        )

    def events(self, version: str | None = None) -> list[PromotionEvent]:
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT * FROM promotion_events WHERE (? IS NULL OR version = ?) ORDER BY seq", (version, version)
            ).fetchall()
        return [PromotionEvent(s, v, a, who, bool(au), n, c) for s, v, a, who, au, n, c in rows]

    def propose(self, version: str, actor: str = "loop", note: str = "") -> None:
        """A new candidate version (e.g. after a training round); it is NOT current yet."""
        with self._tx() as conn:
            self._log(conn, version, "proposed", actor, False, note)

    def decide(self, version: str, approve: bool, actor: str, note: str = "", auto: bool = False) -> None:
        """A human's (or, with `auto`, an experiment's logged) approval or rejection of `version`.

        A human decision (not `auto`) needs `version` proposed and pending, else `DecisionRefused` and
        nothing is written; the check and the write are one transaction, so two reviewers cannot both
        decide it."""
        if not actor.strip():
            raise ValueError("a decision needs the name of who made it")
        with self._tx() as conn:
            status = _latest_action(conn, version)
            if not auto and status != "proposed":
                raise DecisionRefused(version, status)
            self._log(
                conn, version, "approved" if approve else "rejected", f"auto:{actor}" if auto else actor, auto, note
            )

    def status(self, version: str) -> str:
        """The version's latest decision: "approved", "rejected", "proposed", "promoted" or "unknown"."""
        evs = self.events(version)
        return evs[-1].action if evs else "unknown"

    def current(self) -> str:
        """The last promoted version (BASE_VERSION before any promotion)."""
        promoted = [e for e in self.events() if e.action == "promoted"]
        return promoted[-1].version if promoted else BASE_VERSION


def _latest_action(conn: sqlite3.Connection, version: str) -> str:
    row = conn.execute(
        "SELECT action FROM promotion_events WHERE version = ? ORDER BY seq DESC LIMIT 1", (version,)
    ).fetchone()
    return row[0] if row else "unknown"


def promote_if_approved(gate: PromotionGate, version: str, actor: str = "gate") -> bool:
    """Make `version` current iff its latest decision is an approval; returns whether it is now current.

    A human approval counts only if it follows a proposal of `version` (an experiment's logged
    auto-approval needs none), so an approval written before the proposal never promotes. The check
    and the promotion happen in one transaction, so a concurrent rejection cannot slip between."""
    with gate._tx() as conn:
        rows = conn.execute(
            "SELECT action, auto FROM promotion_events WHERE version = ? AND action != 'promoted' ORDER BY seq",
            (version,),
        ).fetchall()
        if not rows or rows[-1][0] != "approved":
            return False
        if not rows[-1][1] and not any(action == "proposed" for action, _ in rows[:-1]):
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
