"""Scale-out: a call sharded over workers returns exactly what one local call returns (records unchanged)."""

import pytest

from superalign.backends.base import Sampling
from superalign.backends.sharded import LocalWorkers, ShardedBackend, shard_bounds
from superalign.records import user_chat


def test_shard_bounds_cover_in_order():
    assert shard_bounds(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert shard_bounds(2, 4) == [(0, 1), (1, 2)]  # never an empty shard
    assert shard_bounds(0, 2) == []


def test_sharded_equals_local_for_generation_and_scoring(tiny):
    sharded = ShardedBackend(LocalWorkers([tiny, tiny, tiny]), "tiny")
    chats = [user_chat(f"Question {i}: what is {i} plus {i}?") for i in range(7)]
    for params in (Sampling(10, 0.0, 50, 0), Sampling(10, 1.0, 20, 5)):
        assert sharded.generate(chats, params) == tiny.generate(chats, params)
    pre = [f"Q{i}: pick one.\nA:" for i in range(5)]
    opts = [[" yes", " no", " maybe"]] * 5
    flat = lambda rows: [x for row in rows for x in row]  # noqa: E731
    assert flat(sharded.score_options(pre, opts)) == pytest.approx(flat(tiny.score_options(pre, opts)), abs=1e-4)
    assert sharded.logprobs_text(pre, [" yes"] * 5) == pytest.approx(tiny.logprobs_text(pre, [" yes"] * 5), abs=1e-4)


@pytest.mark.slow
def test_ray_executor_run_equals_local_run(tmp_path):
    """configs/smoke-ray.yaml (2 Ray actors, ray.init(num_cpus=2)) ends with the local run's records."""
    pytest.importorskip("ray", reason="pip install 'superalign[ray]'")
    import json
    import subprocess
    import sys
    from pathlib import Path

    from superalign.store.runstore import RunStore

    def run(cfg, out):
        # float32: on an AMX CPU `dtype: auto` is bfloat16, where the actors' one thread and the local run's two
        # reduce in another order and a near-flat random model's sampled tokens part after a few tokens
        fp32 = tmp_path / Path(cfg).name
        fp32.write_text(Path(cfg).read_text() + "dtype: float32\n")
        r = subprocess.run(
            [sys.executable, "-m", "superalign.cli", "run", "--config", str(fp32), "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        with RunStore(out / "run.sqlite") as s:
            recs = (
                [q.to_dict() for q in s.queries()],
                [x.to_dict() for x in s.responses()],
                [v.to_dict() for v in s.verdicts()],
                [p.to_dict() for p in s.pairs()],
            )
        rows = [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines()]
        return recs, [{k: v for k, v in row.items() if k != "minutes"} for row in rows]

    local, ray_run = run("configs/smoke.yaml", tmp_path / "local"), run("configs/smoke-ray.yaml", tmp_path / "ray")
    assert ray_run[0] == local[0]
    assert ray_run[1] == local[1]
