"""device: auto | cpu | cuda, the CPU path unchanged to the digit, and out-of-memory back-off (simulated)."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from superalign.config import RunConfig, load_config
from superalign.device import backoff_batches, resolve_device, resolve_dtype, set_device, use_device
from superalign.errors import UserError

torch = pytest.importorskip("torch")
OOM = torch.cuda.OutOfMemoryError  # present in CPU builds of torch: the simulated out-of-memory error


def test_resolve_device_and_dtype(monkeypatch):
    import superalign.device as device

    monkeypatch.setattr(device, "cuda_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device(None) == "cpu" and resolve_device("CPU") == "cpu"
    with pytest.raises(UserError, match="cuda was asked for"):
        resolve_device("cuda")
    with pytest.raises(UserError, match="choose auto, cpu or cuda"):
        resolve_device("tpu")
    monkeypatch.setattr(device, "cuda_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda") == "cuda" and resolve_device("cpu") == "cpu"
    assert resolve_dtype("auto", "cuda") == "bfloat16"
    monkeypatch.setattr(device, "cpu_has_amx_bf16", lambda: False)
    assert resolve_dtype("auto", "cpu") == "float32"
    monkeypatch.setattr(device, "cpu_has_amx_bf16", lambda: True)
    assert resolve_dtype("auto", "cpu") == "bfloat16"
    assert resolve_dtype("float32", "cuda") == "float32" and resolve_dtype("bfloat16", "cpu") == "bfloat16"


def test_amx_is_read_from_the_cpu_flags(tmp_path):
    from superalign.device import cpu_has_amx_bf16

    amx, avx512 = tmp_path / "amx", tmp_path / "avx512"
    amx.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_bf16 amx_tile amx_int8\n")
    avx512.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16\n")
    assert cpu_has_amx_bf16(str(amx)) and not cpu_has_amx_bf16(str(avx512))
    assert not cpu_has_amx_bf16(str(tmp_path / "missing"))


def test_use_device_sets_the_default_and_restores_it():
    from superalign.device import current_device

    before = current_device()
    with use_device("cpu") as d:
        assert d == "cpu" and current_device() == "cpu"
    assert current_device() == before
    assert set_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    set_device("cpu")


def test_config_device_key(tmp_path):
    assert RunConfig().device == "auto" and RunConfig().dtype == "auto"
    p = tmp_path / "c.yaml"
    p.write_text("device: gpu\n")
    with pytest.raises(UserError, match="device"):
        load_config(p)
    assert load_config(None, device="cpu").device == "cpu"


def test_run_config_resolves_device_for_the_store(monkeypatch):
    """A run stores the device it ran on; an old run (no `device` key) counts as a CPU run on resume."""
    import superalign.device as device
    from superalign.loop import resolved_config
    from superalign.preflight import check_resume

    monkeypatch.setattr(device, "cuda_available", lambda: False)
    monkeypatch.setattr(device, "cpu_has_amx_bf16", lambda: False)
    cfg = resolved_config(RunConfig(learner="tiny"))
    assert (cfg.device, cfg.dtype) == ("cpu", "float32")
    old = RunConfig(learner="tiny", dtype="float32").model_dump(mode="json")
    del old["device"]
    check_resume(old, cfg, Path("runs/x"))  # a pre-GPU run resumes on the CPU as before
    monkeypatch.setattr(device, "cuda_available", lambda: True)
    on_gpu = resolved_config(RunConfig(learner="tiny"))
    assert (on_gpu.device, on_gpu.dtype) == ("cuda", "bfloat16")
    with pytest.raises(UserError, match='device: "cpu" → "cuda"'):
        check_resume(cfg.model_dump(mode="json"), on_gpu, Path("runs/x"))


def test_run_with_cuda_on_a_cpu_machine_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    import superalign.device as device
    from superalign.loop import run_loop

    monkeypatch.setattr(device, "cuda_available", lambda: False)
    with pytest.raises(UserError, match="device: cuda was asked for"):
        run_loop(load_config("configs/smoke.yaml", device="cuda"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_cpu_path_is_unchanged():
    """Tokens (greedy, sampled, fp32 / bf16, fast decoder), option scores and DPO trajectories (LoRA and full, with
    replay and pair weights) equal the values computed before the GPU work (tests/cpu_reference.json)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from cpu_reference import REFERENCE, compute

    expected = json.loads(REFERENCE.read_text())
    got = json.loads(json.dumps(compute(device="cpu")))
    assert got.keys() == expected.keys()
    for key in expected:
        if "greedy" in key or "sampled" in key:
            assert got[key] == expected[key], key
        else:  # same machine: bitwise; another CPU may round the last bit of a float differently
            flat = lambda v: [x for r in v for x in (r if isinstance(r, list) else [r])] if isinstance(v, list) else [v]  # noqa: E731
            assert flat(got[key]) == pytest.approx(flat(expected[key]), rel=1e-6, abs=1e-6), key


# ---- out-of-memory back-off --------------------------------------------------------------------------------------


def _fails_above(k, calls):
    def fn(b):
        calls.append(b)
        if b > k:
            raise OOM(f"CUDA out of memory. Tried to allocate {b} GiB")
        return f"ran at {b}"

    return fn


def test_backoff_halves_until_it_fits_and_says_so():
    calls, lines = [], []
    result, b = backoff_batches(_fails_above(5, calls), 32, "generation", log=lines.append)
    assert (result, b) == ("ran at 4", 4) and calls == [32, 16, 8, 4]
    assert lines == [
        "CUDA out of memory in generation at batch 32; retrying at batch 16",
        "CUDA out of memory in generation at batch 16; retrying at batch 8",
        "CUDA out of memory in generation at batch 8; retrying at batch 4",
    ]


def test_backoff_fails_clearly_at_batch_one():
    calls, lines = [], []
    with pytest.raises(UserError, match="out of GPU memory in a DPO step even at batch 1.*lower train.micro_batch"):
        backoff_batches(_fails_above(0, calls), 4, "a DPO step", log=lines.append, hint="lower train.micro_batch")
    assert calls == [4, 2, 1] and len(lines) == 2


def test_backoff_lets_other_errors_through():
    def boom(b):
        raise RuntimeError("not a memory problem")

    with pytest.raises(RuntimeError, match="not a memory problem"):
        backoff_batches(boom, 8, "x", log=lambda m: None)


@pytest.fixture(scope="module")
def tiny():
    from superalign.backends import load_backend

    return load_backend("tiny", batch_size=8, device="cpu", dtype="float32")


def test_generation_backs_off_on_a_simulated_oom(tiny, monkeypatch, capsys):
    """The accelerator path of generate_ids: a decode batch of more than 3 rows 'runs out of memory'; the call
    halves to 2, keeps the lowered batch size, and every row gets what a batch-2 CPU call gives it."""
    from superalign.backends import Sampling
    from superalign.records import user_chat

    prompts = [tiny.encode(tiny.render(user_chat(q))) for q in ("a", "bb cc", "what is up", "x y z w", "hello")]
    params = Sampling(6, 0.8, 50, seed=1)
    tiny.batch_size = 2
    expected = tiny.generate_ids(prompts, params)
    real = tiny.decode_batch
    sizes = []

    def decode(batch, *a, **k):
        sizes.append(len(batch))
        if len(batch) > 3:
            raise OOM("CUDA out of memory (simulated)")
        return real(batch, *a, **k)

    monkeypatch.setattr(tiny, "decode_batch", decode)
    tiny.batch_size = 8
    out = [[] for _ in prompts]
    tiny._generate_backing_off(prompts, params, None, out)
    assert out == expected and tiny.batch_size == 2 and sizes == [5, 4, 2, 2, 1]
    err = capsys.readouterr().err
    assert "CUDA out of memory in generation at batch 8; retrying at batch 4" in err
    assert "at batch 4; retrying at batch 2" in err


def test_scoring_backs_off_on_a_simulated_oom(tiny, monkeypatch, capsys):
    from superalign.backends.hf import HFBackend

    class OnCuda(HFBackend):  # only the device check sees "cuda"; the tensors stay on the CPU
        device = property(lambda self: SimpleNamespace(type="cuda"))

    b = HFBackend(tiny.model, tiny.tokenizer, "t", batch_size=16)
    b.__class__ = OnCuda

    def score(prefixes, options):
        if b.batch_size > 4:
            raise OOM("CUDA out of memory (simulated)")
        return [[0.0] * len(o) for o in options]

    monkeypatch.setattr(b, "_score_options", score)
    assert b.score_options(["q"], [["a", "b"]]) == [[0.0, 0.0]] and b.batch_size == 4
    assert capsys.readouterr().err.count("CUDA out of memory in scoring") == 2


def test_dpo_step_backs_off_on_a_simulated_oom(monkeypatch, capsys):
    """The accelerator path of train_dpo: micro-batches of more than one pair 'run out of memory'; the step is
    redone one pair per pass, which accumulates the same gradient: same losses as micro_batch 1 from the start."""
    import superalign.device as device
    import superalign.learner.dpo as dpo
    from superalign.backends import load_backend
    from superalign.config import TrainConfig
    from superalign.records import Pair, user_chat

    pairs = [
        Pair(prompt=user_chat(q), chosen=c, rejected=r, weight=w)
        for q, c, r, w in [
            ("lock?", "No.", "Sure, rake the pins.", 1.0),
            ("capital?", "Paris.", "Dunno.", 0.6),
            ("haiku?", "Rain on the roof.", "No.", 0.9),
            ("sleep?", "Dark room.", "Never.", 1.0),
        ]
    ]

    def train(micro, simulate):
        b = load_backend("tiny", batch_size=4, device="cpu")
        cfg = TrainConfig(epochs=2, batch_size=4, micro_batch=micro, max_len=48, lr=5e-3)
        return dpo.train_dpo(b, pairs, cfg, seed=3)[1].losses

    expected = train(1, False)
    real = dpo._accumulate

    def accumulate(*a, micro=None, **k):
        if (micro or 4) > 1:
            raise OOM("CUDA out of memory (simulated)")
        return real(*a, micro=micro, **k)

    monkeypatch.setattr(device, "is_cuda_model", lambda model: True)  # take the accelerator path on the CPU
    monkeypatch.setattr(dpo, "_accumulate", accumulate)
    got = train(4, True)
    assert got == pytest.approx(expected, abs=2e-5)
    err = capsys.readouterr().err
    assert "CUDA out of memory in a DPO step at batch 4; retrying at batch 2" in err
    assert err.count("CUDA out of memory in a DPO step") == 2  # 4 -> 2 -> 1 once; later steps start at 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_cli_device_option(tmp_path):
    """--device on the model-loading commands: cuda without a GPU is exit 2 with the reason, nothing written."""
    import os
    import subprocess

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "superalign.cli",
            "run",
            "--config",
            "configs/smoke.yaml",
            "--out",
            str(tmp_path / "run"),
            "--device",
            "cuda",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 2 and "device: cuda was asked for" in r.stderr and not (tmp_path / "run").exists()
    (tmp_path / "q.jsonl").write_text('{"prompt": "hi"}\n')
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "superalign.cli",
            "generate",
            "--model",
            "scripted",
            "--in",
            str(tmp_path / "q.jsonl"),
            "--out",
            str(tmp_path / "a.jsonl"),
            "--device",
            "cuda",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 2 and "cuda was asked for" in r.stderr
    for cmd in ("run", "eval", "generate", "judge", "attack"):
        r = subprocess.run(
            [sys.executable, "-m", "superalign.cli", cmd, "--help"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert "--device" in r.stdout, cmd


def test_a_run_resumes_in_the_dtype_it_started_in(tmp_path, monkeypatch):
    """A run started in fp32 (dtype auto on a CPU without AMX) goes on in fp32 when resumed where auto now
    means bf16 (a newer superalign, or the run directory moved to an AMX machine), instead of being refused."""
    import superalign.device as device
    from superalign.loop import run_loop
    from superalign.store.runstore import RunStore

    cfg = load_config("configs/scripted.yaml", rounds=1)
    monkeypatch.setattr(device, "cpu_has_amx_bf16", lambda: False)
    run_loop(cfg, tmp_path, log=lambda m: None)
    monkeypatch.setattr(device, "cpu_has_amx_bf16", lambda: True)
    rows = run_loop(cfg.model_copy(update={"rounds": 2}), tmp_path, resume=True, log=lambda m: None)
    assert len(rows) == 3
    with RunStore(tmp_path / "run.sqlite") as store:
        assert store.get_meta("config")["dtype"] == "float32"
