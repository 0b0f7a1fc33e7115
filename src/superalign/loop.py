"""The round runner: the only place that knows the order of the stages (docs/design.md §1).

Round 0 evaluates the base learner. Round k >= 1: attack -> respond -> judge -> pairs -> train -> eval.
Each step commits its records and a step marker in one SQLite transaction, so a run killed anywhere
resumes (`--resume`) from the last committed step with the same records and no duplicates.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superalign.backends.base import Sampling
from superalign.config import RunConfig
from superalign.errors import UserError
from superalign.evaluate import judge_heldout
from superalign.faults import tick
from superalign.records import Query, Response, stable_id, user_chat

if TYPE_CHECKING:
    from superalign.store.runstore import RunStore

Log = Callable[[str], None]
# Bump when make_plan's sets change for the same config (a resumed run must not switch held-out sets midway).
# 2: near-duplicate groups before the split, and a whole source (data.heldout_source) held out.
# 3: dev prompts (data.dev_harmful / dev_benign) taken out of the training side.
PLAN_VERSION = 3


def _seed(cfg: RunConfig, round: int, step: str) -> int:
    return int(stable_id(cfg.seed, round, step)[:8], 16)


class _Learner:
    """Loads the learner for a round lazily: base model for round 0, else checkpoints/round-k.

    `at(k)` serves generation and scoring (sharded over Ray actors with `executor: ray`; on a vLLM server, with
    round k's LoRA adapter registered, with `executor: vllm`); `trainable(k)` is always an in-process backend:
    training stays in the driver.
    """

    def __init__(self, cfg: RunConfig, out: Path):
        self.cfg, self.out, self.round, self.backend, self.kind = cfg, out, -1, None, ""
        self._vllm: Any = None

    def _spec(self, round: int) -> str:
        return str(self.out / "checkpoints" / f"round-{round}") if round > 0 else self.cfg.learner

    def _load(self, round: int, kind: str) -> Any:
        from superalign.backends import load_backend

        name = f"{self.cfg.learner}@round-{round}"
        if kind == "ray":
            from superalign.backends.sharded import RayWorkers, ShardedBackend

            workers = RayWorkers(
                self._spec(round),
                self.cfg.ray_actors,
                self.cfg.batch_size,
                self.cfg.dtype,
                address=self.cfg.ray_address,
                num_cpus=self.cfg.ray_actors,
                device=self.cfg.device,
            )
            return ShardedBackend(workers, name)
        if kind == "vllm":
            from superalign.backends.vllm import VLLMServer, serve_round

            if self._vllm is None:
                self._vllm = VLLMServer(self.cfg.vllm_url or "", self.cfg.vllm_model)
            run_key = stable_id(str(self.out.resolve()))[:8]  # adapters of two runs on one server stay apart
            return serve_round(self._vllm, self.out / "checkpoints", round, run_key, name, self.cfg.vllm_lora_dir)
        backend = load_backend(
            self._spec(round), batch_size=self.cfg.batch_size, dtype=self.cfg.dtype, device=self.cfg.device
        )
        backend.name = name
        return backend

    def _swap(self, round: int, kind: str) -> Any:
        if self.round != round or self.kind != kind:
            self.close()
            self.backend, self.round, self.kind = self._load(round, kind), round, kind
        return self.backend

    def at(self, round: int) -> Any:
        kind = self.cfg.executor if self.cfg.learner != "scripted" else "local"
        return self._swap(round, kind)

    def trainable(self, round: int) -> Any:
        return self._swap(round, "local")

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
        self.backend, self.round, self.kind = None, -1, ""

    def shutdown(self) -> None:
        """close(), and the vLLM server's HTTP client."""
        self.close()
        if self._vllm is not None:
            self._vllm.close()
            self._vllm = None


def run_loop(
    cfg: RunConfig, out: Path, resume: bool = False, log: Log = print, source: str | Path | None = None
) -> list[dict]:
    """Run (or resume) `cfg.rounds` rounds into `out`; returns the per-round metrics. `source`: the YAML
    `cfg` came from (its lines are named in config errors). A finished run resumed with more rounds goes on."""
    from superalign.device import use_device
    from superalign.preflight import check_run

    check_run(cfg, source)  # every name, file and server, before the run directory or its store exists
    if resume and cfg.dtype == "auto":  # a run goes on in the dtype it started in (auto may resolve otherwise now)
        cfg = cfg.model_copy(update={"dtype": _stored_dtype(out) or "auto"})
    cfg = resolved_config(cfg)  # device and dtype as this machine runs them: stored, and compared on resume
    with use_device(cfg.device):  # every model the run loads (attacker, judge models too) goes there
        return _run_loop(cfg, out, resume, log)


def _stored_dtype(out: Path) -> str | None:
    """The resolved dtype a run in `out` was started with (None: no run there yet)."""
    from superalign.store.runstore import RunStore

    if not (out / "run.sqlite").is_file():
        return None
    with RunStore(out / "run.sqlite") as store:
        stored = store.get_meta("config")
    return stored.get("dtype") if isinstance(stored, dict) else None


def resolved_config(cfg: RunConfig) -> RunConfig:
    """`cfg` with `device` and `dtype` resolved for this machine (auto -> cpu / cuda, float32 / bfloat16)."""
    from superalign.device import resolve_device, resolve_dtype

    if cfg.learner == "scripted" or cfg.learner.startswith("openai:"):
        device = "cpu" if cfg.device == "auto" else resolve_device(cfg.device)  # no local weights to place
    else:
        device = resolve_device(cfg.device)
    return cfg.model_copy(update={"device": device, "dtype": resolve_dtype(cfg.dtype, device)})


def _run_loop(cfg: RunConfig, out: Path, resume: bool, log: Log) -> list[dict]:
    from superalign.critic import build_critic
    from superalign.oversight.in_loop import promote_step
    from superalign.plan import make_plan
    from superalign.store.jsonl import make_out_dir
    from superalign.store.run_outputs import rounds_with_gate, write_outputs
    from superalign.store.runstore import RunStore

    make_out_dir(out)
    db = out / "run.sqlite"
    if db.exists() and not resume:
        raise UserError(f"{out}: already holds a run; pass --resume to continue it or choose another --out")
    resuming = db.exists()
    if resuming:  # a changed config is refused before the critics are built (minutes for some kinds)
        with RunStore(db) as store:
            _check_stored(store, cfg, out)
    # the plan and the critics before the store: a config they refuse leaves no run behind (a second try with
    # the fix would otherwise be told the directory "already holds a run")
    plan = make_plan(cfg)
    critic = build_critic(cfg.critic)
    eval_judge = build_critic(cfg.eval_judge) if cfg.eval_judge is not None else None
    with _run_lock(out), RunStore(db) as store:
        _check_stored(store, cfg, out)  # again under the lock: another process may have started the run since
        store.set_meta("plan_version", PLAN_VERSION)
        if resuming:  # a fresh run has left nothing behind yet: the user's own temp files are not ours
            _sweep_temp(out)
        store.set_meta("config", cfg.model_dump(mode="json"))
        learner = _Learner(cfg, out)
        t0 = time.time()
        log = _timed(log)
        try:
            for k in range(cfg.rounds + 1):
                if k > 0:
                    _train_round(cfg, out, store, plan, critic, learner, k, log)
                    _shrink_step(cfg, out, store, plan, critic, learner, k, log)
                if not store.step_done(k, "eval"):
                    log(f"round {k}: evaluating on held-out sets")
                    _eval_step(cfg, store, plan, critic, eval_judge, learner.at(k), k, time.time() - t0)
                    tick("after-eval")
                write_outputs(out, store, cfg)
                promote_step(cfg, store, out, k, log)  # the gate: round-k is current only once approved
            write_outputs(out, store, cfg)  # with the last round's promotion decision
        finally:
            learner.shutdown()  # Ray actors and the round's vLLM adapter go with the run
        return rounds_with_gate(store)


def _check_stored(store: RunStore, cfg: RunConfig, out: Path) -> None:
    """Refuse to go on with a run in `out` that was started with another config or an older plan."""
    from superalign.preflight import check_resume

    stored = store.get_meta("config")
    if stored is None:
        return
    check_resume(stored, cfg, out)
    if store.get_meta("plan_version") != PLAN_VERSION:
        raise UserError(
            f"{out}: the run was started by an older superalign whose train/held-out split "
            "differs; its rounds cannot be carried on comparably: start a new run (another --out)"
        )


@contextlib.contextmanager
def _run_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on `out/run.lock` (released by the OS even on SIGKILL)."""
    import fcntl

    with open(out / "run.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{out}: another process is running this run; wait for it or use another --out") from None
        yield


# The temp names of the run's own atomic writes (store/jsonl.py: mkstemp/mkdtemp add 8 characters of
# [a-z0-9_]): `.rounds.jsonl.k3j_x9a2.tmp`, `checkpoints/.round-2.q8w7e6r5`. Nothing else is ours to delete.
_OWN_TEMP_FILE = re.compile(r"\.(rounds\.jsonl|report\.html)\.[a-z0-9_]{8}\.tmp")
_OWN_TEMP_DIR = re.compile(r"\.round-[0-9]+\.[a-z0-9_]{8}")


def _sweep_temp(out: Path) -> None:
    """Remove the temp files and dirs a killed run left (atomic writes never renamed them into place);
    a user's own `.*.tmp` files or `.round-*` folders stay.

    Runs with the run store open: a run directory belongs to one process at a time.
    """
    import shutil

    for p in out.glob(".*.tmp"):
        if p.is_file() and _OWN_TEMP_FILE.fullmatch(p.name):
            p.unlink(missing_ok=True)
    ck = out / "checkpoints"
    for p in ck.glob(".round-*") if ck.is_dir() else ():
        if p.is_dir() and _OWN_TEMP_DIR.fullmatch(p.name):
            shutil.rmtree(p, ignore_errors=True)


def _timed(log: Log) -> Log:
    """A log that appends the seconds since its previous line (how long the announced step took)."""
    last = [time.time()]

    def say(msg: str) -> None:
        now = time.time()
        log(f"{msg}  [+{now - last[0]:.0f}s]")
        last[0] = now

    return say


def _train_round(cfg, out, store, plan, critic, learner, k: int, log: Log) -> None:
    from superalign.attacker import attack
    from superalign.critic import JudgeItem, judge
    from superalign.learner.checkpoint import save_checkpoint
    from superalign.learner.respond import (
        own_refusals,
        refusal_stubs,
        respond,
        revise_to_help,
        revise_to_refusal,
    )
    from superalign.learner.update import update_learner
    from superalign.oversight.in_loop import base_round, critic_for_round, round_pairs, route_step
    from superalign.plan import benign_training_queries

    base = base_round(store, k)  # the current (last approved) version: never a rejected one

    if not store.step_done(k, "attack"):
        log(f"round {k}: attacker writes {cfg.attacker.queries_per_round} queries")
        payload = None
        if cfg.attacker.mode == "adaptive":  # search against the current learner; archive carried over rounds
            from superalign.attacker.adaptive import adaptive_round

            harmful, payload = adaptive_round(
                plan.train_harmful,
                learner.at(base),
                critic,
                cfg.attacker,
                k,
                _seed(cfg, k, "attack"),
                store.step_payload(k - 1, "attack"),
                Sampling(cfg.max_new_tokens, 0.0),
                log,
            )
        else:
            harmful = attack(plan.train_harmful, cfg.attacker, k, _seed(cfg, k, "attack"))
        benign = benign_training_queries(
            plan, cfg.attacker.benign_per_round, k, cfg.seed, cfg.attacker.benign_edgy_share
        )
        store.commit_step(k, "attack", queries=harmful + benign, payload=payload)
        tick("after-attack")
    queries = store.queries(round=k, step="attack")
    if not store.step_done(k, "respond"):
        greedy_note = " + its greedy answer" if cfg.train.greedy_sample else ""
        log(
            f"round {k}: learner answers {len(queries)} queries x {cfg.train.samples_per_query} samples"
            f"{greedy_note} + revisions"
        )
        model = learner.at(base)
        params = Sampling(cfg.max_new_tokens, cfg.train.temperature, cfg.train.top_k, _seed(cfg, k, "respond"))
        # Harmful queries get n samples (the most unsafe becomes "rejected"); benign ones need only one
        # helpful answer for "chosen". Refusal revisions: n per harmful query, 1 per benign one.
        harmful = [q for q in queries if q.harmful]
        benign = [q for q in queries if not q.harmful]
        n = cfg.train.samples_per_query
        samples = respond(harmful, model, params, n, k) + respond(benign, model, params, 1, k)
        if cfg.train.greedy_sample:  # the answer the evaluation reads, as one more sample (index after the others)
            greedy = replace(params, temperature=0.0)
            samples += respond(harmful, model, greedy, 1, k, first=n) + respond(benign, model, greedy, 1, k, first=1)
        rev_params = Sampling(32, cfg.train.temperature, cfg.train.top_k, _seed(cfg, k, "revise"))
        revisions = revise_to_refusal(harmful, model, rev_params, n, k) + revise_to_refusal(
            benign, model, rev_params, 1, k
        )
        if cfg.train.help_revisions:  # one per query, harmful or not: the critic, not the label, decides use
            revisions += revise_to_help(queries, model, params, k)
        if cfg.train.refusal_stubs:  # a bare refusal to reject when the benign revision runs on into help
            revisions += refusal_stubs(benign, model.name, k)
        if cfg.train.own_refusal_prefix:  # the learner's own style of declining, for help pairs to reject
            revisions += own_refusals(benign, model, cfg.train.own_refusal_prefix, rev_params, k)
        store.commit_step(k, "respond", responses=samples + revisions)
        tick("after-respond")
    responses = store.responses(round=k, step="respond")
    if not store.step_done(k, "judge"):
        log(f"round {k}: critic judges {len(responses)} responses")
        qmap = {q.id: q for q in queries}
        # pairs: critic -> the critic judges without the dataset's label (its own harm estimate decides)
        label = (lambda q: q.harmful) if cfg.train.pairs == "label" else (lambda q: None)
        items = [JudgeItem(r.id, qmap[r.query_id].text, r.text, label(qmap[r.query_id])) for r in responses]
        verdicts = judge(items, critic_for_round(cfg, critic, out, k, log))
        store.commit_step(
            k,
            "judge",
            verdicts=verdicts,
            payload={
                "attack_asr_by_style": attack_asr_by_style(queries, responses, verdicts),
                **training_side_rates(queries, responses, verdicts),
            },
        )
        tick("after-judge")
    if cfg.train.pairs == "critic+revise" and not store.step_done(k, "critique"):
        _critique_step(cfg, store, critic_for_round(cfg, critic, out, k, log), learner.at(base), queries, k, log)
        tick("after-critique")
    route_step(cfg, store, out, k, _seed(cfg, k, "route"), log)  # no-op unless oversight.review_fraction > 0
    if not store.step_done(k, "pairs"):
        pairs = round_pairs(cfg, store, out, k)
        if cfg.train.balance_pairs:
            from superalign.learner.pairs import balance_with_history

            earlier = [p for j in range(1, k) for p in store.pairs(round=j, step="pairs") if p.provenance != "replay"]
            pairs = balance_with_history(pairs, earlier)
        n_replay = sum(p.provenance == "replay" for p in pairs)
        n_human = sum(p.provenance == "human" for p in pairs)
        log(
            f"round {k}: {len(pairs)} preference pairs "
            f"({sum(p.kind == 'refuse-harmful' for p in pairs)} refuse-harmful, "
            f"{sum(p.kind == 'help-benign' for p in pairs)} help-benign"
            + (f", {n_replay} replayed from earlier rounds" if n_replay else "")
            + (f", {n_human} from reviewed queries)" if cfg.oversight.review_fraction > 0 else ")")
        )
        store.commit_step(k, "pairs", pairs=pairs)
        tick("after-pairs")
    if not store.step_done(k, "train"):
        pairs = store.pairs(round=k, step="pairs")
        replay = plan.replay[: cfg.train.competence_replay]
        log(
            f"round {k}: DPO from round-{base} on {len(pairs)} pairs + {cfg.train.competence_replay} replay examples"
            + (" (trl engine)" if cfg.train.engine == "trl" else "")
        )
        if cfg.train.launcher and cfg.learner != "scripted":  # e.g. accelerate launch: the command trains and saves
            stats = _launched_training(cfg, out, learner, base, pairs, replay, k, log)
        else:
            model = learner.trainable(base)
            with _progress("train") as bar:

                def step_done(step: int, total: int, loss: float) -> None:
                    tick("train")
                    bar(step, total, loss)

                new, stats = update_learner(
                    model, pairs, cfg.train, _seed(cfg, k, "train"), replay=replay, progress=step_done
                )
            save_checkpoint(
                new, out / "checkpoints" / f"round-{k}", adapter_from=base if cfg.executor == "vllm" else None
            )
        tick("after-checkpoint")  # checkpoint written, step not yet committed
        learner.close()  # reload from the checkpoint: what we evaluate is what we shipped
        store.commit_step(
            k,
            "train",
            payload={
                "steps": stats.steps,
                "train_loss_first": stats.first_loss,
                "train_loss_last": stats.last_loss,
                "reward_accuracy": round(stats.reward_accuracy, 4),
                "train_seconds": stats.seconds,
                "pairs": len(pairs),
                "losses": stats.losses,
                "trained_from": base,
            },
        )
        tick("after-train")


def _launched_training(
    cfg: RunConfig, out: Path, learner: _Learner, base: int, pairs: list, replay: list, k: int, log: Log
) -> Any:
    """Round k's training as `train.launcher` (learner/trl_engine.py `launch`): the driver frees its copy of
    the learner, writes the job, waits; the command's rank 0 writes checkpoints/round-k and the stats."""
    import shutil

    from superalign.learner.trl_engine import launch, write_job

    learner.close()  # the launched processes load their own copies (GPU memory)
    from superalign.device import free_cached_memory

    free_cached_memory()  # and the driver's cached CUDA blocks go back to the driver, not held through training
    work = out / "checkpoints" / f".train-round-{k}"
    shutil.rmtree(work, ignore_errors=True)
    job = write_job(
        work,
        learner._spec(base),
        pairs,
        replay,
        cfg.train,
        _seed(cfg, k, "train"),
        cfg.dtype,
        out / "checkpoints" / f"round-{k}",
        adapter_from=base if cfg.executor == "vllm" else None,
    )
    stats = launch(cfg.train.launcher or "", job, log)
    shutil.rmtree(work, ignore_errors=True)
    return stats


def training_side_rates(queries: list[Query], responses: list[Response], verdicts: list) -> dict[str, float | None]:
    """How the learner the round starts from behaves on the round's *training* prompts, by the critic:
    `train_refusal_benign` (share of sampled answers to benign-labelled prompts called refusals) and
    `train_unsafe_harmful` (share of sampled answers to harmful-labelled prompts called unsafe). A signal
    from training data, so the recipe can be read and adjusted without looking at the held-out sets."""
    harmful = {q.id: bool(q.harmful) for q in queries}
    by_id = {v.response_id: v for v in verdicts}
    tally: dict[bool, list[int]] = {True: [], False: []}
    for r in responses:
        v = by_id.get(r.id)
        if r.system == "" and v is not None and r.query_id in harmful:
            h = harmful[r.query_id]
            tally[h].append(int(bool(v.unsafe) if h else bool(v.refusal)))
    rate = {h: round(sum(x) / len(x), 4) if x else None for h, x in tally.items()}
    return {"train_refusal_benign": rate[False], "train_unsafe_harmful": rate[True]}


def attack_asr_by_style(queries: list[Query], responses: list[Response], verdicts: list) -> dict[str, dict]:
    """Of the round's harmful attack queries, by attack style (plain, template, roleplay, encoding, ...): the
    share whose sampled answers the critic judged unsafe, per answer, with the count (the learner the round
    started from, before training)."""
    from superalign.attacker.styles import style_of_method

    style = {
        q.id: style_of_method(q.source.split("+", 1)[1]) if "+" in q.source else "plain" for q in queries if q.harmful
    }
    unsafe = {v.response_id: bool(v.unsafe) for v in verdicts}
    tally: dict[str, list[int]] = {}
    for r in responses:
        if r.query_id in style and r.system == "" and r.id in unsafe:
            tally.setdefault(style[r.query_id], []).append(int(unsafe[r.id]))
    return {s: {"asr": round(sum(v) / len(v), 4), "n": len(v)} for s, v in sorted(tally.items())}


def _critique_step(cfg, store, critic, model, queries, k: int, log: Log) -> None:
    """Every answer the critic called unsafe is rewritten by the learner after reading the critic's explanation;
    the critic judges the rewrites (without the label, like the answers), which compete to be a pair's chosen."""
    from superalign.critic import JudgeItem, judge
    from superalign.learner.respond import critique_of, revise_from_critique

    qmap = {q.id: q for q in queries}
    verdict = {v.response_id: v for v in store.verdicts(round=k, step="judge")}
    unsafe = [
        (qmap[r.query_id], r, critique_of(verdict[r.id].explanation, verdict[r.id].evidence))
        for r in store.responses(round=k, step="respond")
        if r.system == "" and r.id in verdict and verdict[r.id].unsafe
    ]
    log(f"round {k}: learner revises {len(unsafe)} unsafe answers after reading the critic's explanation")
    params = Sampling(32, cfg.train.temperature, cfg.train.top_k, _seed(cfg, k, "critique"))
    revisions = revise_from_critique(unsafe, model, params, k) if unsafe else []
    items = [JudgeItem(r.id, qmap[r.query_id].text, r.text, None) for r in revisions]
    store.commit_step(k, "critique", responses=revisions, verdicts=judge(items, critic) if items else [])


def _eval_step(cfg, store, plan, critic, eval_judge, model, k: int, elapsed: float) -> None:
    from superalign.evaluate import evaluate_model
    from superalign.metrics import RoundMetrics
    from superalign.plan import heldout_subset

    qs: list[Query] = plan.heldout_harmful + plan.heldout_benign
    ev = evaluate_model(
        model,
        qs,
        critic,
        eval_judge,
        plan.competence_items,
        cfg.max_new_tokens,
        subset=lambda q: heldout_subset(q, cfg),
        round=k,
    )
    dev = _dev_eval(cfg, store, plan, critic, model, k)
    train = store.step_payload(k, "train") or {}
    metrics = {
        "round": k,
        **ev.safety,
        **ev.competence,
        "human_labels": store.count("human_labels"),
        "pairs": train.get("pairs", 0),
        "trained_from": train.get("trained_from"),
        "train_loss_first": train.get("train_loss_first"),
        "train_loss_last": train.get("train_loss_last"),
        "reward_accuracy": train.get("reward_accuracy"),
        "model": model.name,
        "n_harmful": len(plan.heldout_harmful),
        "n_benign": len(plan.heldout_benign),
        "n_competence": len(plan.competence_items),
        "minutes": round(elapsed / 60, 2),
        **dev,
    }
    RoundMetrics.model_validate(metrics)  # the row's contract, checked before the payload is committed
    if ev.independent and not store.step_done(k, "eval_independent"):  # the judge's verdicts, for asr_ppi (ppi.py)
        store.commit_step(k, "eval_independent", verdicts=ev.independent)
    if ev.competence_correct and not store.step_done(k, "eval_competence"):  # per item: the paired competence drop
        store.commit_step(k, "eval_competence", payload={"competence_correct": ev.competence_correct})
    # Held-out queries are stored once (round 0) so reports can show them; they never reach training.
    store.commit_step(
        k, "eval", queries=qs if k == 0 else (), responses=ev.responses, verdicts=ev.verdicts, payload=metrics
    )


def _dev_eval(cfg, store, plan, critic, model, k: int) -> dict[str, Any]:
    """The dev prompts (taken out of training, never trained on) answered greedily and judged by the training
    critic: `dev_asr` and `dev_over_refusal`, what a recipe is read by and a version gated on
    (oversight.max_dev_over_refusal), so the held-out sets are only ever reported; and the dev MC items'
    `dev_competence` with its paired drop from round 0 (oversight.max_dev_competence_drop). Step `eval_dev`."""
    if not plan.dev_harmful and not plan.dev_benign and not plan.dev_competence:
        return {}
    if store.step_done(k, "eval_dev"):
        return {key: v for key, v in (store.step_payload(k, "eval_dev") or {}).items() if key.startswith("dev_")}
    base = None if k == 0 else (store.step_payload(0, "eval_dev") or {}).get("competence_correct")
    dev, responses, verdicts, correct = _dev_metrics(cfg, plan, critic, model, k, base)
    payload = {**dev, **({"competence_correct": correct} if correct is not None else {})}
    store.commit_step(k, "eval_dev", responses=responses, verdicts=verdicts, payload=payload)
    return dev


def _dev_metrics(
    cfg, plan, critic, model, k: int, base_correct: list[float] | None
) -> tuple[dict[str, Any], list[Response], list, list[float] | None]:
    """(dev metrics, dev answers, their verdicts, per-item dev MC correctness) of `model`; stores nothing.
    `base_correct`: round 0's per-item correctness, for the paired drop (None at round 0: the drop is 0)."""
    from superalign.evaluate import competence_correct, eval_sampling

    def num(x: float) -> float | None:
        return None if x != x else x  # nan (no prompt of that kind) -> None

    qs: list[Query] = plan.dev_harmful + plan.dev_benign
    responses: list[Response] = []
    verdicts: list = []
    dev: dict[str, Any] = {}
    if qs:
        texts = model.generate([user_chat(q.text) for q in qs], eval_sampling(cfg.max_new_tokens))
        responses = [Response(stable_id("eval-dev", q.id, k), q.id, t, model.name, k) for q, t in zip(qs, texts)]
        s, verdicts, _ = judge_heldout(qs, responses, critic)
        dev.update(
            dev_asr=num(s["asr"]),
            dev_over_refusal=num(s["over_refusal"]),
            dev_n_harmful=len(plan.dev_harmful),
            dev_n_benign=len(plan.dev_benign),
        )
    correct = None
    if plan.dev_competence:
        correct = competence_correct(model, plan.dev_competence)
        dev.update(dev_competence=round(sum(correct) / len(correct), 4), dev_n_competence=len(correct))
        base = correct if base_correct is None else base_correct
        if len(base) == len(correct):
            dev.update(dev_competence_drop(plan, base, correct))
    return dev, responses, verdicts, correct


def dev_competence_drop(plan, base: list[float], correct: list[float]) -> dict[str, Any]:
    """The gate's competence drop on the dev MC items, weighted to the task mix of the reported items (the dev
    pool is what is left after them: 71 % sciq at 1,000 dev items, where the reported 500 are half ARC-Easy, and
    ARC-Easy loses more): `dev_competence_drop` (+ paired 95 % interval) and the unweighted mean beside it."""
    from collections import Counter

    from superalign.stats import paired_difference_ci, stratified_paired_difference_ci

    plain = paired_difference_ci(base, correct)
    shares = Counter(it.task for it in plan.competence_items)
    weights = {t: n / sum(shares.values()) for t, n in shares.items()} or {"": 1.0}
    tasks = [it.task if plan.competence_items else "" for it in plan.dev_competence]
    drop, lo, hi = stratified_paired_difference_ci(base, correct, tasks, weights)
    if drop != drop:  # a reported task missing from dev (tiny dev sets): the plain paired difference
        drop, lo, hi = plain
    return {
        "dev_competence_drop": round(drop, 4),
        "dev_competence_drop_ci": [round(lo, 4), round(hi, 4)],
        "dev_competence_drop_unweighted": round(plain[0], 4),
    }


def _shrink_step(cfg, out, store, plan, critic, learner, k: int, log: Log) -> None:
    """oversight.shrink_alphas: when round k's trained version breaks a dev limit of the auto gate, scale its
    update back (base + alpha * (trained - base)) for each alpha in turn and keep the first that meets every
    limit, read on dev prompts and dev MC items only. Step `shrink` records every alpha tried.

    Crash-safe: the step is committed before the checkpoint is rewritten, and a rewritten checkpoint carries
    its alpha (learner/checkpoint.py `checkpoint_meta`), so a resume applies a committed choice exactly once."""
    from superalign.learner.checkpoint import Interpolation, checkpoint_meta, save_checkpoint
    from superalign.oversight.in_loop import gate_failures

    o = cfg.oversight
    limits = o.max_dev_over_refusal is not None or o.max_dev_competence_drop is not None
    if not o.shrink_alphas or o.promotion != "auto" or not limits or cfg.learner == "scripted":
        return
    ck = out / "checkpoints" / f"round-{k}"
    if not store.step_done(k, "shrink"):
        base_correct = (store.step_payload(0, "eval_dev") or {}).get("competence_correct")
        trained_from = (store.step_payload(k, "train") or {}).get("trained_from", k - 1)
        model = learner.at(k)
        tried: list[dict[str, Any]] = []
        reads = []
        chosen = None
        mix = None
        for alpha in (1.0, *o.shrink_alphas):
            if alpha < 1.0:
                if mix is None:
                    base_state = learner._load(trained_from, "local").model.state_dict()
                    mix = Interpolation(model.model, base_state)
                mix.set(alpha)
            reads.append(_dev_metrics(cfg, plan, critic, model, k, base_correct))
            dev = reads[-1][0]
            fails = gate_failures(cfg, dev)
            tried.append({"alpha": alpha, **dev, "failures": fails})
            log(f"round {k}: alpha {alpha}: " + ("; ".join(fails) if fails else "meets every dev limit"))
            if not fails:
                chosen = alpha
                break
        store.commit_step(k, "shrink", payload={"alpha": chosen, "trained_from": trained_from, "tried": tried})
        tick("after-shrink")
        if chosen is not None and chosen != 1.0:  # the model in memory is the chosen version: save it as it is
            save_checkpoint(model, ck, meta={"alpha": chosen, "trained_from": trained_from})
            log(f"round {k}: version round-{k} is the update scaled by {chosen}")
        # the version that stays (the chosen alpha, else the trained one) was just read on dev: that read is the
        # round's eval_dev step, not done again after reloading it (a checkpoint reloads to the same weights)
        dev, responses, verdicts, correct = reads[-1] if chosen is not None else reads[0]
        extra = {"competence_correct": correct} if correct is not None else {}
        store.commit_step(k, "eval_dev", responses=responses, verdicts=verdicts, payload={**dev, **extra})
        learner.close()  # what we evaluate is what we ship
        return
    payload = store.step_payload(k, "shrink") or {}  # resumed: finish a committed choice the kill interrupted
    alpha = payload.get("alpha")
    if alpha is None or alpha == 1.0 or checkpoint_meta(ck).get("alpha") == alpha:
        return
    model = learner.at(k)  # the checkpoint as trained (a rewrite is atomic and carries its alpha)
    base_state = learner._load(payload["trained_from"], "local").model.state_dict()
    Interpolation(model.model, base_state).set(alpha)
    save_checkpoint(model, ck, meta={"alpha": alpha, "trained_from": payload["trained_from"]})
    learner.close()  # what we evaluate is what we ship
    log(f"round {k}: version round-{k} is the update scaled by {alpha}")


class _progress:
    """A rich progress bar whose `__call__(step, total, loss)` advances it."""

    def __init__(self, label: str):
        self.label = label

    def __enter__(self):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.p = Progress(
            TextColumn(f"  {self.label}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            transient=False,
            console=Console(stderr=True),
        )
        self.p.__enter__()
        self.task = self.p.add_task(self.label, total=None, loss="-")
        return self

    def __call__(self, step: int, total: int, loss: float) -> None:
        self.p.update(self.task, completed=step, total=total, loss=f"{loss:.4f}")

    def __exit__(self, *exc):
        return self.p.__exit__(*exc)
