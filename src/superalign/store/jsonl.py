"""JSONL in and out: clear file:line errors on read, nothing half-written on write."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from superalign.errors import UserError
from superalign.faults import tick
from superalign.user_text import decode_line

_TYPE_NAMES = {
    str: "a string",
    bool: "true/false",
    int: "an integer",
    float: "a number",
    type(None): "null",
    list: "a list",
    dict: "an object",
}


def read_jsonl(
    path: str | Path,
    required: Iterable[str] = (),
    types: dict[str, tuple[type, ...]] | None = None,
    allow_empty: bool = False,
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Read a JSONL file of objects. Each row must hold every key in `required`; a key named in `types`
    must (when present) hold a value of one of its types. An empty file is an error unless `allow_empty`.
    `prepare(row)` (optional) reshapes each row before those checks; a ValueError it raises is reported
    at the row's line.

    Raises UserError naming `file:line` and what to fix; blank lines are skipped.
    """
    return [row for _, row in numbered_jsonl(path, required, types, allow_empty, prepare)]


def numbered_jsonl(
    path: str | Path,
    required: Iterable[str] = (),
    types: dict[str, tuple[type, ...]] | None = None,
    allow_empty: bool = False,
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """`read_jsonl`, each row with its line number in the file (for errors found later)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such file (give the path of a .jsonl file, one JSON object per line)")
    rows: list[tuple[int, dict[str, Any]]] = []
    need = list(required)
    with p.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = decode_line(raw, p, lineno)
            if not line.strip():
                continue
            row = _parse_row(line, p, lineno)
            if not isinstance(row, dict):
                raise UserError(f"{p}:{lineno}: expected a JSON object, got {type(row).__name__}")
            if prepare is not None:
                try:
                    row = prepare(row)
                except ValueError as exc:
                    raise UserError(f"{p}:{lineno}: {exc}") from None
            check_row(row, p, lineno, need, types)
            rows.append((lineno, row))
    if not rows and not allow_empty:
        raise UserError(f"{p}: no rows (the file is empty); write one JSON object per line")
    return rows


def check_row(
    row: dict[str, Any], p: Path, lineno: int, need: list[str], types: dict[str, tuple[type, ...]] | None
) -> None:
    """UserError naming `p:lineno` if `row` lacks a key in `need` or holds a value of a type `types` rules out."""
    missing = [k for k in need if k not in row]
    if missing:
        raise UserError(f"{p}:{lineno}: missing key(s) {', '.join(map(repr, missing))}; add them to every row")
    for key, allowed in (types or {}).items():
        v = row.get(key)
        if key in row and not (isinstance(v, allowed) and not (isinstance(v, bool) and bool not in allowed)):
            want = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in allowed)
            raise UserError(f"{p}:{lineno}: '{key}' must be {want}, got {json.dumps(v)[:60]}")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_row(line: str, p: Path, lineno: int) -> Any:
    """One JSON value; UserError for bad JSON, NaN/Infinity (Python-only extensions) and deep nesting."""
    try:
        return json.loads(line, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{p}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno}); "
            'each line must be one JSON object, e.g. {"prompt": "..."}'
        ) from None
    except ValueError as exc:
        raise UserError(f"{p}:{lineno}: not valid JSON ({exc}); write a number or null instead") from None
    except RecursionError:
        raise UserError(f"{p}:{lineno}: JSON nested too deeply to read; flatten the row") from None


def _umask() -> int:
    """The process umask (read by setting and restoring it: the only portable way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _as_if_created(path: str | Path, directory: bool = False) -> None:
    """Give a temp file or dir the mode a plain open() / mkdir() would have (mkstemp makes 0600, mkdtemp
    0700), so outputs honour the user's umask like any other file they write."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` via a temp file in the same directory, fsync, then rename."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as exc:
        raise _write_error(p, exc) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        tick("file-write")
        _as_if_created(tmp)
        os.replace(tmp, p)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(p, exc) from None
        raise


def cached_pickle(path: str | Path, build: Callable[[], Any], kind: type | None = None) -> Any:
    """`build()`, kept on disk at `path` (our own cache directory): loaded when the file is there and
    readable (and an instance of `kind`, when given), else built and written atomically (temp + rename).
    A truncated or stale file is rebuilt and replaced, never an error."""
    import pickle

    p = Path(path)
    if p.is_file():
        try:
            with p.open("rb") as fh:
                obj = pickle.load(fh)  # written below by this function
            if kind is None or isinstance(obj, kind):
                return obj
        except Exception:
            pass
    obj = build()
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return obj


def make_out_dir(path: str | Path, flag: str = "--out") -> Path:
    """Create the output directory `path` (and its parents); UserError naming `flag` when it cannot be:
    a file is in the way, a parent is a file, or it is not writable."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{flag} {p}: is a file, not a directory; choose a directory (new or existing)")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"{flag} {p}: cannot create this directory ({exc.strerror or exc}); choose a --out in a writable folder"
        ) from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {p}: this directory is not writable; choose another or fix its permissions")
    return p


def _write_error(p: Path, exc: OSError) -> UserError:
    """The OSError of a failed write as the fix a user can make (nothing was left behind)."""
    import errno

    if exc.errno == errno.ENOSPC:
        return UserError(f"{p}: disk full while writing (nothing was written); free space or choose another --out")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return UserError(f"{p}: cannot write here ({exc.strerror}); choose a writable --out")
    return UserError(f"{p}: cannot write ({exc.strerror or exc}); check that the folder exists and is writable")


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows atomically (the file appears complete or not at all)."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def atomic_write_dir(target: str | Path, build: Callable[[Path], object], replace: bool = False) -> Path:
    """Let `build(tmp)` fill a temp dir beside `target`, fsync its files, then rename it to `target`.

    The directory appears complete or not at all. If `target` already exists it is replaced when
    `replace` is true (a re-run training step), else kept (a concurrent cache build won the race).
    """
    t = Path(target)
    t.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{t.name}.", dir=t.parent))
    try:
        _as_if_created(tmp, directory=True)
        build(tmp)
        tick("dir-write")
        for f in (f for f in tmp.rglob("*") if f.is_file()):
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if t.exists():
            if not replace:
                shutil.rmtree(tmp)
                return t
            shutil.rmtree(t)
        os.replace(tmp, t)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return t
