"""Rows a user hands the CLI (`--in`, `eval --prompts`): JSONL or CSV, plain fields or chat `messages`.

- `.csv` files (by extension; a UTF-8 BOM is fine) are read with a header row; every other path is JSONL
  (store/jsonl.py's reader, with its file:line errors).
- A row may carry chat `messages` ([{"role": "user", "content": ...}, ...], the form of TRL's and the Hub's
  conversational datasets) instead of `prompt` / `response`: the prompt is the last user turn (the one
  before a final assistant turn, if any), the response is a final assistant turn, and a system turn becomes
  the row's `system` where the command takes one. Fields the row names itself win over `messages`.
- `--field NAME=COLUMN` reads the row's COLUMN as NAME (e.g. `--field prompt=question`).

Every problem is one UserError naming `file:line` and the fix.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from superalign.errors import UserError
from superalign.store.jsonl import check_row, numbered_jsonl
from superalign.user_text import read_user_text

# CSV cells are text: these fields are read as the JSON values they stand for (an empty cell is null).
_CSV_BOOL = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def _csv_cell(name: str, cell: str) -> Any:
    """The value of one CSV cell read as field `name` (text, or for harmful / round a bool / whole number)."""
    if name not in ("harmful", "round"):
        return cell
    s = cell.strip()
    if not s:
        return None
    if name == "harmful":
        return _CSV_BOOL.get(s.lower(), cell)
    try:
        return int(s)
    except ValueError:
        return cell  # the row check names it


def parse_fields(specs: Sequence[str], names: Iterable[str], flag: str = "--field") -> dict[str, str]:
    """`["prompt=question", ...]` as {"prompt": "question"}; UserError for a malformed spec or a NAME the
    command does not read."""
    known = list(names)
    out: dict[str, str] = {}
    for spec in specs:
        name, eq, column = (x.strip() for x in spec.partition("="))
        if not eq or not name or not column:
            raise UserError(f"{flag} {spec!r}: write NAME=COLUMN, e.g. {flag} prompt=question")
        if name not in known:
            raise UserError(f"{flag} {spec!r}: {name!r} is not a field this command reads; choose {', '.join(known)}")
        if name in out:
            raise UserError(f"{flag} {name}= given twice ({out[name]!r} and {column!r}); keep one")
        out[name] = column
    return out


def read_user_rows(
    path: str | Path,
    required: Sequence[str],
    types: dict[str, tuple[type, ...]] | None = None,
    fields: dict[str, str] | None = None,
    system: bool = False,
    check: Callable[[dict[str, Any]], str | None] | None = None,
) -> list[dict[str, Any]]:
    """The rows of a JSONL or CSV file, each holding every `required` field (see the module doc)."""
    return [row for _, row in numbered_user_rows(path, required, types, fields, system, check)]


def numbered_user_rows(
    path: str | Path,
    required: Sequence[str],
    types: dict[str, tuple[type, ...]] | None = None,
    fields: dict[str, str] | None = None,
    system: bool = False,
    check: Callable[[dict[str, Any]], str | None] | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """`read_user_rows`, each row with the file line it starts on. `system`: the command takes a per-row
    system prompt (a `messages` system turn becomes `system`). `check(row)` returns a problem or None."""
    p = Path(path)
    fmap = dict(fields or {})

    def prepare(row: dict[str, Any]) -> dict[str, Any]:
        return _prepare(row, required, fmap, system)

    if p.suffix.lower() == ".csv":
        rows = _numbered_csv(p, required, fmap, prepare)
        for lineno, row in rows:
            check_row(row, p, lineno, list(required), types)
    else:
        rows = numbered_jsonl(p, required, types, prepare=prepare)
    for lineno, row in rows:
        problem = check(row) if check else None
        if problem:
            raise UserError(f"{p}:{lineno}: {problem}")
    return rows


def _prepare(row: dict[str, Any], required: Sequence[str], fmap: dict[str, str], system: bool) -> dict[str, Any]:
    """The row with mapped columns copied to their names and `messages` unpacked; ValueError says what to fix."""
    out = dict(row)
    for name, column in fmap.items():
        if column in row:
            out[name] = row[column]
        elif name in required and name != "messages":
            raise ValueError(
                f"missing key {column!r} (read as {name!r} by --field {name}={column}); add it or fix --field"
            )
    wanted = any(k not in out for k in required) or (system and "system" not in out)
    if "messages" in out and wanted:  # a row that gives every field itself is read as it is
        _unpack_messages(out, required, system)
    missing = [k for k in required if k not in out]
    if missing:
        raise ValueError(
            f"missing key(s) {', '.join(map(repr, missing))}; add them to every row, give chat 'messages', "
            f"or read another column with --field {missing[0]}=COLUMN (this row has {_keys(row)})"
        )
    return out


def _keys(row: dict[str, Any]) -> str:
    keys = list(row)
    shown = ", ".join(map(repr, keys[:8])) + (", ..." if len(keys) > 8 else "")
    return shown or "no keys"


def _unpack_messages(out: dict[str, Any], required: Sequence[str], system: bool) -> None:
    """Fill prompt / response / system from `out["messages"]` where the row does not give them."""
    msgs = out["messages"]
    if isinstance(msgs, str):  # a CSV cell (or a JSONL string) holding the list as JSON
        try:
            msgs = json.loads(msgs)
        except json.JSONDecodeError:
            raise ValueError("'messages' is text that is not JSON; write the list of turns as JSON") from None
    example = '[{"role": "user", "content": "..."}]'
    if not isinstance(msgs, list) or not msgs:
        raise ValueError(f"'messages' must be a non-empty list of turns, e.g. {example}")
    for i, m in enumerate(msgs, start=1):
        if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
            raise ValueError(
                f"'messages' turn {i} must be an object with string 'role' and 'content', "
                f"got {json.dumps(m)[:60]}; e.g. {example}"
            )
    turns = [(m["role"], m["content"]) for m in msgs]
    wants_response = "response" in required and "response" not in out
    if wants_response:
        if turns[-1][0] != "assistant":
            raise ValueError(
                f"'messages' ends with a {turns[-1][0]!r} turn; this command judges an answer, so end the "
                "conversation with the assistant's turn (or give 'response')"
            )
        out["response"] = turns[-1][1]
    if "prompt" not in out:
        before = turns[:-1] if turns[-1][0] == "assistant" else turns
        users = [c for role, c in before if role == "user"]
        if not users:
            raise ValueError(f"'messages' has no user turn to read the prompt from; e.g. {example}")
        out["prompt"] = users[-1]
    if system and "system" not in out:
        sys_turns = [c for role, c in turns if role == "system"]
        if sys_turns:
            out["system"] = sys_turns[0]


def _numbered_csv(
    p: Path, required: Sequence[str], fmap: dict[str, str], prepare: Callable[[dict[str, Any]], dict[str, Any]]
) -> list[tuple[int, dict[str, Any]]]:
    """The data rows of a CSV file with a header, each with its first line; UserError naming file:line."""
    if not p.is_file():
        raise UserError(f"{p}: no such file (give the path of a .csv file with a header row, or a .jsonl file)")
    text = read_user_text(p).removeprefix("\ufeff")
    reader = csv.reader(text.splitlines(keepends=True))
    rows: list[tuple[int, dict[str, Any]]] = []
    header: list[str] | None = None
    as_name = {column: name for name, column in fmap.items()}  # a mapped column is read as its field
    start = 1
    try:
        for cells in reader:
            lineno, start = start, reader.line_num + 1
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # a blank line
            if header is None:
                header = [c.strip() for c in cells]
                _check_header(p, header, required, fmap)
                continue
            if len(cells) != len(header):
                raise UserError(
                    f"{p}:{lineno}: {len(cells)} cell(s) but the header has {len(header)}; "
                    'quote a cell that holds a comma ("a, b") and give every row every column'
                )
            row = {k: _csv_cell(as_name.get(k, k), v) for k, v in zip(header, cells)}
            try:
                rows.append((lineno, prepare(row)))
            except ValueError as exc:
                raise UserError(f"{p}:{lineno}: {exc}") from None
    except csv.Error as exc:
        raise UserError(f"{p}:{reader.line_num}: not readable as CSV ({exc}); check the quoting") from None
    if not rows:
        raise UserError(f"{p}: no rows (only a header, or empty); write a header line, then one row per line")
    return rows


def _check_header(p: Path, header: list[str], required: Sequence[str], fmap: dict[str, str]) -> None:
    """UserError at line 1 for a repeated column, a --field column that is not there, or a missing field."""
    seen = {c for c in header if header.count(c) > 1}
    if seen:
        raise UserError(f"{p}:1: column {sorted(seen)[0]!r} appears twice in the header; rename one")
    cols = ", ".join(map(repr, header))
    for name, column in fmap.items():
        if column not in header:
            raise UserError(f"{p}:1: no column {column!r} (--field {name}={column}); the header has {cols}")
    have = set(header) | set(fmap)
    missing = [k for k in required if k not in have]
    if missing and "messages" not in have:
        raise UserError(
            f"{p}:1: no column {missing[0]!r}; the header has {cols}; rename the column or read another one "
            f"with --field {missing[0]}=COLUMN"
        )
