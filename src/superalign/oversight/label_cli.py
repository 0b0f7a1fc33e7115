"""`superalign label ...`: human labels of held-out answers, for the prediction-powered ASR (docs/ppi.md).

`export` draws a uniform seeded random sample of each round's harmful held-out answers into a JSONL file a
person fills in (blind: no judge verdict in it); `import` validates the filled file as a whole, stores
its labels in the run store (human_labels, round of the answer, step "eval") in one transaction, and
rebuilds rounds.jsonl and report.html. Mounted in cli.py with `app.add_typer(label_app, name="label")`.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from superalign.errors import UserError

label_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Human labels of held-out answers: the prediction-powered ASR (docs/ppi.md).",
)

HALFWIDTH = 0.05  # the target the import table sizes labels for


def _echo(msg: str) -> None:
    typer.echo(msg, err=True)


def _store_path(run_dir: Path) -> Path:
    db = run_dir / "run.sqlite"
    if not db.is_file():
        raise UserError(f"{run_dir}: no run.sqlite here; give the --out directory of a `superalign run`")
    return db


def export_rows(store: Any, per_round: int, seed: int) -> list[dict[str, Any]]:
    """Up to `per_round` harmful held-out answers of every evaluated round, drawn uniformly at random
    (seeded per round) from those not labelled yet, as rows to fill in. Leaving out labelled answers keeps
    the union with earlier exports a uniform random sample, so a second export tops the sample up."""
    from superalign.ppi import eval_labels, eval_rounds, harmful_eval_answers

    prompts = {q.id: q.text for q in store.queries(round=0, step="eval")}
    rows = []
    for k in eval_rounds(store):
        done = eval_labels(store, k)
        pool = [r for r in harmful_eval_answers(store, k) if r.id not in done]
        pick = random.Random(f"label-export:{seed}:{k}").sample(pool, min(per_round, len(pool)))
        rows += [
            {
                "response_id": r.id,
                "round": k,
                "prompt": prompts.get(r.query_id, ""),
                "response": r.text,
                "unsafe": None,
                "refusal": None,
                "note": "",
            }
            for r in pick
        ]
    return rows


@label_app.command("export")
def export_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory (holding run.sqlite)."),
    per_round: int = typer.Option(
        ..., "--per-round", min=1, help="Answers to label per round (harmful held-out answers, not labelled yet)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the random draw (same seed, same store: same rows)."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="The JSONL to fill in (default: RUN_DIR/to_label.jsonl)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace --out if it exists (it may hold labels not imported yet)."
    ),
) -> None:
    """Write a uniform random sample of each round's harmful held-out answers, to label by hand."""
    from superalign.ppi import eval_rounds
    from superalign.store.jsonl import atomic_write_text
    from superalign.store.runstore import RunStore

    path = out or run_dir / "to_label.jsonl"
    if path.exists() and not force:
        raise UserError(
            f"{path}: already exists and may hold labels not imported yet; import it "
            f"(`superalign label import {run_dir} {path}`), choose another --out, or pass --force"
        )
    with RunStore(_store_path(run_dir)) as store:
        if not eval_rounds(store):
            raise UserError(f"{run_dir}: no round has held-out answers yet; run `superalign run` first")
        rows = export_rows(store, per_round, seed)
    if not rows:
        typer.echo("nothing to label: every harmful held-out answer of this run is labelled already")
        return
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    per: dict[int, int] = {}
    for r in rows:
        per[r["round"]] = per.get(r["round"], 0) + 1
    typer.echo(f"wrote {len(rows)} rows ({', '.join(f'round {k}: {n}' for k, n in per.items())}) to {path}")
    _echo(
        'set each row\'s "unsafe" (and "refusal") to true or false, reading the answer against '
        f"docs/labelling.md; then `superalign label import {run_dir} {path}`"
    )


def read_label_file(path: Path, store: Any, reviewer: str) -> tuple[list[tuple[int, str, Any]], int]:
    """The labels of a filled export file as (round, "eval", HumanLabel), and how many rows were skipped
    (unsafe null). The whole file is checked first: UserError naming file:line and the fix."""
    from superalign.oversight.review_cli import _line_of_row
    from superalign.ppi import eval_rounds
    from superalign.records import HumanLabel
    from superalign.store.jsonl import read_jsonl

    null = (type(None),)
    rows = read_jsonl(
        path,
        required=["response_id", "unsafe"],
        types={
            "response_id": (str,),
            "unsafe": (bool, *null),
            "refusal": (bool, *null),
            "note": (str, *null),
            "round": (int,),
        },
    )
    rounds_of: dict[str, list[int]] = {}
    for rnd in eval_rounds(store):
        for r in store.responses(round=rnd, step="eval"):
            rounds_of.setdefault(r.id, []).append(rnd)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    labels: list[tuple[int, str, Any]] = []
    skipped = 0
    seen: dict[tuple[str, int], int] = {}
    for i, row in enumerate(rows, start=1):
        rid = row["response_id"]
        where = f"{path}:{_line_of_row(path, i)}"
        rounds = rounds_of.get(rid)
        if rounds is None:
            raise UserError(
                f"{where}: response_id {rid!r} is not a held-out answer of this run; import the "
                "file into the run it was exported from, and keep each row's response_id as written"
            )
        k = row.get("round")
        if k is None:
            if len(rounds) > 1:
                raise UserError(
                    f"{where}: response_id {rid!r} is a held-out answer of rounds "
                    f'{", ".join(map(str, rounds))}; add the row\'s "round"'
                )
            k = rounds[0]
        elif k not in rounds:
            raise UserError(
                f"{where}: round {k}, but {rid!r} is a held-out answer of round "
                f"{', '.join(map(str, rounds))}; keep the round the export wrote"
            )
        if (rid, k) in seen:
            raise UserError(
                f"{where}: response_id {rid!r} (round {k}) repeats line {seen[(rid, k)]}; keep one row per answer"
            )
        seen[(rid, k)] = _line_of_row(path, i)
        if row["unsafe"] is None:
            skipped += 1
            continue
        labels.append(
            (
                k,
                "eval",
                HumanLabel(rid, reviewer, row["unsafe"], bool(row.get("refusal")), row.get("note") or "", created),
            )
        )
    return labels, skipped


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def ppi_table(store: Any, halfwidth: float = HALFWIDTH) -> str:
    """Per round: labels used, ASR of the labels alone, PPI ASR with its interval, the judge's weight,
    and the labels a +-`halfwidth` interval would need (judging by the labels so far)."""
    from superalign.ppi import eval_rounds, ppi_round, round_estimate

    head = ["round", "labels", "asr_labelled", "asr_ppi", "95% CI", "lam", f"labels_for_+-{halfwidth:g}"]
    rows, notes = [head], []
    for k in eval_rounds(store):
        row = ppi_round(store, k)
        est, _ = round_estimate(store, k)
        ci = row.get("asr_ppi_ci")
        sized_est = est if est is not None and est.var_resid is not None else None  # two labels or more: variances
        sized = sized_est is not None  # to size with
        need = sized_est.labels_for(halfwidth) if sized_est is not None else None
        rows.append(
            [
                str(k),
                str(row.get("human_labels_eval", 0)),
                _fmt(row.get("asr_labelled")),
                _fmt(row.get("asr_ppi")),
                "-" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]",
                _fmt(row.get("asr_ppi_lam")),
                "-" if not sized else "unreachable" if need is None else str(need),
            ]
        )
        if row.get("asr_ppi_note"):
            notes.append(f"round {k}: {row['asr_ppi_note']}")
        if sized_est is not None and need is None:
            notes.append(
                f"round {k}: +-{halfwidth:g} is out of reach by labelling: the {sized_est.n_unlabelled} held-out "
                "harmful answers are themselves a sample; evaluate more held-out prompts"
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + notes)


@label_app.command("import")
def import_cmd(
    run_dir: Path = typer.Argument(..., help="The run directory the file was exported from."),
    file: Path = typer.Argument(..., help='The filled JSONL (rows with "unsafe": true/false; null rows are skipped).'),
    reviewer: str = typer.Option("anonymous", "--reviewer", help="Who labelled (stored as human:NAME)."),
) -> None:
    """Store the labels of a filled export file (all or none), rebuild the outputs, print the PPI ASR."""
    from superalign.store.run_outputs import write_outputs
    from superalign.store.runstore import RunStore

    with RunStore(_store_path(run_dir)) as store:
        labels, skipped = read_label_file(file, store, f"human:{reviewer}")
        stored = store.add_human_labels(labels)
        write_outputs(run_dir, store, None)
        typer.echo(
            f"stored {stored} label(s) from {file}"
            + (f'; skipped {skipped} row(s) with "unsafe": null' if skipped else "")
        )
        typer.echo(ppi_table(store))
    typer.echo(f"report: {(run_dir / 'report.html').resolve()}")
