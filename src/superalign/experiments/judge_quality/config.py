"""The judge-quality experiment's settings and presets (pilot, quick, full)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RANKERS = ("oracle", "oracle-flip", "self-consistency", "mean-logprob", "self-judge", "gemma-judge", "random")


class JudgeQualityConfig(BaseModel):
    """One preset. Every preset measures the gates on the dev items first and stops if one fails."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: Literal["pilot", "train"] = Field(
        "train", description="pilot: the dev gates only | train: the gates, then one LoRA SFT arm per ranker."
    )
    dev_items: int = Field(100, ge=10, description="Items the gates are measured on (first block of the shuffle).")
    test_items: int = Field(100, ge=10, description="Held-out items, the next block: accuracy before / after SFT.")
    train_items: int = Field(64, ge=10, description="Training items, the next block: sampled, ranked, trained on.")
    samples: int = Field(4, ge=2, description="Sampled answers per item (the rankers choose among them).")
    max_new_tokens: int = Field(16, ge=1, description="Tokens per answer (greedy and sampled).")
    temperature: float = Field(0.8, gt=0, description="Sampling temperature of the k answers.")
    top_k: int = Field(50, ge=1, description="Top-k before sampling.")
    rankers: tuple[str, ...] = Field(RANKERS, description=f"Rankers to run, from {', '.join(RANKERS)}.")
    flips: tuple[float, ...] = Field(
        (0.1, 0.3), description="Flip rates of the oracle-flip rankers (one arm each): P(ranking reversed on an item)."
    )
    seeds: int = Field(1, ge=1, description="Seeds of the rankers' draws, tie-breaks and the SFT order (data fixed).")
    first_seed: int = Field(
        0,
        ge=0,
        description=(
            "The first of the `seeds` seeds (first_seed, first_seed + 1, …): a later seed of an arm can run on its "
            "own, with the same data, and be read beside the earlier run's."
        ),
    )
    lr: float = Field(2e-4, gt=0, description="LoRA learning rate.")
    epochs: int = Field(2, ge=1, description="Passes over the training answers.")
    batch_size: int = Field(8, ge=1, description="Answers per optimiser step.")
    micro_batch: int = Field(4, ge=1, description="Answers per forward/backward.")
    lora_r: int = Field(16, ge=1, description="LoRA rank (all linear layers).")
    max_len: int = Field(448, ge=64, description="Max tokens of prompt + answer in training.")
    diversity_items: int = Field(
        32, ge=0, description="Test items on which each model samples `samples` answers to measure diversity."
    )
    greedy_min: float = Field(0.2, ge=0, le=1, description="Gate 1: greedy dev accuracy must be >= this ...")
    greedy_max: float = Field(0.8, ge=0, le=1, description="... and <= this (room to improve, room to fail).")
    min_best_of_k_gain: float = Field(
        0.10, ge=0, description="Gate 2: best-of-k minus single-sample dev accuracy must be >= this."
    )
    train_on: Literal["all", "some-right"] = Field(
        "all",
        description=(
            "Training items of every arm: `all`, or `some-right` (only items where at least one of the k answers is "
            "right, the same items for every arm). With `all`, items whose k answers are all wrong give every arm, "
            "the oracle's included, a wrong answer to learn: most of the training set at this size, which buries "
            "the ranker's effect under the cost of the SFT step (docs/experiments.md, judge-quality)."
        ),
    )
    gen_batch: int = Field(16, ge=1, description="Rows per forward pass (generation and scoring).")
    bootstrap: int = Field(2000, ge=100, description="Bootstrap resamples of items for every CI.")


PRESETS = {
    "pilot": JudgeQualityConfig(stage="pilot"),
    # 48 training and 80 test items and one flip rate (30 %): the defaults (64, 100, 10 % and 30 %) took 20.2 min
    # on 2 cores, over the quick budget of 15 (7 arms of ~2.3 min, ~1.6 of it LoRA training)
    "quick": JudgeQualityConfig(train_items=48, test_items=80, flips=(0.3,)),
    "full": JudgeQualityConfig(test_items=300, train_items=400, seeds=2, diversity_items=100),
}


def preset_name(cfg: JudgeQualityConfig) -> str:
    """The preset `cfg` equals, else "custom"."""
    return next((name for name, p in PRESETS.items() if p == cfg), "custom")
