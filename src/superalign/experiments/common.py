"""Pieces every experiment shares: output files, CIs over seeds, plots, progress, and the pair pool.

Output layout of `superalign experiment NAME --out DIR`: `DIR/metrics.json` (written atomically),
`DIR/results.md` (markdown tables), `DIR/*.png` (matplotlib, Agg backend).

The *pair pool* is a fixed set of preference pairs built once from the learner and cached on disk
(keyed by its settings), so experiments that compare training recipes start from the same data and
do not regenerate it. Harmful prompts: a safe refusal (the learner's own refusal revision) chosen vs
the learner's compliant sample rejected; benign-edgy prompts: the learner's helpful answer chosen vs
a refusal rejected. Both are judged by the default (ensemble) critic, exactly as in `loop.py`.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from superalign.records import Pair, Query

Progress = Callable[[str, int, int], None]  # (stage label, steps done, steps in the stage)


def no_progress(stage: str, done: int, total: int) -> None:
    """A Progress that shows nothing (tests, library use)."""


class RichProgress:
    """A rich progress display with one bar per stage label: `with RichProgress() as p: p("train", 3, 10)`."""

    def __enter__(self) -> RichProgress:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.p = Progress(
            TextColumn("  {task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self.p.__enter__()
        self.tasks: dict[str, Any] = {}
        return self

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.p.console.is_terminal:  # a log file: rich draws nothing until the end, so print lines
            self.p.console.print(f"  {stage}: {done}/{total}  [{time.strftime('%H:%M:%S')}]", highlight=False)
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.p.add_task(stage, total=total)
        self.p.update(self.tasks[stage], completed=done, total=total)

    def __exit__(self, *exc: Any) -> Any:
        return self.p.__exit__(*exc)


def choose_preset(
    presets: dict[str, Any], quick: bool, config: Any = None, seeds: int | None = None, learner: str | None = None
) -> tuple[str, Any]:
    """(preset name, config) of an experiment run: `config` when given (named "custom" unless it equals
    the preset), else the quick or full preset; `--seeds` overrides the config's `seeds` and `--learner`
    its pair pool's learner (when it has them)."""
    name = "quick" if quick else "full"
    cfg = config or presets[name]
    if cfg != presets[name]:
        name = "custom"
    update: dict[str, Any] = {}
    if seeds and "seeds" in type(cfg).model_fields:
        update["seeds"] = seeds
    if learner is not None and "pool" in type(cfg).model_fields:
        update["pool"] = cfg.pool.model_copy(update={"learner": learner})
    return name, cfg.model_copy(update=update) if update else cfg


# ---- statistics over seeds -------------------------------------------------------------------------
@dataclass(frozen=True)
class MeanCI:
    """Mean of `n` values with a 95 % CI (`method`: t over seeds, or percentile bootstrap)."""

    mean: float
    lo: float
    hi: float
    n: int
    method: str = "t"

    def to_dict(self) -> dict[str, Any]:
        return {"mean": _num(self.mean), "ci": [_num(self.lo), _num(self.hi)], "n": self.n, "method": self.method}

    def __str__(self) -> str:
        if self.n < 2 or math.isnan(self.lo):
            return f"{self.mean:.3f} (n={self.n})"
        return f"{self.mean:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


def mean_ci(
    values: Sequence[float | None],
    method: Literal["t", "bootstrap"] = "t",
    level: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> MeanCI:
    """Mean and CI. `t`: Student-t interval over the values (seeds); `bootstrap`: evaluate.bootstrap_ci.

    With one value the CI is NaN (written as null): one seed says nothing about the spread. `bounds`: the
    range the quantity cannot leave (RATE for a proportion, KAPPA for Cohen's kappa); the interval is cut
    to it. A t-interval over 3 seeds of a rate that is 0.25 on two seeds and 0.79 on the third reaches
    below 0 and above 1, which no rate can.
    """
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return MeanCI(float("nan"), float("nan"), float("nan"), 0, method)
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return MeanCI(m, float("nan"), float("nan"), 1, method)
    if method == "bootstrap":
        from superalign.evaluate import bootstrap_ci

        lo, hi = bootstrap_ci(vals)
    elif max(vals) == min(vals):  # no spread (scipy would warn about precision loss)
        lo = hi = m
    else:
        from scipy import stats

        sd = float(stats.tstd(vals))
        half = float(stats.t.ppf(0.5 + level / 2, len(vals) - 1)) * sd / math.sqrt(len(vals))
        lo, hi = m - half, m + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return MeanCI(m, lo, hi, len(vals), method)


RATE = (0.0, 1.0)  # bounds of a proportion (accuracy, ASR, agreement) for mean_ci
KAPPA = (-1.0, 1.0)  # bounds of Cohen's kappa


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)


def _json_safe(obj: Any) -> Any:
    """NaN/inf -> None and dataclasses with to_dict -> dicts, so metrics.json is strict JSON."""
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "to_dict"):
        return _json_safe(obj.to_dict())
    return obj


# ---- output files -----------------------------------------------------------------------------------
def write_metrics(out: Path, metrics: dict[str, Any]) -> Path:
    """`out/metrics.json`, atomically (temp file + rename), strict JSON (NaN -> null)."""
    from superalign.store.jsonl import atomic_write_text

    path = Path(out) / "metrics.json"
    atomic_write_text(path, json.dumps(_json_safe(metrics), indent=2, allow_nan=False))
    return path


def resume_runs(out: Path, experiment: str, cfg: BaseModel, resume: bool) -> tuple[list[dict], float]:
    """(rows, seconds) of the earlier run in `out` that `--resume` continues; ([], 0) without `--resume`
    or when `out` holds no metrics.json yet.

    The earlier run must be the same experiment with the same settings except `seeds`, so a run can be
    continued after a crash or grown from 1 to 3 seeds; anything else is an error naming the keys that
    differ. The caller keeps only the rows of the (setting, seed) units the earlier run finished."""
    from superalign.errors import UserError

    path = Path(out) / "metrics.json"
    if not resume or not path.is_file():
        return [], 0.0
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: cannot --resume from it ({e}); delete it or choose another --out") from None
    if old.get("experiment") != experiment:
        raise UserError(f"{path}: holds experiment {old.get('experiment')!r}, not {experiment!r}; choose another --out")
    new = _json_safe(cfg.model_dump(mode="json"))
    was = old.get("config") or {}
    differ = sorted(k for k in set(new) | set(was) if k != "seeds" and new.get(k) != was.get(k))
    if differ:
        raise UserError(
            f"{path}: --resume needs the settings of the run there; these differ: {', '.join(differ)}. "
            "Rerun with the same preset/--config (only --seeds may change) or choose another --out"
        )
    seconds = float(old.get("seconds") or 60 * float(old.get("minutes") or 0))
    return list(old.get("runs") or []), seconds


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; floats with 3 decimals, MeanCI as `mean [lo, hi]`."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "–" if math.isnan(v) else f"{v:.3f}"
        return "–" if v is None else str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def write_results(out: Path, title: str, sections: Sequence[str]) -> Path:
    """`out/results.md`: a title and the given markdown sections (tables, notes), atomically."""
    from superalign.store.jsonl import atomic_write_text

    path = Path(out) / "results.md"
    atomic_write_text(path, f"# {title}\n\n" + "\n\n".join(sections) + "\n")
    return path


def plot_with_ci(
    path: Path, x: Sequence[float], series: Mapping[str, Sequence[MeanCI]], xlabel: str, ylabel: str, title: str
) -> Path:
    """Lines of means with shaded 95 % CIs, one per series, saved as PNG (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    for name, cis in series.items():
        means = [c.mean for c in cis]
        (line,) = ax.plot(x, means, marker="o", label=name)
        lo = [c.lo if not math.isnan(c.lo) else c.mean for c in cis]
        hi = [c.hi if not math.isnan(c.hi) else c.mean for c in cis]
        ax.fill_between(x, lo, hi, alpha=0.18, color=line.get_color())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


# ---- DPO settings shared by experiments that train with the loop's DPO ---------------------------
class DPOSettings(BaseModel):
    """The DPO training settings an experiment exposes (a preset's fields); `train_config` makes the loop's
    TrainConfig from them. Subclass it to add an experiment's own fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: int = Field(0, ge=0, description="Optimiser steps per training run (0 = `epochs` full passes).")
    epochs: int = Field(2, ge=1, description="Passes over the training pairs.")
    batch_size: int = Field(8, ge=1, description="Pairs per optimiser step.")
    micro_batch: int = Field(4, ge=1, description="Pairs per forward/backward.")
    lr: float = Field(5e-4, gt=0, description="LoRA learning rate.")
    beta: float = Field(0.1, gt=0, description="DPO beta.")
    max_len: int = Field(128, ge=16, description="Max tokens of prompt + response in training.")

    def train_config(self, **changes: Any) -> Any:
        """The loop's TrainConfig with these settings, no competence replay, and `changes` on top."""
        from superalign.config import TrainConfig

        return TrainConfig(
            beta=self.beta,
            lr=self.lr,
            epochs=self.epochs,
            batch_size=self.batch_size,
            micro_batch=self.micro_batch,
            max_len=self.max_len,
            max_steps=self.steps,
            competence_replay=0,
            **changes,
        )


# ---- the shared pair pool ---------------------------------------------------------------------------
class PoolSettings(BaseModel):
    """What a pair pool is built from; the cache key is a hash of these settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    learner: str = Field("embedded", description="Backend spec that answers (embedded | tiny | scripted | HF dir).")
    harmful_train: int = Field(64, ge=0, description="Harmful training-side seed prompts answered.")
    benign_train: int = Field(48, ge=0, description="Benign-edgy training-side prompts answered.")
    harmful_heldout: int = Field(32, ge=0, description="Harmful held-out prompts (held-out pairs + ASR prompts).")
    benign_heldout: int = Field(24, ge=0, description="Benign-edgy held-out prompts (held-out pairs).")
    samples_per_query: int = Field(2, ge=1, description="Samples per harmful prompt (the most unsafe is rejected).")
    max_new_tokens: int = Field(40, ge=1, description="Tokens per sampled answer.")
    temperature: float = Field(0.8, gt=0, description="Sampling temperature.")
    top_k: int = Field(50, ge=1, description="Top-k before sampling.")
    heldout_fraction: float = Field(
        0.3, gt=0, le=0.5, description="Share of prompts held out, by near-duplicate group of the text (data/split.py)."
    )
    critic: Literal["rules", "classifier", "ensemble"] = Field(
        "ensemble", description="Critic that judges the answers."
    )
    seed: int = Field(0, description="Seeds prompt sampling and generation.")


@dataclass
class PairPool:
    """Training pairs and held-out pairs from disjoint prompts (split by near-duplicate group of the text),
    plus held-out prompts."""

    train: list[Pair]
    heldout: list[Pair]
    heldout_harmful: list[Query]  # every sampled held-out harmful prompt (ASR), with or without a pair
    heldout_benign: list[Query]
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "train": [p.to_dict() for p in self.train],
            "heldout": [p.to_dict() for p in self.heldout],
            "heldout_harmful": [q.to_dict() for q in self.heldout_harmful],
            "heldout_benign": [q.to_dict() for q in self.heldout_benign],
            "stats": self.stats,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PairPool:
        return cls(
            [Pair.from_dict(p) for p in d["train"]],
            [Pair.from_dict(p) for p in d["heldout"]],
            [Query.from_dict(q) for q in d["heldout_harmful"]],
            [Query.from_dict(q) for q in d["heldout_benign"]],
            d.get("stats", {}),
        )


def pool_cache_path(settings: PoolSettings) -> Path:
    """Where the pool for `settings` is cached: `$SUPERALIGN_CACHE/pair-pools/<hash>.json`."""
    from superalign.backends.embedded import cache_root
    from superalign.records import stable_id

    # v2: data.split groups near-duplicates before splitting; a v1 pool's train / held-out sides used the
    # exact-text split (near-paraphrases of held-out prompts in training) and must not be reused.
    key = stable_id("pair-pool-v2", json.dumps(settings.model_dump(mode="json"), sort_keys=True))
    return cache_root() / "pair-pools" / f"{key}.json"


def pair_pool(settings: PoolSettings, progress: Progress = no_progress, backend: Any = None) -> PairPool:
    """The cached pool for `settings`, built (and cached atomically) on first use.

    `backend` may pass an already loaded learner for `settings.learner` (avoids a second load).
    """
    from superalign.store.jsonl import atomic_write_text

    path = pool_cache_path(settings)
    if path.is_file():
        return PairPool.from_dict(json.loads(path.read_text(encoding="utf-8")))
    pool = build_pair_pool(settings, backend, progress)
    atomic_write_text(path, json.dumps(pool.to_dict()))
    return pool


def _sample(queries: list[Query], n: int, rng: random.Random) -> list[Query]:
    queries = sorted(queries, key=lambda q: q.id)
    return rng.sample(queries, n) if n < len(queries) else queries


def build_pair_pool(settings: PoolSettings, backend: Any = None, progress: Progress = no_progress) -> PairPool:
    """Answer, revise, judge and pair (the loop's respond -> judge -> pairs stages), uncached."""
    from superalign.backends import Sampling, load_backend
    from superalign.config import CriticConfig
    from superalign.critic import JudgeItem, build_critic, judge
    from superalign.data.benign import load_benign_edgy
    from superalign.data.seeds import load_harmful_seeds
    from superalign.data.split import split_queries
    from superalign.learner.pairs import build_pairs
    from superalign.learner.respond import respond, revise_to_refusal

    s = settings
    rng = random.Random(s.seed)
    h_train, h_held = split_queries(load_harmful_seeds(), s.heldout_fraction)
    e_train, e_held = split_queries(load_benign_edgy(), s.heldout_fraction)
    sides = {
        "train": (_sample(h_train, s.harmful_train, rng), _sample(e_train, s.benign_train, rng)),
        "heldout": (_sample(h_held, s.harmful_heldout, rng), _sample(e_held, s.benign_heldout, rng)),
    }
    model = backend if backend is not None else load_backend(s.learner)
    critic = build_critic(CriticConfig(kind=s.critic))
    n = s.samples_per_query
    out: dict[str, list[Pair]] = {}
    for k, (side, (harmful, benign)) in enumerate(sides.items()):
        progress("pair pool", 2 * k, 4)
        params = Sampling(s.max_new_tokens, s.temperature, s.top_k, s.seed * 1000 + k)
        samples = respond(harmful, model, params, n, 0) + respond(benign, model, params, 1, 0)
        rev = Sampling(min(32, s.max_new_tokens), s.temperature, s.top_k, s.seed * 1000 + 10 + k)
        revisions = revise_to_refusal(harmful, model, rev, n, 0) + revise_to_refusal(benign, model, rev, 1, 0)
        progress("pair pool", 2 * k + 1, 4)
        queries = {q.id: q for q in harmful + benign}
        responses = samples + revisions
        verdicts = judge(
            [JudgeItem(r.id, queries[r.query_id].text, r.text, queries[r.query_id].harmful) for r in responses], critic
        )
        out[side] = build_pairs(harmful + benign, samples, revisions, verdicts)
    progress("pair pool", 4, 4)
    stats: dict[str, Any] = {
        side: {
            "pairs": len(ps),
            "refuse_harmful": sum(p.kind == "refuse-harmful" for p in ps),
            "help_benign": sum(p.kind == "help-benign" for p in ps),
        }
        for side, ps in out.items()
    }
    stats["settings"] = s.model_dump(mode="json")
    stats["model"] = getattr(model, "name", s.learner)
    return PairPool(out["train"], out["heldout"], sides["heldout"][0], sides["heldout"][1], stats)


def flip_labels(pairs: Sequence[Pair], rate: float, seed: int) -> tuple[list[Pair], list[int]]:
    """Swap chosen/rejected on exactly round(rate * len(pairs)) pairs drawn at random (by `seed`).

    Returns (pairs in the original order, sorted indices of the flipped ones).
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"flip rate {rate} must be within [0, 1]")
    k = round(rate * len(pairs))
    flipped = sorted(random.Random(f"flip-{seed}-{rate}").sample(range(len(pairs)), k))
    chosen = set(flipped)
    out = [
        Pair(**{**p.to_dict(), "chosen": p.rejected, "rejected": p.chosen}) if i in chosen else p
        for i, p in enumerate(pairs)
    ]
    return out, flipped


def machine() -> dict[str, Any]:
    """CPU model name, the AMX / AVX-512 / AVX2 flags, cores; and the commit of this checkout."""
    info: dict[str, Any] = {"model_name": None, "amx": False, "avx512": False, "avx2": False}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        text = ""
    for line in text.splitlines():
        key, _, val = line.partition(":")
        if key.strip() == "Model name":
            info["model_name"] = val.strip()
        if key.strip() == "Flags":
            flags = set(val.split())
            info.update(amx="amx_tile" in flags, avx512="avx512f" in flags, avx2="avx2" in flags)
    info["cpus"] = os.cpu_count()
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
        info["commit"] = head.stdout.strip() or None
        info["dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        info["commit"], info["dirty"] = None, None
    return info
