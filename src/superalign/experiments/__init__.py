"""Experiments behind `superalign experiment NAME`: each is a module `superalign.experiments.<name>`
(dashes become underscores) exposing

    run(out: Path, quick: bool, seeds: int | None, learner: str, progress: Progress) -> dict

which writes `metrics.json`, `results.md` and plots into `out` and returns the metrics; `run_experiment`
then renders them into `out/report.html` (store/experiment_report.py). Modules are
imported lazily, so a missing or broken experiment never slows or breaks the others.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

from superalign.errors import UserError

EXPERIMENTS = ("noisy-labels", "co-optimize", "w2s", "sandwich", "self-enhance", "teacher-student", "intrinsic")


def module_name(name: str) -> str:
    return f"superalign.experiments.{name.replace('-', '_')}"


def available_experiments() -> list[str]:
    """The names in EXPERIMENTS whose module exists in this checkout."""
    return [n for n in EXPERIMENTS if importlib.util.find_spec(module_name(n)) is not None]


def load_experiment(name: str) -> Any:
    """The experiment module for `name`; UserError (exit 2) naming the available ones otherwise."""
    import difflib

    avail = available_experiments()
    if name not in EXPERIMENTS or name not in avail:
        close = difflib.get_close_matches(name, list(EXPERIMENTS), n=1)
        what = "is not built yet" if name in EXPERIMENTS else "is not an experiment"
        hint = f"; did you mean '{close[0]}'?" if close and close[0] != name else ""
        raise UserError(f"experiment '{name}' {what}{hint}. Available: {', '.join(avail) or 'none'}"
                        f" (all planned: {', '.join(EXPERIMENTS)})")
    return importlib.import_module(module_name(name))


def run_experiment(name: str, out: Path, quick: bool = False, seeds: int | None = None,
                   learner: str = "embedded", progress: Any = None) -> dict:
    """Run experiment `name` into `out` (created); returns its metrics dict."""
    from superalign.experiments.common import no_progress

    if seeds is not None and seeds < 1:
        raise UserError(f"--seeds {seeds}: must be >= 1 (CIs need >= 2; the issue asks for >= 3)")
    module = load_experiment(name)
    out.mkdir(parents=True, exist_ok=True)
    metrics = module.run(out, quick, seeds, learner, progress or no_progress)
    from superalign.store.experiment_report import write_experiment_report

    write_experiment_report(out, name)  # DIR/report.html: results.md + plots + headline numbers
    return metrics
