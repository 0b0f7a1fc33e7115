"""The per-round report: a self-contained HTML file (opens offline) and a plain-text terminal table.

Both take the per-round metric dicts of `RunStore.rounds_metrics()` (docs/design.md §3: at least `round`,
`asr`, `over_refusal`, `competence`, `human_labels`). Missing keys are simply not shown; a key
`<metric>_ci = [lo, hi]` adds a 95 % interval to that metric's cell and error bars to its plot.
Everything taken from the run (prompts, model output, config) is HTML-escaped: responses are
untrusted model output.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from superalign.store.jsonl import atomic_write_text

# Columns of the per-round table, in order; a column appears when any round has a value for it.
COLUMNS: tuple[str, ...] = (
    "round",
    "asr",
    "asr_independent",
    "goodhart_gap",
    "asr_ppi",
    "asr_keyword_bound",
    "attack_asr",
    "over_refusal",
    "degenerate",
    "competence",
    "human_labels",
    "pairs",
    "train_loss",
    "minutes",
)

# One plot per entry: (title, y label, [(metric key, legend label)], y in [0, 1]).
PLOTS: tuple[tuple[str, str, list[tuple[str, str]], bool], ...] = (
    (
        "Attack success rate",
        "ASR",
        [
            ("asr", "held-out ASR (critic)"),
            ("asr_independent", "held-out ASR (independent judge)"),
            ("asr_ppi", "held-out ASR (PPI: independent judge + human labels)"),
            ("asr_keyword_bound", "held-out keyword-refusal upper bound"),
            ("attack_asr", "adaptive attack on training objectives (vs the round's starting learner)"),
        ],
        True,
    ),
    (
        "Goodhart gap",
        "ASR difference",
        [("goodhart_gap", "ASR by the training critic - ASR by the independent judge")],
        False,
    ),
    (
        "Over-refusal and degenerate answers",
        "share",
        [
            ("over_refusal", "over-refusal (held-out benign)"),
            ("degenerate", "degenerate: empty, too short or repetitive (all held-out answers)"),
        ],
        True,
    ),
    (
        "On the round's training prompts (critic; learner before the round's update)",
        "share",
        [
            ("train_unsafe_harmful", "unsafe answers to harmful training prompts"),
            ("train_refusal_benign", "refusals of benign training prompts"),
        ],
        True,
    ),
    ("Competence (multiple choice, 95% CI)", "accuracy", [("competence", "competence")], True),
    # DPO's first-step loss is ln 2 = 0.693 whatever the data (policy = reference), so only the last step says
    # how far training went; reward accuracy says on how many pairs it got there.
    (
        "DPO loss at the last training step (ln 2 = 0.693 at the first)",
        "loss",
        [("train_loss_last", "last-step loss"), ("train_loss", "train loss")],
        False,
    ),
    (
        "Reward accuracy (last epoch: share of pairs with chosen reward > rejected)",
        "share",
        [("reward_accuracy", "reward accuracy")],
        True,
    ),
)

_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #1d2330; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #dde; }
table { border-collapse: collapse; margin: .5rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d5d9e2; padding: .3rem .6rem; text-align: right; }
th { background: #f1f3f8; } td.key, th.key { text-align: left; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; border: 1px solid #e3e6ee; padding: .5rem; border-radius: 4px; }
figcaption { font-size: .85rem; color: #555; text-align: center; }
pre { white-space: pre-wrap; word-break: break-word; background: #f7f8fb; padding: .5rem;
      border-radius: 4px; margin: .2rem 0 .6rem; font-size: .85rem; }
.example { border-left: 3px solid #9aa7c7; padding-left: .8rem; margin-bottom: 1.2rem; }
.label { font-weight: 600; font-size: .85rem; margin: .3rem 0 0; }
.muted { color: #666; font-size: .9rem; }
"""


def _value(row: dict[str, Any], key: str) -> Any:
    """The row's value for a column; `train_loss` falls back to the last step's loss (loop.py's key)."""
    if key == "train_loss" and row.get("train_loss") is None:
        return row.get("train_loss_last")
    return row.get(key)


def _fmt(value: Any) -> str:
    """Floats to 3 decimals, None as '-', everything else as str."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _ci(row: dict[str, Any], key: str) -> tuple[float, float] | None:
    ci = row.get(f"{key}_ci")
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci):
        return float(ci[0]), float(ci[1])
    return None


def cell(row: dict[str, Any], key: str, with_ci: bool = True) -> str:
    """One table cell: the formatted value, plus ` [lo, hi]` when `with_ci` and `<key>_ci` is present,
    e.g. `0.512 [0.47, 0.55]`."""
    value = _value(row, key)
    text = _fmt(value)
    ci = _ci(row, key) if with_ci else None
    if value is not None and ci is not None:
        text += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    return text


def report_columns(rounds: list[dict[str, Any]]) -> list[str]:
    """The COLUMNS that at least one round has a (non-None) value for, in COLUMNS order."""
    return [c for c in COLUMNS if any(_value(r, c) is not None for r in rounds)]


def format_table(rounds: list[dict[str, Any]]) -> str:
    """A fixed-width plain-text table of the per-round metrics, for a terminal (no trailing newline).

    Only competence carries its CI here, to keep the table about 100 characters wide."""
    if not rounds:
        return "(no rounds yet)"
    cols = report_columns(rounds)
    cells = [[cell(r, c, with_ci=c == "competence") for c in cols] for r in rounds]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _plot_png(
    rounds: list[dict[str, Any]], title: str, ylabel: str, series: list[tuple[str, str]], unit_interval: bool
) -> str | None:
    """Base64 PNG of one metric across rounds, or None when no round has any of `series`."""
    points = []
    for key, label in series:
        pts = [
            (r.get("round", i), float(r[key]), _ci(r, key))
            for i, r in enumerate(rounds)
            if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)
        ]
        if pts:
            points.append((key, label, pts))
    if not points:
        return None
    # Figure + Agg canvas directly (no pyplot): no global backend switch, no figure registry to leak.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(5.2, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for key, label, pts in points:
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        style = "--" if key == "asr_keyword_bound" else "-"
        cis = [p[2] for p in pts if p[2] is not None]
        if len(cis) == len(pts):  # every point has an interval
            yerr = [[max(0.0, y - ci[0]) for y, ci in zip(ys, cis)], [max(0.0, ci[1] - y) for y, ci in zip(ys, cis)]]
            ax.errorbar(xs, ys, yerr=yerr, fmt="o" + style, capsize=4, label=label)
        else:
            ax.plot(xs, ys, "o" + style, label=label)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    # Same x range on every plot (all rounds), so a metric that starts at round 1 lines up with the rest.
    all_x = [r.get("round", i) for i, r in enumerate(rounds)]
    ax.set_xlim(min(all_x) - 0.3, max(all_x) + 0.3)
    if len(set(all_x)) <= 20:
        ax.set_xticks(sorted(set(all_x)))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if unit_interval:
        ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if len(points) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _meta_html(rounds: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    last = rounds[-1] if rounds else {}
    info: dict[str, Any] = {
        "model": meta.get("model", last.get("model")),
        "critic": meta.get("critic", last.get("critic")),
        "date": meta.get("date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        "rounds": _rounds_text(rounds),
    }
    for k, v in meta.items():
        if k not in info and k not in ("config", "examples"):
            info[k] = v
    rows = "".join(
        f"<tr><th class='key'>{html.escape(str(k))}</th><td class='key'>{html.escape(_meta_text(v))}</td></tr>"
        for k, v in info.items()
        if v is not None
    )
    out = f"<table>{rows}</table>"
    config = meta.get("config")
    if config is not None:
        out += (
            "<details><summary>config</summary><pre>"
            f"{html.escape(config if isinstance(config, str) else json.dumps(config, indent=1))}"
            "</pre></details>"
        )
    return out


def _rounds_text(rounds: list[dict[str, Any]]) -> str:
    """How many rounds trained, e.g. "2 trained (rounds 0–2; round 0 evaluates the base model)": round 0
    is the base model's evaluation, not a training round, so a 2-round run has 3 rows."""
    nums = [r.get("round", i) for i, r in enumerate(rounds)]
    trained = [k for k in nums if isinstance(k, int) and k > 0]
    if not nums:
        return "none finished yet"
    text = f"{len(trained)} trained"
    if 0 in nums:
        span = f"rounds 0–{max(trained)}; " if trained else ""
        text += f" ({span}round 0 evaluates the base model)"
    return text


def _meta_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _table_html(rounds: list[dict[str, Any]]) -> str:
    if not rounds:
        return "<p class='muted'>No round has finished yet.</p>"
    cols = report_columns(rounds)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell(r, c))}</td>" for c in cols) + "</tr>" for r in rounds)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _nested_plots(rounds: list[dict[str, Any]]) -> list[tuple[str, str, list[tuple[str, str]], bool]]:
    """Plots of per-style and per-subset ASR: the nested dicts of rounds.jsonl flattened into `_flat:` keys
    (added to each round row here, for plotting only)."""
    out = []
    for field, title, label in (
        ("attack_asr_by_style", "Training-attack ASR by style (critic, learner before the round's update)", "{}"),
        ("asr_by_subset", "Held-out ASR by subset (independent judge)", "{}"),
    ):
        names = sorted({n for r in rounds for n in (r.get(field) or {})})
        for r in rounds:
            for n in names:
                cell = (r.get(field) or {}).get(n) or {}
                value = cell.get("asr_independent", cell.get("asr"))
                if value is not None:
                    r[f"_flat:{field}:{n}"] = value
        if names:
            out.append((title, "ASR", [(f"_flat:{field}:{n}", label.format(n)) for n in names], True))
    return out


def _plots_html(rounds: list[dict[str, Any]]) -> str:
    figures = []
    rounds = [dict(r) for r in rounds]  # _nested_plots adds plotting-only keys
    for title, ylabel, series, unit in (*PLOTS, *_nested_plots(rounds)):
        png = _plot_png(rounds, title, ylabel, series, unit)
        if png is not None:
            figures.append(
                f'<figure><img src="data:image/png;base64,{png}" alt="{html.escape(title)}">'
                f"<figcaption>{html.escape(title)}</figcaption></figure>"
            )
    return f"<div class='plots'>{''.join(figures)}</div>" if figures else "<p class='muted'>Nothing to plot.</p>"


def _examples_html(examples: list[dict[str, Any]]) -> str:
    parts = []
    for ex in examples:
        fields = "".join(
            f"<p class='label'>{label}</p><pre>{html.escape(str(ex.get(key, '')))}</pre>"
            for key, label in (
                ("prompt", "Prompt"),
                ("response", "Response"),
                ("verdict_explanation", "Critic's explanation"),
            )
            if ex.get(key) not in (None, "")
        )
        parts.append(f"<div class='example'><h3>Round {html.escape(str(ex.get('round', '?')))}</h3>{fields}</div>")
    return "".join(parts)


def render_report(rounds: list[dict[str, Any]], *, title: str, meta: dict[str, Any] | None = None) -> str:
    """The report as one self-contained HTML string (inline CSS, PNG plots as data URIs, no scripts)."""
    meta = meta or {}
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Run</h2>",
        _meta_html(rounds, meta),
        "<h2>Per-round metrics</h2>",
        _table_html(rounds),
        "<p class='muted'>asr: share of held-out harmful prompts judged unsafe by the critic; "
        "asr_ppi (with human labels): the ASR human reviewers would give, by prediction-powered inference "
        "from an independent judge's scores on every answer and human labels on a random sample, its "
        "[lo, hi] the PPI 95% interval (docs/ppi.md); asr_keyword_bound: the same without a keyword refusal "
        "(an upper bound); over_refusal: share of "
        "benign prompts refused; degenerate: share of all held-out answers that are empty, too short or "
        "repetitive (a learner can lower ASR by saying nothing); competence: multiple-choice accuracy; "
        "[lo, hi]: bootstrap 95% CI.</p>",
        "<h2>Plots</h2>",
        _plots_html(rounds),
    ]
    examples = meta.get("examples") or []
    if examples:
        sections += ["<h2>Examples</h2>", _examples_html(examples)]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )


def write_report(
    out_dir: Path, rounds: list[dict[str, Any]], *, title: str, meta: dict[str, Any] | None = None
) -> Path:
    """Write `out_dir/report.html` atomically (complete or absent, no temp file left) and return its path.

    `rounds`: per-round metric dicts; `meta`: optional run info (`config` as str or dict, `model`,
    `critic`, `date`, any other scalars) and `examples`: [{round, prompt, response, verdict_explanation}].
    """
    path = Path(out_dir) / "report.html"
    atomic_write_text(path, render_report(rounds, title=title, meta=meta))
    return path
