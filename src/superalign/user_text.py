"""Text files the user hands us (configs, JSONL, constitutions): UTF-8 or one clear error.

`Path.read_text(encoding="utf-8")` on a Latin-1 file raised UnicodeDecodeError with a traceback; these
name the file, the line and the fix instead (UserError, exit 2).
"""

from __future__ import annotations

from pathlib import Path

from superalign.errors import UserError


def decode_line(raw: bytes, path: Path, lineno: int) -> str:
    """One line of `path` as text; UserError naming `path:lineno` and the byte if it is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
            "save the file as UTF-8"
        ) from None


def read_user_text(path: str | Path) -> str:
    """The whole file as text; UserError naming the file (and line) if it cannot be read or is not UTF-8."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise UserError(f"{p}: cannot read it ({exc.strerror or exc}); give a readable file") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = data.count(b"\n", 0, exc.start) + 1
        line = data.split(b"\n")[lineno - 1]
        decode_line(line, p, lineno)  # raises with the line's own column
        raise UserError(f"{p}:{lineno}: not UTF-8 text; save the file as UTF-8") from None
