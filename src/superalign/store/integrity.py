"""Is an existing run.sqlite whole? Checked before anything reads or writes it.

SQLite opens a 0-byte file as a new, empty database, and a truncated or damaged file often opens too;
without this check `report` rewrote rounds.jsonl from nothing and `--resume` restarted from round 0
over the run's checkpoints. Every opener of run.sqlite (RunStore, the review queue, the promotion
gate, value clarifications) calls `check_store_file` first, so a damaged store stops the command
with one message (UserError, exit 2) and every existing file stays byte-identical.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from superalign.errors import UserError

_MAGIC = b"SQLite format 3\x00"
_HEADER_BYTES = 100


class DamagedStore(UserError):
    """run.sqlite exists but is empty, not SQLite, truncated or fails SQLite's quick_check."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"{path}: {problem}. Nothing was written. Restore run.sqlite from a backup (or move it "
            "away and start the run again with another --out); superalign will not build on a damaged store"
        )


def check_store_file(path: str | Path) -> None:
    """Raise DamagedStore unless `path` is missing (the caller creates it) or a whole SQLite file.

    Reads only: the header (magic, page size, page count), then `PRAGMA quick_check` on a connection
    that writes nothing (a WAL file it creates is empty and removed when it closes)."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_file():
        raise DamagedStore(path, "is not a file")
    size = path.stat().st_size
    if size == 0:
        raise DamagedStore(path, "is empty (0 bytes), so it holds no run")
    with path.open("rb") as fh:
        header = fh.read(_HEADER_BYTES)
    if len(header) < _HEADER_BYTES or not header.startswith(_MAGIC):
        raise DamagedStore(
            path, "does not start with the SQLite header (not a run store, or its first bytes were overwritten)"
        )
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    pages_valid = header[24:28] == header[92:96]  # the in-header page count is trusted only then (SQLite docs)
    if page_size < 512 or size % page_size or (pages_valid and pages * page_size > size):
        raise DamagedStore(path, f"is truncated ({size} bytes; its header promises {pages} pages of {page_size} bytes)")
    _quick_check(path)


# Errors that say the file could not be READ just now, not that what was read is wrong: a transient
# "disk I/O error" (seen mid-run under heavy load, quick_check "ok" right after) or another writer's lock. Three
# tries a second apart stopped two long runs (long-explicit, long-edgy) that `--resume` then finished at once, so the
# wait doubles: 1 + 2 + 4 + 8 + 16 s over six tries.
_TRANSIENT = ("disk I/O", "database is locked", "database is busy")
_RETRIES = 6


def _quick_check(path: Path, retry_wait_s: float = 1.0) -> None:
    import time

    for attempt in range(_RETRIES):
        try:
            conn = sqlite3.connect(str(path), isolation_level=None)
        except sqlite3.Error as exc:
            raise UserError(f"{path}: cannot open it ({exc}); check that it and its directory are readable") from None
        try:
            rows = conn.execute("PRAGMA quick_check(5)").fetchall()
            break
        except sqlite3.OperationalError as exc:
            if "unable to open" in str(exc) or "readonly" in str(exc):
                raise UserError(
                    f"{path}: cannot open it ({exc}); SQLite needs write access to the run "
                    "directory, so make it writable (or copy the run somewhere writable)"
                ) from None
            if not any(w in str(exc) for w in _TRANSIENT):
                raise DamagedStore(path, f"is damaged ({exc})") from None
            if attempt == _RETRIES - 1:
                raise UserError(
                    f"{path}: SQLite could not read it ({exc}, {_RETRIES} tries); that is the disk or another "
                    "process, not the file's content, which was not judged damaged. Nothing was written. Check free "
                    "space (df) and that no other command is writing this run, then run the command again"
                ) from None
        except sqlite3.DatabaseError as exc:
            raise DamagedStore(path, f"is damaged ({exc})") from None
        finally:
            conn.close()
        time.sleep(retry_wait_s * 2**attempt)
    problems = [str(r[0]) for r in rows if r and r[0] != "ok"]
    if problems:
        raise DamagedStore(path, "is damaged (SQLite quick_check: " + "; ".join(problems)[:300] + ")")
