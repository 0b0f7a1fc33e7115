"""Experiments behind `superalign experiment NAME`: each is a package `superalign.experiments.<name>` (dashes
become underscores) holding what serves that experiment alone. Its module `run` exposes

    run(out: Path, quick: bool, seeds: int | None, learner: str, progress: Progress) -> dict

(plus `config=` and, for those in RESUMABLE, `resume=`), and a dict `PRESETS` with at least `full` and `quick`
(`--preset NAME` picks any of them, e.g. debate's `pilot`), which writes `metrics.json`, `results.md` and plots
into `out` and returns the metrics; `run_experiment` then renders them into `out/report.html`
(store/experiment_report.py). Modules are imported lazily, so a missing or broken experiment never slows or
breaks the others.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

from superalign.errors import UserError

EXPERIMENTS = (
    "noisy-labels",
    "co-optimize",
    "w2s",
    "w2s-probe",
    "sandwich",
    "self-enhance",
    "teacher-student",
    "intrinsic",
    "debate",
    "review-budget",
    "weight-mix",
    "judge-quality",
)
RESUMABLE = (
    "noisy-labels",
    "co-optimize",
    "self-enhance",
    "w2s",
    "w2s-probe",
)  # their run() takes resume=True (common.resume_runs)


def module_name(name: str) -> str:
    return f"superalign.experiments.{name.replace('-', '_')}.run"


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
        raise UserError(
            f"experiment '{name}' {what}{hint}. Available: {', '.join(avail) or 'none'}"
            f" (all planned: {', '.join(EXPERIMENTS)})"
        )
    return importlib.import_module(module_name(name))


def load_experiment_config(module: Any, path: Path, quick: bool, preset: str | None = None) -> Any:
    """The experiment's config from a YAML file: either one config, or one entry per preset (`full:`,
    `quick:`, ...) like configs/experiments/NAME.yaml (the one `preset`, else --quick, selects). Bad keys or
    values: UserError with file:line."""
    from superalign.config import read_yaml, validate_model

    data, node = read_yaml(path, hint="copy one from configs/experiments/")
    cls = type(module.PRESETS["full"])
    base: tuple[Any, ...] = ()
    if data and set(data) <= {"full", "quick"} | set(module.PRESETS):
        key = preset or ("quick" if quick else "full")
        if key not in data:
            fix = f"{'drop' if quick else 'pass'} --quick" if preset is None else "choose another --preset"
            raise UserError(f"{path}: has no '{key}:' entry (it has {', '.join(data)}); add one, or {fix}")
        data, base = data[key], (key,)
    return validate_model(cls, data, str(path), node, base)


def run_experiment(
    name: str,
    out: Path,
    quick: bool = False,
    seeds: int | None = None,
    learner: str = "embedded",
    progress: Any = None,
    config: Path | None = None,
    resume: bool = False,
    preset: str | None = None,
) -> dict:
    """Run experiment `name` into `out` (created); returns its metrics dict. `config`: a YAML file that
    replaces the preset (see load_experiment_config); --seeds / --learner still override it. `resume`:
    keep the finished runs of an earlier run in `out` (experiments in RESUMABLE only). `preset`: one of the
    module's PRESETS by name (`quick` is --quick; other names are passed as the config)."""
    from superalign.experiments.common import no_progress
    from superalign.store.jsonl import make_out_dir

    if seeds is not None and seeds < 1:
        raise UserError(f"--seeds {seeds}: must be >= 1 (CIs need >= 2; the issue asks for >= 3)")
    module = load_experiment(name)
    if resume and name not in RESUMABLE:
        raise UserError(f"--resume: {name} cannot resume yet (only {', '.join(RESUMABLE)}); drop --resume")
    kwargs: dict[str, Any] = {"resume": True} if resume else {}
    if preset is not None:
        if preset not in module.PRESETS:
            raise UserError(f"--preset {preset}: {name} has the presets {', '.join(module.PRESETS)}")
        if quick and preset != "quick":
            raise UserError(f"--quick and --preset {preset} disagree; give one of them")
        quick = preset == "quick"
        if preset not in ("quick", "full"):
            kwargs["config"] = module.PRESETS[preset]
    if config is not None:
        kwargs["config"] = load_experiment_config(module, config, quick, preset)
    make_out_dir(out)
    metrics = module.run(out, quick, seeds, learner, progress or no_progress, **kwargs)
    from superalign.store.experiment_report import write_experiment_report

    write_experiment_report(out, name)  # DIR/report.html: results.md + plots + headline numbers
    return metrics
