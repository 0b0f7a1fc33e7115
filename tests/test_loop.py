"""The loop end to end: the scripted learner gets safer; resuming a finished run changes nothing.

Killed runs: tests/test_crash_safety.py."""

import json

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
    for key in ("asr", "over_refusal", "degenerate", "competence", "human_labels"):
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
    assert run_loop(cfg, tmp_path, resume=True, log=lambda m: None) == run_loop(
        cfg, tmp_path, resume=True, log=lambda m: None
    )


def test_only_the_runs_own_temp_files_are_cleaned(tmp_path):
    """A fresh run into a folder keeps the user's `.*.tmp` files and `checkpoints/.round-*` folders (issue 26,
    defect 6); a resume removes only what a killed run's atomic writes left."""
    mine = [
        tmp_path / ".notes.tmp",
        tmp_path / ".rounds.jsonl.mine.tmp",
        tmp_path / "checkpoints" / ".round-notes",
        tmp_path / "checkpoints" / ".round-1.backup",
    ]
    for p in mine:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.mkdir() if "round-" in p.name else p.write_text("the user's own")
    cfg = load_config("configs/scripted.yaml", rounds=1)
    run_loop(cfg, tmp_path, log=lambda m: None)
    assert all(p.exists() for p in mine)
    import os
    import tempfile

    # what a kill inside store/jsonl.py's atomic_write_text / atomic_write_dir leaves
    fd, left = tempfile.mkstemp(prefix=".rounds.jsonl.", suffix=".tmp", dir=tmp_path)
    os.close(fd)
    left_dir = tempfile.mkdtemp(prefix=".round-1.", dir=tmp_path / "checkpoints")
    run_loop(cfg, tmp_path, resume=True, log=lambda m: None)
    assert not os.path.exists(left) and not os.path.exists(left_dir)
    assert all(p.exists() for p in mine)


def _tree(d):
    return {str(p.relative_to(d)): p.read_bytes() if p.is_file() else None for p in sorted(d.rglob("*"))}


def test_more_rounds_continue_a_finished_run_as_a_clean_run_would(tmp_path):
    """Raising --rounds on a finished run resumes it to the new count (issue 26, defect 3); the rounds it
    adds are the ones a clean run of that length gets."""
    run_loop(load_config("configs/scripted.yaml", rounds=1), tmp_path / "grown", log=lambda m: None)
    grown = run_loop(
        load_config("configs/scripted.yaml", rounds=2), tmp_path / "grown", resume=True, log=lambda m: None
    )
    clean = run_loop(load_config("configs/scripted.yaml", rounds=2), tmp_path / "clean", log=lambda m: None)
    keys = ("round", "asr", "over_refusal", "pairs", "trained_from", "promoted")
    assert [tuple(r.get(k) for k in keys) for r in grown] == [tuple(r.get(k) for k in keys) for r in clean]
    assert [r["round"] for r in grown] == [0, 1, 2]


def test_a_refused_resume_names_each_changed_key_and_touches_nothing(tmp_path, monkeypatch):
    from superalign.errors import UserError

    run_loop(load_config("configs/scripted.yaml", rounds=2), tmp_path, log=lambda m: None)
    before = _tree(tmp_path)
    changed = load_config("configs/scripted.yaml", rounds=2).model_copy(
        update={"attacker": load_config("configs/scripted.yaml").attacker.model_copy(update={"queries_per_round": 90})}
    )
    import superalign.critic

    def no_critic(*a, **k):
        raise AssertionError("a refused resume must not build critics first (minutes for the content critic)")

    with monkeypatch.context() as m:
        m.setattr(superalign.critic, "build_critic", no_critic)
        with pytest.raises(UserError, match=r"another config \(attacker\.queries_per_round: 96 → 90\)"):
            run_loop(changed, tmp_path, resume=True, log=lambda m: None)
    with pytest.raises(UserError, match=r"rounds: 2 → 1\).*give --rounds 2 or more"):  # rounds never shrink
        run_loop(load_config("configs/scripted.yaml", rounds=1), tmp_path, resume=True, log=lambda m: None)
    assert _tree(tmp_path) == before


def test_a_run_from_an_older_split_is_not_resumed(tmp_path):
    from superalign.errors import UserError
    from superalign.store.runstore import RunStore

    cfg = load_config("configs/scripted.yaml", rounds=1)
    run_loop(cfg, tmp_path, log=lambda m: None)
    with RunStore(tmp_path / "run.sqlite") as store:
        store.set_meta("plan_version", 1)  # what a run of the exact-text split would carry (or no key at all)
    with pytest.raises(UserError, match="older superalign"):
        run_loop(load_config("configs/scripted.yaml", rounds=2), tmp_path, resume=True, log=lambda m: None)
