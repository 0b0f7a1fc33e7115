"""`train.engine: trl`: the round's DPO update run by TRL's `DPOTrainer`, so that one GPU or several (DDP, or
DeepSpeed ZeRO-1/2, from an `accelerate` config) train the learner with no distributed code of the project's own.
Sharded weights (FSDP, ZeRO-3) are refused: rank 0 would merge and save only its shard.

What is TRL's (trl==1.16.0) and transformers' here: the Trainer loop and its accelerate integration (device
placement, DDP / DeepSpeed, gradient accumulation, mixed precision), `precompute_ref_log_probs=True`
(one reference pass over the round's pairs before the first step, as the native engine does), the peft handling
of a LoRA model (its reference = TRL's frozen "ref" copy of the fresh adapter, i.e. the round's start weights),
gradient checkpointing, the preference collator and TRL's fused LM head (per-token log-probs without the
(batch, length, vocab) logits), AdamW with a constant learning rate and gradient clipping at 1.0.

What is ours, in a small subclass (`_trainer_class`), and why:
- `compute_loss` computes the project's objective from TRL's fused forward: the preference loss of
  learner/losses.py (`preference_loss`: sigmoid / cDPO, IPO, rDPO; equal to TRL's own on the same batch,
  tests/learner/test_trl_equality.py) weighted by each pair's `weight` (the critic's confidence; TRL 1.16 has no
  per-pair weights), + `nll_weight` x the chosen responses' per-token NLL (RPO; TRL 1.16 has no `rpo_alpha`), +
  `replay_weight` x the NLL of competence replay examples, appended as extra rows to the first micro-batch of
  each optimiser step (one forward per micro-batch, so DDP sees a plain forward / backward).
  `train.replay_loss: kl` (a KL to the reference on the replay examples) is not implemented here: it needs the
  full-vocabulary logits that the fused LM head never forms, and a second forward with the adapter off; the
  config refuses engine: trl with it.
- `_prepare_dataset` is skipped: the pairs arrive tokenised by the native engine's `encode_example` (the backend's
  chat template, the prompt's end kept within `max_len`), so both engines train on the same token ids.
- `compute_ref_log_probs` drops the pair weights from the batch before TRL's reference forward.

Differences from the native engine, by design: batches are TRL's random micro-batches (seeded) rather than
length-sorted ones; a pair's weight is normalised by the mean weight of the round's pairs (native: of its
optimiser batch; the same when a step holds all pairs or the weights are equal); each pair's prompt runs twice
(chosen and rejected rows; `share_prompt` is native-only); a pair whose prompt was cut differently for chosen
and rejected (a response near `max_len`) trains on the shorter cut for both. With N processes (accelerate),
`batch_size` stays the pairs per optimiser step over all of them: gradient accumulation = batch_size /
(micro_batch x N).

Run in the driver (`update_learner`), or, with `train.launcher` set (e.g. `accelerate launch --config_file
fsdp.yaml`), as that command over `python -m superalign.learner.trl_engine` (see `main`): the driver writes the
round's pairs to a work folder, the command trains on every process and rank 0 writes the merged checkpoint and
the stats; the driver waits and reads them (docs/scale.md).
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from superalign.config import TrainConfig
from superalign.learner.dpo import TrainStats, encode_example, finish_trainable, make_trainable
from superalign.records import Pair, ReplayExample


def engine_problem(cfg: TrainConfig) -> str | None:
    """Why `cfg` cannot train with the trl engine here, or None."""
    if importlib.util.find_spec("trl") is None or importlib.util.find_spec("datasets") is None:
        return "needs TRL: pip install 'superalign[trl]' (trl==1.16.0), or train.engine: native"
    return None


def _world_size() -> int:
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def _rows(enc: list) -> dict[str, list]:
    """TRL's pre-tokenised preference columns from encoded (chosen, rejected, weight) triples."""
    cols: dict[str, list] = {"prompt_ids": [], "chosen_ids": [], "rejected_ids": [], "weight": []}
    for (c, n), (r, m), w in enc:
        k = min(n, m)  # the shorter cut of the prompt is a suffix of the longer one (encode_example keeps the end)
        cols["prompt_ids"].append(c[n - k : n])
        cols["chosen_ids"].append(c[n:])
        cols["rejected_ids"].append(r[m:])
        cols["weight"].append(float(w))
    return cols


class _Objective:
    """The loss of one micro-batch (see the module docstring) and the bookkeeping behind TrainStats."""

    def __init__(self, cfg: TrainConfig, sft: list, pad: int, accumulation: int, mean_weight: float, seed: int):
        self.cfg, self.sft, self.pad, self.ga, self.w_mean = cfg, sft, pad, accumulation, mean_weight or 1e-6
        rng = random.Random(seed)  # the replay order of the native engine (same seed, same draws)
        self.sft_cycle = list(range(len(sft)))
        rng.shuffle(self.sft_cycle)
        self.n_sft = max(1, cfg.batch_size // 2) if sft else 0
        self.step, self.in_step, self.step_loss = 0, False, 0.0
        self.losses: list[float] = []
        self.wins = self.seen = 0
        self.epoch_accuracy: float | None = None

    def _with_replay(self, ids: Any, attn: Any, cmask: Any) -> tuple[Any, Any, Any, int]:
        """The micro-batch plus this step's replay examples as extra rows (right-padded to a common width)."""
        import torch

        pick = [self.sft[self.sft_cycle[(self.step * self.n_sft + j) % len(self.sft)]] for j in range(self.n_sft)]
        width = max(ids.shape[1], max(len(e) for e, _ in pick))
        pad = lambda t, v: torch.nn.functional.pad(t, (0, width - t.shape[1]), value=v)  # noqa: E731
        extra_ids = torch.tensor([e + [self.pad] * (width - len(e)) for e, _ in pick], device=ids.device)
        extra_attn = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e, _ in pick], device=ids.device)
        extra_c = torch.tensor(
            [[0] * n + [1] * (len(e) - n) + [0] * (width - len(e)) for e, n in pick], device=ids.device
        )
        return (
            torch.cat([pad(ids, self.pad), extra_ids]),
            torch.cat([pad(attn, 0), extra_attn.to(attn.dtype)]),
            torch.cat([pad(cmask, 0), extra_c.to(cmask.dtype)]),
            len(pick),
        )

    def __call__(self, model: Any, inputs: dict[str, Any]) -> Any:
        from superalign.learner.losses import preference_loss, response_nll

        cfg = self.cfg
        first = not self.in_step
        self.in_step = True
        ids, attn, cmask = inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"]
        k = ids.shape[0] // 2  # rows: k chosen, then k rejected
        n_replay = 0
        if first and self.n_sft and model.training:
            ids, attn, cmask, n_replay = self._with_replay(ids, attn, cmask)
        labels = ids.masked_fill(cmask == 0, -100)
        out = model(input_ids=ids, attention_mask=attn, labels=labels, use_cache=False, fused_lm_head=True)
        logps = out.log_probs.sum(dim=1)  # zero at masked positions: the sum over completion tokens
        n_tok = cmask[:, 1:].sum(dim=1)
        pi_c, pi_r = logps[:k], logps[k : 2 * k]
        ref_c = inputs["ref_chosen_logps"].to(logps.device, logps.dtype)
        ref_r = inputs["ref_rejected_logps"].to(logps.device, logps.dtype)
        w = inputs["pair_weight"].to(logps.device, logps.dtype)
        losses = preference_loss(
            cfg.loss_type, pi_c, pi_r, ref_c, ref_r, n_tok[:k], n_tok[k : 2 * k], cfg.beta, cfg.label_smoothing
        )
        pref = (w * losses).sum() / (k * self.w_mean)
        loss = pref
        if cfg.nll_weight > 0:
            loss = loss + cfg.nll_weight * response_nll(pi_c, n_tok[:k]).mean()
        if n_replay:  # once per optimiser step: x accumulation, which the Trainer divides every micro-batch by
            loss = loss + cfg.replay_weight * response_nll(logps[2 * k :], n_tok[2 * k :]).mean() * self.ga
        self.step_loss += float(pref.detach()) / self.ga
        margins = (pi_c.detach() - ref_c) - (pi_r.detach() - ref_r)
        self.wins += int((margins > 0).sum())
        self.seen += k
        return loss

    def end_step(self) -> float:
        self.losses.append(round(self.step_loss, 5))
        self.step += 1
        self.in_step, self.step_loss = False, 0.0
        return self.losses[-1]

    def end_epoch(self) -> None:
        if self.seen:
            self.epoch_accuracy = self.wins / self.seen
        self.wins = self.seen = 0


def _trainer_class() -> type:
    from trl import DPOTrainer

    class SuperalignDPOTrainer(DPOTrainer):
        """DPOTrainer with the project's objective (see the module docstring)."""

        objective: _Objective

        def __init__(self, *args: Any, objective: _Objective, **kwargs: Any):
            self.objective = objective
            super().__init__(*args, **kwargs)

        def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
            return dataset  # already tokenised by encode_example: the native engine's token ids

        def compute_ref_log_probs(self, model: Any, inputs: dict[str, Any]) -> Any:
            return super().compute_ref_log_probs(model, {k: v for k, v in inputs.items() if k != "pair_weight"})

        def compute_loss(
            self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            return self.objective(model, inputs)

    return SuperalignDPOTrainer


class _Collator:
    """TRL's preference collator plus each pair's weight."""

    def __init__(self, pad: int):
        from trl.trainer.dpo_trainer import DataCollatorForPreference

        self.inner = DataCollatorForPreference(pad_token_id=pad)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        out = self.inner(examples)
        out["pair_weight"] = torch.tensor([float(e["weight"]) for e in examples], dtype=torch.float32)
        return out


def _callback(objective: _Objective, progress: Callable[[int, int, float], None] | None) -> Any:
    from transformers import TrainerCallback

    class Bookkeeping(TrainerCallback):
        def on_epoch_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            objective.wins = objective.seen = 0

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            objective.end_epoch()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            loss = objective.end_step()
            if progress:
                progress(state.global_step, state.max_steps, loss)

    return Bookkeeping()


def train_dpo_trl(
    backend: Any,
    pairs: Sequence[Pair],
    cfg: TrainConfig,
    seed: int = 0,
    replay: Sequence[ReplayExample] = (),
    progress: Callable[[int, int, float], None] | None = None,
    work_dir: str | Path | None = None,
) -> tuple[Any, TrainStats]:
    """`train_dpo`'s contract with TRL's DPOTrainer: trains `backend.model` (LoRA: merged afterwards) on the pairs
    and replay examples, leaves the trained model on `backend`, returns (model, stats) with per-step preference
    losses (without the NLL terms, as the native engine reports them). `replay_loss: kl` is native-only
    (TrainConfig refuses it with engine: trl; a config that skipped validation is refused here)."""
    if cfg.replay_loss != "nll":
        raise ValueError("replay_loss: kl runs in the native engine only: set engine: native or replay_loss: nll")
    import tempfile
    import time

    import torch
    from datasets import Dataset
    from trl import DPOConfig

    t0 = time.time()
    tok, pad = backend.tokenizer, backend.tokenizer.pad_token_id
    enc = [
        (
            encode_example(tok, backend.render, p.prompt, p.chosen, cfg.max_len),
            encode_example(tok, backend.render, p.prompt, p.rejected, cfg.max_len),
            p.weight,
        )
        for p in pairs
    ]
    sft = [encode_example(tok, backend.render, c, a, cfg.max_len) for c, a in replay]
    stats = TrainStats()
    if not enc:
        backend.last_adapter = None  # nothing trained: no delta
        return backend.model, stats
    torch.manual_seed(seed)  # the LoRA initialisation of the native engine (same seed, same A matrices)
    model = make_trainable(backend.model, cfg)
    micro = min(cfg.micro_batch, cfg.batch_size)
    accumulation = max(1, cfg.batch_size // (micro * _world_size()))
    cols = _rows(enc)
    objective = _Objective(cfg, sft, pad, accumulation, sum(cols["weight"]) / len(cols["weight"]), seed)
    weights_dtype = next(model.parameters()).dtype
    on_cpu = next(model.parameters()).device.type == "cpu"
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        args = DPOConfig(
            output_dir=tmp,
            per_device_train_batch_size=micro,
            gradient_accumulation_steps=accumulation,
            num_train_epochs=cfg.epochs,
            max_steps=cfg.max_steps or -1,
            learning_rate=cfg.lr,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            max_grad_norm=1.0,
            optim="adamw_torch",
            beta=cfg.beta,
            precompute_ref_log_probs=True,
            precompute_ref_batch_size=cfg.batch_size,
            max_length=None,
            gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
            bf16=weights_dtype == torch.bfloat16,
            fp16=False,
            use_cpu=on_cpu,
            seed=seed,
            data_seed=seed,
            report_to="none",
            logging_strategy="no",
            save_strategy="no",
            disable_tqdm=True,
            remove_unused_columns=False,
            dataloader_num_workers=0,
        )
        with _quiet():  # the progress lines are the loop's own; TRL's bars and the Trainer's printed dicts are noise
            trainer = _trainer_class()(
                model=model,
                args=args,
                train_dataset=Dataset.from_dict(cols),
                processing_class=tok,
                data_collator=_Collator(pad),
                callbacks=[_callback(objective, progress)],
                objective=objective,
            )
            from transformers.trainer_callback import PrinterCallback

            trainer.remove_callback(PrinterCallback)
            _refuse_sharded(trainer)
            t_ref = time.time() - t0
            trainer.train()
        model = trainer.model
    stats.steps = len(objective.losses)
    stats.losses = objective.losses
    stats.reward_accuracy = objective.epoch_accuracy or 0.0
    stats.reference_seconds = round(t_ref, 3)  # TRL's precompute runs in the trainer's constructor
    model = _untangle(model)
    model = finish_trainable(backend, model)
    stats.seconds = round(time.time() - t0, 2)
    return model, stats


def _refuse_sharded(trainer: Any) -> None:
    """FSDP and DeepSpeed ZeRO-3 shard the weights across processes; the merge-and-save of rank 0 here does not
    gather them, so such a launch stops before training instead of writing a partial checkpoint."""
    from superalign.errors import UserError

    plugin = getattr(getattr(trainer.accelerator, "state", None), "deepspeed_plugin", None)
    if getattr(trainer, "is_fsdp_enabled", False) or getattr(plugin, "zero_stage", 0) == 3:
        raise UserError(
            "train.engine: trl under FSDP or DeepSpeed ZeRO-3 is not supported (the weights are "
            "sharded and the round's checkpoint is merged and saved on rank 0): use an accelerate "
            "config with DDP (multi-GPU) or DeepSpeed ZeRO-1/2"
        )


class _quiet:
    """No datasets / tqdm progress bars inside the block (TRL's reference precompute reads TQDM_DISABLE)."""

    def __enter__(self) -> None:
        import datasets

        self.bars = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()
        self.tqdm = os.environ.get("TQDM_DISABLE")
        os.environ["TQDM_DISABLE"] = "1"

    def __exit__(self, *exc: Any) -> None:
        import datasets

        if self.bars:
            datasets.enable_progress_bars()
        if self.tqdm is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = self.tqdm


def _untangle(model: Any) -> Any:
    """Undo what TRL attached for training: its frozen "ref" adapter and the fused-LM-head forward patch
    (generation would skip it anyway; a clean model saves and loads like any other)."""
    if hasattr(model, "peft_config") and "ref" in model.peft_config:
        model.delete_adapter("ref")
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    vars(base).pop("forward", None)
    if getattr(base.config, "use_cache", None) is False:
        base.config.use_cache = True
    return model


# ---- `train.launcher`: the round's training as its own command (accelerate launch ...) ----------------------------


def write_job(
    work: Path,
    base_model: str | Path,
    pairs: Sequence[Pair],
    replay: Sequence[ReplayExample],
    cfg: TrainConfig,
    seed: int,
    dtype: str,
    checkpoint: Path,
    adapter_from: int | None = None,
) -> Path:
    """The inputs of one launched training, as files in `work` (what `main` reads). `adapter_from`: also save the
    round's LoRA delta (learner/checkpoint.py `save_checkpoint`)."""
    work.mkdir(parents=True, exist_ok=True)
    job = {
        "base_model": str(base_model),
        "train": cfg.model_dump(mode="json"),
        "seed": seed,
        "dtype": dtype,
        "checkpoint": str(checkpoint),
        "stats": str(work / "stats.json"),
        "adapter_from": adapter_from,
        "pairs": [p.to_dict() for p in pairs],
        "replay": [[c if isinstance(c, str) else list(c), a] for c, a in replay],
    }
    path = work / "job.json"
    path.write_text(json.dumps(job), encoding="utf-8")
    return path


def launch(launcher: str, job: Path, log: Callable[[str], None]) -> TrainStats:
    """Run `<launcher> -m superalign.learner.trl_engine JOB` (e.g. `accelerate launch --config_file fsdp.yaml`),
    wait for it, and read the stats rank 0 wrote; a failed command is a UserError with its last lines."""
    import shlex
    import subprocess
    import sys

    from superalign.errors import UserError

    words = shlex.split(launcher)
    if words and words[0] in ("python", "python3"):
        words[0] = sys.executable
    cmd = words + ["-m", "superalign.learner.trl_engine", str(job)]
    log(f"training with: {' '.join(cmd)}")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])
        ),
    }
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-12:])
        raise UserError(f"train.launcher command failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    spec = json.loads(job.read_text(encoding="utf-8"))
    data = json.loads(Path(spec["stats"]).read_text(encoding="utf-8"))
    return TrainStats(
        steps=data["steps"],
        losses=data["losses"],
        reward_accuracy=data["reward_accuracy"],
        seconds=data["seconds"],
        reference_seconds=data["reference_seconds"],
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m superalign.learner.trl_engine JOB.json` (under `accelerate launch` on N processes): train the
    job's pairs from its base model; rank 0 writes the merged checkpoint (atomically) and the stats."""
    import sys

    from superalign.backends import load_backend, require_trainable
    from superalign.learner.checkpoint import save_checkpoint

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m superalign.learner.trl_engine JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    cfg = TrainConfig.model_validate(job["train"])
    pairs = [Pair.from_dict(p) for p in job["pairs"]]
    replay = [(c, a) for c, a in job["replay"]]
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = "cpu"
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device = "cuda"
    backend = require_trainable(
        load_backend(job["base_model"], dtype=job["dtype"], device=device),
        f"{job['base_model']}: train.launcher trains a local model; give embedded, tiny or an HF model dir",
    )
    _, stats = train_dpo_trl(backend, pairs, cfg, seed=int(job["seed"]), replay=replay)
    if rank == 0:
        save_checkpoint(backend, job["checkpoint"], adapter_from=job.get("adapter_from"))
        Path(job["stats"]).write_text(
            json.dumps(
                {
                    "steps": stats.steps,
                    "losses": stats.losses,
                    "reward_accuracy": stats.reward_accuracy,
                    "seconds": stats.seconds,
                    "reference_seconds": stats.reference_seconds,
                    "processes": _world_size(),
                }
            ),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
