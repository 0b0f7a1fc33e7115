"""An experiment's HTML report: `DIR/report.html` from what the experiment wrote into `DIR`.

`superalign experiment NAME --out DIR` writes `metrics.json`, `results.md` and PNG plots; this turns
them into one self-contained page (opens offline, no scripts): the results tables (markdown rendered
with markdown-it in its safe preset, so raw HTML in model text is escaped, never run), every plot
inline as a data URI, and the headline scalars of metrics.json.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from superalign.store.jsonl import atomic_write_text
from superalign.store.report import _CSS


def _scalars(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    """Top-level numbers / strings / booleans of metrics.json (nested results stay in results.md)."""
    return [(k, v) for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None]


def render_experiment_report(out: Path, name: str) -> str:
    from markdown_it import MarkdownIt

    out = Path(out)
    md_path, metrics_path = out / "results.md", out / "metrics.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    parts = [
        f"<h1>superalign experiment {html.escape(name)}</h1>",
        f"<p class='muted'>{html.escape(str(out.resolve()))}</p>",
    ]
    scalars = _scalars(metrics)
    if scalars:
        rows = "".join(
            f"<tr><td class='key'>{html.escape(k)}</td><td>{html.escape(json.dumps(v))}</td></tr>" for k, v in scalars
        )
        parts += ["<h2>Headline numbers (metrics.json)</h2>", f"<table>{rows}</table>"]
    if md_path.is_file():
        parts += [MarkdownIt("js-default").render(md_path.read_text(encoding="utf-8"))]
    figures = []
    for png in sorted(out.glob("*.png")):
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        figures.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(png.stem)}" '
            f'style="max-width:520px"><figcaption>{html.escape(png.name)}</figcaption></figure>'
        )
    if figures:
        parts += ["<h2>Plots</h2>", f"<div class='plots'>{''.join(figures)}</div>"]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>superalign experiment {html.escape(name)}</title><style>{_CSS}"
        "td { text-align: left; }</style></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def write_experiment_report(out: Path, name: str) -> Path:
    """Write `out/report.html` atomically from the experiment's files in `out`; returns its path."""
    path = Path(out) / "report.html"
    atomic_write_text(path, render_experiment_report(Path(out), name))
    return path
