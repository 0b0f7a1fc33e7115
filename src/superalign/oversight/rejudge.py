"""Re-judge a run's stored history under another value version, and report which verdicts changed.

    report = rejudge_run(run_dir, version="1.1", critic="rules")

Every stored verdict of the run's "judge" (training) and "eval" (held-out) steps is judged again,
same prompt and response, under the chosen constitution version. The new verdicts go into the run
store as steps of their own (`rejudge:<origin>:<version>:<profile>:<critic>`, one transaction per
round and origin): the original verdicts are never touched, and re-running reads the stored ones back.

The baseline the flips are counted against is the stored verdicts when the critic is the run's own;
with another critic (e.g. `--critic rules` for speed) it is that critic under the run's first value
version, so a flip is a change of values, not of critic.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from superalign.errors import UserError
from superalign.records import Query, Response, Verdict

ORIGINS = ("judge", "eval")
_RESPONSE_STEP = {"judge": "respond", "eval": "eval"}


@dataclass(frozen=True)
class Flip:
    """One past verdict that changed. `kind`: safe->unsafe, unsafe->safe, ->abstain, abstain->..., refusal."""

    round: int
    origin: str
    category: str
    kind: str
    prompt: str
    response: str
    before: dict[str, Any]
    after: dict[str, Any]


@dataclass
class RejudgeReport:
    """What changed when the run's history was judged under `version` (JSON-serialisable)."""

    run: str
    version: str
    baseline_version: str
    baseline: str  # "stored verdicts (<critic>)" or "<critic> under <version>"
    critic: str
    profile: str
    threshold_before: float
    threshold_after: float
    changes: list[str]
    n_verdicts: int = 0
    unsafe_flips: int = 0
    refusal_flips: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_round: dict[str, dict[str, int]] = field(default_factory=dict)
    by_category: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    heldout: dict[str, dict[str, float]] = field(
        default_factory=dict
    )  # round -> held-out ASR/over-refusal before/after


def _short(v: Verdict) -> dict[str, Any]:
    return {
        "unsafe": v.unsafe,
        "refusal": v.refusal,
        "score": v.score,
        "confidence": v.confidence,
        "constitution": v.constitution,
        "profile": v.profile,
        "rubric_item": v.rubric_item,
        "explanation": v.explanation,
    }


def _label(unsafe: bool | None) -> str:
    return "abstain" if unsafe is None else ("unsafe" if unsafe else "safe")


def flip_kind(before: Verdict, after: Verdict) -> str | None:
    """'safe->unsafe', 'unsafe->safe', 'safe->abstain', ... for an unsafe flip; 'refusal' for a
    refusal-only flip; None when nothing the user acts on changed."""
    if before.unsafe != after.unsafe:
        return f"{_label(before.unsafe)}->{_label(after.unsafe)}"
    if before.refusal != after.refusal:
        return "refusal"
    return None


def _stored(store: Any, origin: str) -> list[tuple[int, Verdict]]:
    rows = store.conn.execute("SELECT round, data FROM verdicts WHERE step = ? ORDER BY seq", (origin,))
    return [(rnd, Verdict.from_dict(json.loads(d))) for rnd, d in rows]


def _history(store: Any) -> tuple[dict[str, Query], dict[tuple[int, str, str], Response]]:
    queries = {q.id: q for q in store.queries()}
    responses: dict[tuple[int, str, str], Response] = {}
    for origin, step in _RESPONSE_STEP.items():
        for rnd, d in store.conn.execute("SELECT round, data FROM responses WHERE step = ?", (step,)):
            r = Response.from_dict(json.loads(d))
            responses[(rnd, origin, r.id)] = r
    return queries, responses


def judge_history(store: Any, critic: Any, tag: str) -> dict[tuple[int, str, str], Verdict]:
    """{(round, origin, response_id): verdict} of `critic` over the stored history, stored under the
    steps `rejudge:<origin>:<tag>` (read back when already there; never overwriting anything)."""
    from superalign.critic import JudgeItem, judge

    queries, responses = _history(store)
    out: dict[tuple[int, str, str], Verdict] = {}
    for origin in ORIGINS:
        by_round: dict[int, list[Verdict]] = {}
        for rnd, v in _stored(store, origin):
            by_round.setdefault(rnd, []).append(v)
        for rnd, originals in sorted(by_round.items()):
            step = f"rejudge:{origin}:{tag}"
            if not store.step_done(rnd, step):
                items, seen = [], set()
                for v in originals:
                    r = responses.get((rnd, origin, v.response_id))
                    q = queries.get(r.query_id) if r else None
                    if r is None or q is None or r.id in seen:
                        continue
                    seen.add(r.id)
                    items.append(JudgeItem(r.id, q.text, r.text, q.harmful))
                store.commit_step(rnd, step, verdicts=judge(items, critic), payload={"critic": critic.name})
            for v in store.verdicts(round=rnd, step=step):
                out[(rnd, origin, v.response_id)] = v
    return out


def _critic_for(cfg: dict[str, Any], kind: str, path: Path, profile: str) -> Any:
    from superalign.config import CriticConfig
    from superalign.critic import build_critic

    base = {k: v for k, v in (cfg.get("critic") or {}).items() if k in CriticConfig.model_fields}
    try:
        ccfg = CriticConfig(**{**base, "kind": kind, "constitution": str(path), "profile": profile})
    except Exception as exc:
        raise UserError(f"--critic {kind!r} / --profile {profile!r}: {exc}") from None
    return build_critic(ccfg)


def rejudge_run(
    run_dir: str | Path,
    version: str | None = None,
    critic: str | None = None,
    profile: str | None = None,
    n_examples: int = 8,
) -> RejudgeReport:
    """Re-judge the run's history under value `version` (None = current) and compare with the baseline."""
    from superalign.critic.constitution import Policy
    from superalign.oversight.values import ValueHistory, describe_changes
    from superalign.store.runstore import RunStore

    run_dir = Path(run_dir)
    db = run_dir / "run.sqlite"
    if not db.is_file():
        raise UserError(f"{run_dir}: no run.sqlite here; give the --out directory of a `superalign run`")
    history = ValueHistory(run_dir)
    target, first = history.entry(version), history.versions()[0]
    with RunStore(db) as store:
        cfg = store.get_meta("config") or {}
        run_kind = (cfg.get("critic") or {}).get("kind", "ensemble")
        kind = critic or run_kind
        profile = profile or (cfg.get("critic") or {}).get("profile", "default")
        new_c, base_c = history.load(target.version), history.load(first.version)
        after_policy, before_policy = Policy(new_c, profile), Policy(base_c, profile)
        after = judge_history(
            store, _critic_for(cfg, kind, history.path(target.version), profile), f"{target.version}:{profile}:{kind}"
        )
        if kind == run_kind:
            before = {(rnd, o, v.response_id): v for o in ORIGINS for rnd, v in _stored(store, o)}
            baseline = f"stored verdicts ({run_kind})"
        else:
            before = judge_history(
                store, _critic_for(cfg, kind, history.path(first.version), profile), f"{first.version}:{profile}:{kind}"
            )
            baseline = f"{kind} under {first.version}"
        queries, responses = _history(store)
    report = RejudgeReport(
        str(run_dir),
        target.version,
        first.version,
        baseline,
        kind,
        profile,
        before_policy.unsafe_threshold,
        after_policy.unsafe_threshold,
        describe_changes(base_c, new_c),
    )
    kinds: Counter[str] = Counter()
    for key in sorted(set(before) & set(after), key=lambda k: (k[0], ORIGINS.index(k[1]))):
        b, a = before[key], after[key]
        report.n_verdicts += 1
        kind_ = flip_kind(b, a)
        if kind_ is None:
            continue
        rnd, origin, _rid = key
        r = responses.get(key)
        q = queries.get(r.query_id) if r else None
        category = q.category if q else "?"
        kinds[kind_] += 1
        report.unsafe_flips += kind_ != "refusal"
        report.refusal_flips += b.refusal != a.refusal
        report.by_round.setdefault(str(rnd), Counter())[kind_] += 1
        report.by_category.setdefault(category, Counter())[kind_] += 1
        if sum(1 for e in report.examples if e["kind"] == kind_) < n_examples:
            report.examples.append(
                asdict(
                    Flip(rnd, origin, category, kind_, q.text if q else "", r.text if r else "", _short(b), _short(a))
                )
            )
    report.heldout = heldout_metrics(before, after, queries, responses)
    report.by_kind = dict(kinds)
    report.by_round = {k: dict(v) for k, v in report.by_round.items()}
    report.by_category = {k: dict(v) for k, v in sorted(report.by_category.items())}
    return report


def heldout_metrics(
    before: dict[tuple[int, str, str], Verdict],
    after: dict[tuple[int, str, str], Verdict],
    queries: dict[str, Query],
    responses: dict[tuple[int, str, str], Response],
) -> dict[str, dict[str, float]]:
    """Per round, the held-out ASR and over-refusal (evaluate.safety_metrics) under the baseline and
    under the new values: what the run's metrics would have read had it judged with them."""
    from superalign.evaluate import safety_metrics

    out: dict[str, dict[str, float]] = {}
    for rnd in sorted({k[0] for k in after if k[1] == "eval"}):
        keys = [k for k in after if k[0] == rnd and k[1] == "eval" and k in before and k in responses]
        rs = [responses[k] for k in keys]
        qs = list({r.query_id: queries[r.query_id] for r in rs if r.query_id in queries}.values())
        rs = [r for r in rs if r.query_id in queries]
        b = safety_metrics(qs, rs, [before[k] for k in keys])
        a = safety_metrics(qs, rs, [after[k] for k in keys])
        out[str(rnd)] = {
            "asr_before": b.asr,
            "asr_after": a.asr,
            "over_refusal_before": b.over_refusal,
            "over_refusal_after": a.over_refusal,
        }
    return out


def report_markdown(rep: RejudgeReport) -> str:
    """The report as markdown: what changed in the values, flip counts by kind, round and category, examples."""
    lines = [
        f"# Re-judged under values {rep.version}",
        "",
        f"Run `{rep.run}`; critic `{rep.critic}`, profile `{rep.profile}`; baseline: {rep.baseline}.",
        f"Unsafe threshold {rep.threshold_before:.2f} -> {rep.threshold_after:.2f}.",
        "",
        "## Value changes since " + rep.baseline_version,
        "",
    ]
    lines += [f"- `{c}`" for c in rep.changes] or ["- (none)"]
    lines += [
        "",
        f"## Verdicts: {rep.unsafe_flips} unsafe flips, {rep.refusal_flips} refusal flips of {rep.n_verdicts}",
        "",
    ]
    if rep.heldout:
        lines += [
            "Held-out metrics had the run judged with these values:",
            "",
            "| round | ASR before | ASR after | over-refusal before | over-refusal after |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {k} | {m['asr_before']:.3f} | {m['asr_after']:.3f} | {m['over_refusal_before']:.3f} | "
            f"{m['over_refusal_after']:.3f} |"
            for k, m in rep.heldout.items()
        ]
        lines.append("")
    for title, table in (("round", rep.by_round), ("category", rep.by_category)):
        cols = sorted({k for row in table.values() for k in row})
        if not cols:
            continue
        lines += [f"| {title} | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        lines += [f"| {k} | " + " | ".join(str(row.get(c, 0)) for c in cols) + " |" for k, row in table.items()]
        lines.append("")
    if rep.examples:
        lines += ["## Examples", ""]
    for e in rep.examples:
        b, a = e["before"], e["after"]
        lines += [
            f"- **{e['kind']}** (round {e['round']}, {e['origin']}, {e['category']}): "
            f"P(unsafe) {b['score']:.2f} -> {a['score']:.2f}",
            f"  - prompt: {_one_line(e['prompt'])}",
            f"  - response: {_one_line(e['response'])}",
            f"  - now: {_one_line(a['explanation'])}",
        ]
    return "\n".join(lines) + "\n"


def _one_line(text: str, limit: int = 160) -> str:
    t = " ".join(text.split()).replace("|", "\\|").replace("`", "'")
    return t if len(t) <= limit else t[: limit - 1] + "…"


def write_report(run_dir: str | Path, rep: RejudgeReport) -> dict[str, Path]:
    """values/rejudge-<version>-<profile>-<critic>.{json,md,html}; returns the paths."""
    from superalign.oversight.pages import make_env
    from superalign.oversight.values import VALUES_DIR, atomic_write

    stem = f"rejudge-{rep.version}-{rep.profile}-{rep.critic}"
    paths = {ext: Path(run_dir) / VALUES_DIR / f"{stem}.{ext}" for ext in ("json", "md", "html")}
    atomic_write(paths["json"], json.dumps(asdict(rep), indent=1, ensure_ascii=False) + "\n")
    atomic_write(paths["md"], report_markdown(rep))
    html = (
        make_env()
        .get_template("rejudge")
        .render(
            title=f"Re-judged under {rep.version}", csrf="", run_name=Path(run_dir).name, authed=False, rep=asdict(rep)
        )
    )
    atomic_write(paths["html"], html)
    return paths


def load_reports(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every stored re-judge report of the run (JSON), newest file last."""
    d = Path(run_dir) / "values"
    files = sorted(d.glob("rejudge-*.json"), key=lambda p: p.stat().st_mtime) if d.is_dir() else []
    return [json.loads(p.read_text(encoding="utf-8")) for p in files]
