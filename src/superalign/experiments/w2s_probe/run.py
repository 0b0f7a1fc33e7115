"""`superalign experiment w2s-probe`: weak-to-strong generalisation with a linear-probe student, gap gates
and controls (issue 27, item 1). The fine-tuning arm stays in `superalign experiment w2s`.

Per task and seed the items are split by group into three disjoint parts: weak-train (ground truth for
the weak supervisor), student-train (the weak supervisor's hard labels for the student) and test.

- Strong student: logistic regression (sklearn, C by inner CV on its own training labels) on cached
  SmolLM2-135M features: the mean over the candidate's tokens after `student_layers` (15 and 30 blocks)
  plus the last token after the top one (layer_features.py; one forward pass gives every layer).
- Weak supervisors: the same probe on the states after the first 1, 2 and 4 blocks (`L1`, `L2`, `L4`:
  mean + last token), trained on weak-train's ground truth; `bow` (TF-IDF + logistic) as a contrast.
- Ceiling: the student probe trained on student-train's ground truth.
- Gate: PGR = (student - weak) / (ceiling - weak) only where ceiling - weak >= `min_gap` (0.15) on the
  seed-mean accuracies; otherwise "undefined", and never pooled.
- Pooled PGR per weak supervisor: inverse-variance weighted mean over the tasks that pass the gate, the
  variances from a bootstrap over test items (groups resampled once per task, shared by the seeds, so a
  test item in several seeds' test parts counts consistently).
- Controls: `flip` (ground truth with exactly as many random flips as the weak labels have errors: the
  same noise rate without its structure), strong-to-strong (`s2s`: a student-probe supervisor trained on
  weak-train supervises a fresh student probe) and a bootstrapping chain (`chain`: L2 labels half A of
  student-train, an L8 probe learns them and labels half B, the student learns B; against the student
  learning B from L2 directly).
- Copy rate: among test items the weak supervisor gets wrong, the share the student gets wrong too (on a
  binary task: agrees with the weak label); the same for the flip control and the ceiling (the overlap of
  errors one would see anyway).
- Misfit: regress the student's gain over its supervisor on its misfit to it, per (task, weak, seed)
  cell, with squared loss on probabilities (the theorem's quantities: gain = Brier(weak) - Brier(student),
  misfit = mean (p_student - p_weak)^2) and with 0-1 loss (accuracy gain on disagreement rate).

Multiple-choice tasks (sciq, piqa, hellaswag) are binary by `mc_format`: `pair` (default; question +
option A vs question + option B, the correct option and one wrong one, order balanced; the feature is
phi(A) - phi(B), so a linear probe scores each option and compares, as the log-likelihood evaluation
does, and no question-level offset has to be learned) or `option` (question + one option, label =
correct or not; one correct and one wrong option per question, both in the same split part).
"""

from __future__ import annotations

import json
import math
import random
import re
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from superalign.experiments.common import (
    Progress,
    choose_preset,
    machine,
    markdown_table,
    write_metrics,
    write_results,
)

TASKS = ("sst2", "sciq", "piqa", "hellaswag")
ARROW = {
    "sst2": "hf_datasets/glue/sst2/validation/data-00000-of-00001.arrow",
    "sciq": "hf_datasets/sciq/none/validation/data-00000-of-00001.arrow",
    "piqa": "hf_datasets/piqa/plain_text/validation/data-00000-of-00001.arrow",
    "hellaswag": "hf_datasets/hellaswag/none/validation/data-00000-of-00001.arrow",
}
SST2_PROMPT = "Is the sentiment of this movie review positive or negative?"
LAYER_KIND = re.compile(r"L([0-9]+)")


class W2SProbeConfig(BaseModel):
    """One preset of the experiment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tasks: tuple[str, ...] = Field(TASKS, description="Binary tasks: sst2 | sciq | piqa | hellaswag.")
    limit: int = Field(0, ge=0, description="Items (questions) per task, a fixed random subset (0 = all).")
    mc_format: Literal["pair", "option"] = Field(
        "pair", description="Multiple-choice items: pair (option A vs B, which is correct) | option (correct or not)."
    )
    test_fraction: float = Field(0.3, gt=0, lt=1, description="Share of groups in the test part.")
    weak: tuple[str, ...] = Field(
        ("L1", "L2", "L4", "bow"),
        description="Weak supervisors: L<k> (a probe on the states after the first k blocks) | bow (TF-IDF).",
    )
    student_layers: tuple[int, int] = Field(
        (15, 30), description="Student features: mean pool after these blocks + the last token after the second."
    )
    chain: tuple[int, int] = Field((2, 8), description="Bootstrapping chain: L<a> -> L<b> probe -> the student.")
    min_gap: float = Field(0.15, ge=0, description="Gate: PGR only where ceiling - weak >= this (seed means).")
    seeds: int = Field(3, ge=1, description="Seeds: split + flips + inner CV folds.")
    cs: tuple[float, ...] = Field(
        (1e-4, 1e-3, 1e-2, 1e-1), description="Inverse L2 strengths tried by each probe's inner CV (standardised)."
    )
    cv_folds: int = Field(3, ge=2, description="Inner CV folds (on the probe's own training labels).")
    context_tokens: int = Field(
        48, ge=1, description="Context tokens kept (the last ones): question, goal, story (hellaswag's run longer)."
    )
    candidate_tokens: int = Field(48, ge=1, description="Candidate tokens kept: the review, the option.")
    model_dir: str = Field("", description="HF model dir of the backbone ('' = embedded SmolLM2-135M).")
    bootstrap: int = Field(1000, ge=100, description="Bootstrap resamples (test groups; misfit cells).")

    @field_validator("weak")
    @classmethod
    def _known_weak(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for kind in v:
            m = LAYER_KIND.fullmatch(kind)
            if kind != "bow" and not (m and int(m.group(1)) >= 1):
                raise ValueError(f"unknown weak supervisor {kind!r}; choose from L<k> (k >= 1), bow")
        return v

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for t in v:
            if t not in TASKS:
                raise ValueError(f"unknown task {t!r}; choose from {', '.join(TASKS)}")
        return v

    def kept_layers(self) -> tuple[int, ...]:
        """Every depth whose states some model reads, ascending."""
        ks = {int(m.group(1)) for k in self.weak if (m := LAYER_KIND.fullmatch(k))}
        return tuple(sorted(ks | set(self.chain) | set(self.student_layers)))


PRESETS = {
    # sst2 872, sciq 1,000, piqa 1,838, hellaswag 3,000 of 10,042 items (12,548 texts); 5 seeds
    "full": W2SProbeConfig(limit=3000, seeds=5),
    # 500 items per task (3,500 texts, a subset of the full preset's), 3 seeds
    "quick": W2SProbeConfig(limit=500, seeds=3),
}


# ---- items ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    """One binary item. `candidates`: one text (label = its class) or two (label 1 = the first is correct);
    `group` keeps related items (one question's options) in one split part."""

    id: str
    group: str
    context: str
    candidates: tuple[str, ...]
    label: int


def _rows(task: str) -> list[dict[str, Any]]:
    from superalign.data.assets import olmo_rows

    return olmo_rows(ARROW[task])


def _hellaswag_text(s: str) -> str:
    """lm-evaluation-harness's HellaSwag clean-up: drop WikiHow's [bracket] markers and double spaces."""
    s = s.strip().replace(" [title]", ". ")
    s = re.sub(r"\[.*?\]", "", s)
    return s.replace("  ", " ").strip()


def mc_questions(task: str) -> list[tuple[str, str, str, str]]:
    """(id, question/context, correct option, one wrong option) per multiple-choice question; the wrong
    option is drawn once per question (seeded by its id)."""
    out = []
    if task == "sciq":
        for i, r in enumerate(_rows(task)):
            q, right = r["question"].strip(), r["correct_answer"].strip()
            wrongs = [r[f"distractor{j}"].strip() for j in (1, 2, 3)]
            wrongs = [w for w in wrongs if w and w != right]
            if q and right and wrongs:
                out.append((f"sciq-{i}", q, right, random.Random(f"sciq-{i}").choice(wrongs)))
    elif task == "piqa":
        for i, r in enumerate(_rows(task)):
            sols = [r["sol1"].strip(), r["sol2"].strip()]
            lab = int(r["label"])
            if r["goal"].strip() and all(sols) and sols[0] != sols[1] and lab in (0, 1):
                out.append((f"piqa-{i}", r["goal"].strip(), sols[lab], sols[1 - lab]))
    elif task == "hellaswag":
        for i, r in enumerate(_rows(task)):
            ends = [_hellaswag_text(e) for e in r["endings"]]
            lab = int(r["label"])
            ctx = _hellaswag_text(f"{r['activity_label']}: {r['ctx']}")
            wrongs = [e for j, e in enumerate(ends) if j != lab and e and e != ends[lab]]
            if ends[lab] and wrongs:
                out.append((f"hellaswag-{i}", ctx, ends[lab], random.Random(f"hellaswag-{i}").choice(wrongs)))
    else:
        raise ValueError(f"{task} is not a multiple-choice task")
    return out


def _first(rows: list[Any], limit: int, task: str) -> list[Any]:
    """The first `limit` rows of a fixed shuffle (all when `limit` is 0): a smaller limit takes a subset of a
    larger one's rows, so the quick preset's texts are in the full preset's feature cache."""
    rows = list(rows)
    random.Random(f"w2s-probe-data-{task}").shuffle(rows)
    return rows if limit <= 0 else rows[:limit]


def load_items(task: str, limit: int = 0, mc_format: str = "pair") -> list[Item]:
    """The binary items of `task`: all, or a fixed random `limit` of its rows (questions)."""
    if task == "sst2":
        rows = _first(
            [(f"sst2-{r['idx']}", r["sentence"].strip(), int(r["label"])) for r in _rows("sst2")], limit, task
        )
        return sorted((Item(i, i, SST2_PROMPT, (s,), y) for i, s, y in rows), key=lambda it: it.id)
    qs = _first(mc_questions(task), limit, task)
    if mc_format == "option":
        return sorted(
            [Item(f"{i}+", i, q, (right,), 1) for i, q, right, _ in qs]
            + [Item(f"{i}-", i, q, (wrong,), 0) for i, q, _, wrong in qs],
            key=lambda it: it.id,
        )
    # pair: the correct option comes first on every other question of the fixed shuffle (balanced in any prefix)
    return sorted(
        (
            Item(i, i, q, (right, wrong) if k % 2 == 0 else (wrong, right), int(k % 2 == 0))
            for k, (i, q, right, wrong) in enumerate(qs)
        ),
        key=lambda it: it.id,
    )


# ---- splits, flips, gates, pooling, copying: the pieces the tests check by hand ---------------------
def split_parts(groups: Sequence[str], test_fraction: float, seed: int) -> tuple[list[int], list[int], list[int]]:
    """Indices of (weak-train, student-train, test): disjoint, whole groups, shuffled by `seed`."""
    order = sorted(set(groups))
    random.Random(f"w2s-probe-split-{seed}").shuffle(order)
    n_test = max(1, round(test_fraction * len(order)))
    rest = order[n_test:]
    part = {g: 2 for g in order[:n_test]}
    part.update({g: 0 for g in rest[: len(rest) // 2]})
    part.update({g: 1 for g in rest[len(rest) // 2 :]})
    out: tuple[list[int], list[int], list[int]] = ([], [], [])
    for i, g in enumerate(groups):
        out[part[g]].append(i)
    return out


def halves(idx: Sequence[int], groups: Sequence[str], seed: int) -> tuple[list[int], list[int]]:
    """`idx` cut into two halves by group (the chain's A and B), shuffled by `seed`."""
    gs = sorted({groups[i] for i in idx})
    random.Random(f"w2s-probe-chain-{seed}").shuffle(gs)
    a = set(gs[: len(gs) // 2])
    return [i for i in idx if groups[i] in a], [i for i in idx if groups[i] not in a]


def flip_like(truth: Any, weak: Any, seed: int) -> Any:
    """Ground truth with exactly as many random flips as `weak` (hard labels) has errors: the weak labels'
    noise rate without their structure."""
    import numpy as np

    truth = np.asarray(truth).astype(int)
    k = int((np.asarray(weak).astype(int) != truth).sum())
    out = truth.copy()
    where = np.random.default_rng(seed).choice(len(truth), size=k, replace=False)
    out[where] = 1 - out[where]
    return out


def gated_pgr(weak: float, student: float, ceiling: float, min_gap: float) -> float | None:
    """(student - weak) / (ceiling - weak); None ("undefined") when ceiling - weak < min_gap."""
    gap = ceiling - weak
    if gap < min_gap or gap <= 0:
        return None
    return (student - weak) / gap


def inverse_variance_pool(cells: Sequence[tuple[float | None, float]]) -> dict[str, Any]:
    """Inverse-variance weighted mean of (estimate, variance) cells; undefined estimates (None) and cells
    without a positive finite variance are left out. Returns pooled value, SE, normal 95 % CI, weights."""
    used = [(v, var) for v, var in cells if v is not None and var is not None and 0 < var < math.inf]
    if not used:
        return {"pooled": None, "se": None, "ci": [None, None], "weights": [], "n": 0}
    w = [1.0 / var for _, var in used]
    pooled = sum(wi * v for wi, (v, _) in zip(w, used)) / sum(w)
    se = math.sqrt(1.0 / sum(w))
    return {
        "pooled": pooled,
        "se": se,
        "ci": [pooled - 1.959964 * se, pooled + 1.959964 * se],
        "weights": [wi / sum(w) for wi in w],
        "n": len(used),
    }


def copy_rate(weak_pred: Any, student_pred: Any, truth: Any) -> float | None:
    """Among items the weak supervisor gets wrong, the share where the student gives the same answer
    (binary: is wrong too); None when the weak supervisor makes no mistake."""
    import numpy as np

    w, s, y = (np.asarray(v).astype(int) for v in (weak_pred, student_pred, truth))
    wrong = w != y
    if not wrong.any():
        return None
    return float((s[wrong] == w[wrong]).mean())


def ols(x: Any, y: Any) -> tuple[float, float]:
    """(slope, intercept) of least squares y ~ a x + b."""
    import numpy as np

    xa, ya = np.asarray(x, float), np.asarray(y, float)
    vx = float(((xa - xa.mean()) ** 2).sum())
    slope = float(((xa - xa.mean()) * (ya - ya.mean())).sum() / vx) if vx > 0 else float("nan")
    return slope, float(ya.mean() - slope * xa.mean())


def misfit_regression(x: Sequence[float], y: Sequence[float], n_boot: int, seed: int = 0) -> dict[str, Any]:
    """OLS of gain on misfit over cells, with percentile 95 % CIs from resampling cells."""
    import numpy as np

    slope, icpt = ols(x, y) if len(x) >= 3 else (float("nan"), float("nan"))
    if math.isnan(slope):  # under 3 cells, or no spread in misfit
        none = [None, None]
        return {"slope": None, "slope_ci": none, "intercept": None, "intercept_ci": none, "r2": None, "n": len(x)}
    xa, ya = np.asarray(x, float), np.asarray(y, float)
    resid = ya - (slope * xa + icpt)
    r2 = 1 - float((resid**2).sum()) / max(1e-12, float(((ya - ya.mean()) ** 2).sum()))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        j = rng.integers(0, len(xa), len(xa))
        s, b = ols(xa[j].tolist(), ya[j].tolist())
        if not math.isnan(s):
            boots.append((s, b))
    return {
        "slope": round(slope, 4),
        "slope_ci": _ci([b[0] for b in boots]),
        "intercept": round(icpt, 5),
        "intercept_ci": _ci([b[1] for b in boots], 5),
        "r2": round(r2, 4),
        "n": len(xa),
    }


# ---- probes -----------------------------------------------------------------------------------------
class Constant:
    """A 'probe' for a one-class training set: always that class."""

    def __init__(self, label: int) -> None:
        self.p = float(label)

    def predict_proba(self, x: Any) -> Any:
        import numpy as np

        n = x.shape[0]
        return np.column_stack([np.full(n, 1 - self.p), np.full(n, self.p)])


def fit_probe(x: Any, y: Any, groups: Sequence[str], cfg: W2SProbeConfig, seed: int, centered: bool) -> Any:
    """Standardise -> L2 logistic regression, C chosen by `cv_folds`-fold grouped CV (log loss) on these
    labels. `centered` False (pair items, antisymmetric features): no mean removal, no intercept, so the
    probe is w.(phi(A) - phi(B)) and swapping A and B flips its answer exactly."""
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(y).astype(int)
    counts = np.bincount(y, minlength=2)
    if counts.min() < cfg.cv_folds:
        return Constant(int(counts.argmax()))
    splits = list(
        StratifiedGroupKFold(n_splits=cfg.cv_folds, shuffle=True, random_state=seed).split(x, y, groups=list(groups))
    )
    clf = LogisticRegressionCV(
        Cs=list(cfg.cs),
        cv=splits,
        fit_intercept=centered,
        scoring="neg_log_loss",
        max_iter=500,
        l1_ratios=(0.0,),
        use_legacy_attributes=False,
    )
    scaler = StandardScaler(with_mean=centered and not _sparse(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return make_pipeline(scaler, clf).fit(x, y)


def _sparse(x: Any) -> bool:
    import scipy.sparse as sp

    return bool(sp.issparse(x))


def p1(model: Any, x: Any) -> Any:
    """P(label 1) as a float array."""
    return model.predict_proba(x)[:, 1].astype(float)


# ---- features ---------------------------------------------------------------------------------------
class TaskData:
    """One task's items and their features: per-layer SmolLM2 states (cached) and TF-IDF inputs."""

    def __init__(self, task: str, cfg: W2SProbeConfig, progress: Progress) -> None:
        import numpy as np

        from superalign.experiments.w2s_probe.layer_features import LayerFeatures

        self.task, self.cfg = task, cfg
        self.items = load_items(task, cfg.limit, cfg.mc_format)
        self.y = np.asarray([it.label for it in self.items], dtype=int)
        self.groups = [it.group for it in self.items]
        self.centered = all(len(it.candidates) == 1 for it in self.items)
        self.lf = LayerFeatures(
            model_dir=cfg.model_dir,
            layers=cfg.kept_layers(),
            context_tokens=cfg.context_tokens,
            candidate_tokens=cfg.candidate_tokens,
        )
        texts = list(dict.fromkeys((it.context, c) for it in self.items for c in it.candidates))
        pos = {t: j for j, t in enumerate(texts)}
        arr = self.lf.encode(
            [c for c, _ in texts],
            [r for _, r in texts],
            lambda done, total: progress(f"w2s-probe features: {task}", done, total),
        )
        rows = [[pos[(it.context, c)] for c in it.candidates] for it in self.items]
        self.states = np.stack([arr[r[0]] - arr[r[1]] if len(r) == 2 else arr[r[0]] for r in rows])
        self.n_texts = len(texts)

    def layer(self, k: int) -> Any:
        """(n, 2 * hidden): mean + last token after the first k blocks."""
        j = self.lf.index(k)
        return self.states[:, j].reshape(len(self.items), -1)

    def student(self) -> Any:
        """(n, 3 * hidden): mean after the two student layers + the last token after the top one."""
        import numpy as np

        mid, top = (self.lf.index(k) for k in self.cfg.student_layers)
        s = self.states
        return np.concatenate([s[:, mid, 0], s[:, top, 0], s[:, top, 1]], axis=1)

    def texts(self, it: Item) -> list[str]:
        return [f"{it.context} {c}" for c in it.candidates]


def bow_probs(data: TaskData, w: list[int], others: list[list[int]], seed: int) -> list[Any]:
    """TF-IDF (1-2 grams, fit on weak-train's texts) + logistic regression on weak-train's ground truth;
    pair items use tfidf(A) - tfidf(B). P(1) on each index list in `others`."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    vec.fit([t for i in w for t in data.texts(data.items[i])])

    def x(idx: list[int]) -> Any:
        its = [data.items[i] for i in idx]
        first = vec.transform([data.texts(it)[0] for it in its])
        if data.centered:
            return first
        return first - vec.transform([data.texts(it)[1] for it in its])

    model = fit_probe(x(w), data.y[w], [data.groups[i] for i in w], data.cfg, seed, data.centered)
    return [p1(model, x(idx)) for idx in others]


# ---- one (task, seed) -------------------------------------------------------------------------------
def run_unit(data: TaskData, seed: int, progress: Progress | None = None) -> dict[str, Any]:
    """Every model of one (task, seed): test predictions (digit strings, for the bootstrap) and the
    per-cell misfit quantities."""

    cfg, y, g = data.cfg, data.y, data.groups
    w, s, t = split_parts(g, cfg.test_fraction, seed)
    xs = data.student()
    steps = 2 * len(cfg.weak) + 7  # ceiling, 2 per weak supervisor, s2s, 4 chain fits, the summary
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(f"w2s-probe probes: {data.task} seed {seed}", done, steps)

    def fit(x: Any, idx: list[int], labels: Any) -> Any:
        return fit_probe(x[idx], labels, [g[i] for i in idx], cfg, seed, data.centered)

    preds: dict[str, Any] = {}
    probs: dict[str, Any] = {}
    ceiling = fit(xs, s, y[s])
    probs["ceiling"] = p1(ceiling, xs[t])
    tick()
    cells: dict[str, dict[str, Any]] = {}
    for kind in cfg.weak:
        if kind == "bow":
            p_s, p_t = bow_probs(data, w, [s, t], seed)
        else:
            xk = data.layer(int(kind[1:]))
            m = fit(xk, w, y[w])
            p_s, p_t = p1(m, xk[s]), p1(m, xk[t])
        tick()
        hard = (p_s >= 0.5).astype(int)
        probs[f"weak:{kind}"] = p_t
        probs[f"student:{kind}"] = p1(fit(xs, s, hard), xs[t])
        flipped = flip_like(y[s], hard, seed)
        probs[f"flip:{kind}"] = p1(fit(xs, s, flipped), xs[t])
        tick()
        cells[kind] = {
            "weak_label_error": round(float((hard != y[s]).mean()), 4),
            "flip_label_error": round(float((flipped != y[s]).mean()), 4),
        }
    # strong-to-strong: the student probe trained on weak-train supervises a fresh student probe
    sup = fit(xs, w, y[w])
    probs["s2s:sup"] = p1(sup, xs[t])
    probs["s2s:student"] = p1(fit(xs, s, (p1(sup, xs[s]) >= 0.5).astype(int)), xs[t])
    tick()
    # bootstrapping chain: L<a> (weak-train) -> L<b> probe on half A -> student on half B
    a_k, b_k = cfg.chain
    a, b = halves(s, g, seed)
    xa = data.layer(a_k)
    first = fit(xa, w, y[w])
    if f"L{a_k}" not in cfg.weak:
        probs[f"weak:L{a_k}"] = p1(first, xa[t])
    xb = data.layer(b_k)
    mid = fit(xb, a, (p1(first, xa[a]) >= 0.5).astype(int))
    probs["chain:mid"] = p1(mid, xb[t])
    tick()
    probs["chain:final"] = p1(fit(xs, b, (p1(mid, xb[b]) >= 0.5).astype(int)), xs[t])
    tick()
    probs["chain:direct"] = p1(fit(xs, b, (p1(first, xa[b]) >= 0.5).astype(int)), xs[t])
    tick()
    probs["chain:ceiling"] = p1(fit(xs, b, y[b]), xs[t])
    tick()
    for k, p in probs.items():
        preds[k] = (p >= 0.5).astype(int)
    yt = y[t]
    for kind, c in cells.items():
        pw, ps = probs[f"weak:{kind}"], probs[f"student:{kind}"]
        c["brier_weak"] = round(float(((pw - yt) ** 2).mean()), 5)
        c["brier_student"] = round(float(((ps - yt) ** 2).mean()), 5)
        c["misfit_sq"] = round(float(((ps - pw) ** 2).mean()), 5)
        c["misfit_01"] = round(float((preds[f"student:{kind}"] != preds[f"weak:{kind}"]).mean()), 5)
        c["gain_acc"] = round(float((preds[f"student:{kind}"] == yt).mean() - (preds[f"weak:{kind}"] == yt).mean()), 5)
    tick()
    return {
        "task": data.task,
        "seed": seed,
        "n": {"weak_train": len(w), "student_train": len(s), "test": len(t), "chain_a": len(a), "chain_b": len(b)},
        "test": t,
        "pred": {k: "".join(map(str, v.tolist())) for k, v in preds.items()},
        "cells": cells,
    }


# ---- summaries --------------------------------------------------------------------------------------
def digits(v: str) -> Any:
    import numpy as np

    return np.frombuffer(v.encode("ascii"), dtype=np.uint8).astype(int) - ord("0")


def task_bootstrap(units: list[dict[str, Any]], y: Any, groups: Sequence[str], n: int, seed: int) -> dict[str, Any]:
    """Seed-mean test accuracy of every model: the point value and `n` bootstrap replicates, resampling the
    task's groups once per replicate (shared by the seeds: overlapping test parts stay consistent)."""
    import numpy as np

    gid = {gname: j for j, gname in enumerate(sorted(set(groups)))}
    item_group = np.asarray([gid[gname] for gname in groups])
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(gid), np.full(len(gid), 1.0 / len(gid)), size=n)  # (n, groups)
    keys = list(units[0]["pred"])
    point = {k: 0.0 for k in keys}
    boot = {k: np.zeros(n) for k in keys}
    for u in units:
        t = np.asarray(u["test"])
        wts = counts[:, item_group[t]].astype(float)  # (n, |test|)
        tot = np.maximum(wts.sum(1), 1e-12)
        for k in keys:
            c = (digits(u["pred"][k]) == y[t]).astype(float)
            point[k] += float(c.mean()) / len(units)
            boot[k] += (wts @ c) / tot / len(units)
    return {"point": point, "boot": boot}


def _ci(v: Any, digits: int = 4) -> list[float | None]:
    """Percentile 95 % interval of the finite values; [None, None] with fewer than 10."""
    import numpy as np

    v = np.asarray(v, float)
    v = v[np.isfinite(v)]
    if len(v) < 10:
        return [None, None]
    return [round(float(np.percentile(v, 2.5)), digits), round(float(np.percentile(v, 97.5)), digits)]


def pgr_samples(bs: dict[str, Any], weak: str, student: str, ceiling: str) -> Any:
    """Bootstrap replicates of (student - weak) / (ceiling - weak) (inf / nan where the gap is 0)."""
    import numpy as np

    b = bs["boot"]
    with np.errstate(divide="ignore", invalid="ignore"):
        return (b[student] - b[weak]) / (b[ceiling] - b[weak])


def pgr_cell(bs: dict[str, Any], weak: str, student: str, ceiling: str, min_gap: float) -> dict[str, Any]:
    """Gated PGR of one (task, weak supervisor, student), its bootstrap CI and variance."""
    import numpy as np

    pt = bs["point"]
    gap = pt[ceiling] - pt[weak]
    value = gated_pgr(pt[weak], pt[student], pt[ceiling], min_gap)
    out: dict[str, Any] = {"gap": round(gap, 4), "pgr": None, "ci": [None, None], "var": None}
    if value is None:
        return out
    samples = pgr_samples(bs, weak, student, ceiling)
    samples = samples[np.isfinite(samples)]
    out.update(pgr=round(value, 4), ci=_ci(samples), var=float(np.var(samples, ddof=1)))
    return out


def diff_cell(bs: dict[str, Any], a: str, b: str) -> dict[str, Any]:
    """acc(a) - acc(b) with its bootstrap CI."""
    return {
        "diff": round(bs["point"][a] - bs["point"][b], 4),
        "ci": _ci(bs["boot"][a] - bs["boot"][b]),
    }


def copy_rates(units: list[dict[str, Any]], y: Any, kind: str) -> dict[str, float | None]:
    """Copy rate of the student, the flip control and the ceiling, pooled over seeds (counts)."""
    import numpy as np

    out: dict[str, float | None] = {}
    for who in ("student", "flip", "ceiling"):
        num = den = 0
        for u in units:
            yt = y[np.asarray(u["test"])]
            w = digits(u["pred"][f"weak:{kind}"])
            other = digits(u["pred"]["ceiling" if who == "ceiling" else f"{who}:{kind}"])
            wrong = w != yt
            num += int((other[wrong] == w[wrong]).sum())
            den += int(wrong.sum())
        out[who] = round(num / den, 4) if den else None
    return out


def summarise(runs: list[dict[str, Any]], data: dict[str, TaskData], cfg: W2SProbeConfig) -> dict[str, Any]:
    """Per task: accuracies [CI], gated PGR per weak supervisor (student and flip control), copy rates,
    strong-to-strong and chain; pooled PGR per weak supervisor; the misfit regressions."""
    import numpy as np

    per_task: dict[str, Any] = {}
    for j, task in enumerate(cfg.tasks):
        units = [r for r in runs if r["task"] == task]
        if not units:
            continue
        d = data[task]
        bs = task_bootstrap(units, d.y, d.groups, cfg.bootstrap, seed=j)
        acc = {k: {"mean": round(v, 4), "ci": _ci(bs["boot"][k])} for k, v in bs["point"].items()}
        weak = {}
        for kind in cfg.weak:
            weak[kind] = {
                "student": pgr_cell(bs, f"weak:{kind}", f"student:{kind}", "ceiling", cfg.min_gap),
                "flip": pgr_cell(bs, f"weak:{kind}", f"flip:{kind}", "ceiling", cfg.min_gap),
                "student_minus_flip": diff_cell(bs, f"student:{kind}", f"flip:{kind}"),
                "copy_rate": copy_rates(units, d.y, kind),
                "weak_label_error": round(float(np.mean([u["cells"][kind]["weak_label_error"] for u in units])), 4),
                "flip_label_error": round(float(np.mean([u["cells"][kind]["flip_label_error"] for u in units])), 4),
            }
        a_k = cfg.chain[0]
        per_task[task] = {
            "n_items": len(d.items),
            "n_texts": d.n_texts,
            "n": units[0]["n"],
            "seeds": len(units),
            "accuracy": acc,
            "weak": weak,
            "s2s": {"gain": diff_cell(bs, "s2s:student", "s2s:sup")},
            "chain": {
                "final": pgr_cell(bs, f"weak:L{a_k}", "chain:final", "chain:ceiling", cfg.min_gap),
                "direct": pgr_cell(bs, f"weak:L{a_k}", "chain:direct", "chain:ceiling", cfg.min_gap),
                "final_minus_direct": diff_cell(bs, "chain:final", "chain:direct"),
            },
            "_boot": bs,
        }
    pooled: dict[str, Any] = {}
    for kind in cfg.weak:
        pooled[kind] = {}
        for arm in ("student", "flip"):
            cells = [(per_task[t]["weak"][kind][arm]["pgr"], per_task[t]["weak"][kind][arm]["var"]) for t in per_task]
            pool = inverse_variance_pool(cells)
            used = [t for t in per_task if per_task[t]["weak"][kind][arm]["pgr"] is not None]
            # bootstrap of the pooled estimate: tasks resampled independently, weights held fixed
            boot_ci: list[float | None] = [None, None]
            if pool["n"]:
                samples = sum(
                    wt * pgr_samples(per_task[t]["_boot"], f"weak:{kind}", f"{arm}:{kind}", "ceiling")
                    for wt, t in zip(pool["weights"], used)
                )
                boot_ci = _ci(samples)
            pooled[kind][arm] = {
                "pooled": None if pool["pooled"] is None else round(pool["pooled"], 4),
                "se": None if pool["se"] is None else round(pool["se"], 4),
                "ci": [None if v is None else round(v, 4) for v in pool["ci"]],
                "bootstrap_ci": boot_ci,
                "tasks": used,
                "weights": [round(v, 4) for v in pool["weights"]],
                "undefined": [t for t in per_task if t not in used],
            }
    xs_sq, ys_sq, xs_01, ys_01 = [], [], [], []
    for r in runs:
        for c in r["cells"].values():
            xs_sq.append(c["misfit_sq"])
            ys_sq.append(c["brier_weak"] - c["brier_student"])
            xs_01.append(c["misfit_01"])
            ys_01.append(c["gain_acc"])
    misfit = {
        "squared": misfit_regression(xs_sq, ys_sq, cfg.bootstrap),
        "zero_one": misfit_regression(xs_01, ys_01, cfg.bootstrap),
    }
    for v in per_task.values():
        del v["_boot"]
    return {"tasks": per_task, "pooled": pooled, "misfit": misfit}


# ---- the run ----------------------------------------------------------------------------------------
def run(
    out: Path,
    quick: bool,
    seeds: int | None,
    learner: str,
    progress: Progress,
    config: W2SProbeConfig | None = None,
    resume: bool = False,
) -> dict:
    """Encode every task's texts (cached), run each (task, seed) unit, summarise, write the outputs.
    metrics.json is rewritten after each unit (`complete`: false until the end); with `resume` the units an
    earlier run in `out` finished are kept (same settings; `--seeds` may grow), and its time is added."""
    from superalign.experiments.common import resume_runs

    t0 = time.time()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    host = machine()  # at the start: the commit that ran, before any later edit to the checkout
    preset, cfg = choose_preset(PRESETS, quick, config, seeds)
    if learner != "embedded":
        from superalign.errors import UserError

        if not Path(learner).expanduser().is_dir():
            raise UserError(f"w2s-probe --learner {learner}: give 'embedded' or an HF model directory")
        cfg = cfg.model_copy(update={"model_dir": str(Path(learner).expanduser())})
    old, old_seconds = resume_runs(out, "w2s-probe", cfg, resume)
    old_cpu = 0.0
    if old:
        prev = json.loads((Path(out) / "metrics.json").read_text(encoding="utf-8"))
        old_cpu = float(prev.get("cpu_seconds") or 0.0)
    t0 -= old_seconds
    data: dict[str, TaskData] = {}
    timing: dict[str, float] = {}
    for task in cfg.tasks:
        t1 = time.time()
        data[task] = TaskData(task, cfg, progress)
        timing[f"features_{task}"] = round(time.time() - t1, 1)
    t1 = time.time()
    units = [(task, seed) for seed in range(cfg.seeds) for task in cfg.tasks]
    runs = [r for r in old if (r["task"], r["seed"]) in set(units)]
    done = {(r["task"], r["seed"]) for r in runs}
    head = {"experiment": "w2s-probe", "preset": preset, "learner": learner, "config": cfg.model_dump(mode="json")}

    def cpu_seconds() -> float:
        now = resource.getrusage(resource.RUSAGE_SELF)
        return round(old_cpu + now.ru_utime + now.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 1)

    for j, (task, seed) in enumerate(units):
        progress("w2s-probe units (task, seed)", j, len(units))
        if (task, seed) in done:
            continue
        runs.append(run_unit(data[task], seed, progress))
        partial = {**head, "complete": False, "runs": runs, "cpu_seconds": cpu_seconds()}
        write_metrics(out, {**partial, "seconds": round(time.time() - t0, 1)})
    progress("w2s-probe units (task, seed)", len(units), len(units))
    timing["probes"] = round(time.time() - t1, 1)
    runs.sort(key=lambda r: units.index((r["task"], r["seed"])))
    summary = summarise(runs, data, cfg)
    seconds = time.time() - t0
    pooled = summary["pooled"]
    metrics: dict[str, Any] = {
        **head,
        "complete": True,
        "resumed_units": len(done),
        "machine": host,
        **{f"pooled_pgr_{k}": v["student"]["pooled"] for k, v in pooled.items()},
        "misfit_slope_squared": summary["misfit"]["squared"]["slope"],
        "misfit_slope_zero_one": summary["misfit"]["zero_one"]["slope"],
        **summary,
        "runs": runs,
        "timing_s": timing,
        "cpu_seconds": cpu_seconds(),
        "seconds": round(seconds, 1),
        "minutes": round(seconds / 60, 2),
    }
    write_outputs(out, metrics, cfg)
    return metrics


# ---- outputs ----------------------------------------------------------------------------------------
def _acc(a: dict[str, Any]) -> str:
    ci = a["ci"]
    return f"{a['mean']:.3f}" if ci[0] is None else f"{a['mean']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _pgr(c: dict[str, Any], min_gap: float) -> str:
    if c["pgr"] is None:
        return f"undefined (gap {c['gap']:.3f} < {min_gap:g})"
    ci = c["ci"]
    return f"{c['pgr']:.2f}" + ("" if ci[0] is None else f" [{ci[0]:.2f}, {ci[1]:.2f}]")


def _diff(c: dict[str, Any]) -> str:
    ci = c["ci"]
    return f"{c['diff']:+.3f}" + ("" if ci[0] is None else f" [{ci[0]:+.3f}, {ci[1]:+.3f}]")


def _num(v: float | None, fmt: str = ".3f") -> str:
    return "–" if v is None else format(v, fmt)


def results_markdown(metrics: dict[str, Any], cfg: W2SProbeConfig) -> list[str]:
    """The sections of results.md."""
    tasks, pooled, mis, m = metrics["tasks"], metrics["pooled"], metrics["misfit"], metrics["machine"]
    gap = cfg.min_gap
    head = (
        f"Preset `{metrics['preset']}`, {cfg.seeds} seeds, mc_format `{cfg.mc_format}`. Accuracy: seed mean "
        f"[95 % bootstrap CI, {cfg.bootstrap} resamples of test groups]. PGR = (student − weak) / (ceiling − weak), "
        f"reported only where ceiling − weak ≥ {gap:g} (seed means), else undefined and left out of pooling. "
        f"Student: logistic probe on SmolLM2 mean(L{cfg.student_layers[0]}) + mean(L{cfg.student_layers[1]}) "
        f"+ last-token(L{cfg.student_layers[1]}); weak L<k>: the probe on mean + last token after k blocks. "
        f"Machine: {m.get('model_name')} (amx {m.get('amx')}, avx512 {m.get('avx512')}, avx2 {m.get('avx2')}, "
        f"{m.get('cpus')} CPUs); commit {m.get('commit')}{' + uncommitted changes' if m.get('dirty') else ''}. "
        f"Took {metrics['minutes']} min wall, {metrics['cpu_seconds'] / 60:.1f} min CPU (features: "
        + ", ".join(f"{k[9:]} {v:.0f} s" for k, v in metrics["timing_s"].items() if k.startswith("features_"))
        + f"; probes {metrics['timing_s']['probes']:.0f} s)."
    )
    rows = []
    for t, d in tasks.items():
        for kind, c in d["weak"].items():
            cr = c["copy_rate"]
            rows.append(
                [
                    t,
                    kind,
                    _acc(d["accuracy"][f"weak:{kind}"]),
                    _acc(d["accuracy"][f"student:{kind}"]),
                    _acc(d["accuracy"]["ceiling"]),
                    _pgr(c["student"], gap),
                    _acc(d["accuracy"][f"flip:{kind}"]),
                    _pgr(c["flip"], gap),
                    _diff(c["student_minus_flip"]),
                    f"{_num(cr['student'], '.2f')} / {_num(cr['flip'], '.2f')} / {_num(cr['ceiling'], '.2f')}",
                ]
            )
    main = markdown_table(
        [
            "task",
            "weak",
            "weak acc",
            "student acc",
            "ceiling acc",
            "PGR",
            "flip-control acc",
            "flip PGR",
            "student − flip",
            "copy rate: student / flip / ceiling",
        ],
        rows,
    )
    sizes = markdown_table(
        ["task", "items", "texts", "weak-train / student-train / test", "chain A / B"],
        [
            [
                t,
                d["n_items"],
                d["n_texts"],
                f"{d['n']['weak_train']} / {d['n']['student_train']} / {d['n']['test']}",
                f"{d['n']['chain_a']} / {d['n']['chain_b']}",
            ]
            for t, d in tasks.items()
        ],
    )

    def pool_text(p: dict[str, Any]) -> str:
        if p["pooled"] is None:
            return "undefined (no task passes the gate)"
        ci, b = p["ci"], p["bootstrap_ci"]
        boot = "" if b[0] is None else f"; bootstrap [{b[0]:.2f}, {b[1]:.2f}]"
        return f"{p['pooled']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]{boot}"

    pool_rows = [
        [
            kind,
            pool_text(p["student"]),
            ", ".join(f"{t} ({w:.2f})" for t, w in zip(p["student"]["tasks"], p["student"]["weights"])) or "–",
            ", ".join(p["student"]["undefined"]) or "–",
            pool_text(p["flip"]),
        ]
        for kind, p in pooled.items()
    ]
    pool_table = markdown_table(
        ["weak", "pooled PGR [normal 95 % CI; bootstrap]", "tasks (weight)", "undefined (left out)", "flip control"],
        pool_rows,
    )
    a_k, b_k = cfg.chain
    ctrl_rows = [
        [
            t,
            _acc(d["accuracy"]["s2s:sup"]),
            _acc(d["accuracy"]["s2s:student"]),
            _diff(d["s2s"]["gain"]),
            _acc(d["accuracy"][f"weak:L{a_k}"]),
            _acc(d["accuracy"]["chain:mid"]),
            _acc(d["accuracy"]["chain:final"]),
            _acc(d["accuracy"]["chain:direct"]),
            _acc(d["accuracy"]["chain:ceiling"]),
            f"{_pgr(d['chain']['final'], gap)} / {_pgr(d['chain']['direct'], gap)}",
            _diff(d["chain"]["final_minus_direct"]),
        ]
        for t, d in tasks.items()
    ]
    ctrl = markdown_table(
        [
            "task",
            "s2s supervisor",
            "s2s student",
            "s2s gain",
            f"L{a_k}",
            f"chain L{b_k}",
            "chain → student",
            f"L{a_k} → student direct",
            "ceiling (half B)",
            "PGR chain / direct",
            "chain − direct",
        ],
        ctrl_rows,
    )

    def reg(r: dict[str, Any]) -> str:
        if r["slope"] is None or r["slope_ci"][0] is None:
            return f"undefined (n = {r['n']} cells, or no spread in misfit)"
        return (
            f"slope {r['slope']:.2f} [{r['slope_ci'][0]:.2f}, {r['slope_ci'][1]:.2f}], intercept "
            f"{r['intercept']:.4f} [{r['intercept_ci'][0]:.4f}, {r['intercept_ci'][1]:.4f}], R² {r['r2']:.2f}, "
            f"n = {r['n']} (task, weak, seed) cells"
        )

    misfit = (
        "**Gain vs misfit** (student's gain over its weak supervisor regressed on its misfit to the weak labels, "
        "on test; 95 % CIs from resampling cells; theory predicts slope ≈ 1):\n\n"
        f"- squared loss (gain = Brier(weak) − Brier(student), misfit = mean (p_student − p_weak)²): "
        f"{reg(mis['squared'])}\n"
        f"- 0-1 loss (gain = accuracy gain, misfit = disagreement rate): {reg(mis['zero_one'])}. With 0-1 loss "
        "gain = misfit − 2·P(student wrong where weak right) identically, so slope 1 only says the student rarely "
        "breaks what the weak supervisor got right."
    )
    flips = (
        "Flip control: each weak supervisor's label error on student-train (mean over seeds) and the flip "
        "control's, which must be equal: "
        + "; ".join(
            f"{t}: "
            + ", ".join(f"{k} {c['weak_label_error']:.3f}/{c['flip_label_error']:.3f}" for k, c in d["weak"].items())
            for t, d in tasks.items()
        )
        + "."
    )
    return [
        head,
        "## Weak-to-strong per task and weak supervisor\n\n" + main,
        "## Pooled PGR (inverse variance over the tasks that pass the gate)\n\n" + pool_table,
        f"## Controls: strong-to-strong and the bootstrapping chain (L{a_k} → L{b_k} → student)\n\n" + ctrl,
        misfit,
        flips,
        "## Split sizes (per seed)\n\n" + sizes,
    ]


def write_outputs(out: Path, metrics: dict[str, Any], cfg: W2SProbeConfig) -> None:
    """metrics.json and results.md."""
    write_results(
        out, "w2s-probe: weak-to-strong with a linear-probe student (gated PGR)", results_markdown(metrics, cfg)
    )
    write_metrics(out, metrics)
