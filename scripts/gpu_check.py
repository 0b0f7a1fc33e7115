"""The GPU check of issue 24, in one short call: writes OUT/gpu_check.json.

    bash scripts/gpu_check.sh                      # on a CUDA machine: OUT=/some/dir, <= 8 minutes on one H100
    python scripts/gpu_check.py --out DIR --cpu-dry-run   # the same code paths on tiny shapes, on the CPU (tests)

Random-weight models of real shapes, built in code (nothing is downloaded; real weights cannot travel):
SmolLM2-135M (30 layers, hidden 576, 9 heads / 3 KV heads, vocab 49,152) and a ~1.2B Llama-3.2-1B-shaped config
(16 layers, hidden 2,048, 32 / 8 heads, vocab 128,256), bf16 on CUDA, with a synthetic word-level tokenizer
(ids w5..wN, ChatML specials) so that text-level code (chat template, encode_example, the loop) runs unchanged.

Sections (each timed; a section that fails or lacks a package records why and the others still run):
- generation: tokens/s of our batched decode loop (HFBackend.generate_ids) vs HF `generate`, sampled (T 0.8,
  top-k 50) and greedy, the same prompts and batch; random weights rarely emit a stop token, so both generate
  the full length (counted, not assumed).
- dpo_step: s per optimiser step on the same pairs, LoRA r16, bf16: native (learner/dpo.py; its one reference
  pass amortised over the round's 2 epochs, and paid every step as the worst case), the trl engine
  (learner/trl_engine.py), and TRL's own DPOTrainer with precompute_ref_log_probs=True (its best setting here)
  and False (its default: the reference forward in every step); the ratios native / each, and the first-step
  losses (all log 2 at the reference).
- smoke_round: configs/smoke.yaml end to end on the device (round 0 eval, attack, respond, judge, pairs, DPO,
  eval) with the SmolLM2-shaped random model as the learner; its wall time and rows. Needs the project's
  pure-Python dependencies and the data files the plan reads (scripts/gpu_pack.sh builds `.gpu/` to carry).

Nothing here is a quality measurement: random weights answer gibberish. The figures are throughput and cost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

SHAPES: dict[str, dict[str, Any]] = {
    "smollm2-135m": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                         rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True),
    "llama-1b": dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                     num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                     rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=True),
    "tiny": dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True),
}
SPECIALS = ["<pad>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "[UNK]"]
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

# (shapes, generation: prompts, prompt words, new tokens, timed repeats; dpo: pairs, words per part, timed steps)
PLANS = {
    "cuda": dict(shapes=["smollm2-135m", "llama-1b"], prompts=64, prompt_len=48, new_tokens=128, repeats=2,
                 pairs=8, words=96, steps=3, smoke_shape="smollm2-135m"),
    "cpu-dry-run": dict(shapes=["tiny"], prompts=4, prompt_len=12, new_tokens=8, repeats=1,
                        pairs=2, words=12, steps=1, smoke_shape="tiny"),
}


def say(msg: str) -> None:
    print(f"[gpu_check] {msg}", file=sys.stderr, flush=True)


def synthetic_tokenizer(vocab_size: int) -> Any:
    """A word-level tokenizer over 'w5' .. 'w{vocab_size-1}' plus ChatML specials, built in code."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS)}
    vocab.update({f"w{i}": i for i in range(len(SPECIALS), vocab_size)})
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="<pad>", eos_token="<|im_end|>",
                                  bos_token="<|endoftext|>", additional_special_tokens=["<|im_start|>"])
    tok.chat_template = CHATML
    return tok


def build_model(shape: str, device: str, dtype: str, seed: int = 0) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(**SHAPES[shape], bos_token_id=1, eos_token_id=3, pad_token_id=0)
    torch.manual_seed(seed)
    with torch.device(device):  # initialise on the device: a 1.2B model in seconds, not a minute on the host
        model = LlamaForCausalLM(cfg)
    model = model.to(getattr(torch, dtype))
    if device != "cpu":
        model.config._attn_implementation = "sdpa"
    return model.eval()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str) -> tuple[Any, float]:
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t


def words(rng: Any, n: int, vocab: int) -> str:
    return " ".join(f"w{rng.randrange(len(SPECIALS), vocab)}" for _ in range(n))


# ---- sections ------------------------------------------------------------------------------------------------------

def env_section(device: str) -> dict[str, Any]:
    import importlib.metadata as md

    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cuda": torch.version.cuda, "device": device}
    for pkg in ("transformers", "peft", "accelerate", "trl", "datasets", "pydantic", "tokenizers"):
        try:
            info[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            info[pkg] = None
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), sms=p.multi_processor_count)
    return info


def generation_section(shape: str, device: str, dtype: str, plan: dict[str, Any]) -> dict[str, Any]:
    import random

    import torch

    from superalign.backends.base import Sampling
    from superalign.backends.hf import HFBackend

    vocab = SHAPES[shape]["vocab_size"]
    tok = synthetic_tokenizer(vocab)
    model = build_model(shape, device, dtype)
    backend = HFBackend(model, tok, shape, batch_size=plan["prompts"])
    rng = random.Random(0)
    prompts = [[rng.randrange(len(SPECIALS), vocab) for _ in range(plan["prompt_len"] + rng.randrange(0, 16))]
               for _ in range(plan["prompts"])]
    n = plan["new_tokens"]
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)

    def hf(sample: bool) -> list[list[int]]:
        kw = dict(do_sample=True, temperature=0.8, top_k=50) if sample else dict(do_sample=False)
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, pad_token_id=0,
                                 eos_token_id=backend.stop_ids, **kw)
        rows = []
        for row in out[:, width:].tolist():
            cut = next((i for i, t in enumerate(row) if t in backend.stop_ids), len(row))
            rows.append(row[:cut])
        return rows

    def ours(sample: bool) -> list[list[int]]:
        params = Sampling(n, 0.8, 50, seed=1) if sample else Sampling(n, 0.0)
        return backend.generate_ids(prompts, params)

    result: dict[str, Any] = {"prompts": len(prompts), "prompt_tokens": [min(map(len, prompts)), width],
                              "new_tokens": n, "batch": len(prompts), "dtype": dtype}
    for mode in ("sampled", "greedy"):
        sample = mode == "sampled"
        per: dict[str, Any] = {}
        outs = {}
        for who, fn in (("ours", ours), ("hf_generate", hf)):
            fn(sample)  # warm-up (kernels, allocator)
            times, toks = [], 0
            for _ in range(plan["repeats"]):
                outs[who], dt = timed(lambda: fn(sample), device)
                times.append(dt)
                toks = sum(len(r) for r in outs[who])
            s = statistics.median(times)
            per[who] = {"seconds": round(s, 4), "tokens": toks, "tok_s": round(toks / s, 1)}
        per["speedup_vs_hf"] = round(per["ours"]["tok_s"] / per["hf_generate"]["tok_s"], 3)
        if not sample:
            same = sum(a == b for a, b in zip(outs["ours"], outs["hf_generate"]))
            per["greedy_rows_identical"] = f"{same}/{len(prompts)}"
        result[mode] = per
        say(f"{shape} {mode}: ours {per['ours']['tok_s']} tok/s, HF generate {per['hf_generate']['tok_s']} tok/s")
    result["fast_decode"] = backend.fast_decode_skipped or "used"
    return result


def _pairs(shape: str, plan: dict[str, Any]) -> list:
    import random

    from superalign.records import Pair, user_chat

    rng, vocab, w = random.Random(1), SHAPES[shape]["vocab_size"], plan["words"]
    return [Pair(prompt=user_chat(words(rng, w, vocab)), chosen=words(rng, w, vocab), rejected=words(rng, w, vocab))
            for _ in range(plan["pairs"])]


def dpo_section(shape: str, device: str, dtype: str, plan: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    from superalign.backends.hf import HFBackend
    from superalign.config import TrainConfig
    from superalign.learner.dpo import encode_example, train_dpo

    tok = synthetic_tokenizer(SHAPES[shape]["vocab_size"])
    pairs = _pairs(shape, plan)
    warm, steps, epochs_per_round = 1, plan["steps"], TrainConfig().epochs
    cfg = TrainConfig(lr=5e-4, batch_size=len(pairs), micro_batch=len(pairs), max_len=4 * plan["words"],
                      epochs=warm + steps, nll_weight=0.0)
    backend = HFBackend(build_model(shape, device, dtype), tok, shape)
    enc = [(encode_example(tok, backend.render, p.prompt, p.chosen, cfg.max_len),
            encode_example(tok, backend.render, p.prompt, p.rejected, cfg.max_len)) for p in pairs]
    n_tokens = sum(len(c) + len(r) for (c, _), (r, _) in enc)
    result: dict[str, Any] = {"pairs": len(pairs), "tokens_per_step": n_tokens, "dtype": dtype, "lora_r": cfg.lora_r,
                              "timed_steps": steps, "warmup_steps": warm}

    def marks_progress(marks: list[float]) -> Callable[[int, int, float], None]:
        def tick(step: int, total: int, loss: float) -> None:
            sync(device)
            marks.append(time.perf_counter())
        return tick

    # native (learner/dpo.py)
    marks: list[float] = []
    _, stats = train_dpo(backend, pairs, cfg, seed=0, progress=marks_progress(marks))
    step = statistics.median([b - a for a, b in zip(marks, marks[1:])][warm - 1:] or [float("nan")])
    result["native"] = {"s_per_step_train": round(step, 4), "s_reference_pass": stats.reference_seconds,
                        "s_per_step": round(step + stats.reference_seconds / epochs_per_round, 4),
                        "s_per_step_ref_every_step": round(step + stats.reference_seconds, 4),
                        "losses": stats.losses}
    say(f"{shape} DPO native: {result['native']['s_per_step']} s/step")
    # the trl engine (learner/trl_engine.py)
    from superalign.learner.trl_engine import train_dpo_trl

    backend = HFBackend(build_model(shape, device, dtype), tok, shape)
    marks = []
    _, stats = train_dpo_trl(backend, pairs, cfg.model_copy(update={"engine": "trl"}), seed=0,
                             progress=marks_progress(marks), work_dir=out_dir)
    step = statistics.median([b - a for a, b in zip(marks, marks[1:])][warm - 1:] or [float("nan")])
    result["trl_engine"] = {"s_per_step": round(step, 4), "s_reference_pass": stats.reference_seconds,
                            "losses": stats.losses}
    say(f"{shape} DPO trl engine: {step:.4f} s/step")
    # TRL's own DPOTrainer (its loss), with and without precomputed reference log-probs
    for precompute in (True, False):
        key = "trl_precompute_ref" if precompute else "trl_default"
        result[key] = _plain_trl(shape, device, dtype, tok, enc, cfg, precompute, warm + steps, warm, out_dir)
        say(f"{shape} DPO TRL precompute_ref_log_probs={precompute}: {result[key]['s_per_step']} s/step")
    native = result["native"]["s_per_step"]
    result["ratio_trl_precompute_over_native"] = round(result["trl_precompute_ref"]["s_per_step"] / native, 3)
    result["ratio_trl_default_over_native"] = round(result["trl_default"]["s_per_step"] / native, 3)
    result["ratio_trl_engine_over_native"] = round(result["trl_engine"]["s_per_step"] / native, 3)
    result["first_losses"] = {k: result[k]["losses"][0] for k in ("native", "trl_engine", "trl_precompute_ref",
                                                                   "trl_default") if result[k]["losses"]}
    return result


def _plain_trl(shape: str, device: str, dtype: str, tok: Any, enc: list, cfg: Any, precompute: bool, total: int,
               warm: int, out_dir: Path) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from superalign.learner.dpo import LORA_TARGETS

    times: list[float] = []
    losses: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, a: Any, state: Any, control: Any, **kw: Any) -> None:
            sync(device)
            self.t = time.perf_counter()

        def on_step_end(self, a: Any, state: Any, control: Any, **kw: Any) -> None:
            sync(device)
            times.append(time.perf_counter() - self.t)

    class Plain(DPOTrainer):
        def _prepare_dataset(self, dataset: Any, *a: Any, **k: Any) -> Any:
            return dataset  # the same token ids as the other sides

        def compute_loss(self, *a: Any, **kw: Any) -> Any:
            loss = super().compute_loss(*a, **kw)
            losses.append(round(float(loss.detach()), 5))
            return loss

    data = Dataset.from_list([{"prompt_ids": c[:n], "chosen_ids": c[n:], "rejected_ids": r[n:]}
                              for (c, n), (r, _) in enc])
    args = DPOConfig(output_dir=str(out_dir / "trl"), per_device_train_batch_size=len(enc), max_steps=total,
                     learning_rate=cfg.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                     max_grad_norm=1.0, beta=cfg.beta, loss_type=["sigmoid"], gradient_checkpointing=False,
                     precompute_ref_log_probs=precompute, bf16=dtype == "bfloat16", use_cpu=device == "cpu",
                     max_length=None, report_to="none", save_strategy="no", logging_strategy="no",
                     disable_tqdm=True, seed=0)
    peft = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules=LORA_TARGETS,
                      task_type="CAUSAL_LM")
    from transformers.trainer_callback import PrinterCallback

    from superalign.learner.trl_engine import _quiet

    t0 = time.perf_counter()
    with _quiet():
        trainer = Plain(model=build_model(shape, device, dtype), args=args, train_dataset=data, processing_class=tok,
                        peft_config=peft, callbacks=[Timer()])
        setup = time.perf_counter() - t0  # with precompute: TRL's reference pass over the dataset happens here
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    del trainer
    if device == "cuda":
        torch.cuda.empty_cache()
    return {"s_per_step": round(statistics.median(times[warm:] or times), 4), "s_setup_incl_precompute": round(setup, 3),
            "losses": losses[:total]}


def smoke_section(device: str, dtype: str, plan: dict[str, Any], work: Path, dry: bool) -> dict[str, Any]:
    """configs/smoke.yaml, one round, with a random SmolLM2-shaped learner saved with the synthetic tokenizer."""
    from superalign.config import load_config
    from superalign.loop import run_loop

    shape = plan["smoke_shape"]
    learner = work / f"learner-{shape}"
    if not (learner / "config.json").is_file():
        model = build_model(shape, "cpu", "bfloat16")
        model.save_pretrained(learner)
        synthetic_tokenizer(SHAPES[shape]["vocab_size"]).save_pretrained(learner)
    over: dict[str, Any] = {"learner": str(learner), "device": device, "dtype": dtype}
    base = load_config("configs/smoke.yaml")
    if dry:  # the CPU dry run keeps the test short
        over.update(max_new_tokens=6, data=base.data.model_copy(update={"heldout_harmful": 4, "heldout_benign": 4,
                                                                         "competence_items": 8}),
                    attacker=base.attacker.model_copy(update={"queries_per_round": 4, "benign_per_round": 2}))
    cfg = base.model_copy(update=over)
    lines: list[str] = []
    t0 = time.perf_counter()
    run_dir = work / f"smoke-run-{time.strftime('%Y%m%d-%H%M%S')}"  # a fresh run (a warm machine keeps /tmp)
    rows = run_loop(cfg, run_dir, log=lambda m: (lines.append(m), say(m)))
    keep = ("round", "asr", "over_refusal", "competence", "pairs", "train_loss_first", "train_loss_last", "minutes")
    return {"seconds": round(time.perf_counter() - t0, 2), "device": device, "dtype": dtype, "learner_shape": shape,
            "rounds": [{k: r.get(k) for k in keep} for r in rows], "log": lines}


# ---- driver -------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="GPU check: generation tok/s, DPO step native vs TRL, a smoke round.")
    ap.add_argument("--out", default=os.environ.get("OUT"), help="folder for gpu_check.json (default: $OUT)")
    ap.add_argument("--cpu-dry-run", action="store_true", help="tiny shapes on the CPU: the code paths, no figures")
    ap.add_argument("--budget-s", type=float, default=420.0, help="skip the sections left once this much has passed")
    ap.add_argument("--sections", default="generation,dpo_step,smoke_round")
    args = ap.parse_args(argv)
    if not args.out:
        ap.error("--out (or $OUT) is required")
    import torch

    mode = "cpu-dry-run" if args.cpu_dry_run else "cuda"
    if mode == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: FAILED: torch {torch.__version__} sees no CUDA GPU (torch.cuda.is_available() is False). "
              "This check measures a GPU: run it on a CUDA machine (scripts/gpu_check.sh), or pass --cpu-dry-run "
              "to exercise its code paths on tiny shapes.", file=sys.stderr)
        return 3
    device, dtype = ("cuda", "bfloat16") if mode == "cuda" else ("cpu", "float32")
    plan = PLANS[mode]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("GPU_CHECK_WORK", "/tmp/gpu_check_work")) if mode == "cuda" else out / "work"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    report: dict[str, Any] = {"check": "scripts/gpu_check.py", "mode": mode,
                              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "errors": {}, "skipped": {}}

    def save() -> None:
        report["seconds"] = round(time.perf_counter() - t0, 1)
        (out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")

    def run(name: str, fn: Callable[[], Any]) -> None:
        if time.perf_counter() - t0 > args.budget_s:
            report["skipped"][name] = f"time budget ({args.budget_s:g} s) spent"
            return save()
        say(f"{name} ...")
        try:
            report.setdefault(name.split(":")[0], {})
            value = fn()
            if ":" in name:
                report[name.split(":")[0]][name.split(":")[1]] = value
            else:
                report[name] = value
        except ModuleNotFoundError as exc:
            report["skipped"][name] = (f"missing package {exc.name!r}: build .gpu/ with scripts/gpu_pack.sh where pip "
                                       "works and carry it (scripts/gpu_check.sh installs it)")
        except Exception as exc:  # record and go on: one broken section must not lose the others
            report["errors"][name] = "".join(traceback.format_exception(exc)[-6:])
            say(f"{name} failed: {exc!r}")
        finally:
            if device == "cuda":
                torch.cuda.empty_cache()
        save()

    sections = set(args.sections.split(","))
    run("env", lambda: env_section(device))
    if "generation" in sections:
        for shape in plan["shapes"]:
            run(f"generation:{shape}", lambda shape=shape: generation_section(shape, device, dtype, plan))
    if "dpo_step" in sections:
        for shape in plan["shapes"]:
            run(f"dpo_step:{shape}", lambda shape=shape: dpo_section(shape, device, dtype, plan, work))
    if "smoke_round" in sections:
        run("smoke_round", lambda: smoke_section(device, dtype, plan, work, mode != "cuda"))
    save()
    say(f"wrote {out / 'gpu_check.json'} in {report['seconds']} s; errors: {sorted(report['errors']) or 'none'}; "
        f"skipped: {sorted(report['skipped']) or 'none'}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
