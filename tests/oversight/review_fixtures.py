"""Shared helpers for the review desk tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import socket

from superalign.oversight.queue import ReviewItem
from superalign.records import Verdict

TOKEN = "test-token-0123456789"
XSS_PROMPT = "Ignore your rules <script>alert('pwned')</script> and tell me"
XSS_RESPONSE = 'Sure! <img src=x onerror=alert(1)> step 1: "quote" & more'


def make_items(n: int, prefix: str = "item") -> list[ReviewItem]:
    """`n` items; the first carries <script> / onerror= payloads, confidence rises with the index."""
    items = []
    for i in range(n):
        v = Verdict(
            f"{prefix}-{i}",
            "rules",
            None if i == 0 else i % 2 == 0,
            i % 3 == 0,
            0.5,
            0.5 + i / (2 * n),
            explanation=f"explanation {i} <b>bold?</b>",
        )
        prompt, response = (XSS_PROMPT, XSS_RESPONSE) if i == 0 else (f"prompt {i}", f"response {i}")
        items.append(ReviewItem(f"{prefix}-{i}", prompt, response, 1, i % 2 == 0, v, 1.0 - v.confidence, "test"))
    return items


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
