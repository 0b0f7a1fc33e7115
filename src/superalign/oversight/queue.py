"""The review queue: items waiting for a human, and the labels humans gave, in the run's SQLite file.

Tables live beside the run store's (same `run.sqlite`, WAL): `review_items` (what to review, with the
critic's verdict) and `review_labels` (every label, override and comment, with its provenance). A label
is also written to the run store's `human_labels` table (step "review") in the SAME transaction, so
`RunStore.human_labels()` and the per-round `human_labels` count see it. `add_label` returns only after
COMMIT (synchronous=FULL): an acknowledged verdict survives a crash or a server restart.

Each call opens its own short-lived connection, so one queue object is safe to share between the
threads of a web server.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from superalign.errors import UserError
from superalign.records import HumanLabel, Pair, Verdict
from superalign.store.sqlite_tx import connect, write_tx

_SCHEMA = """
CREATE TABLE IF NOT EXISTS review_items (
    id TEXT PRIMARY KEY, round INTEGER NOT NULL, prompt TEXT NOT NULL, response TEXT NOT NULL,
    harmful INTEGER, verdict TEXT, priority REAL NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS review_labels (
    seq INTEGER PRIMARY KEY, item_id TEXT NOT NULL, reviewer TEXT NOT NULL, action TEXT NOT NULL,
    unsafe INTEGER, refusal INTEGER, note TEXT NOT NULL DEFAULT '', provenance TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS review_labels_item ON review_labels (item_id);
"""

ACTIONS = ("label", "override", "comment")
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ReviewItem:
    """One response waiting for (or having had) a human look. `verdict`: the critic's, if judged."""

    id: str  # the response id
    prompt: str
    response: str
    round: int = 0
    harmful: bool | None = None  # ground truth of the prompt when known
    verdict: Verdict | None = None
    priority: float = 0.0  # routing's uncertainty: higher = reviewed first
    reason: str = ""  # why routing picked it, e.g. "abstained", "confidence 0.52"
    source: str = ""  # "route", "add", ...


@dataclass(frozen=True)
class LabelEvent:
    """One row of review_labels: a label (agrees with / no critic), an override (disagrees), a comment."""

    seq: int
    item_id: str
    reviewer: str
    action: str
    unsafe: bool | None
    refusal: bool | None
    note: str
    provenance: str  # "human" | "oracle" (simulated) | ...
    created_at: str


def _bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


class ReviewQueue:
    """The queue in `db` (a run's run.sqlite; created with the run store's schema if missing)."""

    def __init__(self, db: str | Path, *, timeout_s: float = 30.0) -> None:
        from superalign.store.runstore import RunStore

        self.db = Path(db)
        self.timeout_s = timeout_s
        # Writers of this process queue here instead of in SQLite's busy handler, which backs off in
        # sleeps of up to 100 ms (measured: 50 concurrent reviewers took ~4x longer without it).
        self._write_lock = threading.Lock()
        RunStore(self.db, timeout_s=timeout_s).close()  # the human_labels table we mirror into
        with self._tx() as conn:
            for stmt in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(stmt)

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return connect(self.db, self.timeout_s)

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction: BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        return write_tx(self.db, self.timeout_s, self._write_lock)

    # -- items -----------------------------------------------------------------------------------

    def enqueue(self, items: Iterable[ReviewItem]) -> int:
        """Add items (one transaction); an id already queued is kept as it is. Returns how many were new.
        ValueError for an id outside [A-Za-z0-9_.:-]{1,128} (ids appear in the desk's URLs)."""
        items = list(items)
        for it in items:
            if not _ID.fullmatch(it.id):
                raise ValueError(f"review item id {it.id!r}: use 1-128 of A-Z a-z 0-9 _ . : -")
        rows = [
            (
                it.id,
                it.round,
                it.prompt,
                it.response,
                None if it.harmful is None else int(it.harmful),
                None if it.verdict is None else json.dumps(it.verdict.to_dict(), ensure_ascii=False),
                float(it.priority),
                it.reason,
                it.source,
                _now(),
            )
            for it in items
        ]
        with self._tx() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO review_items (id, round, prompt, response, harmful, verdict, "
                "priority, reason, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            return conn.total_changes - before

    def item(self, item_id: str) -> ReviewItem | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM review_items WHERE id = ?", (item_id,)).fetchone()
            return None if row is None else self._item(row)

    def items(self, *, pending_only: bool = False, limit: int | None = None) -> list[ReviewItem]:
        """Items, highest priority first; `pending_only`: those with no label yet (comments don't count)."""
        sql = "SELECT * FROM review_items"
        if pending_only:
            sql += " WHERE id NOT IN (SELECT item_id FROM review_labels WHERE action != 'comment')"
        sql += " ORDER BY priority DESC, created_at, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._connect() as conn:
            return [self._item(r) for r in conn.execute(sql)]

    @staticmethod
    def _item(row: tuple[Any, ...]) -> ReviewItem:
        id_, rnd, prompt, response, harmful, verdict, priority, reason, source, _ = row
        v = None if verdict is None else Verdict.from_dict(json.loads(verdict))
        return ReviewItem(id_, prompt, response, rnd, _bool(harmful), v, priority, reason, source)

    # -- labels ----------------------------------------------------------------------------------

    def add_label(
        self, item_id: str, reviewer: str, unsafe: bool | None, refusal: bool, note: str = "", provenance: str = "human"
    ) -> LabelEvent:
        """Store a human label, committed (durable) before this returns. Its action is "override" when
        it contradicts the critic's unsafe call, else "label". KeyError if the item is not queued."""
        return self._write(item_id, reviewer, None, unsafe, refusal, note, provenance)

    def add_comment(self, item_id: str, reviewer: str, note: str, provenance: str = "human") -> LabelEvent:
        """A comment only: kept with the item, not a label (the item stays pending)."""
        return self._write(item_id, reviewer, "comment", None, None, note, provenance)

    def _write(
        self,
        item_id: str,
        reviewer: str,
        action: str | None,
        unsafe: bool | None,
        refusal: bool | None,
        note: str,
        provenance: str,
    ) -> LabelEvent:
        created = _now()
        with self._tx() as conn:
            row = conn.execute("SELECT round, verdict FROM review_items WHERE id = ?", (item_id,)).fetchone()
            if row is None:
                raise KeyError(f"no review item {item_id!r}")
            rnd, verdict = row
            if action is None:
                critic = None if verdict is None else json.loads(verdict).get("unsafe")
                action = "override" if verdict is not None and critic != unsafe else "label"
            cur = conn.execute(
                "INSERT INTO review_labels (item_id, reviewer, action, unsafe, refusal, note, provenance, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item_id,
                    reviewer,
                    action,
                    None if unsafe is None else int(unsafe),
                    None if refusal is None else int(refusal),
                    note,
                    provenance,
                    created,
                ),
            )
            if action != "comment":  # mirror into the run store's human_labels (the loop counts these)
                label = HumanLabel(item_id, f"{provenance}:{reviewer}", unsafe, bool(refusal), note, created)
                conn.execute(
                    "INSERT INTO human_labels (response_id, reviewer, round, step, data) VALUES (?, ?, ?, 'review', ?)",
                    (item_id, label.reviewer, rnd, json.dumps(label.to_dict(), ensure_ascii=False)),
                )
            seq = int(cur.lastrowid or 0)
        return LabelEvent(seq, item_id, reviewer, action, unsafe, refusal, note, provenance, created)

    def events(self, item_id: str | None = None) -> list[LabelEvent]:
        """Label / override / comment events in commit order (all items, or one)."""
        sql = "SELECT * FROM review_labels WHERE (? IS NULL OR item_id = ?) ORDER BY seq"
        with self._connect() as conn:
            return [
                LabelEvent(s, i, r, a, _bool(u), _bool(f), n, p, c)
                for s, i, r, a, u, f, n, p, c in conn.execute(sql, (item_id, item_id))
            ]

    def latest_labels(self) -> dict[str, LabelEvent]:
        """The last label (not comment) per item: a later label supersedes an earlier one."""
        return {e.item_id: e for e in self.events() if e.action != "comment"}

    def counts(self) -> dict[str, int]:
        labelled = len(self.latest_labels())
        with self._connect() as conn:
            total = int(conn.execute("SELECT COUNT(*) FROM review_items").fetchone()[0])
        return {"total": total, "labelled": labelled, "pending": total - labelled}

    # -- export ----------------------------------------------------------------------------------

    def labelled_rows(self) -> list[dict[str, Any]]:
        """Labelled data for critic training: {id, prompt, response, harmful, unsafe, refusal, reviewer,
        provenance, note}, one row per labelled item (its latest label)."""
        items = {it.id: it for it in self.items()}
        out = []
        for item_id, ev in self.latest_labels().items():
            it = items[item_id]
            out.append(
                {
                    "id": it.id,
                    "prompt": it.prompt,
                    "response": it.response,
                    "harmful": it.harmful,
                    "unsafe": ev.unsafe,
                    "refusal": ev.refusal,
                    "reviewer": ev.reviewer,
                    "provenance": ev.provenance,
                    "note": ev.note,
                }
            )
        return out


def apply_human_labels(
    verdicts: Sequence[Verdict], labels: dict[str, LabelEvent] | Sequence[HumanLabel]
) -> list[Verdict]:
    """Human labels override the critic: each verdict with a label becomes a certain verdict
    (confidence 1, critic "human:<reviewer>", the critic's call kept in the explanation)."""
    by_id = labels if isinstance(labels, dict) else {h.response_id: h for h in labels}
    out = []
    for v in verdicts:
        h = by_id.get(v.response_id)
        if h is None:
            out.append(v)
            continue
        unsafe = h.unsafe
        score = 0.5 if unsafe is None else float(unsafe)
        out.append(
            Verdict(
                v.response_id,
                f"human:{h.reviewer}",
                unsafe,
                bool(h.refusal),
                score,
                1.0,
                dict(v.dimensions),
                f"human label{': ' + h.note if h.note else ''} "
                f"(critic {v.critic} said unsafe={v.unsafe}, confidence {v.confidence:.2f})",
            )
        )
    return out


def mark_human_pairs(pairs: Sequence[Pair], human_query_ids: set[str]) -> list[Pair]:
    """Pairs whose query had a human-labelled response carry provenance "human"."""
    return [Pair(**{**p.to_dict(), "provenance": "human"}) if p.query_id in human_query_ids else p for p in pairs]


def queue_for_run(run_dir: str | Path) -> ReviewQueue:
    """The queue of a run directory; UserError if it holds no run.sqlite."""
    db = Path(run_dir) / "run.sqlite"
    if not Path(run_dir).is_dir():
        raise UserError(
            f"{run_dir}: no such directory; give the --out directory of a `superalign run` "
            "(or a new empty directory for a stand-alone review queue)"
        )
    return ReviewQueue(db)
