"""`superalign` command line (docs/design.md §3).

Exit codes: 0 ok, 2 bad input (with file:line and the fix), 1 other.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from superalign.errors import AwaitingHumans, UserError

if TYPE_CHECKING:
    from superalign.config import CriticConfig, RunConfig

CRITIC_DEFAULT = "content"  # the critic every command uses unless told otherwise (config.CriticConfig.kind too)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Attacker -> Learner -> Critic superalignment loop on real language models.",
)


def _version(value: bool) -> None:
    if value:
        from superalign import __version__

        typer.echo(f"superalign {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Attacker -> Learner -> Critic superalignment loop on real language models."""


def _echo(msg: str) -> None:
    typer.echo(msg, err=True)


def _critic_config(kind: str, **fields: Any) -> CriticConfig:
    """A CriticConfig for `--critic KIND` (+ other fields), or one UserError naming the kinds there are."""
    from pydantic import ValidationError

    from superalign.config import CriticConfig

    try:
        return CriticConfig(kind=kind, **fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        if err["loc"] and err["loc"][0] != "kind":
            raise UserError(f"bad critic option: {err['loc'][0]}: {err['msg']} (--abstain-below: in [0, 1])") from None
        raise UserError(
            f"--critic {kind!r}: unknown critic; choose content, learned, ensemble, rules, classifier or llm-judge"
        ) from None


def _run_critic(config: Path | None, kind: str | None, **fields: Any) -> CriticConfig:
    """The critic of `--config RUN.yaml` (its whole `critic:` section: the critic that run trains against),
    with --critic KIND and the given options laid over it; without a config, --critic KIND (default content)."""
    if config is None:
        return _critic_config(kind or CRITIC_DEFAULT, **fields)
    from superalign.config import load_config

    base = load_config(config).critic
    return _critic_config(kind or base.kind, **{**base.model_dump(exclude={"kind"}), **fields})


def _with_critic(cfg: RunConfig, kind: str | None) -> RunConfig:
    """The run config with its critic replaced by --critic KIND (the rest of `critic:` kept)."""
    if kind is None:
        return cfg
    return cfg.model_copy(update={"critic": _critic_config(kind, **cfg.critic.model_dump(exclude={"kind"}))})


CONFIG_CRITIC_HELP = (
    "A run config: judge with its whole `critic:` section (e.g. prompt_howto_negatives), the critic that run trains "
    "against; --critic and the options given here override it."
)
FIELD_HELP = "Read the file's column COLUMN as field NAME, e.g. --field prompt=question (repeatable; NAME: "
GENERATE_IN = (
    "JSONL or .csv rows with a 'prompt' (optional 'system'); a JSONL row may give chat 'messages' instead "
    "(prompt: the last user turn; its system turn is kept)."
)
JUDGE_IN = (
    "JSONL or .csv rows with 'prompt' and 'response' (optional 'harmful', 'id'); a JSONL row may give chat "
    "'messages' instead (prompt: the last user turn; response: a final assistant turn)."
)
GENERATE_FIELD = FIELD_HELP + "prompt, system, messages)."
JUDGE_FIELD = FIELD_HELP + "prompt, response, harmful, id, messages)."
EVAL_FIELD = FIELD_HELP + "prompt, harmful, category, messages); for --prompts."


def _mount_review() -> None:
    """`superalign review ...` (oversight/review_cli.py); its heavy imports stay inside its commands."""
    from superalign.oversight.review_cli import review_app

    app.add_typer(review_app, name="review")


_mount_review()


def _mount_values() -> None:
    """`superalign values ...` (oversight/values_cli.py): versioned constitution, edits, re-judging."""
    from superalign.oversight.values_cli import values_app

    app.add_typer(values_app, name="values")


_mount_values()


def _mount_label() -> None:
    """`superalign label ...` (oversight/label_cli.py): human labels of held-out answers, PPI ASR."""
    from superalign.oversight.label_cli import label_app

    app.add_typer(label_app, name="label")


_mount_label()


pairs_app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="A run's preference pairs, for training elsewhere (TRL)."
)
app.add_typer(pairs_app, name="pairs")


@pairs_app.command("export")
def pairs_export(
    run_dir: Path = typer.Argument(..., help="A run directory (holding run.sqlite)."),
    out: Path = typer.Option(..., "--out", "-o", help="The JSONL to write (replaced if it exists)."),
    rounds: list[int] = typer.Option(
        [], "--round", min=1, help="Only this round's pairs (repeatable; default: every round with pairs)."
    ),
    replay: bool = typer.Option(
        False,
        "--replay/--no-replay",
        help="Also the pairs a round replayed from earlier rounds (each round as trained; a pair may repeat).",
    ),
    meta: bool = typer.Option(
        False, "--meta", help="Add columns round, kind, provenance, weight and query_id to every row."
    ),
) -> None:
    """Write the run's preference pairs in TRL's conversational preference format (prompt, chosen, rejected)."""
    from superalign.store.jsonl import write_jsonl
    from superalign.store.pairs_export import preference_rows
    from superalign.store.runstore import RunStore

    db = run_dir / "run.sqlite"
    if not db.is_file():
        raise UserError(f"{run_dir}: no run.sqlite here; give the --out directory of a `superalign run`")
    if out.is_dir():
        raise UserError(f"--out {out}: is a directory; give a file name, e.g. {out / 'pairs.jsonl'}")
    with RunStore(db) as store:
        rows = preference_rows(store, rounds, replay=replay, meta=meta)
    if not rows:
        raise UserError(
            f"{run_dir}: no pairs in the rounds chosen" + ("" if replay else " (--replay adds replayed ones)")
        )
    write_jsonl(out, rows)
    _echo(f"wrote {len(rows)} preference pairs to {out}")


@app.command()
def run(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config (see configs/)."),
    out: Path = typer.Option(Path("runs/latest"), "--out", "-o", help="Run directory."),
    rounds: int | None = typer.Option(None, "--rounds", help="Override the config's number of rounds."),
    resume: bool = typer.Option(False, "--resume", help="Continue a killed or finished run in --out."),
    critic_kind: str | None = typer.Option(
        None, "--critic", help=f"Critic that judges every round (default: the config's critic.kind, {CRITIC_DEFAULT})."
    ),
    device: str | None = typer.Option(
        None,
        "--device",
        help="Where local models run: auto (cuda when torch sees a GPU) | cpu | cuda; default: the config's `device`.",
    ),
) -> None:
    """Run the loop: round 0 evaluates the base learner, each further round attacks, judges and trains."""
    from superalign.config import load_config
    from superalign.loop import run_loop
    from superalign.store.report import format_table

    cfg = _with_critic(load_config(config, rounds=rounds, device=device), critic_kind)
    rows = run_loop(cfg, out, resume=resume, log=_echo, source=config)
    typer.echo(format_table(rows))
    typer.echo(f"report: {(out / 'report.html').resolve()}")


@app.command()
def generate(
    model: str = typer.Option(
        "embedded", "--model", "-m", help="embedded | HF dir | openai:<model>@<url> | tiny | scripted"
    ),
    inp: Path = typer.Option(..., "--in", help=GENERATE_IN),
    out: Path = typer.Option(..., "--out", help="Output JSONL: every input field plus 'response'."),
    max_new_tokens: int = typer.Option(128, help="Tokens to generate per prompt."),
    temperature: float = typer.Option(0.0, help="0 = greedy."),
    top_k: int = typer.Option(50),
    seed: int = typer.Option(0),
    batch_size: int = typer.Option(32),
    system: str | None = typer.Option(None, help="System prompt for every row that does not give its own."),
    device: str = typer.Option(
        "auto", "--device", help="Where local models run: auto (cuda when torch sees a GPU) | cpu | cuda."
    ),
    field: list[str] = typer.Option([], "--field", help=GENERATE_FIELD),
) -> None:
    """Each row with `prompt` (or chat `messages`) gets `response`."""
    from superalign.backends import Sampling, load_backend
    from superalign.device import set_device
    from superalign.records import user_chat
    from superalign.store.jsonl import write_jsonl
    from superalign.store.user_rows import parse_fields, read_user_rows

    rows = read_user_rows(
        inp,
        required=["prompt"],
        types={"prompt": (str,), "system": (str, type(None))},
        fields=parse_fields(field, ["prompt", "system", "messages"]),
        system=True,
    )
    backend = load_backend(model, batch_size=batch_size, device=set_device(device))
    texts = backend.generate(
        [user_chat(str(r["prompt"]), r.get("system") or system) for r in rows],
        Sampling(max_new_tokens, temperature, top_k, seed),
    )
    write_jsonl(out, [{**r, "response": t, "model": backend.name} for r, t in zip(rows, texts)])
    _echo(f"wrote {len(rows)} rows to {out}")


@app.command()
def judge(
    inp: Path = typer.Option(
        ...,
        "--in",
        help=JUDGE_IN,
    ),
    out: Path = typer.Option(..., "--out", help="Output JSONL: every input field plus the Verdict fields."),
    critic: str | None = typer.Option(
        None,
        "--critic",
        help=(
            "content (default: the most accurate on the gold set of the loop's own outputs, docs/critic.md) | "
            "learned | ensemble | rules | classifier | llm-judge"
        ),
    ),
    config: Path | None = typer.Option(None, "--config", help=CONFIG_CRITIC_HELP),
    constitution: Path | None = typer.Option(
        None, "--constitution", help="Constitution YAML (default: the shipped one)."
    ),
    profile: str | None = typer.Option(
        None, "--profile", help="Value profile in the constitution, e.g. strict-child-safety (default: default)."
    ),
    abstain_below: float | None = typer.Option(
        None, "--abstain-below", help="Abstain (unsafe=null) below this confidence (default: 0, never)."
    ),
    judge_model: str | None = typer.Option(
        None, "--judge-model", help="llm-judge backend: embedded (default) | HF dir | openai:<model>@<url>."
    ),
    device: str = typer.Option(
        "auto",
        "--device",
        help="Where local models run: auto (cuda when torch sees a GPU) | cpu | cuda (the llm-judge's local model).",
    ),
    field: list[str] = typer.Option([], "--field", help=JUDGE_FIELD),
) -> None:
    """Each row with `prompt` and `response` gets the Verdict fields (with explanation, rubric item, evidence)."""
    from superalign.device import set_device

    set_device(device)  # the llm-judge's --judge-model loads there
    from superalign.critic import JudgeItem, build_critic, judge as judge_items
    from superalign.records import stable_id
    from superalign.store.jsonl import write_jsonl
    from superalign.store.user_rows import parse_fields, read_user_rows

    fields = parse_fields(field, ["prompt", "response", "harmful", "id", "messages"])
    # the options given on the command line, laid over the run's critic section (or CriticConfig's defaults): an
    # option left out keeps the config's value, one given wins even when it equals the default
    options = {
        "abstain_below": abstain_below,
        "profile": profile,
        "constitution": str(constitution) if constitution else None,
        "judge_model": judge_model,
    }
    ccfg = _run_critic(config, critic, **{k: v for k, v in options.items() if v is not None})
    rows = read_user_rows(
        inp,
        required=["prompt", "response"],  # `str(None)` was judged as the text "None"
        types={"prompt": (str,), "response": (str,), "harmful": (bool, type(None)), "id": (str, int)},
        fields=fields,
    )
    items = [
        JudgeItem(
            str(r.get("id") or stable_id(i, r["prompt"], r["response"])),
            str(r["prompt"]),
            str(r["response"]),
            r.get("harmful"),
        )
        for i, r in enumerate(rows)
    ]
    verdicts = judge_items(items, build_critic(ccfg))
    write_jsonl(out, [{**r, **vd.to_dict()} for r, vd in zip(rows, verdicts)])
    _echo(f"judged {len(rows)} rows -> {out}")


@app.command("eval")
def evaluate(
    model: str = typer.Option("embedded", "--model", "-m"),
    out: Path = typer.Option(..., "--out", help="Directory for metrics.json and responses.jsonl."),
    prompts: Path | None = typer.Option(
        None,
        "--prompts",
        help="JSONL or .csv rows {prompt, harmful} (or chat 'messages' and harmful); default: the held-out sets.",
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="Config for the default held-out sets and critic."),
    competence_items: int | None = typer.Option(None, min=0, help="MC items for competence (0 = skip)."),
    critic_kind: str | None = typer.Option(
        None, "--critic", help=f"Critic that judges the answers (default: the config's, {CRITIC_DEFAULT})."
    ),
    limit: int | None = typer.Option(
        None,
        "--limit",
        min=1,
        help="At most N prompts (harmful and benign alike, in order) and N MC items: a quick look, not a measurement.",
    ),
    device: str | None = typer.Option(
        None,
        "--device",
        help="Where local models run: auto (cuda when torch sees a GPU) | cpu | cuda; default: the config's `device`.",
    ),
    field: list[str] = typer.Option([], "--field", help=EVAL_FIELD),
) -> None:
    """Held-out ASR, over-refusal and competence of one model."""
    import json

    from superalign.backends import load_backend
    from superalign.config import load_config
    from superalign.critic import build_critic
    from superalign.device import set_device
    from superalign.evaluate import evaluate_model
    from superalign.plan import make_plan
    from superalign.records import Query, stable_id
    from superalign.store.jsonl import atomic_write_text, write_jsonl
    from superalign.store.user_rows import parse_fields, read_user_rows

    fields = parse_fields(field, ["prompt", "harmful", "category", "messages"])
    if fields and prompts is None:
        raise UserError("--field reads columns of a --prompts file; give --prompts FILE or drop --field")
    cfg = _with_critic(load_config(config, device=device), critic_kind)
    set_device(cfg.device)  # an llm-judge critic's model goes there too
    plan = make_plan(cfg)
    if prompts is not None:
        rows = read_user_rows(
            prompts, required=["prompt", "harmful"], types={"prompt": (str,), "harmful": (bool,)}, fields=fields
        )
        qs = [
            Query(
                stable_id("eval", r["prompt"]),
                str(r["prompt"]),
                harmful=bool(r["harmful"]),
                category=r.get("category", "harmful" if r["harmful"] else "benign"),
            )
            for r in rows
        ]
    else:
        qs = plan.heldout_harmful + plan.heldout_benign
    if limit is not None:  # half of each kind where both exist, so ASR and over-refusal both get prompts
        harm, ben = [q for q in qs if q.harmful], [q for q in qs if not q.harmful]
        n_h = min(len(harm), max(limit - min(len(ben), limit // 2), 0))
        qs = harm[:n_h] + ben[: limit - n_h]
    backend = load_backend(model, batch_size=cfg.batch_size, device=cfg.device)
    _echo(f"generating {len(qs)} answers with {backend.name}")
    critic = build_critic(cfg.critic)
    eval_judge = None
    if cfg.eval_judge is not None:
        from superalign.critic.independent import independence_problem

        why = independence_problem(cfg.critic.kind, cfg.eval_judge.kind)
        if why:
            _echo(f"no asr_independent: the evaluation judge {why}")
        else:
            eval_judge = build_critic(cfg.eval_judge)
    n_items = cfg.data.competence_items if competence_items is None else competence_items
    n_items = n_items if limit is None else min(n_items, limit)
    items = plan.competence_items[:n_items] if n_items else []  # every Backend scores options
    if items:
        _echo(f"scoring competence on {n_items} MC items")
    ev = evaluate_model(backend, qs, critic, eval_judge, items, cfg.max_new_tokens)  # as the loop's eval step
    resp, verdicts = ev.responses, ev.verdicts
    metrics = {
        "model": backend.name,
        **ev.safety,
        "n_harmful": sum(bool(q.harmful) for q in qs),
        "n_benign": sum(not q.harmful for q in qs),
        **(ev.competence or {"competence": None}),
    }
    write_jsonl(
        out / "responses.jsonl",
        [
            {"prompt": q.text, "harmful": q.harmful, "response": r.text, **v.to_dict()}
            for q, r, v in zip(qs, resp, verdicts)
        ],
    )
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    typer.echo(json.dumps(metrics, indent=2))


@app.command()
def report(run_dir: Path = typer.Argument(..., help="A run directory (holding run.sqlite).")) -> None:
    """(Re)build report.html and rounds.jsonl from a run's store."""
    from superalign.store.report import format_table
    from superalign.store.run_outputs import write_outputs
    from superalign.store.runstore import RunStore

    db = run_dir / "run.sqlite"
    if not db.is_file():
        raise UserError(f"{run_dir}: no run.sqlite here; give the --out directory of a `superalign run`")
    with RunStore(db) as store:
        path = write_outputs(run_dir, store)
        typer.echo(format_table(store.rounds_metrics()))
    typer.echo(f"report: {path.resolve()}")


@app.command("critic-eval")
def critic_eval(
    out: Path = typer.Option(..., "--out", help="Directory for metrics.json, table.md/.html and plots."),
    critic: str | None = typer.Option(
        None,
        "--critic",
        help=f"Any `judge --critic` kind (default: --config's, else {CRITIC_DEFAULT}; learned: its own CV on PyRIT's).",
    ),
    config: Path | None = typer.Option(None, "--config", help=CONFIG_CRITIC_HELP),
    folds: int = typer.Option(5, "--folds", min=2, help="Grouped CV folds (grouped by objective text)."),
    noise: bool = typer.Option(
        True, "--noise/--no-noise", help="learned: also run the label-noise experiment (~minutes)."
    ),
    abstain_below: float | None = typer.Option(
        None,
        "--abstain-below",
        min=0.0,
        max=1.0,
        help="Abstain below this confidence (calibration block; default: --config's, else 0).",
    ),
    tfidf_weight: float = typer.Option(
        0.5, "--tfidf-weight", min=0.0, max=1.0, help="learned: weight of the TF-IDF heads in the blend."
    ),
    gold: bool = typer.Option(
        True, "--gold/--no-gold", help="Also judge the gold test split of the loop's own outputs (data/gold/)."
    ),
) -> None:
    """The critic against PyRIT's human-labelled sets (grouped CV, PyRIT's metrics beside) and the gold test split."""
    import json

    from superalign.critic import build_critic
    from superalign.critic.agreement import critic_eval as eval_critic, learned_eval, write_tables
    from superalign.critic.gold_eval import GOLD_HEADER, gold_caption, gold_metrics, gold_table
    from superalign.data.gold import load_gold
    from superalign.store.jsonl import atomic_write_text, make_out_dir

    ccfg = _run_critic(config, critic, **({"abstain_below": abstain_below} if abstain_below is not None else {}))
    make_out_dir(out)
    judge_critic = build_critic(ccfg)
    abstain_below = ccfg.abstain_below
    if ccfg.kind == "learned":
        metrics = learned_eval(out, folds, tfidf_weight, abstain_below, noise, progress=_echo)
    else:
        metrics = eval_critic(judge_critic, out, folds, abstain_below, progress=_echo)
    metrics["critic_config"] = ccfg.model_dump()
    if gold:
        _echo("judging the gold test split (with and without the dataset's harmful label)")
        metrics["gold_test"] = gold_metrics(judge_critic, load_gold("test"))
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=str))
    g = metrics.get("gold_test")
    write_tables(metrics, out, (gold_caption(g), GOLD_HEADER, list(gold_table(g))) if g else None)
    typer.echo((out / "table.md").read_text(encoding="utf-8"))
    _echo(f"wrote {out / 'metrics.json'}, {out / 'table.md'}, {out / 'table.html'}")


@app.command()
def experiment(
    name: str = typer.Argument(
        ...,
        help=(
            "noisy-labels | co-optimize | w2s | w2s-probe | sandwich | self-enhance | teacher-student | intrinsic | "
            "debate | review-budget | weight-mix | judge-quality"
        ),
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for metrics.json, results.md and plots."),
    quick: bool = typer.Option(False, "--quick", help="The small preset (<= 15 min on 2 CPU cores)."),
    preset: str | None = typer.Option(
        None, "--preset", help="A named preset: full | quick, or the experiment's own (debate: pilot)."
    ),
    seeds: int | None = typer.Option(None, "--seeds", help="Seeds per setting (default: the preset's)."),
    learner: str = typer.Option("embedded", "--learner", "-m", help="embedded | tiny | HF model dir."),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help=(
            "YAML replacing the preset: a copy of configs/experiments/NAME.yaml (its quick: or full: entry, by "
            "--quick) or one entry's fields."
        ),
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help=(
            "Keep the runs an earlier run in --out finished (same settings; --seeds may grow). noisy-labels, "
            "co-optimize, self-enhance, w2s, w2s-probe."
        ),
    ),
) -> None:
    """Run one experiment (docs/experiments.md); prints its results table."""
    from superalign.experiments import run_experiment
    from superalign.experiments.common import RichProgress

    with RichProgress() as bar:
        run_experiment(
            name,
            out,
            quick=quick,
            seeds=seeds,
            learner=learner,
            progress=bar,
            config=config,
            resume=resume,
            preset=preset,
        )
    results = out / "results.md"
    if results.is_file():
        typer.echo(results.read_text(encoding="utf-8"))
    typer.echo(f"metrics: {(out / 'metrics.json').resolve()}")


@app.command()
def attack(
    learner: str = typer.Option(
        "embedded", "--learner", "-m", help="Learner to attack: embedded | tiny | scripted | HF dir | openai:..."
    ),
    budget: int = typer.Option(
        150, "--budget", "-n", min=1, help="Learner queries per arm (adaptive, static, static_converted)."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Directory for metrics.json, attacks.jsonl, archive.jsonl/.png, emergent.md."
    ),
    attacker_model: str = typer.Option(
        "embedded", "--attacker-model", help="Backend that rewrites failed attempts, or 'none'."
    ),
    seed: int = typer.Option(0, "--seed"),
    turns: int = typer.Option(3, "--turns", min=1, help="Attempts per objective."),
    critic: str = typer.Option(
        "ensemble", "--critic", help="Judge for every arm: rules | classifier | ensemble | llm-judge | learned."
    ),
    converted: bool = typer.Option(
        True, "--converted/--no-converted", help="Also run the static converter/template arm (costs another budget)."
    ),
    system: str | None = typer.Option(
        None, "--learner-system", help="System prompt given to the learner in every arm (e.g. a safety prompt)."
    ),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1, help="Tokens per learner answer."),
    self_improve: int = typer.Option(
        0,
        "--self-improve",
        min=0,
        help=(
            "Then R rounds of attacker self-improvement (MART) against the same fixed learner, each 2 x budget "
            "queries (docs/attacker.md)."
        ),
    ),
    self_improve_budget: int | None = typer.Option(
        None,
        "--self-improve-budget",
        min=1,
        help=(
            "Learner queries of each self-improvement training search (default: --budget); more queries, more "
            "successes to learn from."
        ),
    ),
    self_improve_method: str = typer.Option(
        "sft",
        "--self-improve-method",
        help=(
            "How the attacker learns from a round: sft (its successful requests, as MART) | dpo (success > failure "
            "pairs per objective)."
        ),
    ),
    device: str = typer.Option(
        "auto",
        "--device",
        help="Where local models run: auto (cuda when torch sees a GPU) | cpu | cuda (learner and attacker model).",
    ),
) -> None:
    """Adaptive attacker vs static seeds at the same budget and judge (docs/attacker.md)."""
    import json

    from superalign.device import set_device

    set_device(device)
    from pydantic import ValidationError

    from superalign.attacker.campaign import run_attack
    from superalign.attacker.self_improve import Method
    from superalign.config import AttackerConfig, CriticConfig

    methods: dict[str, Method] = {"sft": "sft", "dpo": "dpo"}
    if self_improve_method not in methods:
        raise UserError(f"--self-improve-method {self_improve_method!r}: choose sft or dpo")
    if self_improve and attacker_model == "none":
        raise UserError("--self-improve trains the attacker model: give --attacker-model (e.g. embedded), not 'none'")
    try:
        cfg = AttackerConfig(mode="adaptive", turns=turns, attacker_model=attacker_model, budget=budget)
        ccfg = CriticConfig(kind=critic)
    except ValidationError as exc:
        raise UserError(f"bad attack option: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    metrics = run_attack(
        learner,
        budget,
        out,
        attacker_spec=attacker_model,
        seed=seed,
        cfg=cfg,
        critic_cfg=ccfg,
        converted=converted,
        system=system,
        max_new_tokens=max_new_tokens,
        self_improve=self_improve,
        log=_echo,
        self_improve_method=methods[self_improve_method],
        self_improve_budget=self_improve_budget,
    )
    typer.echo(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, dict)}, indent=2))


def main() -> None:
    """Entry point: UserError -> one line on stderr and exit 2; no traceback for what the user can fix."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # offline by default: models are local dirs or servers
    try:
        app(standalone_mode=False)
    except UserError as exc:
        _echo(f"error: {exc}")
        sys.exit(2)
    except AwaitingHumans as exc:  # a clean stop: a human decision is needed before the run can go on
        _echo(f"paused: {exc}")
        sys.exit(3)
    except KeyboardInterrupt:
        _echo("interrupted")
        sys.exit(130)
    except Exception as exc:  # click's usage errors carry their own exit code
        usage, aborts = _click_errors()
        if isinstance(exc, usage):
            # ignores: `usage` holds click's exception classes, found at run time (see _click_errors)
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        if isinstance(exc, aborts):
            sys.exit(1)
        raise


def _click_errors() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(usage-error classes, abort classes) of click and of the copy of click that typer >= 0.2x carries as
    `typer._click`: a bad option value (`--budget 0`) raises the latter's BadParameter, which is not a
    `click.ClickException`, so catching only click's printed a traceback instead of the one-line error."""
    import importlib

    usage: list[type] = []
    aborts: list[type] = []
    for name in ("click.exceptions", "typer._click.exceptions", "typer.exceptions"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        usage += [c for c in (getattr(mod, "ClickException", None),) if isinstance(c, type)]
        aborts += [c for c in (getattr(mod, "Abort", None),) if isinstance(c, type)]
    return tuple(usage), tuple(aborts)


if __name__ == "__main__":
    main()
