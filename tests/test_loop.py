"""The loop end to end: the scripted learner gets safer; a killed run resumes to the same records."""

import json
import os
import subprocess
import sys

import pytest

from superalign.config import load_config
from superalign.loop import run_loop


def test_scripted_loop_asr_falls_over_two_rounds(tmp_path):
    cfg = load_config("configs/scripted.yaml")
    rows = run_loop(cfg, tmp_path, log=lambda m: None)
    assert [r["round"] for r in rows] == [0, 1, 2]
    asr = [r["asr"] for r in rows]
    assert asr[0] > 0.8  # the scripted learner complies with everything at first
    assert asr[1] < asr[0]
    assert asr[2] <= 0.5 * asr[0]
    assert all(r["over_refusal"] <= 0.15 for r in rows)
    # rounds.jsonl contract
    lines = [json.loads(x) for x in (tmp_path / "rounds.jsonl").read_text().splitlines()]
    assert [x["round"] for x in lines] == [0, 1, 2]
    for key in ("asr", "over_refusal", "competence", "human_labels"):
        assert all(key in x for x in lines)
    assert (tmp_path / "report.html").stat().st_size > 1000
    assert (tmp_path / "checkpoints" / "round-2").is_dir()


def test_existing_run_needs_resume(tmp_path):
    cfg = load_config("configs/scripted.yaml", rounds=1)
    run_loop(cfg, tmp_path, log=lambda m: None)
    from superalign.errors import UserError

    with pytest.raises(UserError, match="--resume"):
        run_loop(cfg, tmp_path, log=lambda m: None)
    # resuming a finished run changes nothing
    assert run_loop(cfg, tmp_path, resume=True, log=lambda m: None) == run_loop(cfg, tmp_path, resume=True, log=lambda m: None)


def _records(out):
    from superalign.store.runstore import RunStore

    with RunStore(out / "run.sqlite") as s:
        return ([q.to_dict() for q in s.queries()], [r.to_dict() for r in s.responses()],
                [v.to_dict() for v in s.verdicts()], [p.to_dict() for p in s.pairs()])


def _cli(out, *extra, fault=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("SUPERALIGN_FAULT_AFTER", None)
    if fault:
        env["SUPERALIGN_FAULT_AFTER"] = fault
    return subprocess.run([sys.executable, "-m", "superalign.cli", "run", "--config", "configs/smoke.yaml",
                           "--out", str(out), *extra], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("fault", ["1:respond", "1:checkpoint"])
def test_killed_run_resumes_to_same_records(tmp_path, fault):
    """SIGKILL after a step (or between checkpoint write and commit); --resume ends equal to a clean run."""
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert _cli(clean).returncode == 0
    r = _cli(killed, fault=fault)
    assert r.returncode == -9, r.stderr[-2000:]
    assert not (killed / "rounds.jsonl").exists() or len((killed / "rounds.jsonl").read_text().splitlines()) < 2
    r = _cli(killed, "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    assert _records(killed) == _records(clean)
    strip = lambda rows: [{k: v for k, v in x.items() if k != "minutes"} for x in rows]  # noqa: E731
    load = lambda p: [json.loads(x) for x in (p / "rounds.jsonl").read_text().splitlines()]  # noqa: E731
    assert strip(load(killed)) == strip(load(clean))
