"""scripts/gpu_check.sh / gpu_check.py: the GPU check fails loudly without CUDA, and its code paths run on the
CPU with tiny shapes (--cpu-dry-run); the figures themselves need a GPU (docs/results/gpu/, when measured)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
torch = pytest.importorskip("torch")
needs_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a GPU")


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@needs_no_gpu
def test_python_part_refuses_without_cuda(tmp_path, capsys):
    assert _module().main(["--out", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "gpu_check: FAILED" in err and "sees no CUDA GPU" in err and "--cpu-dry-run" in err
    assert not (tmp_path / "gpu_check.json").exists()


@needs_no_gpu
def test_shell_script_refuses_without_cuda(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 3, r.stderr
    assert "gpu_check: FAILED: no CUDA GPU visible to torch" in r.stderr
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], env={**env, "OUT": ""}, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and "set OUT" in r.stderr


def test_synthetic_tokenizer_and_real_shapes():
    mod = _module()
    tok = mod.synthetic_tokenizer(600)
    ids = tok.apply_chat_template([{"role": "user", "content": "w7 w8 hello"}], tokenize=False,
                                  add_generation_prompt=True)
    enc = tok(ids, add_special_tokens=False)["input_ids"]
    assert enc[0] == tok.convert_tokens_to_ids("<|im_start|>") and 7 in enc and 8 in enc
    assert tok.decode([7, 8]) == "w7 w8" and tok.eos_token_id == 3 and tok.pad_token_id == 0
    assert mod.SHAPES["smollm2-135m"]["num_hidden_layers"] == 30 and mod.SHAPES["llama-1b"]["hidden_size"] == 2048
    from transformers import LlamaConfig

    with torch.device("meta"):  # the real shapes' parameter counts, without allocating them
        from transformers import LlamaForCausalLM

        n = {s: sum(p.numel() for p in LlamaForCausalLM(LlamaConfig(**mod.SHAPES[s])).parameters())
             for s in ("smollm2-135m", "llama-1b")}
    assert 130e6 < n["smollm2-135m"] < 140e6 and 1.1e9 < n["llama-1b"] < 1.3e9


def test_cpu_dry_run_generation(tmp_path):
    assert _module().main(["--out", str(tmp_path), "--cpu-dry-run", "--sections", "generation"]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["mode"] == "cpu-dry-run" and report["errors"] == {} and report["env"]["device"] == "cpu"
    gen = report["generation"]["tiny"]
    for mode in ("sampled", "greedy"):
        assert gen[mode]["ours"]["tokens"] > 0 and gen[mode]["hf_generate"]["tok_s"] > 0
    assert gen["greedy"]["greedy_rows_identical"] == "4/4"  # our decode loop = HF generate, greedy


@pytest.mark.slow
def test_cpu_dry_run_everything(tmp_path):
    """Every section on tiny shapes (~1 min on 2 cores): DPO native / trl engine / TRL (precompute on and off) and a
    smoke round of the loop with the synthetic-tokenizer learner."""
    assert _module().main(["--out", str(tmp_path), "--cpu-dry-run"]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["errors"] == {} and report["skipped"] == {}
    dpo = report["dpo_step"]["tiny"]
    assert set(dpo["first_losses"].values()) == {0.69315}
    for key in ("trl_engine", "trl_precompute_ref", "trl_default"):  # the step after the first agrees too
        assert dpo[key]["losses"][1] == pytest.approx(dpo["native"]["losses"][1], abs=1e-4)
    assert [r["round"] for r in report["smoke_round"]["rounds"]] == [0, 1]
