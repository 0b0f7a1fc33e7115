"""Which training prompts of a finished run gave a preference pair, and why the others gave none.

    python scripts/pair_yield.py RUN_DIR [--out FILE.json]

For every benign training prompt of every round (round k's `attack` step): the critic's mean estimate of the
request's harm over the learner's samples and help revisions (what `learner.pairs` reads: a help pair needs it below
`train.benign_below`, 0.25; up to 0.5 the critic is unsure; from 0.5, or with any unsafe sample, the prompt is taken
for harmful), the pair it gave (help-benign, refuse-harmful) or, when none, what was missing. Read a run that has
finished: opening the store of a live run writes to it.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
from pathlib import Path

from superalign.store.runstore import RunStore


def pair_yield(run: Path, benign_below: float = 0.25) -> dict:
    from superalign.learner.pairs import _critic_says_harmful

    rows: collections.Counter[tuple[str, str, str]] = collections.Counter()
    with RunStore(run / "run.sqlite") as s:
        rounds = sorted({q.round for q in s.queries(step="attack")})
        for k in rounds:
            queries = [q for q in s.queries(round=k, step="attack") if not q.harmful]
            verdict = {v.response_id: v for v in s.verdicts(round=k, step="judge")}
            kinds = {p.query_id: p.kind for p in s.pairs(round=k, step="pairs")}
            by_query = collections.defaultdict(list)
            for r in s.responses(round=k, step="respond"):
                if r.id in verdict:
                    by_query[r.query_id].append((r, verdict[r.id]))
            for q in queries:
                own = [(r, v) for r, v in by_query[q.id] if r.system == ""]
                revs = [v for r, v in by_query[q.id] if r.system == "revision"]
                helps = [(r, v) for r, v in by_query[q.id] if r.system == "help-revision"]
                harms = [v.request_harm for _, v in own + helps if v.request_harm is not None]
                h = statistics.mean(harms) if harms else None
                zone = "no estimate" if h is None else "<0.25" if h < 0.25 else "0.25-0.5" if h < 0.5 else ">=0.5"
                harmful = _critic_says_harmful(q, own + helps, benign_below)
                if q.id in kinds:
                    what = kinds[q.id]
                elif harmful is None:
                    what = "none: critic unsure (help pairs need a harm estimate below benign_below)"
                elif harmful:
                    what = "none: taken for harmful, no unsafe answer or no full refusal"
                elif not any(not v.refusal for _, v in own + helps):
                    what = "none: no helpful answer"
                elif not any(v.refusal for _, v in own) and not any(v.refusal for v in revs):
                    what = "none: no refusal to reject (own or revision)"
                else:
                    what = "none: other"
                rows[(q.source, zone, what)] += 1
    table = [
        {"source": src, "harm_zone": zone, "outcome": what, "prompts": n}
        for (src, zone, what), n in sorted(rows.items(), key=lambda x: (x[0][0], -x[1]))
    ]
    return {
        "run": run.name,
        "rounds": rounds,
        "benign_below": benign_below,
        "benign_training_prompts": sum(rows.values()),
        "rows": table,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--benign-below", type=float, default=0.25, help="the run's train.benign_below")
    a = ap.parse_args()
    if not (a.run / "run.sqlite").is_file():
        raise SystemExit(f"{a.run}: no run.sqlite there; give the --out directory of a finished `superalign run`")
    res = pair_yield(a.run, a.benign_below)
    if a.out:
        a.out.write_text(json.dumps(res, indent=1) + "\n")
    for r in res["rows"]:
        print(f"{r['prompts']:4d}  {r['source']:<12} {r['harm_zone']:<12} {r['outcome']}")


if __name__ == "__main__":
    main()
