"""Draw gold-v2's candidate rows: trained checkpoints' sampled answers to the loop's training prompts.

    python scripts/gold/draw_trained.py --runs runs/replay64-s0 runs/replay64-s1 ... --out /tmp/gold2/candidates.jsonl

gold-v1 held the base model's and a short demo run's answers; the critics then missed about a third of the
unsafe answers that trained checkpoints of long runs gave to new prompts (vague or cut-off compliance,
docs/critic.md). These rows are what the critic judges inside such runs: the `respond` step of rounds whose
learner was already trained (model not round 0), every kind of query (plain, template- or converter-wrapped,
revision samples). Strata, each drawn from one seeded shuffle of the distinct answers not already in gold-v1:
- A: 240 answers to harmful prompts, at random;
- B: 100 further answers to harmful prompts that the run's critic called neither unsafe nor a refusal (where
  its misses hide; the stratum is named in each row's `source`, so figures can be given without it);
- C: 40 answers to benign prompts, at random;
- D: 40 further answers to benign prompts the run's critic called refusals.
Rows take kind `trained`. Groups are computed over gold-v1's objectives and these together; a row whose group
holds gold-v1 rows takes their group and split, any other goes to dev or test by the hash of its group key, so
no group straddles the splits. Labels are added afterwards, by two readers (docs/labelling.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sqlite3
from pathlib import Path

from superalign.data.gold import GOLD_FILE, group_objectives, load_gold, row_id, split_of_group

STRATA = (("A", 240), ("B", 100), ("C", 40), ("D", 40))


def _answers(run: Path) -> list[dict]:
    db = sqlite3.connect(f"file:{run / 'run.sqlite'}?mode=ro", uri=True)
    queries = {(json.loads(d)["id"], r): json.loads(d) for r, d in db.execute("select round, data from queries")}
    verdicts = {
        rid: json.loads(d)
        for rid, d in db.execute("select response_id, data from verdicts where step = 'judge' and critic = 'content'")
    }
    out = []
    for rnd, data in db.execute("select round, data from responses where step = 'respond' order by seq"):
        a = json.loads(data)
        q = queries.get((a["query_id"], rnd))
        if a["model"].endswith("round-0") or q is None or a["id"] not in verdicts:
            continue
        out.append(
            {
                "prompt": q["text"],
                "objective": q.get("objective") or q["text"],
                "response": a["text"],
                "harmful": bool(q["harmful"]),
                "category": q.get("category", ""),
                "kind": "trained",
                "model": a["model"],
                "source": f"{run.name}/round-{rnd}/respond/{q.get('source', '')}",
                "_unsafe": verdicts[a["id"]]["unsafe"],
                "_refusal": verdicts[a["id"]]["refusal"],
            }
        )
    return out


def draw(runs: list[Path], seed: int = 22) -> list[dict]:
    v1 = load_gold(path=GOLD_FILE)
    known = {g.response.strip() for g in v1}
    pool = [a for run in runs for a in _answers(run)]
    random.Random(seed).shuffle(pool)
    uniq, seen = [], set()
    for a in pool:
        t = a["response"].strip()
        if t and t not in known and t not in seen:
            seen.add(t)
            uniq.append(a)
    harmful = [a for a in uniq if a["harmful"]]
    benign = [a for a in uniq if not a["harmful"]]
    n = dict(STRATA)
    strata = {
        "A": harmful[: n["A"]],
        "B": [a for a in harmful[n["A"] :] if a["_unsafe"] is False and not a["_refusal"]][: n["B"]],
        "C": benign[: n["C"]],
        "D": [a for a in benign[n["C"] :] if a["_refusal"]][: n["D"]],
    }
    rows = []
    for name, rs in strata.items():
        for a in rs:
            row = {k: v for k, v in a.items() if not k.startswith("_")}
            rows.append({"id": row_id(row["prompt"], row["response"]), **row, "source": f"{row['source']}/{name}"})
    keys = group_objectives([g.objective for g in v1] + [r["objective"] for r in rows])
    v1_of_key: dict[str, set[tuple[str, str]]] = {}
    for g, k in zip(v1, keys):
        v1_of_key.setdefault(k, set()).add((g.group, g.split))
    out = []
    for r, k in zip(rows, keys[len(v1) :]):
        held = v1_of_key.get(k)
        if held is not None and len({s for _, s in held}) > 1:
            continue  # would join two gold-v1 groups of different splits (none did when it was drawn)
        group, split = next(iter(held)) if held else (hashlib.sha1(k.encode()).hexdigest()[:10], split_of_group(k))
        out.append({**r, "group": group, "split": split})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, nargs="+", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=22)
    a = ap.parse_args()
    rows = draw(a.runs, a.seed)
    a.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} candidate rows to {a.out}")


if __name__ == "__main__":
    main()
