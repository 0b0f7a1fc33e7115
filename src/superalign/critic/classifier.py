"""Small trained heads (TF-IDF word + char n-grams + rule features -> logistic regression).

Three heads, each fitted in about a second on 2 cores:
- refusal:   P(refusal | objective, response), from PyRIT's human-labelled refusal sets.
- objective: P(objective achieved | objective, response), from PyRIT's human-labelled objective sets.
- prompt:    P(harmful | prompt), from `superalign.data` training splits (absent when that is missing).

Evaluation uses held-out folds only: every example gets a fold from a hash of its *objective* text
(the same objective appears in several PyRIT files, so splitting by row would leak). The shipped
heads train on the other folds. `fit_classifier` fits; `fit_classifier_cached` (what `build_critic`
uses) keeps the fitted heads on disk under a key of everything they depend on.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from superalign.critic.rules import harmful_request_cue, rule_signals
from superalign.errors import UserError

FOLDS = 5
HELDOUT_FOLD = 0  # the fold agreement_report evaluates on; never used for fitting the shipped heads
SCORER_EVALS = "datasets/scorer_evals"
REFUSAL_FILES = ("refusal_scorer/refusal.csv", "refusal_scorer/refusal_extra.csv")


@dataclass(frozen=True)
class Example:
    """One human-labelled row. label: refusal head 1 = refused; objective head 1 = achieved."""

    objective: str
    response: str
    label: bool
    source: str  # file name under scorer_evals, e.g. "objective/violence.csv"


def scorer_evals_dir() -> Path:
    """PyRIT's `datasets/scorer_evals` directory, found without importing `pyrit`.

    Raises UserError when the pyrit asset wheel is not installed.
    """
    spec = importlib.util.find_spec("pyrit")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations or not (Path(locations[0]) / SCORER_EVALS).is_dir():
        raise UserError(
            "PyRIT scorer_evals not found (the pyrit asset wheel is missing); "
            "run `pip install --no-deps pyrit==1.1.0` or `make install`"
        )
    return Path(locations[0]) / SCORER_EVALS


def read_scorer_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a PyRIT scorer CSV as dicts, skipping the leading `#` comment lines (only those:
    a quoted multi-line response may itself contain lines starting with '#')."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = 0
    while start < len(lines) and lines[start].startswith("#"):
        start += 1
    return list(csv.DictReader(io.StringIO("".join(lines[start:]))))


def _examples(paths: Sequence[Path], root: Path) -> list[Example]:
    out = []
    for path in paths:
        for row in read_scorer_csv(path):
            score = (row.get("human_score") or "").strip()
            if row.get("data_type", "text") != "text" or score not in ("0", "1"):
                continue
            out.append(Example(row["objective"], row["assistant_response"], score == "1", str(path.relative_to(root))))
    return out


def load_refusal_examples() -> list[Example]:
    """PyRIT's refusal sets (refusal.csv + refusal_extra.csv); label True = the response refuses."""
    root = scorer_evals_dir()
    return _examples([root / f for f in REFUSAL_FILES if (root / f).is_file()], root)


def load_objective_examples() -> list[Example]:
    """PyRIT's objective sets (objective/*.csv); label True = the response achieves the objective."""
    root = scorer_evals_dir()
    return _examples(sorted((root / "objective").glob("*.csv")), root)


def fold_of(text: str, folds: int = FOLDS) -> int:
    """Deterministic fold in [0, folds) from the normalised text (same text -> same fold, any run)."""
    key = " ".join(text.lower().split()).encode("utf-8")
    return int(hashlib.sha1(key).hexdigest()[:8], 16) % folds


def split_examples(
    examples: Sequence[Example], heldout_fold: int = HELDOUT_FOLD, folds: int = FOLDS
) -> tuple[list[Example], list[Example]]:
    """(train, heldout) by the fold of each example's objective."""
    train = [e for e in examples if fold_of(e.objective, folds) != heldout_fold]
    heldout = [e for e in examples if fold_of(e.objective, folds) == heldout_fold]
    return train, heldout


def rule_features(objective: str, response: str) -> list[float]:
    """Dense features from the rules, appended to the TF-IDF columns (all roughly in [0, 1])."""
    s = rule_signals(objective, response)
    early = 1.0 if 0 <= s.refusal_at < 160 else 0.0
    return [
        1.0 if s.refusal_strength >= 1.0 else 0.0,
        1.0 if s.refusal_strength == 0.5 else 0.0,
        float(s.refusal),
        early,
        s.compliance,
        float(s.degenerate),
        float(s.safe_alternative),
        s.topic_overlap,
        min(1.0, s.n_words / 300),
        s.repetition,
    ]


class TextHead:
    """TF-IDF (word 1-2-grams + char 2-5-grams on the first `max_chars` of the text) plus dense
    features, into a class-balanced logistic regression. `fit` then `proba`."""

    def __init__(self, c: float = 1.0, max_chars: int = 1500, seed: int = 0) -> None:
        self.c, self.max_chars, self.seed = c, max_chars, seed
        self._word: Any = None
        self._char: Any = None
        self._model: Any = None

    def _matrix(self, texts: Sequence[str], dense: Sequence[Sequence[float]], fit: bool) -> Any:
        from scipy import sparse
        from sklearn.feature_extraction.text import TfidfVectorizer

        clipped = [t[: self.max_chars] for t in texts]
        if fit:
            self._word = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, lowercase=True)
            self._char = TfidfVectorizer(
                analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, max_features=40000
            )
            w, c = self._word.fit_transform(clipped), self._char.fit_transform(clipped)
        else:
            w, c = self._word.transform(clipped), self._char.transform(clipped)
        return sparse.hstack([w, c, sparse.csr_matrix(dense)]).tocsr()

    def fit(self, texts: Sequence[str], dense: Sequence[Sequence[float]], labels: Sequence[bool]) -> TextHead:
        from sklearn.linear_model import LogisticRegression

        x = self._matrix(texts, dense, fit=True)
        self._model = LogisticRegression(C=self.c, class_weight="balanced", max_iter=2000, random_state=self.seed)
        self._model.fit(x, [int(y) for y in labels])
        return self

    def proba(self, texts: Sequence[str], dense: Sequence[Sequence[float]]) -> list[float]:
        """P(label = 1) per text."""
        if not texts:
            return []
        x = self._matrix(texts, dense, fit=False)
        return [float(p) for p in self._model.predict_proba(x)[:, 1]]


def fit_head(train: Sequence[Example], seed: int = 0) -> TextHead:
    """A response head (refusal or objective) fitted on labelled examples; C=1 measured best in
    5-fold CV for the refusal set (0.917 vs 0.899 at C=4) and on par for the objective set."""
    return TextHead(c=1.0, seed=seed).fit(
        [e.response for e in train], [rule_features(e.objective, e.response) for e in train], [e.label for e in train]
    )


PROMPT_HEAD_EXCLUDE = 0.5  # the prompt head never sees texts a split with heldout_fraction <= 0.5 holds out
PROMPT_HEAD_HELDOUT_SOURCE = "harmbench"  # nor the seed set a run holds out whole (data.heldout_source's default)
# Bumped whenever the prompt head's training data changes meaning (part of the cache key):
# 2 = near-duplicate-grouped split, harmbench and its groups excluded.
PROMPT_HEAD_DATA_VERSION = 2
MAX_BENIGN_GENERAL = 1500  # plenty for a prompt head; keeps its fit under a couple of seconds


def prompt_head_data(
    exclude_fraction: float = PROMPT_HEAD_EXCLUDE,
    exclude_source: str | None = PROMPT_HEAD_HELDOUT_SOURCE,
    howto: bool = False,
) -> tuple[list, list] | None:
    """(harmful, benign) `Query` lists the prompt head trains on; None when the data loaders are absent.

    The *train* side of the run's grouped split (`split_with_source(..., exclude_fraction, exclude_source)`):
    near-duplicate groups are held out whole, a group iff its key's hash is below the fraction, so this
    side is inside the train side of every run whose `data.heldout_fraction` <= exclude_fraction; and no
    seed of `exclude_source` nor of a group with one is used, so a run holding that set out
    (`data.heldout_source`, default harmbench) never has it reach the head either.
    """
    try:
        from superalign.data.benign import load_benign_edgy, load_benign_general
        from superalign.data.seeds import load_harmful_seeds
        from superalign.data.split import split_queries, split_with_source
    except ImportError:
        return None
    harmful = split_with_source(load_harmful_seeds(), exclude_fraction, exclude_source).train
    general, _ = split_queries(load_benign_general(), exclude_fraction)
    step = max(1, len(general) // MAX_BENIGN_GENERAL)
    benign = split_queries(load_benign_edgy(), exclude_fraction)[0] + general[::step]
    if howto:  # everyday how-to requests (critic.prompt_howto_negatives)
        from superalign.data.benign import load_benign_howto

        benign += load_benign_howto()
    return harmful, benign


def prompt_cue_features(prompts: Sequence[str]) -> list[list[float]]:
    """The prompt head's extra feature per prompt: 1.0 when the rules see a harmful-request cue."""
    return [[1.0 if harmful_request_cue(p) else 0.0] for p in prompts]


def fit_prompt_head(
    seed: int = 0,
    exclude_fraction: float = PROMPT_HEAD_EXCLUDE,
    exclude_source: str | None = PROMPT_HEAD_HELDOUT_SOURCE,
    howto: bool = False,
) -> TextHead | None:
    """P(harmful | prompt) fitted on `prompt_head_data`; None when that data is missing."""
    data = prompt_head_data(exclude_fraction, exclude_source, howto)
    if data is None or not data[0] or not data[1]:
        return None
    harmful, benign = data
    texts = [q.text for q in harmful] + [q.text for q in benign]
    return TextHead(c=2.0, max_chars=600, seed=seed).fit(
        texts, prompt_cue_features(texts), [True] * len(harmful) + [False] * len(benign)
    )


@dataclass(frozen=True)
class FittedClassifier:
    """The fitted heads. `prompt` is None when no harmful/benign prompt data was available."""

    refusal: TextHead
    objective: TextHead
    prompt: TextHead | None
    heldout_fold: int
    folds: int

    def p_refusal(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        """P(the response refuses the prompt) per pair."""
        return self.refusal.proba(responses, [rule_features(p, r) for p, r in zip(prompts, responses)])

    def p_achieved(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        """P(the response achieves what the prompt asks) per pair."""
        return self.objective.proba(responses, [rule_features(p, r) for p, r in zip(prompts, responses)])

    def p_harmful(self, prompts: Sequence[str]) -> list[float] | None:
        """P(the prompt is a harmful request) per prompt, or None without a prompt head."""
        if self.prompt is None:
            return None
        return self.prompt.proba(prompts, prompt_cue_features(prompts))


def fit_classifier(
    heldout_fold: int = HELDOUT_FOLD,
    folds: int = FOLDS,
    seed: int = 0,
    with_prompt_head: bool = True,
    howto_negatives: bool = False,
) -> FittedClassifier:
    """Fit all heads on the training folds (every fold but `heldout_fold`). ~1-3 s on 2 cores.

    heldout_fold = -1 trains on everything (then agreement numbers are no longer held out).
    """
    ref_train, _ = split_examples(load_refusal_examples(), heldout_fold, folds)
    obj_train, _ = split_examples(load_objective_examples(), heldout_fold, folds)
    return FittedClassifier(
        refusal=fit_head(ref_train, seed),
        objective=fit_head(obj_train, seed),
        prompt=fit_prompt_head(seed, howto=howto_negatives) if with_prompt_head else None,
        heldout_fold=heldout_fold,
        folds=folds,
    )


def _fit_cache_key(*params: object) -> str:
    """What a fitted classifier depends on: the critic and data code and files, the prompt head's data version
    and excluded source, the scorer data, sklearn."""
    import sklearn

    h = hashlib.sha256(
        repr(
            (params, PROMPT_HEAD_DATA_VERSION, PROMPT_HEAD_HELDOUT_SOURCE, sklearn.__version__, str(scorer_evals_dir()))
        ).encode()
    )
    pkg = Path(__file__).resolve().parents[1]
    for path in sorted([*(pkg / "critic").glob("*.py"), *(pkg / "data").iterdir()]):
        if path.is_file():
            h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:20]


def fit_classifier_cached(
    heldout_fold: int = HELDOUT_FOLD,
    folds: int = FOLDS,
    seed: int = 0,
    with_prompt_head: bool = True,
    howto_negatives: bool = False,
) -> FittedClassifier:
    """`fit_classifier`, stored on disk (SUPERALIGN_CACHE/classifier/) under a key of everything the fit
    depends on, so every run and test after the first loads it (~0.1 s) instead of refitting (~10-40 s
    on 2 busy cores). Written atomically; an unreadable cache file is refitted and replaced."""
    from superalign.backends.embedded import cache_root
    from superalign.store.jsonl import cached_pickle

    params = (heldout_fold, folds, seed, with_prompt_head) + (("howto",) if howto_negatives else ())
    path = cache_root() / "classifier" / f"{_fit_cache_key(*params)}.pkl"
    return cached_pickle(
        path, lambda: fit_classifier(heldout_fold, folds, seed, with_prompt_head, howto_negatives), FittedClassifier
    )


HARM_FILES = (
    "exploits.csv",
    "hate_speech.csv",
    "info_integrity.csv",
    "privacy.csv",
    "representational.csv",
    "self_harm.csv",
    "sexual.csv",
    "violence.csv",
)  # the sets PyRIT's harm/*_metrics.jsonl report on


@dataclass(frozen=True)
class HarmExample:
    """One row of PyRIT's harm sets: a human Likert score mapped to [0, 1] (0 = harmless)."""

    objective: str
    response: str
    score: float
    category: str  # the file stem, e.g. "violence"
    source: str


def load_harm_examples() -> list[HarmExample]:
    """PyRIT's single-rater harm sets (harm/<category>.csv), text rows with a numeric score."""
    root = scorer_evals_dir()
    out = []
    for name in HARM_FILES:
        path = root / "harm" / name
        if not path.is_file():
            continue
        for row in read_scorer_csv(path):
            raw = (row.get("human_score_1") or row.get("human_score") or "").strip()
            try:
                score = float(raw)
            except ValueError:
                continue
            if row.get("data_type", "text") == "text" and 0.0 <= score <= 1.0:
                out.append(HarmExample(row["objective"], row["assistant_response"], score, path.stem, f"harm/{name}"))
    return out
