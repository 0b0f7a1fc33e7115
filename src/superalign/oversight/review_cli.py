"""`superalign review ...`: the review desk (serve), the terminal desk (tui), and the queue's in/out.

Mounted in cli.py with `app.add_typer(review_app, name="review")`. Heavy imports stay inside the
commands, so `superalign --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from superalign.errors import UserError

review_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Human review: the budgeted queue, the web desk, the promotion gate.",
)

ADD_FIELDS = ["prompt", "response", "harmful", "round", "id", "messages"]  # what `review add --field` may name


def _echo(msg: str) -> None:
    typer.echo(msg, err=True)


def _run_dir(run: Path) -> Path:
    if not run.is_dir():
        raise UserError(
            f"--run {run}: no such directory; give the --out directory of a `superalign run` "
            "(or create an empty directory for a stand-alone review queue)"
        )
    return run


@review_app.command("serve")
def serve_cmd(
    run: Path = typer.Option(..., "--run", help="Run directory (its run.sqlite holds the queue and labels)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; the default serves this machine only."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="TCP port."),
) -> None:
    """Serve the web review desk (token from $SUPERALIGN_TOKEN, else a generated one printed here)."""
    from superalign.oversight.desk import serve

    serve(_run_dir(run), host=host, port=port, log=_echo)


@review_app.command("add")
def add_cmd(
    run: Path = typer.Option(..., "--run", help="Run directory."),
    inp: Path = typer.Option(
        ...,
        "--in",
        help=(
            "JSONL or .csv rows {prompt, response, optional harmful, round, id}; a JSONL row may give chat "
            "'messages' instead (prompt: the last user turn; response: a final assistant turn)."
        ),
    ),
    critic: str = typer.Option("rules", "--critic", help="Judge the rows first: rules | classifier | ensemble | none."),
    field: list[str] = typer.Option(
        [],
        "--field",
        help=(
            "Read the file's column COLUMN as field NAME, e.g. --field prompt=question (repeatable; NAME: "
            "prompt, response, harmful, round, id, messages)."
        ),
    ),
) -> None:
    """Enqueue rows for human review (with the critic's verdict unless --critic none)."""
    from superalign.oversight.queue import ReviewItem, ReviewQueue
    from superalign.oversight.routing import uncertainty, why_routed
    from superalign.records import stable_id
    from superalign.store.user_rows import numbered_user_rows, parse_fields

    numbered = numbered_user_rows(
        inp, required=["prompt", "response"], fields=parse_fields(field, ADD_FIELDS), check=_row_problem
    )
    rows = [r for _, r in numbered]
    ids = [str(r.get("id") or stable_id("review-add", r["prompt"], r["response"])) for r in rows]
    first: dict[str, int] = {}
    for (lineno, _), item_id in zip(numbered, ids):
        if item_id in first:  # the second row used to be dropped silently
            raise UserError(
                f"{inp}:{lineno}: id {item_id!r} repeats line {first[item_id]} (same id, or same prompt and "
                "response); give each row its own id or drop the repeat"
            )
        first[item_id] = lineno
    verdicts: list = [None] * len(rows)
    if critic != "none":
        from superalign.config import CriticConfig
        from superalign.critic import JudgeItem, build_critic, judge

        try:
            ccfg = CriticConfig(kind=critic)
        except Exception:
            raise UserError(f"--critic {critic!r}: choose rules, classifier, ensemble or none") from None
        verdicts = judge(
            [JudgeItem(i, r["prompt"], r["response"], r.get("harmful")) for i, r in zip(ids, rows)], build_critic(ccfg)
        )
    items = [
        ReviewItem(
            i,
            r["prompt"],
            r["response"],
            _checked_round(r),
            r.get("harmful"),
            v,
            uncertainty(v) if v else 0.0,
            why_routed(v) if v else "added",
            "add",
        )
        for i, r, v in zip(ids, rows, verdicts)
    ]
    try:
        new = ReviewQueue(_run_dir(run) / "run.sqlite").enqueue(items)
    except ValueError as exc:
        raise UserError(f"{inp}: {exc}") from None
    _echo(f"enqueued {new} new item(s) ({len(rows) - new} already queued) in {run / 'run.sqlite'}")


MAX_ROUND = 1_000_000


def _row_problem(r: dict) -> str | None:
    """What is wrong with one `review add` row, or None."""
    bad = [k for k in ("prompt", "response") if not isinstance(r[k], str)]
    if bad:
        return f"{bad[0]!r} must be a string"
    if r.get("harmful") not in (None, True, False):
        return "'harmful' must be true, false or null"
    rnd = _round_of(r)
    if isinstance(rnd, bool) or not isinstance(rnd, int) or not 0 <= rnd <= MAX_ROUND:
        return f"'round' must be a whole number from 0 to {MAX_ROUND}, got {json.dumps(rnd)[:40]}"
    if "id" in r and (isinstance(r["id"], bool) or not isinstance(r["id"], (str, int))):
        return f"'id' must be a string, got {json.dumps(r['id'])[:40]}"
    return None


def _round_of(r: dict) -> object:
    """The row's round as written; absent or null means round 0."""
    return 0 if r.get("round") is None else r["round"]


def _checked_round(r: dict) -> int:
    """The round of a row `_check_rows` accepted (a whole number, or absent / null = 0)."""
    return r.get("round") or 0


def _check_rows(inp: Path, rows: list[dict]) -> None:
    for i, r in enumerate(rows, start=1):
        problem = _row_problem(r)
        if problem:
            raise UserError(f"{inp}:{_line_of_row(inp, i)}: {problem}")


def _line_of_row(path: Path, n: int) -> int:
    """The file line of the n-th non-blank row (read_jsonl skips blank lines)."""
    seen = 0
    for lineno, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        if line.strip():
            seen += 1
            if seen == n:
                return lineno
    return n


@review_app.command("route")
def route_cmd(
    run: Path = typer.Option(..., "--run", help="Run directory of a `superalign run`."),
    round: int = typer.Option(..., "--round", help="Which round's judged responses to route."),
    budget: int = typer.Option(20, "--budget", min=0, help="Most items sent to humans."),
    strategy: str = typer.Option("uncertainty", "--strategy", help="uncertainty | random"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Send the round's least certain verdicts (up to --budget) to the review queue."""
    from superalign.oversight.queue import ReviewQueue
    from superalign.oversight.routing import Strategy, route_round
    from superalign.store.runstore import RunStore

    strategies: dict[str, Strategy] = {"uncertainty": "uncertainty", "random": "random"}
    if strategy not in strategies:
        raise UserError(f"--strategy {strategy!r}: choose uncertainty or random")
    db = _run_dir(run) / "run.sqlite"
    with RunStore(db) as store:
        new = route_round(store, ReviewQueue(db), round, budget, strategies[strategy], seed)
    _echo(f"routed {new} item(s) of round {round} to the review queue")


@review_app.command("export")
def export_cmd(
    run: Path = typer.Option(..., "--run", help="Run directory."),
    out: Path = typer.Option(..., "--out", help="JSONL of labelled rows (critic training data)."),
) -> None:
    """Write every labelled item (its latest human label, with provenance) as JSONL."""
    from superalign.oversight.queue import ReviewQueue
    from superalign.store.jsonl import write_jsonl

    db = _run_dir(run) / "run.sqlite"
    if not db.is_file():  # opening the queue would create an empty store just to export nothing
        raise UserError(
            f"--run {run}: no run.sqlite here, so no labels to export; give the --out directory "
            "of a `superalign run` (or of a `review add`)"
        )
    rows = ReviewQueue(db).labelled_rows()
    write_jsonl(out, rows)
    _echo(f"wrote {len(rows)} labelled rows to {out}")


@review_app.command("tui")
def tui_cmd(
    run: Path = typer.Option(..., "--run", help="Run directory."),
    reviewer: str = typer.Option("reviewer", "--reviewer", help="Your name, stored with every label."),
    limit: int | None = typer.Option(None, "--limit", help="Stop after this many items."),
) -> None:
    """Label the queue in the terminal: u = unsafe, s = safe, ? = unsure, c = comment, n = skip, q = quit."""
    from superalign.oversight.queue import ReviewQueue
    from superalign.oversight.tui import review_in_terminal

    n = review_in_terminal(ReviewQueue(_run_dir(run) / "run.sqlite"), reviewer, limit=limit)
    _echo(f"labelled {n} item(s)")
