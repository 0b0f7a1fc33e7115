"""Commit a run's raw results, compare runs paired on the same held-out prompts, and render README tables.

    python scripts/results.py collect RUN_DIR docs/results/NAME [--log RUN.log] [--commit HASH]
    python scripts/results.py ablation docs/results/ablation-pairs label=RUN_A critic=RUN_B critic+revise=RUN_C
    python scripts/results.py dev RUN_DIR docs/results/NAME
    python scripts/results.py render README.md

collect:  rounds.jsonl, the run's config (config.json), per-round held-out answers with both judges' verdicts
          (answers.jsonl), and machine.json (CPU, cores, commit, wall time and peak memory from the run's
          `/usr/bin/time -v` log when given). Several machines: one NAME per machine (e.g. demo, demo-avx2).
          Also dev_answers.jsonl (below).
dev:      dev_answers.jsonl only: every round's greedy answers to the dev prompts (taken out of training, never
          held out; what the gate reads), with the training critic's verdicts, for reading a recipe on dev by eye.
ablation: for each arm, the last round's ASR by the training critic and by the independent judge, over-refusal
          and competence with Wilson intervals; and each arm minus the first, paired on the same held-out
          prompts, with a bootstrap 95 % interval over prompts (the arms share seeds, prompts and budget).
render:   rewrites the blocks between `<!-- results:NAME -->` and `<!-- /results:NAME -->` in the README
          from docs/results/NAME/ (rounds tables) and docs/results/ablation-pairs/ (the ablation table).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _cpu() -> dict[str, Any]:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next(
        (ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), platform.processor()
    )
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
    import os

    return {"cpu": model, "isa": [f for f in ("amx_bf16", "avx512f", "avx2") if f in flags], "cores": os.cpu_count()}


def _time_log(log: Path | None) -> dict[str, Any]:
    """Wall time and peak RSS from a `/usr/bin/time -v` log."""
    if log is None or not log.is_file():
        return {}
    text = log.read_text(errors="replace")
    out: dict[str, Any] = {}
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if m:
        parts = [float(p) for p in m.group(1).split(":")]
        out["wall_s"] = round(sum(p * 60**i for i, p in enumerate(reversed(parts))), 1)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        out["peak_rss_mb"] = round(int(m.group(1)) / 1024)
    return out


def _answer_row(k: int, q: Any, r: Any, verdict: Any) -> dict[str, Any]:
    """One answer of round k to query q, with the training critic's verdict (None when it has none)."""
    return {
        "round": k,
        "response_id": r.id,
        "query_id": q.id,
        "harmful": q.harmful,
        "source": q.source,
        "prompt": q.text,
        "response": r.text,
        "critic_unsafe": verdict.unsafe if verdict else None,
        "critic_refusal": verdict.refusal if verdict else None,
    }


def collect(run: Path, dest: Path, log: Path | None, commit: str | None) -> None:
    from superalign.store.runstore import RunStore

    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "rounds.jsonl", dest / "rounds.jsonl")
    with RunStore(run / "run.sqlite") as store:
        (dest / "config.json").write_text(json.dumps(store.get_meta("config"), indent=1) + "\n")
        queries = {q.id: q for q in store.queries(round=0, step="eval")}
        rows = []
        for k in sorted({k for k, name in store.steps() if name == "eval"}):
            critic = {v.response_id: v for v in store.verdicts(round=k, step="eval")}
            judge = {v.response_id: v for v in store.verdicts(round=k, step="eval_independent")}
            for r in store.responses(round=k, step="eval"):
                j = judge.get(r.id)
                rows.append(
                    {
                        **_answer_row(k, queries[r.query_id], r, critic[r.id]),
                        "judge_unsafe": j.unsafe if j else None,
                        "judge_score": j.score if j else None,
                    }
                )
    (dest / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    dev_answers(run, dest)
    commit = (
        commit or subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    )
    machine = {**_cpu(), "commit": commit, **_time_log(log), "run_dir": str(run)}
    (dest / "machine.json").write_text(json.dumps(machine, indent=1) + "\n")
    print(f"wrote {dest}: rounds.jsonl, config.json, answers.jsonl ({len(rows)} rows), machine.json")


def dev_answers(run: Path, dest: Path) -> int:
    """Write dest/dev_answers.jsonl: each round's answers to the dev prompts (step `eval_dev`: the version that
    stayed that round) with the training critic's verdicts. Dev prompts are not stored as queries; they are
    the run's plan (`make_plan` of its stored config, deterministic), matched by id."""
    from superalign.config import RunConfig
    from superalign.plan import make_plan
    from superalign.store.runstore import RunStore

    with RunStore(run / "run.sqlite") as store:
        cfg = RunConfig.model_validate(store.get_meta("config"))
        plan = make_plan(cfg)
        queries = {q.id: q for q in plan.dev_harmful + plan.dev_benign}
        rows = []
        for k in sorted({k for k, name in store.steps() if name == "eval_dev"}):
            critic = {v.response_id: v for v in store.verdicts(round=k, step="eval_dev")}
            rows += [
                _answer_row(k, queries[r.query_id], r, critic.get(r.id))
                for r in store.responses(round=k, step="eval_dev")
            ]
    tmp = dest / "dev_answers.jsonl.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(dest / "dev_answers.jsonl")
    return len(rows)


def _wilson(x: list[int]) -> list[float]:
    from superalign.stats import wilson

    lo, hi = wilson(sum(x), len(x))
    return [round(lo, 3), round(hi, 3)]


def _last_round(answers: list[dict]) -> int:
    return max(a["round"] for a in answers)


def ablation(dest: Path, arms: list[tuple[str, Path]], n_boot: int = 5000) -> None:
    import numpy as np

    per_arm: dict[str, dict[str, dict[str, int]]] = {}
    summary = []
    for name, d in arms:
        rounds = [json.loads(x) for x in (d / "rounds.jsonl").read_text().splitlines()]
        k, read = _last_round_reads(d)
        crit, judge, refused = read["critic"], read["judge"], list(read["critic_refusal"].values())
        per_arm[name] = {key: read[key] for key in ("critic", "judge", "eye") if key in read}
        eye = read.get("eye", {})
        eye_refused = list(read.get("eye_refusal", {}).values())
        r = rounds[-1]
        summary.append(
            {
                "arm": name,
                "round": k,
                "n_harmful": len(crit),
                "asr": round(float(np.mean(list(crit.values()))), 3),
                "asr_ci": _wilson(list(crit.values())),
                "asr_independent": round(float(np.mean(list(judge.values()))), 3),
                "asr_independent_ci": _wilson(list(judge.values())),
                "over_refusal": round(float(np.mean(refused)), 3),
                "over_refusal_ci": _wilson(refused),
                "competence": r.get("competence"),
                "competence_ci": r.get("competence_ci"),
                "pairs": [x.get("pairs") for x in rounds[1:]],
                "degenerate": r.get("degenerate"),
                **(
                    {"asr_eye": round(float(np.mean(list(eye.values()))), 3), "asr_eye_ci": _wilson(list(eye.values()))}
                    if "eye" in per_arm[name]
                    else {}
                ),
                **({"over_refusal_eye": round(float(np.mean(eye_refused)), 3)} if eye_refused else {}),
            }
        )
    base = arms[0][0]
    rng = np.random.default_rng(0)
    diffs = []
    for name, _ in arms[1:]:
        for judge in ("critic", "judge", "eye"):
            if judge not in per_arm[base] or judge not in per_arm[name]:
                continue
            ids = sorted(set(per_arm[base][judge]) & set(per_arm[name][judge]))
            d = np.asarray([per_arm[name][judge][i] - per_arm[base][judge][i] for i in ids], dtype=float)
            boots = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
            diffs.append(
                {
                    "arm": name,
                    "minus": base,
                    "judge": {"critic": "training critic", "judge": "independent", "eye": "read by eye (gold)"}[judge],
                    "n_paired": len(ids),
                    "delta_asr": round(float(d.mean()), 3),
                    "ci95": [round(float(np.percentile(boots, 2.5)), 3), round(float(np.percentile(boots, 97.5)), 3)],
                }
            )
    dest.mkdir(parents=True, exist_ok=True)
    out = {"arms": summary, "paired_differences": diffs, "sources": {n: str(d) for n, d in arms}, **_cpu()}
    (dest / "ablation.json").write_text(json.dumps(out, indent=1) + "\n")
    print(ablation_table(out))


def _last_round_reads(d: Path) -> tuple[int, dict[str, dict[str, int]]]:
    """(last round, its reads per query) of a collected run: unsafe by the critic and the independent judge
    (harmful answers), refusal by the critic (benign answers), and the same two read by eye where every answer
    of that kind carries a gold label."""
    answers = [json.loads(x) for x in (d / "answers.jsonl").read_text().splitlines()]
    k = _last_round(answers)
    harm = [a for a in answers if a["round"] == k and a["harmful"]]
    ben = [a for a in answers if a["round"] == k and not a["harmful"]]
    out = {
        "critic": {a["query_id"]: int(bool(a["critic_unsafe"])) for a in harm},
        "judge": {a["query_id"]: int(bool(a["judge_unsafe"])) for a in harm},
        "critic_refusal": {a["query_id"]: int(bool(a["critic_refusal"])) for a in ben},
    }
    gold_path = d / "gold_labels.jsonl"
    if gold_path.is_file():
        gold = {json.loads(x)["response_id"]: json.loads(x) for x in gold_path.read_text().splitlines()}
        if all(a["response_id"] in gold for a in harm):
            out["eye"] = {a["query_id"]: int(bool(gold[a["response_id"]]["unsafe"])) for a in harm}
        if all(a["response_id"] in gold and gold[a["response_id"]]["refusal"] is not None for a in ben):
            out["eye_refusal"] = {a["query_id"]: int(bool(gold[a["response_id"]]["refusal"])) for a in ben}
    return k, out


def ablation_seeds(dest: Path, seeds: list[tuple[str, Path, Path]], n_boot: int = 5000) -> None:
    """Arm − baseline over several training seeds (each seed its own split, prompts and training run): the paired
    difference within each seed, and pooled over seeds with a bootstrap that resamples prompts within each seed.
    The spread of the per-seed differences is the run-to-run variation the pooled interval does not include."""
    import numpy as np

    rng = np.random.default_rng(0)
    rows = []
    for judge, label in (
        ("critic", "ASR, training critic"),
        ("judge", "ASR, independent judge"),
        ("eye", "ASR, read by eye (gold)"),
        ("critic_refusal", "over-refusal, training critic"),
        ("eye_refusal", "over-refusal, read by eye (gold)"),
    ):
        per_seed, strata = [], []
        for seed, base_dir, arm_dir in seeds:
            b, a = _last_round_reads(base_dir)[1], _last_round_reads(arm_dir)[1]
            if judge not in b or judge not in a:
                break
            ids = sorted(set(b[judge]) & set(a[judge]))
            d = np.asarray([a[judge][i] - b[judge][i] for i in ids], dtype=float)
            strata.append(d)
            per_seed.append(
                {
                    "seed": seed,
                    "n_paired": len(ids),
                    "base": round(float(np.mean([b[judge][i] for i in ids])), 3),
                    "arm": round(float(np.mean([a[judge][i] for i in ids])), 3),
                    "delta": round(float(d.mean()), 3),
                }
            )
        else:
            boots = np.asarray(
                [np.concatenate([d[rng.integers(0, len(d), len(d))] for d in strata]).mean() for _ in range(n_boot)]
            )
            pooled = float(np.concatenate(strata).mean())
            rows.append(
                {
                    "metric": label,
                    "per_seed": per_seed,
                    "delta_pooled": round(pooled, 3),
                    "ci95_prompts": [round(float(np.percentile(boots, q)), 3) for q in (2.5, 97.5)],
                    "n_paired": int(sum(len(d) for d in strata)),
                    "seeds_below_zero": sum(x["delta"] < 0 for x in per_seed),
                }
            )
    dest.mkdir(parents=True, exist_ok=True)
    out = {"comparisons": rows, "sources": {s: [str(b), str(a)] for s, b, a in seeds}, **_cpu()}
    (dest / "seeds.json").write_text(json.dumps(out, indent=1) + "\n")
    print(seeds_table(out))


def seeds_table(out: dict) -> str:
    seeds = [x["seed"] for x in out["comparisons"][0]["per_seed"]]
    lines = [
        "| metric (judge) | "
        + " | ".join(f"seed {s}: base → arm (Δ)" for s in seeds)
        + " | Δ pooled [95 % CI over prompts] | seeds with Δ < 0 |",
        "|---|" + "---|" * len(seeds) + "---|---|",
    ]
    for c in out["comparisons"]:
        cells = " | ".join(f"{x['base']:.3f} → {x['arm']:.3f} ({x['delta']:+.3f})" for x in c["per_seed"])
        lo, hi = c["ci95_prompts"]
        lines.append(
            f"| {c['metric']} | {cells} | {c['delta_pooled']:+.3f} [{lo:+.3f}, {hi:+.3f}] (n={c['n_paired']}) | "
            f"{c['seeds_below_zero']} of {len(c['per_seed'])} |"
        )
    return "\n".join(lines)


def ablation_table(out: dict, differences_only: bool = False) -> str:
    """The arms' metrics and the paired differences to the first arm (`differences_only`: those alone)."""
    lines = [
        "| pairs | ASR (training critic) | ASR (independent judge) | ASR read by eye | over-refusal (critic) | "
        "over-refusal read by eye | competence | pairs per round |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for a in out["arms"]:
        comp = a["competence"]
        eye = f"{a['asr_eye']:.3f} {a['asr_eye_ci']}" if "asr_eye" in a else "–"
        eye_or = f"{a['over_refusal_eye']:.3f}" if "over_refusal_eye" in a else "–"
        lines.append(
            f"| `{a['arm']}` | {a['asr']:.3f} {a['asr_ci']} | {a['asr_independent']:.3f} "
            f"{a['asr_independent_ci']} | {eye} | {a['over_refusal']:.3f} | {eye_or} | "
            f"{comp if comp is None else f'{comp:.3f}'} | {', '.join(str(p) for p in a['pairs'])} |"
        )
    if differences_only:
        lines = []
    else:
        lines.append("")
    lines += [
        "| arm − " + out["arms"][0]["arm"] + " | judge | ΔASR, paired over the same prompts [95 % CI] |",
        "|---|---|---|",
    ]
    for d in out["paired_differences"]:
        lines.append(f"| `{d['arm']}` | {d['judge']} | {d['delta_asr']:+.3f} {d['ci95']} (n={d['n_paired']}) |")
    eye = out.get("by_eye_round2")
    if eye:
        lines.append(
            f"| `critic+revise` | read by eye (round {eye['round']}: {eye['asr_critic_revise_arm']:.3f} vs "
            f"{eye['asr_label_arm']:.3f}) | {eye['delta_critic_revise_minus_label']:+.3f} {eye['ci95']} "
            f"(n={eye['n_paired']}) |"
        )
    return "\n".join(lines)


def rounds_table(d: Path) -> str:
    rounds = [json.loads(x) for x in (d / "rounds.jsonl").read_text().splitlines()]
    m = json.loads((d / "machine.json").read_text())
    gold_path = d / "gold_eval.json"
    gold = {r["round"]: r for r in json.loads(gold_path.read_text())["rounds"]} if gold_path.is_file() else {}
    lines = [
        "| round | gate | ASR (critic) | ASR (independent) | Goodhart gap | asr_ppi [95 % CI] | ASR read by eye | "
        "HarmBench ASR (indep.) | keyword bound | over-refusal | over-refusal read by eye | degenerate | competence | "
        "pairs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ships = max([r["round"] for r in rounds if r.get("promoted")] or [0])

    def gate(r: dict) -> str:
        if r["round"] == 0:
            return "**ships**" if ships == 0 and any(x.get("promoted") is False for x in rounds) else "–"
        word = {True: "approved", False: "rejected", None: "–"}[r.get("promoted")]
        if r.get("scaled_by") not in (None, 1.0):
            word += f" ×{r['scaled_by']}"
        return f"**ships** ({word})" if r["round"] == ships else word

    def f(x: Any) -> str:
        return "–" if x is None else f"{x:.3f}"

    for r in rounds:
        sub = r.get("asr_by_subset", {})
        hb = next((v.get("asr_independent") for k, v in sub.items() if k.startswith("source:")), None)
        ci = r.get("asr_ppi_ci")
        ppi = "–" if r.get("asr_ppi") is None else f"{r['asr_ppi']:.3f}"
        if ci:
            ppi += f" [{ci[0]:.2f}, {ci[1]:.2f}] ({r.get('human_labels_eval')} labels)"
        eye = gold.get(r["round"], {}).get("asr_gold")
        eye_or = gold.get(r["round"], {}).get("over_refusal_gold")
        lines.append(
            f"| {r['round']} | {gate(r)} | {f(r.get('asr'))} | {f(r.get('asr_independent'))} | "
            f"{f(r.get('goodhart_gap'))} | "
            f"{ppi} | {f(eye)} | {f(hb)} | {f(r.get('asr_keyword_bound'))} | {f(r.get('over_refusal'))} | "
            f"{f(eye_or)} | "
            f"{f(r.get('degenerate'))} | {f(r.get('competence'))} | {r.get('pairs', 0)} |"
        )
    wall = f", {m['wall_s'] / 60:.1f} min" if "wall_s" in m else ""
    peak = f", peak {m['peak_rss_mb'] / 1024:.1f} GB" if "peak_rss_mb" in m else ""
    note = " (wall time under CPU contention)" if "contention" in m.get("note", "") else ""
    lines.append(
        f"\n<sub>{m['cpu']} ({', '.join(m['isa'])}; {m['cores']} cores){wall}{note}{peak}; commit "
        f"{m['commit'][:7]}; raw: `{d.relative_to(ROOT)}/`.</sub>"
    )
    return "\n".join(lines)


def summary_table(names: list[str]) -> str:
    """One row per loop run: the version the gate ships against round 0, read by eye where gold labels exist."""
    lines = [
        "| run | commit | ships | ASR read by eye | ASR (independent) | over-refusal read by eye (critic) | "
        "competence (paired drop [95 % CI]) | wall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        d = ROOT / "docs" / "results" / name
        rounds = {r["round"]: r for r in map(json.loads, (d / "rounds.jsonl").read_text().splitlines())}
        m = json.loads((d / "machine.json").read_text())
        gold_path = d / "gold_eval.json"
        gold = {r["round"]: r for r in json.loads(gold_path.read_text())["rounds"]} if gold_path.is_file() else {}
        k = max([r for r, x in rounds.items() if x.get("promoted")] or [0])
        rk = rounds[k]
        scaled = f" ×{rk['scaled_by']}" if rk.get("scaled_by") not in (None, 1.0) else ""

        def f(x: Any) -> str:
            return "–" if x is None else f"{x:.3f}"

        def pair(key: str, src: dict, k: int = k) -> str:
            a, b = src.get(0, {}).get(key), src.get(k, {}).get(key)
            return f"{f(a)} → {f(b)}" if k else f(a)

        eye_or = gold.get(k, {}).get("over_refusal_gold")
        wall = f"{m['wall_s'] / 60:.1f} min" if "wall_s" in m else "–"
        if m.get("wall_note"):  # a run resumed after a crash, or one that shared the cores: not the config's wall
            wall += " (see machine.json)"
        ci = rk.get("competence_drop_ci")  # the paired interval, where the run stored per-item competence
        drop = f" (drop {rk['competence_drop']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}])" if ci else ""
        lines.append(
            f"| `{name}` | {m['commit'][:7]} | round {k}{scaled} | {pair('asr_gold', gold)} | "
            f"{pair('asr_independent', rounds)} | {f(eye_or)} ({f(rk.get('over_refusal'))}) | "
            f"{pair('competence', rounds)}{drop} | {wall} |"
        )
    return "\n".join(lines)


def render(readme: Path) -> None:
    text = readme.read_text()

    def block(match: re.Match) -> str:
        name = match.group(1)
        if name.startswith("summary="):  # <!-- results:summary=run1+run2 -->: one row per run
            return (
                f"<!-- results:{name} -->\n{summary_table(name.split('=', 1)[1].split('+'))}\n<!-- /results:{name} -->"
            )
        d = ROOT / "docs" / "results" / name.removesuffix("=differences")
        if (d / "seeds.json").is_file():
            body = seeds_table(json.loads((d / "seeds.json").read_text()))
        elif (d / "ablation.json").is_file():  # <!-- results:NAME=differences -->: the paired differences alone
            body = ablation_table(json.loads((d / "ablation.json").read_text()), name.endswith("=differences"))
        else:
            body = "\n\n".join(
                rounds_table(m)
                for m in sorted(ROOT.glob(f"docs/results/{name}*"))
                if (m / "machine.json").is_file()
                and (m / "rounds.jsonl").is_file()
                and (m.name == name or m.name.startswith(name + "@"))
            )
        return f"<!-- results:{name} -->\n{body}\n<!-- /results:{name} -->"

    new = re.sub(r"<!-- results:([\w.@=+-]+) -->.*?<!-- /results:\1 -->", block, text, flags=re.S)
    readme.write_text(new)
    print(f"rendered {len(re.findall(r'<!-- results:', new))} result blocks into {readme}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("run", type=Path)
    c.add_argument("dest", type=Path)
    c.add_argument("--log", type=Path)
    c.add_argument("--commit")
    a = sub.add_parser("ablation")
    a.add_argument("dest", type=Path)
    a.add_argument("arms", nargs="+", help="NAME=DIR (a collected results dir); the first is the baseline")
    s = sub.add_parser("ablation-seeds")
    s.add_argument("dest", type=Path)
    s.add_argument("seeds", nargs="+", help="SEED=BASE_DIR,ARM_DIR (collected results dirs of one training seed)")
    d = sub.add_parser("dev")
    d.add_argument("run", type=Path)
    d.add_argument("dest", type=Path)
    r = sub.add_parser("render")
    r.add_argument("readme", type=Path, nargs="?", default=ROOT / "README.md")
    args = ap.parse_args()
    if args.cmd == "collect":
        collect(args.run, args.dest, args.log, args.commit)
    elif args.cmd == "dev":
        print(f"wrote {args.dest / 'dev_answers.jsonl'} ({dev_answers(args.run, args.dest)} rows)")
    elif args.cmd == "ablation":
        ablation(args.dest, [(s.split("=", 1)[0], Path(s.split("=", 1)[1])) for s in args.arms])
    elif args.cmd == "ablation-seeds":
        groups = [(x.split("=", 1)[0], *map(Path, x.split("=", 1)[1].split(","))) for x in args.seeds]
        ablation_seeds(args.dest, groups)  # type: ignore[arg-type]
    else:
        render(args.readme)


if __name__ == "__main__":
    main()
