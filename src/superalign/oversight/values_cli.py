"""`superalign values ...`: a run's evolving constitution (edit, diff, rejudge, propose, review).

Mounted in cli.py with `app.add_typer(values_app, name="values")`. Heavy imports stay inside the
commands. See docs/values.md.
"""

from __future__ import annotations

import getpass
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

import typer

from superalign.errors import UserError

values_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Evolving values: versioned constitution, edits, diffs, re-judging, clarifications.",
)

RUN = typer.Option(..., "--run", help="Run directory (its values/ folder holds the constitution versions).")


def _echo(msg: str) -> None:
    typer.echo(msg)


def _author(author: str | None) -> str:
    if author:
        return author
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


@values_app.command("log")
def log_cmd(run: Path = RUN) -> None:
    """List the run's value versions (oldest first) with author, reason and changes."""
    from superalign.oversight.values import ValueHistory

    h = ValueHistory(run)
    for v in h.versions():
        _echo(f"{v.version}  {v.created_at}  {v.source}  by {v.author}: {v.reason}  ({h.dir / v.file})")
        for c in v.changes:
            _echo(f"    {c}")


@values_app.command("edit")
def edit_cmd(
    run: Path = RUN,
    reason: str = typer.Option(..., "--reason", help="Why the values change (recorded with the version)."),
    sets: list[str] = typer.Option(
        [],
        "--set",
        help="DIM.RUBRIC_ID=TEXT, DIM.description=TEXT, "
        "profiles.NAME.DIM=WEIGHT or profiles.NAME.description=TEXT (repeatable).",
    ),
    removes: list[str] = typer.Option([], "--remove", help="DIM.RUBRIC_ID to drop (repeatable)."),
    editor: str | None = typer.Option(
        None,
        "--editor",
        help="Edit the current version in this command (e.g. 'nano'); default $EDITOR when no --set/--remove/--file.",
    ),
    file: Path | None = typer.Option(None, "--file", help="Take the new version from this YAML file."),
    author: str | None = typer.Option(None, "--author", help="Who made the change (default: your login)."),
) -> None:
    """Make a human change to the values: validated, numbered as the next version, author + reason kept.
    An invalid edit is refused (file:line and the problem) and nothing is written."""
    from superalign.oversight.values import ValueHistory, edited_text

    h = ValueHistory(run)
    cur = h.current()
    if sum(bool(x) for x in (sets or removes, editor, file)) > 1:
        raise UserError("give one of --set/--remove, --editor or --file")
    if sets or removes:
        text = edited_text(h.load(), sets, removes)
        fd, label = tempfile.mkstemp(prefix="superalign-values-edit-", suffix=".yaml")
        os.close(fd)
    elif file is not None:
        if not file.is_file():
            raise UserError(f"--file {file}: not found")
        text, label = file.read_text(encoding="utf-8"), str(file)
    else:
        cmd = editor or os.environ.get("VISUAL") or os.environ.get("EDITOR")
        if not cmd:
            raise UserError("no change given: use --set KEY=VALUE, --file NEW.yaml or --editor CMD (or set $EDITOR)")
        fd, label = tempfile.mkstemp(prefix=f"superalign-values-{cur.version}-", suffix=".yaml")
        os.close(fd)
        Path(label).write_text(h.path().read_text(encoding="utf-8"), encoding="utf-8")
        rc = subprocess.call([*shlex.split(cmd), label])
        if rc != 0:
            raise UserError(f"--editor {cmd!r} exited with {rc}; nothing written (your text: {label})")
        text = Path(label).read_text(encoding="utf-8")
    entry = h.add_version(text, _author(author), reason, "edit", label)
    if sets or removes:
        Path(label).unlink(missing_ok=True)
    _echo(f"values {entry.parent} -> {entry.version} by {entry.author}: {entry.reason}")
    for c in entry.changes:
        _echo(f"  {c}")
    _echo(f"written: {h.dir / entry.file}")


@values_app.command("diff")
def diff_cmd(
    run: Path = RUN,
    a: str | None = typer.Argument(None, help="Older version (default: the parent of B)."),
    b: str | None = typer.Argument(None, help="Newer version (default: the current one)."),
) -> None:
    """What changed between two value versions: rubric items added/removed/changed, profile weights."""
    from superalign.oversight.values import ValueHistory, diff_versions

    va, vb, lines = diff_versions(ValueHistory(run), a, b)
    _echo(f"values {va} -> {vb}: {len(lines)} change(s)")
    for line in lines:
        _echo(f"  {line}")


@values_app.command("rejudge")
def rejudge_cmd(
    run: Path = RUN,
    version: str | None = typer.Option(None, "--version", help="Value version (default: the current one)."),
    critic: str | None = typer.Option(None, "--critic", help="Critic kind (default: the run's; rules is fast)."),
    profile: str | None = typer.Option(None, "--profile", help="Value profile (default: the run's)."),
) -> None:
    """Re-judge the run's stored history under a value version; report which past verdicts changed."""
    from superalign.oversight.rejudge import rejudge_run, write_report

    rep = rejudge_run(run, version, critic, profile)
    paths = write_report(run, rep)
    _echo(
        f"re-judged {rep.n_verdicts} verdicts under values {rep.version} (critic {rep.critic}, profile "
        f"{rep.profile}; baseline: {rep.baseline}); unsafe threshold {rep.threshold_before:.2f} -> "
        f"{rep.threshold_after:.2f}"
    )
    _echo(f"unsafe flips: {rep.unsafe_flips} {rep.by_kind}; refusal flips: {rep.refusal_flips}")
    for rnd, row in rep.by_round.items():
        _echo(f"  round {rnd}: {row}")
    for rnd, m in rep.heldout.items():
        _echo(
            f"  held-out round {rnd}: ASR {m['asr_before']:.3f} -> {m['asr_after']:.3f}, "
            f"over-refusal {m['over_refusal_before']:.3f} -> {m['over_refusal_after']:.3f}"
        )
    _echo("report: " + ", ".join(str(p) for p in paths.values()))


@values_app.command("propose")
def propose_cmd(
    run: Path = RUN,
    limit: int = typer.Option(3, "--limit", min=1, help="Most proposals (one per group of hard cases)."),
    model: str = typer.Option(
        "embedded",
        "--model",
        help="Who writes the rubric sentence: embedded | HF dir | "
        "openai:<model>@<url> | scripted | none (deterministic template, labelled as such).",
    ),
) -> None:
    """From disputed and ambiguous cases, the model proposes value clarifications (stored as pending)."""
    from superalign.oversight.clarify import ClarificationStore, disputed_cases, propose
    from superalign.oversight.values import ValueHistory

    cases = disputed_cases(run)
    if not cases:
        _echo("no disputed or ambiguous cases in this run: nothing to clarify")
        return
    backend = None
    if model != "none":
        from superalign.backends import load_backend

        backend = load_backend(model)
    current = ValueHistory(run).load()

    def rubric_text(item: str) -> str:
        return current.rubric_text(item) if item in current.rubric_ids() else item

    props = propose(cases, backend, limit, rubric_text)
    new = ClarificationStore(run).add(props)
    _echo(f"{len(cases)} hard case(s); {len(props)} proposal(s), {new} new")
    for p in props:
        _echo(f"  {p.id} [{p.dimension}] {p.text!r}  (source: {p.source}; {len(p.examples)} example(s))")


@values_app.command("review")
def review_cmd(
    run: Path = RUN,
    reviewer: str = typer.Option(None, "--reviewer", help="Your name (default: your login)."),
) -> None:
    """Accept or reject pending clarifications in the terminal: a = accept, r = reject, s = skip, q = quit."""
    from superalign.oversight.clarify import ClarificationStore

    store, who = ClarificationStore(run), _author(reviewer)
    pending = store.all("pending")
    if not pending:
        _echo("no pending value clarifications")
    for p in pending:
        _echo(f"\n{p.id}  [{p.dimension}]  source: {p.source}\n  proposed: {p.text}")
        for e in p.examples:
            _echo(f"  example: {e}")
        choice = typer.prompt("a = accept, r = reject, s = skip, q = quit", default="s").strip().lower()
        if choice == "q":
            break
        if choice == "a":
            done = store.accept(p.id, who)
            _echo(f"accepted: now in values {done.version}")
        elif choice == "r":
            store.reject(p.id, who, typer.prompt("reason"))
            _echo("rejected (kept with the reason)")


@values_app.command("accept")
def accept_cmd(
    run: Path = RUN,
    pid: str = typer.Argument(..., help="Proposal id."),
    reviewer: str | None = typer.Option(None, "--reviewer"),
    reason: str = typer.Option("", "--reason"),
) -> None:
    """Accept a pending clarification: it is appended to a new value version."""
    from superalign.oversight.clarify import ClarificationStore

    p = ClarificationStore(run).accept(pid, _author(reviewer), reason)
    _echo(f"accepted {p.id}: rubric item {p.rubric_id} is in values {p.version}")


@values_app.command("reject")
def reject_cmd(
    run: Path = RUN,
    pid: str = typer.Argument(..., help="Proposal id."),
    reason: str = typer.Option(..., "--reason", help="Why (kept with the proposal)."),
    reviewer: str | None = typer.Option(None, "--reviewer"),
) -> None:
    """Reject a pending clarification (kept, with the reason; it never enters a version)."""
    from superalign.oversight.clarify import ClarificationStore

    p = ClarificationStore(run).reject(pid, _author(reviewer), reason)
    _echo(f"rejected {p.id}: {p.reason}")
