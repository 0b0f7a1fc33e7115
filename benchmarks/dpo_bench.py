"""DPO step time: TRL 1.16 DPOTrainer vs our fast path (learner/dpo.py), same model, batch, LoRA rank, precision.

    python benchmarks/dpo_bench.py --json [--steps 5] [--warmup 2] [--dtype bfloat16|float32] [--adapter lora|full]
                                  [--no-share-prompt] [--trl-precompute]

Both sides train the embedded SmolLM2-135M on the same batch of 4 pairs x 128 tokens (the same token ids:
our `encode_example` output is fed to TRL's collator), with AdamW at a constant lr, grad-norm clip 1.0,
no gradient checkpointing (TRL's default turns it on, which is slower; we switch it off to be fair), and
the same precision (bf16: weights in bf16 and TRL's bf16 autocast; fp32: everything fp32).

Time per optimiser step is the median over `--steps` steps after `--warmup` steps. TRL recomputes the
reference log-probs in every step; ours computes them once per round. Our s/step counts that one-off pass
amortised honestly: a round of E epochs (TrainConfig.epochs, default 2) uses each batch's reference
log-probs E times, so ours = train step + reference pass of one batch / E (`--round-epochs`). The JSON
also gives the worst case (E = 1, reference paid every step). `--trl-precompute` adds TRL at its best setting
for this workload, `precompute_ref_log_probs=True`: its one reference pass is amortised the same way
(`speedup_vs_trl_precompute`).

The last line of output is JSON: speedup_vs_trl, max_loss_diff (over the timed steps; the first-step
losses are both log 2 by construction, since policy = reference at step 1), tok_s, s/step of each side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def _say(msg: str) -> None:
    print(f"[dpo_bench] {msg}", file=sys.stderr, flush=True)


PROMPT = "Explain in detail how a city water treatment plant turns river water into safe drinking water."
CHOSEN = (
    "Water treatment runs in stages. First, screens remove sticks and debris, then coagulants such as "
    "alum make fine particles clump into flocs that settle out in large basins. The clearer water flows "
    "through sand and gravel filters, sometimes activated carbon to remove taste and odour. Finally it is "
    "disinfected with chlorine or ultraviolet light, the pH is adjusted to protect pipes, and a small "
    "chlorine residual is kept so that the water stays safe all the way through the distribution network "
    "to every tap in the city, where it is tested again by the utility and by health inspectors."
)
REJECTED = (
    "I am not sure, but I think they just pour the river water into big tanks and wait for a while, and "
    "after that it is probably fine to drink because the dirt sinks to the bottom on its own. Some people "
    "say they add chemicals but I do not really know which ones or why, and honestly it does not matter "
    "much since bottled water is better anyway and everyone should buy it instead of drinking from the "
    "tap, which is what I always tell my friends and family whenever they ask me about this topic."
)


def _pairs(n: int) -> list:
    from superalign.records import Pair, user_chat

    return [Pair(user_chat(f"{PROMPT} ({i + 1})"), CHOSEN, REJECTED) for i in range(n)]


def _load(dtype: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from superalign.backends.embedded import embedded_model_dir

    d = embedded_model_dir()
    return AutoModelForCausalLM.from_pretrained(d, dtype=getattr(torch, dtype)), AutoTokenizer.from_pretrained(d)


def run_trl(args: argparse.Namespace, enc: list, cfg, precompute: bool = False) -> dict:
    """TRL DPOTrainer.train for warmup + steps steps on the batch; per-step wall times and losses.
    `precompute`: TRL's `precompute_ref_log_probs=True` (one reference pass over the dataset before training,
    timed apart as `reference_seconds`), its best setting for a fixed reference, like our cached one."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from superalign.learner.dpo import LORA_TARGETS

    model, tok = _load(args.dtype)
    times: list[float] = []
    losses: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            times.append(time.perf_counter() - self.t)
            _say(f"TRL step {len(times)}: {times[-1]:.2f} s, loss {losses[-1]:.5f}")

    class LossTap(DPOTrainer):
        def compute_loss(self, *a, **kw):
            loss = super().compute_loss(*a, **kw)
            losses.append(float(loss.detach()))
            return loss

    targs = DPOConfig(
        output_dir=args.out,
        per_device_train_batch_size=len(enc),
        max_steps=args.warmup + args.steps,
        learning_rate=cfg.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        beta=cfg.beta,
        loss_type=["sigmoid"],
        gradient_checkpointing=False,
        bf16=args.dtype == "bfloat16",
        use_cpu=True,
        max_length=None,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
        precompute_ref_log_probs=precompute,
    )
    peft = None
    if args.adapter == "lora":
        peft = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=0.0,
            target_modules=LORA_TARGETS,
            task_type="CAUSAL_LM",
        )
    placeholder = Dataset.from_dict({"prompt": ["hi"], "chosen": [" a"], "rejected": [" b"]})
    trainer = LossTap(
        model=model, args=targs, train_dataset=placeholder, processing_class=tok, peft_config=peft, callbacks=[Timer()]
    )
    # The same token ids as ours (TRL's own tokenisation of the text differs by the template's trailing newline).
    data = Dataset.from_list(
        [{"prompt_ids": c[:n], "chosen_ids": c[n:], "rejected_ids": r[n:]} for (c, n), (r, _) in enc]
    )
    reference_seconds = 0.0
    if precompute:  # what DPOTrainer.__init__ does to its train_dataset, on the real batch
        t0 = time.perf_counter()
        data = trainer._precompute_ref_logps(data, "train", len(enc))
        reference_seconds = time.perf_counter() - t0
        _say(f"TRL precompute_ref_log_probs: reference pass {reference_seconds:.2f} s")
    trainer.train_dataset = data
    trainer.train()
    return {"times": times, "losses": losses, "reference_seconds": reference_seconds}


def run_ours(args: argparse.Namespace, pairs: list, cfg) -> dict:
    """train_dpo on the batch for warmup + steps epochs (one step each); per-step wall times and losses."""
    from superalign.backends.hf import HFBackend
    from superalign.learner.dpo import train_dpo

    model, tok = _load(args.dtype)
    backend = HFBackend(model, tok, "bench")
    marks = [time.perf_counter()]

    def tick(step: int, total: int, loss: float) -> None:
        marks.append(time.perf_counter())
        _say(f"ours step {step}/{total}: {marks[-1] - marks[-2]:.2f} s, loss {loss:.5f}")

    _, stats = train_dpo(backend, pairs, cfg, seed=0, progress=tick)
    times = [b - a for a, b in zip(marks[1:], marks[2:])]  # step 1 also holds LoRA setup + reference pass
    return {"times": times, "losses": stats.losses, "reference_seconds": stats.reference_seconds}


def main(argv: list[str] | None = None) -> dict:
    import torch

    from superalign.config import TrainConfig
    from superalign.learner.dpo import encode_example

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="(the JSON line is always printed last)")
    ap.add_argument("--steps", type=int, default=5, help="timed optimiser steps per side")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    ap.add_argument("--adapter", choices=["lora", "full"], default="lora")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=128, help="tokens per sequence (prompt + response)")
    ap.add_argument("--micro-batch", type=int, default=4, help="our pairs per forward/backward")
    ap.add_argument(
        "--round-epochs",
        type=int,
        default=TrainConfig().epochs,
        help="epochs per round that share our one reference pass",
    )
    ap.add_argument("--trl-first", action="store_true", help="run TRL before ours (check for load drift)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument(
        "--no-share-prompt",
        action="store_true",
        help="ours without running each pair's prompt once (TrainConfig.share_prompt=False): the A/B",
    )
    ap.add_argument(
        "--trl-precompute",
        action="store_true",
        help="also run TRL with precompute_ref_log_probs=True (its reference pass amortised like ours)",
    )
    ap.add_argument("--out", default="/tmp/dpo_bench_trl", help="TRL output_dir (nothing is saved)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    lr = 5e-4 if args.adapter == "lora" else 1e-5
    cfg = TrainConfig(
        lr=lr,
        beta=0.1,
        batch_size=args.pairs,
        micro_batch=args.micro_batch,
        max_len=args.tokens,
        epochs=args.warmup + args.steps,
        nll_weight=0.0,
        adapter=args.adapter,
        share_prompt=not args.no_share_prompt,
    )
    pairs = _pairs(args.pairs)
    model, tok = _load(args.dtype)
    from superalign.backends.hf import HFBackend

    render = HFBackend(model, tok, "tok").render
    enc = [
        (
            encode_example(tok, render, p.prompt, p.chosen, args.tokens),
            encode_example(tok, render, p.prompt, p.rejected, args.tokens),
        )
        for p in pairs
    ]
    del model
    n_tokens = sum(len(c) + len(r) for (c, _), (r, _) in enc)

    torch.manual_seed(0)
    _say(
        f"{args.adapter} {args.dtype}: {len(pairs)} pairs, {n_tokens} tokens per step, "
        f"{torch.get_num_threads()} threads"
    )
    if args.trl_first:
        trl = run_trl(args, enc, cfg)
    ours = run_ours(args, pairs, cfg)
    _say(f"ours: reference pass {ours['reference_seconds']:.2f} s")
    if not args.trl_first:
        trl = run_trl(args, enc, cfg)
    trl_step = statistics.median(trl["times"][args.warmup :])
    our_train = statistics.median(ours["times"][max(args.warmup - 1, 0) :])  # ours["times"] starts at step 2
    ref_per_batch = ours["reference_seconds"]  # the bench round is one batch
    our_step = our_train + ref_per_batch / args.round_epochs
    our_worst = our_train + ref_per_batch
    k = min(len(trl["losses"]), len(ours["losses"]))
    diffs = [abs(a - b) for a, b in zip(trl["losses"][:k], ours["losses"][:k])]
    result = {
        "speedup_vs_trl": round(trl_step / our_step, 3),
        "speedup_vs_trl_ref_every_step": round(trl_step / our_worst, 3),
        "max_loss_diff": round(max(diffs), 6),
        "first_loss_diff": round(diffs[0], 6),
        "tok_s": round(n_tokens / our_step, 1),
        "trl_tok_s": round(n_tokens / trl_step, 1),
        "s_per_step_trl": round(trl_step, 3),
        "s_per_step_ours": round(our_step, 3),
        "s_per_step_ours_train_only": round(our_train, 3),
        "s_reference_pass_per_batch": round(ref_per_batch, 3),
        "losses_trl": [round(x, 5) for x in trl["losses"][:k]],
        "losses_ours": [round(x, 5) for x in ours["losses"][:k]],
        "settings": {
            "dtype": args.dtype,
            "adapter": args.adapter,
            "pairs": args.pairs,
            "tokens": args.tokens,
            "batch_tokens": n_tokens,
            "steps": args.steps,
            "warmup": args.warmup,
            "lr": lr,
            "lora_r": cfg.lora_r,
            "micro_batch": args.micro_batch,
            "round_epochs": args.round_epochs,
            "threads": torch.get_num_threads(),
            "trl_gradient_checkpointing": False,
            "trl_first": args.trl_first,
            "share_prompt": cfg.share_prompt,
        },
    }
    if args.trl_precompute:
        pre = run_trl(args, enc, cfg, precompute=True)
        pre_train = statistics.median(pre["times"][args.warmup :])
        pre_step = pre_train + pre["reference_seconds"] / args.round_epochs
        kp = min(len(pre["losses"]), len(ours["losses"]))
        result.update(
            speedup_vs_trl_precompute=round(pre_step / our_step, 3),
            s_per_step_trl_precompute=round(pre_step, 3),
            s_per_step_trl_precompute_train_only=round(pre_train, 3),
            s_reference_pass_trl_precompute=round(pre["reference_seconds"], 3),
            max_loss_diff_trl_precompute=round(
                max(abs(a - b) for a, b in zip(pre["losses"][:kp], ours["losses"][:kp])), 6
            ),
            losses_trl_precompute=[round(x, 5) for x in pre["losses"][:kp]],
        )
        result["settings"]["trl_precompute"] = True
    print(f"{'':28}{'TRL DPOTrainer':>16}{'ours':>10}")
    print(
        f"{'s/step (median)':28}{trl_step:>16.3f}{our_step:>10.3f}   (ours: train {our_train:.3f} + ref "
        f"{ref_per_batch:.3f}/{args.round_epochs})"
    )
    print(f"{'tokens/s':28}{n_tokens / trl_step:>16.1f}{n_tokens / our_step:>10.1f}")
    print(
        f"{'speedup':28}{'':>16}{result['speedup_vs_trl']:>9.2f}x   (ref every step: "
        f"{result['speedup_vs_trl_ref_every_step']:.2f}x)"
    )
    print(f"{'max |loss diff| over steps':28}{result['max_loss_diff']:>26.2e}")
    if args.trl_precompute:
        print(
            f"{'TRL precompute_ref_log_probs':28}{result['s_per_step_trl_precompute']:>16.3f}   (train "
            f"{result['s_per_step_trl_precompute_train_only']:.3f} + ref "
            f"{result['s_reference_pass_trl_precompute']:.3f}/{args.round_epochs}); ours "
            f"{result['speedup_vs_trl_precompute']:.2f}x"
        )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
