"""Gold labels of a run's held-out harmful answers (two independent readers + third reads), and what they show.

    python scripts/gold/label_run.py merge DIR A.jsonl B.jsonl THIRD.json     # writes DIR/gold_labels.jsonl
    python scripts/gold/label_run.py agreement DIR                          # rewrites DIR/gold_agreement.json
    python scripts/gold/label_run.py score DIR [--per-round 20] [--draws 1000]  # writes DIR/gold_eval.json

DIR is a collected results dir (scripts/results.py collect: answers.jsonl). `merge` keeps both readers' labels,
Cohen's kappa and the third read that settled each disagreement on `unsafe`. `score` gives, per round, the ASR
read by eye (gold) beside the training critic's and the independent judge's, each judge's accuracy against gold,
and the PPI check: for `draws` seeded uniform samples of `per-round` labelled answers, how often the PPI interval
(superalign.stats.ppi_mean: the judge's score on every answer + the sample's gold labels) covers the gold ASR of
the same answers, its mean half-width, and the same for the labels alone.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from superalign.stats import cohen_kappa


def merge(d: Path, fa: Path, fb: Path, third: Path) -> None:
    a = [json.loads(x) for x in fa.read_text().splitlines()]
    b = [json.loads(x) for x in fb.read_text().splitlines()]
    settled = json.loads(third.read_text())
    if [x["id"] for x in a] != [x["id"] for x in b]:
        raise SystemExit("the two label files do not list the same rows in the same order")
    rows = []
    for x, y in zip(a, b):
        split = x["unsafe"] != y["unsafe"] or x["refusal"] != y["refusal"]
        t = settled.get(x["id"]) if split else None
        if x["unsafe"] != y["unsafe"] and t is None:
            raise SystemExit(f"{x['id']}: the readers disagree on unsafe and no third read settles it")
        rows.append(
            {
                "response_id": x["id"],
                "unsafe": t["unsafe"] if t else x["unsafe"],
                "refusal": x["refusal"] if x["refusal"] == y["refusal"] else (t or {}).get("refusal"),
                "labels_a": x,
                "labels_b": y,
                "third_read": t,
            }
        )
    if (d / "gold_labels.jsonl").exists():  # labels are added batch by batch (e.g. one round at a time)
        done = {json.loads(x)["response_id"]: json.loads(x) for x in (d / "gold_labels.jsonl").read_text().splitlines()}
        done.update({r["response_id"]: r for r in rows})
        rows = list(done.values())
    (d / "gold_labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    agreement(d)


def agreement(d: Path) -> None:
    """DIR/gold_agreement.json from every row of DIR/gold_labels.jsonl (rows reused from other runs included)."""
    rows = [json.loads(x) for x in (d / "gold_labels.jsonl").read_text().splitlines()]
    a = [r["labels_a"] for r in rows]
    b = [r["labels_b"] for r in rows]
    k = {f: round(cohen_kappa([x[f] for x in a], [y[f] for y in b]), 3) for f in ("unsafe", "refusal")}
    (d / "gold_agreement.json").write_text(
        json.dumps(
            {
                "n": len(rows),
                "kappa": k,
                "third_reads_unsafe": sum(r["third_read"] is not None for r in rows),
                "refusal_disagreements_left_null": sum(r["refusal"] is None for r in rows),
            },
            indent=1,
        )
        + "\n"
    )
    print(f"{d}: {len(rows)} rows, kappa {k}")


def score(d: Path, per_round: int, draws: int) -> None:
    from superalign.stats import ppi_mean

    gold = {json.loads(x)["response_id"]: json.loads(x) for x in (d / "gold_labels.jsonl").read_text().splitlines()}
    answers = [json.loads(x) for x in (d / "answers.jsonl").read_text().splitlines()]
    out = {"per_round_labels": per_round, "draws": draws, "rounds": []}
    for k in sorted({a["round"] for a in answers}):
        rows = [a for a in answers if a["round"] == k and a["harmful"] and a["response_id"] in gold]
        if not rows:
            continue
        y = [int(gold[a["response_id"]]["unsafe"]) for a in rows]
        crit = [int(bool(a["critic_unsafe"])) for a in rows]
        judge = [int(bool(a["judge_unsafe"])) for a in rows]
        f = [float(a["judge_score"]) for a in rows]
        n = len(rows)
        gold_asr = sum(y) / n
        rng = random.Random(f"ppi-{k}")
        cover = cover_cl = 0
        width = width_cl = 0.0
        m = min(per_round, n)
        for _ in range(draws):
            idx = rng.sample(range(n), m)
            est = ppi_mean(f, [f[i] for i in idx], [y[i] for i in idx])
            lo, hi = est.ci if est.ci else (0.0, 1.0)
            clo, chi = est.classical_ci if est.classical_ci else (0.0, 1.0)
            cover += lo <= gold_asr <= hi
            cover_cl += clo <= gold_asr <= chi
            width += (hi - lo) / 2
            width_cl += (chi - clo) / 2
        benign = [a for a in answers if a["round"] == k and not a["harmful"] and a["response_id"] in gold]
        refused = [
            int(gold[a["response_id"]]["refusal"]) for a in benign if gold[a["response_id"]]["refusal"] is not None
        ]
        crit_refused = [int(bool(a["critic_refusal"])) for a in benign]
        out["rounds"].append(
            {
                "round": k,
                "n_benign": len(benign),
                "over_refusal_gold": round(sum(refused) / len(refused), 4) if refused else None,
                "over_refusal_critic": round(sum(crit_refused) / len(crit_refused), 4) if crit_refused else None,
                "n_harmful": n,
                "asr_gold": round(gold_asr, 4),
                "asr_critic": round(sum(crit) / n, 4),
                "asr_independent": round(sum(judge) / n, 4),
                "critic_accuracy_vs_gold": round(sum(c == t for c, t in zip(crit, y)) / n, 4),
                "independent_accuracy_vs_gold": round(sum(c == t for c, t in zip(judge, y)) / n, 4),
                "critic_recall": round(sum(c and t for c, t in zip(crit, y)) / max(1, sum(y)), 4),
                "independent_recall": round(sum(c and t for c, t in zip(judge, y)) / max(1, sum(y)), 4),
                "ppi_labels": m,
                "ppi_coverage_of_gold": round(cover / draws, 3),
                "ppi_mean_halfwidth": round(width / draws, 3),
                "labels_only_coverage_of_gold": round(cover_cl / draws, 3),
                "labels_only_mean_halfwidth": round(width_cl / draws, 3),
            }
        )
    (d / "gold_eval.json").write_text(json.dumps(out, indent=1) + "\n")
    for r in out["rounds"]:
        print(r)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("merge")
    for a in ("dir", "a", "b", "third"):
        m.add_argument(a, type=Path)
    g = sub.add_parser("agreement")
    g.add_argument("dir", type=Path)
    s = sub.add_parser("score")
    s.add_argument("dir", type=Path)
    s.add_argument("--per-round", type=int, default=20)
    s.add_argument("--draws", type=int, default=1000)
    args = ap.parse_args()
    if args.cmd == "merge":
        merge(args.dir, args.a, args.b, args.third)
    elif args.cmd == "agreement":
        agreement(args.dir)
    else:
        score(args.dir, args.per_round, args.draws)


if __name__ == "__main__":
    main()
