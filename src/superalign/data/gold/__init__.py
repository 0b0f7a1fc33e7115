"""The gold set: the loop's own (prompt, response) pairs, labelled by reading (docs/labelling.md).

    rows = load_gold("dev")      # fitting, tuning, selection
    rows = load_gold("test")     # reported only: never fitted on, never used to choose anything

`gold-v1.jsonl` holds every row with its provenance (`source`, `model`, `kind`), both readers' labels and
the settled gold labels; `data/gold/README.md` (beside this file) says how it was made and the
agreement between readers. Rows are split by prompt *group*: objectives whose content words overlap
with Jaccard >= 0.5 are one group (near-paraphrases across seed sets land together; the grouping is
`superalign.data.split.group_objectives`, the one the run's train / held-out split uses), and a group's
side depends only on a hash of its key, so no group straddles dev and test.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# The grouping is the run split's (one implementation); re-exported here for the gold scripts and tests.
from superalign.data.split import JACCARD_GROUP, content_words, group_objectives, jaccard  # noqa: F401
from superalign.errors import UserError

GOLD_DIR = Path(__file__).resolve().parent
GOLD_FILE = GOLD_DIR / "gold-v1.jsonl"  # the first 640 rows (and the empathy labels' base)
GOLD_V2_FILE = GOLD_DIR / "gold-v2.jsonl"  # rows added in v2: trained checkpoints' answers to training prompts
GOLD_FILES = (GOLD_FILE, GOLD_V2_FILE)  # gold-v2 = both files; each row's `kind` and `source` say where it is from
GOLD_VERSION = "gold-v2"
Split = Literal["dev", "test"]
TEST_FRACTION = 0.5


def row_id(prompt: str, response: str) -> str:
    """A stable id of one (prompt, response) pair."""
    return "g-" + hashlib.sha1(f"{prompt}\x1f{response}".encode()).hexdigest()[:12]


def split_of_group(group: str, test_fraction: float = TEST_FRACTION) -> Split:
    """`test` iff sha1(group) read as a number in [0, 1) is below test_fraction."""
    h = int(hashlib.sha1(f"gold\x1f{group}".encode()).hexdigest()[:15], 16) / 16**15
    return "test" if h < test_fraction else "dev"


def assign_splits(rows: list[dict]) -> list[dict]:
    """Each row dict (with `objective`) gains `group` (a short hash of its group key) and `split`."""
    keys = group_objectives([r["objective"] for r in rows])
    return [
        {**r, "group": hashlib.sha1(k.encode()).hexdigest()[:10], "split": split_of_group(k)}
        for r, k in zip(rows, keys)
    ]


@dataclass(frozen=True)
class GoldRow:
    """One labelled pair. `unsafe`, `refusal`, `degenerate`, `over_refusal` are the settled gold labels."""

    id: str
    prompt: str
    objective: str
    response: str
    harmful: bool
    kind: str
    source: str
    model: str
    group: str
    split: Split
    unsafe: bool
    refusal: bool
    degenerate: bool
    over_refusal: bool


def load_gold(split: Split | None = None, path: Path | None = None) -> list[GoldRow]:
    """The gold rows of `split` (None = all), in file order: every file of the current version, or one `path`."""
    out: list[GoldRow] = []
    for file in GOLD_FILES if path is None else (path,):
        out += _load_file(file, split)
    return out


def _load_file(path: Path, split: Split | None) -> list[GoldRow]:
    if not path.is_file():
        raise UserError(f"gold set not found: {path} (reinstall superalign; the file ships with the package)")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            row = GoldRow(**{f: r[f] for f in GoldRow.__dataclass_fields__})
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise UserError(f"{path}:{n}: not a gold row ({e}); restore the file from the repository") from None
        if split is None or row.split == split:
            out.append(row)
    return out
