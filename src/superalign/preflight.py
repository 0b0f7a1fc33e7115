"""What a run needs, checked before its directory or run.sqlite exists (issue 26, defect 3).

A config error found at round 1 used to leave a run directory behind that `run` then called "already
holds a run". Here every name is checked up front: converters, the PyRIT templates, the constitution and
its profile, the held-out seed set, each model spec (a known name, a model directory, an `openai:` server
that answers), Ray for `executor: ray`. Names and reachability only: no weights load, so the default `content` critic
costs nothing here. `check_resume` names each changed key of a refused `--resume` (old → new).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from superalign.config import RunConfig, parse_yaml, yaml_line
from superalign.errors import UserError
from superalign.user_text import read_user_text

Loc = tuple[Any, ...]


def check_run(cfg: RunConfig, source: str | Path | None = None) -> None:
    """UserError listing every setting of `cfg` a run could not use, each with `source:line` (the YAML the
    config came from) or "(default)" where the file does not set it; returns None when all is usable."""
    problems = list(_problems(cfg))
    if not problems:
        return
    node = _yaml_node(source)
    msgs = []
    for loc, msg in problems:
        line = yaml_line(node, loc) if node is not None else None
        where = f"{source}:{line}" if line else "default"
        msgs.append(f"{'.'.join(str(p) for p in loc)}: {msg} ({where})")
    raise UserError("bad config: " + "; ".join(msgs))


def _problems(cfg: RunConfig) -> Iterator[tuple[Loc, str]]:
    from superalign.attacker.converters import check_converter

    a = cfg.attacker
    for i, name in enumerate(a.converters):
        yield from _refused(("attacker", "converters", i), check_converter, name)
    if a.template_share > 0:
        yield from _template_problems(a.max_template_chars)
    yield from _refused(("learner",), _check_spec, cfg.learner)
    if a.mode == "adaptive" and a.attacker_model != "none":
        yield from _refused(("attacker", "attacker_model"), _check_spec, a.attacker_model)
    o = cfg.oversight
    oracle_judge = o.review_fraction > 0 and o.reviewer == "oracle" and o.oracle_critic == "llm-judge"
    if cfg.critic.kind == "llm-judge" or oracle_judge:
        yield from _refused(("critic", "judge_model"), _check_spec, cfg.critic.judge_model)
    if cfg.eval_judge is not None:
        from superalign.critic.independent import independence_problem

        why = independence_problem(cfg.critic.kind, cfg.eval_judge.kind)
        if why:
            yield ("eval_judge", "kind"), why
        if cfg.eval_judge.kind == "llm-judge":
            yield from _refused(("eval_judge", "judge_model"), _check_spec, cfg.eval_judge.judge_model)
    yield from _policy_problems(cfg)
    if o.shrink_alphas and cfg.executor == "vllm":
        yield (
            ("oversight", "shrink_alphas"),
            (
                "scaled-back versions are merged checkpoints, and the vllm executor serves each round as stacked LoRA "
                "adapters; drop shrink_alphas or use executor: local"
            ),
        )
    yield from _refused(("data", "heldout_source"), _check_heldout_source, cfg.data.heldout_source)
    if cfg.executor == "ray" and importlib.util.find_spec("ray") is None:
        yield ("executor",), "needs Ray: pip install 'superalign[ray]' (or executor: local)"
    yield from _device_problems(cfg)
    yield from _engine_problems(cfg)
    if cfg.executor == "vllm":
        yield from _vllm_problems(cfg)


def _vllm_problems(cfg: RunConfig) -> Iterator[tuple[Loc, str]]:
    if cfg.learner == "scripted" or cfg.learner.startswith("openai:"):
        yield (
            ("learner",),
            (
                "executor: vllm trains the learner here and serves each round as a LoRA adapter: give "
                "the local weights the server serves (embedded, tiny or an HF dir)"
            ),
        )
        return
    if cfg.train.adapter != "lora":
        yield ("train", "adapter"), "executor: vllm serves rounds as LoRA adapters: train.adapter must be lora"
    if not cfg.vllm_url:
        yield ("vllm_url",), "executor: vllm needs the server's URL, e.g. http://127.0.0.1:8000/v1"
        return
    from superalign.backends.vllm import VLLMServer

    def probe(url: str) -> None:
        server = VLLMServer(url, cfg.vllm_model, timeout=5.0)
        try:
            server.base_model()
            if cfg.vllm_model:
                server.client(cfg.vllm_model).check_served()
        finally:
            server.close()

    yield from _refused(("vllm_url",), probe, cfg.vllm_url)


def _device_problems(cfg: RunConfig) -> Iterator[tuple[Loc, str]]:
    from superalign.device import resolve_device

    if cfg.device != "cuda" or cfg.learner == "scripted" or cfg.learner.startswith("openai:"):
        return  # auto and cpu always resolve (no torch import here); no local weights: the device does not matter
    yield from _refused(("device",), resolve_device, cfg.device)


def _engine_problems(cfg: RunConfig) -> Iterator[tuple[Loc, str]]:
    if cfg.train.launcher and cfg.train.engine != "trl":
        yield ("train", "launcher"), "runs the trl engine's training as a command: set train.engine: trl too"
    if cfg.train.engine != "trl" or cfg.learner == "scripted":
        return
    from superalign.learner.trl_engine import engine_problem

    why = engine_problem(cfg.train)
    if why:
        yield ("train", "engine"), why


def _refused(loc: Loc, check: Any, value: Any) -> Iterator[tuple[Loc, str]]:
    try:
        check(value)
    except UserError as exc:
        yield loc, str(exc)


def _check_spec(spec: str) -> None:
    from superalign.backends import check_backend_spec

    check_backend_spec(spec)


def _check_heldout_source(source: str | None) -> None:
    from superalign.data.seeds import check_heldout_source

    check_heldout_source(source)


def _template_problems(max_chars: int) -> Iterator[tuple[Loc, str]]:
    from superalign.attacker.templates import load_templates

    try:
        usable = load_templates(max_chars)
    except UserError as exc:
        yield ("attacker", "template_share"), f"{exc}, or set attacker.template_share: 0"
        return
    if not usable:
        yield (
            ("attacker", "max_template_chars"),
            (f"no PyRIT template is at most {max_chars} characters; raise it or set attacker.template_share: 0"),
        )


def _policy_problems(cfg: RunConfig) -> Iterator[tuple[Loc, str]]:
    from superalign.critic.constitution import Policy, load_constitution

    try:
        constitution = load_constitution(cfg.critic.constitution)
    except UserError as exc:
        yield ("critic", "constitution"), str(exc)
        return
    yield from _refused(("critic", "profile"), lambda profile: Policy(constitution, profile), cfg.critic.profile)


def _yaml_node(source: str | Path | None) -> Any:
    if source is None:
        return None
    p = Path(source)
    try:
        return parse_yaml(read_user_text(p), p)[0]
    except (OSError, UserError):
        return None


_ABSENT = object()


def check_resume(stored: dict[str, Any], cfg: RunConfig, out: Path) -> None:
    """Refuse to resume the run in `out` (started with config `stored`) under `cfg` when any setting
    differs, naming each changed key as `key: old → new`. `rounds` may grow: the run then goes on to the
    new number of rounds; it may not shrink (the rounds already run would outnumber it)."""
    changes = _changes(_normalised(stored), cfg.model_dump(mode="json"))
    refused = [
        (k, old, new)
        for k, old, new in changes
        if not (k == "rounds" and isinstance(old, int) and isinstance(new, int) and new > old)
    ]
    if not refused:
        return
    listed = ", ".join(f"{k}: {_show(old)} → {_show(new)}" for k, old, new in refused)
    fix = "resume with the settings the run was started with (only --rounds may grow)"
    old_rounds = next((old for k, old, _ in refused if k == "rounds"), None)
    if old_rounds is not None:
        fix += f"; give --rounds {old_rounds} or more"
    raise UserError(f"{out}: the run was started with another config ({listed}); {fix}")


def _normalised(stored: dict[str, Any]) -> Any:
    """The stored config with today's defaults filled in (a key added since is not a change)."""
    from pydantic import ValidationError

    if isinstance(stored, dict) and "device" not in stored:
        stored = {**stored, "device": "cpu"}  # written before `device` existed: every such run ran on the CPU
    try:
        return RunConfig.model_validate(stored).model_dump(mode="json")
    except ValidationError:
        return stored


def _changes(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old, new) for every leaf that differs; lists compare whole."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in list(old) + [k for k in new if k not in old]:
            out += _changes(old.get(k, _ABSENT), new.get(k, _ABSENT), f"{prefix}{k}.")
        return out
    return [] if old == new else [(prefix.rstrip("."), old, new)]


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(not set)"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."
