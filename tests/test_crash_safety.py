"""Crash safety: `superalign run` killed with SIGKILL anywhere resumes to the records of an uninterrupted run.

Kill points are the fault ticks of superalign.faults (each generated / scored batch, each training step,
inside checkpoint and file writes before their rename, inside store transactions before COMMIT, after
each committed step). The fast suite kills at a few of them; `make test-slow` kills at every one.
"""

import json
import os
import random
import subprocess
import sys
import time

import pytest

CONFIG = "configs/smoke.yaml"


def _run(out, *extra, env_extra=None, timeout=600):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for k in ("SUPERALIGN_FAULT_TICK", "SUPERALIGN_FAULT_TRACE"):
        env.pop(k, None)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "superalign.cli", "run", "--config", CONFIG, "--out", str(out), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _records(out):
    from superalign.store.runstore import RunStore

    with RunStore(out / "run.sqlite") as s:
        return (
            [q.to_dict() for q in s.queries()],
            [r.to_dict() for r in s.responses()],
            [v.to_dict() for v in s.verdicts()],
            [p.to_dict() for p in s.pairs()],
        )


def _rounds(out):
    rows = [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "minutes"} for r in rows]  # wall time differs, nothing else


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """One uninterrupted run, with the list of its fault ticks: [(n, phase), ...]."""
    out = tmp_path_factory.mktemp("clean") / "run"
    trace = out.parent / "trace.tsv"
    r = _run(out, env_extra={"SUPERALIGN_FAULT_TRACE": str(trace)})
    assert r.returncode == 0, r.stderr[-3000:]
    ticks = [(int(n), phase) for n, phase in (line.split("\t") for line in trace.read_text().splitlines())]
    return out, ticks


def _assert_same_as_clean(out, clean_out):
    assert _records(out) == _records(clean_out)  # same records, no duplicates (ids are unique keys)
    assert _rounds(out) == _rounds(clean_out)
    leftovers = [p.name for d in (out, out / "checkpoints") for p in d.glob(".*")]
    assert leftovers == [], leftovers  # no half-written temp file or checkpoint dir survives the resume
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out / "checkpoints" / "round-1")  # loadable, not corrupt


def _kill_and_resume(tmp_path, tick, clean_out):
    out = tmp_path / f"killed-{tick}"
    r = _run(out, env_extra={"SUPERALIGN_FAULT_TICK": str(tick)})
    assert r.returncode == -9, f"tick {tick} did not kill the run: rc={r.returncode}\n{r.stderr[-2000:]}"
    r = _run(out, "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    _assert_same_as_clean(out, clean_out)


def test_trace_covers_every_phase(clean):
    _, ticks = clean
    phases = {p for _, p in ticks}
    assert {"generate", "score", "train", "dir-write", "file-write", "store-commit"} <= phases, phases
    assert len(ticks) >= 20  # enough distinct kill points for the slow suite's exhaustive pass


def test_same_seed_same_records(clean, tmp_path):
    out = tmp_path / "again"
    assert _run(out).returncode == 0
    assert _records(out) == _records(clean[0])
    assert _rounds(out) == _rounds(clean[0])


@pytest.mark.parametrize("phase", ["dir-write", "store-commit", "train"])
def test_kill_during_phase_resumes_to_same_records(clean, tmp_path, phase):
    """A random kill point of the phase (checkpoint writing, a store commit, a training step)."""
    clean_out, ticks = clean
    tick = random.Random(phase).choice([n for n, p in ticks if p == phase])
    _kill_and_resume(tmp_path, tick, clean_out)


@pytest.mark.slow
def test_kill_at_every_fault_point_resumes_to_same_records(clean, tmp_path):
    clean_out, ticks = clean
    for n, _ in ticks:
        _kill_and_resume(tmp_path, n, clean_out)


@pytest.mark.slow
def test_repeated_random_time_kills_then_resume(clean, tmp_path):
    """Kill at random wall-clock moments, resume, kill the resume again ... then finish: same records."""
    clean_out, _ = clean
    rng = random.Random(7)
    out = tmp_path / "chain"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for i in range(6):
        args = [sys.executable, "-m", "superalign.cli", "run", "--config", CONFIG, "--out", str(out)]
        proc = subprocess.Popen(
            args + (["--resume"] if i else []), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(3, 25))
        proc.kill()
        proc.wait()
    r = _run(out, "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    _assert_same_as_clean(out, clean_out)
