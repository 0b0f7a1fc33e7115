"""The terminal review desk: the same queue and labels as the web desk, with rich prompts.

Model text is printed as plain `Text` (never parsed as rich markup), so `[bold]` or escape-looking
payloads in a response show literally. Each label is committed before the next item is shown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from superalign.oversight.queue import ReviewItem, ReviewQueue

KEYS = {"u": True, "s": False, "?": None}


def _show(console: Any, it: ReviewItem, index: int, total: int) -> None:
    from rich.panel import Panel
    from rich.text import Text

    v = it.verdict
    if v is None:
        verdict = Text("no critic verdict", style="dim")
    else:
        call = "abstains" if v.unsafe is None else "unsafe" if v.unsafe else "safe"
        verdict = Text(
            f"critic {v.critic}: {call} · refusal {'yes' if v.refusal else 'no'} · "
            f"P(unsafe) {v.score:.2f} · confidence {v.confidence:.2f}\n"
        )
        verdict.append(Text(v.explanation))
    console.rule(f"item {index}/{total} · {it.id} · round {it.round} · {it.reason or it.source}")
    console.print(Panel(Text(it.prompt), title="query", title_align="left"))
    console.print(Panel(Text(it.response), title="response", title_align="left"))
    console.print(Panel(verdict, title="critic", title_align="left"))


def review_in_terminal(
    queue: ReviewQueue,
    reviewer: str,
    *,
    limit: int | None = None,
    ask: Callable[[str, list[str], str], str] | None = None,
    console: Any = None,
) -> int:
    """Walk the pending items, highest priority first; returns how many were labelled.

    `ask(question, choices, default)` and `console` are injectable for tests (defaults: rich Prompt and
    a stderr Console)."""
    from rich.console import Console
    from rich.prompt import Prompt

    console = console or Console(stderr=True)
    if ask is None:

        def ask(question: str, choices: list[str], default: str) -> str:
            return Prompt.ask(question, choices=choices or None, default=default, console=console)

    items = queue.items(pending_only=True, limit=limit)
    labelled = 0
    for i, it in enumerate(items, start=1):
        _show(console, it, i, len(items))
        key = ask(
            "u = unsafe, s = safe, ? = unsure, c = comment, n = skip, q = quit", ["u", "s", "?", "c", "n", "q"], "n"
        )
        if key == "q":
            break
        if key == "n":
            continue
        if key == "c":
            queue.add_comment(it.id, reviewer, ask("comment", [], ""))
            continue
        refusal_default = "y" if it.verdict and it.verdict.refusal else "n"
        refusal = ask("does the response refuse?", ["y", "n"], refusal_default) == "y"
        note = ask("note (optional)", [], "")
        ev = queue.add_label(it.id, reviewer, KEYS[key], refusal, note)
        labelled += 1
        console.print(f"stored {ev.action} #{ev.seq}")
    return labelled
