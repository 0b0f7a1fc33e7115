"""train.replay_loss: kl — competence replay as a per-token KL(reference || policy) over the vocabulary, the
reference being the same LoRA model with its adapter switched off (learner/dpo.py `replay_kl`)."""

import copy

import pytest
import torch

from superalign.config import TrainConfig
from superalign.data.competence import MCItem, mc_options, mc_prompt
from superalign.learner.dpo import encode_example, make_trainable, replay_kl, train_dpo
from superalign.records import user_chat

REPLAY = [
    (user_chat("Which is a mammal? Options: A) shark B) whale C) trout D) squid"), "B"),
    (user_chat("What is 2 + 3? Options: A) 4 B) 6 C) 5 D) 7"), "C"),
    (user_chat("Opposite of hot? Options: A) cold B) warm"), "A"),
    (user_chat("Which planet is closest to the Sun? Options: A) Venus B) Earth C) Mars D) Mercury"), "D"),
]


def _encoded(backend, max_len=96):
    return [encode_example(backend.tokenizer, backend.render, c, a, max_len) for c, a in REPLAY]


def _hand_kl(ref_logits, pol_logits):
    """Mean over positions of sum_v p_ref (log p_ref - log p_pol), two ways that must agree."""
    ref = torch.log_softmax(ref_logits.float(), dim=-1)
    pol = torch.log_softmax(pol_logits.float(), dim=-1)
    explicit = (ref.exp() * (ref - pol)).sum(-1).mean()
    by_torch = torch.nn.functional.kl_div(pol, ref, log_target=True, reduction="none").sum(-1).mean()
    assert float(explicit) == pytest.approx(float(by_torch), rel=1e-4, abs=1e-7)
    return float(explicit)


def _lora(backend):
    torch.manual_seed(0)
    return make_trainable(copy.deepcopy(backend.model), TrainConfig())


def test_kl_is_zero_at_step_0_and_its_gradient_is_zero_but_defined(tiny):
    """A fresh adapter has B = 0: policy and reference are the same function, the KL is exactly 0 and every LoRA
    parameter gets a gradient (A: exactly 0 through B = 0; B: 0 up to the rounding of sum(p_ref) = 1)."""
    model = _lora(tiny)
    kl = replay_kl(model, _encoded(tiny), tiny.tokenizer.pad_token_id)
    assert kl.shape == (len(REPLAY),)
    assert torch.equal(kl, torch.zeros_like(kl))
    kl.mean().backward()
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert lora and all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in lora.values())
    assert max(float(p.grad.abs().max()) for n, p in lora.items() if "lora_A" in n) == 0.0
    assert max(float(p.grad.abs().max()) for p in lora.values()) < 1e-6
    assert all(p.requires_grad for p in lora.values())  # the adapter is trainable again after the reference pass


def test_kl_equals_a_hand_computation_on_a_padded_batch(tiny):
    """Examples of different lengths in one right-padded batch: each one's value is the mean over its L - 1
    next-token positions (prompt and answer) of KL(reference || policy), as computed from full logits of the
    example alone, adapter off (reference) and on (policy)."""
    model = _lora(tiny)
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    enc = _encoded(tiny)
    assert len({len(ids) for ids, _ in enc}) > 1  # the batch is padded
    with torch.no_grad():
        got = replay_kl(model, enc, tiny.tokenizer.pad_token_id)
        want = []
        for ids, _ in enc:
            x = torch.tensor([ids])
            pol = model(input_ids=x).logits[0, :-1]
            with model.disable_adapter():
                ref = model(input_ids=x).logits[0, :-1]
            want.append(_hand_kl(ref, pol))
    assert min(want) > 1e-4  # the adapter moved the policy: a real test of the formula
    assert got.tolist() == pytest.approx(want, rel=1e-4, abs=1e-6)


def _kl_to(base_model, trained_model, enc):
    """Mean over the replay examples of their per-token KL(base || trained), from two separate models."""
    vals = []
    with torch.no_grad():
        for ids, _ in enc:
            x = torch.tensor([ids])
            vals.append(_hand_kl(base_model(input_ids=x).logits[0, :-1], trained_model(input_ids=x).logits[0, :-1]))
    return sum(vals) / len(vals)


def test_kl_replay_anchors_the_policy_on_the_replay_examples(fresh_tiny, refusal_pairs):
    """Same pairs, seed and steps: with replay_loss kl at replay_weight 10 the trained model ends closer (KL on the
    replay examples) to the start weights than with replay_weight 0, while the preference loss still falls.

    Measured here (6 steps): KL 0.0177 at weight 0, 0.0157 at 1, 0.0040 at 10, 0.0005 at 100. The penalty is
    second order in the distance from the reference (its gradient is 0 at step 0), so it needs a larger weight
    than the replay NLL to bite in a short round."""
    base = copy.deepcopy(fresh_tiny.model)
    enc = _encoded(fresh_tiny)
    cfg = TrainConfig(epochs=3, batch_size=4, lr=2e-3, nll_weight=0.5, replay_loss="kl", replay_weight=0.0)
    _, free_stats = train_dpo(fresh_tiny, refusal_pairs(), cfg, seed=0, replay=REPLAY)
    free = _kl_to(base, fresh_tiny.model, enc)
    fresh_tiny.model = copy.deepcopy(base)
    anchored_cfg = cfg.model_copy(update={"replay_weight": 10.0})
    _, stats = train_dpo(fresh_tiny, refusal_pairs(), anchored_cfg, seed=0, replay=REPLAY)
    anchored = _kl_to(base, fresh_tiny.model, enc)
    assert stats.steps == free_stats.steps == 6
    assert stats.last_loss < stats.first_loss
    assert free > 1e-3 and anchored < 0.5 * free, (anchored, free)


def test_the_default_replay_loss_is_nll_and_trains_as_before(fresh_tiny, refusal_pairs):
    """replay_loss defaults to nll; naming it changes nothing (same step losses, same weights)."""
    assert TrainConfig().replay_loss == "nll"
    base = copy.deepcopy(fresh_tiny.model)
    cfg = TrainConfig(epochs=1, batch_size=4, lr=1e-3, replay_weight=0.5)
    _, default = train_dpo(fresh_tiny, refusal_pairs(), cfg, seed=0, replay=REPLAY)
    w_default = copy.deepcopy(fresh_tiny.model.state_dict())
    fresh_tiny.model = copy.deepcopy(base)
    _, named = train_dpo(
        fresh_tiny, refusal_pairs(), cfg.model_copy(update={"replay_loss": "nll"}), seed=0, replay=REPLAY
    )
    assert named.losses == default.losses
    assert all(torch.equal(w_default[k], v) for k, v in fresh_tiny.model.state_dict().items())
    fresh_tiny.model = copy.deepcopy(base)
    _, kl = train_dpo(fresh_tiny, refusal_pairs(), cfg.model_copy(update={"replay_loss": "kl"}), seed=0, replay=REPLAY)
    assert kl.losses[0] == default.losses[0] and kl.losses != default.losses  # the replay term is what differs


def test_full_fine_tuning_model_is_refused_at_run_time(tiny):
    """A config that skipped validation (model_copy) still cannot use kl without an adapter."""
    with pytest.raises(ValueError, match="needs a LoRA"):
        replay_kl(tiny.model, _encoded(tiny), tiny.tokenizer.pad_token_id)


def test_add_lora_places_adapters_on_the_blocks_and_modules_asked_for(tiny):
    from superalign.learner.dpo import add_lora

    def adapted(model):
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        return {int(n.split(".layers.")[1].split(".")[0]) for n in names}, {n.split(".")[-4] for n in names}

    blocks, modules = adapted(add_lora(copy.deepcopy(tiny.model), TrainConfig()))
    assert blocks == {0, 1} and {"q_proj", "up_proj"} <= modules
    blocks, modules = adapted(add_lora(copy.deepcopy(tiny.model), TrainConfig(), targets=["q_proj"], layers=[1]))
    assert (blocks, modules) == ({1}, {"q_proj"})


MC_ITEMS = [
    ("Which is a mammal?", ["shark", "whale", "trout", "squid"], 1),
    ("What is 2 + 3?", ["4", "6", "5", "7"], 2),
    ("Opposite of hot?", ["cold", "warm"], 0),
    ("Which planet is closest to the Sun?", ["Venus", "Earth", "Mars", "Mercury"], 3),
]
MC_CHAT = [(user_chat(f"{q}\nOptions: " + "; ".join(o)), o[a]) for q, o, a in MC_ITEMS]
MC_RAW = [  # the text the competence metric scores (data/competence.py)
    (mc_prompt(it), mc_options(it)[it.answer])
    for it in (MCItem(f"t{i}", "sciq", q, tuple(o), a) for i, (q, o, a) in enumerate(MC_ITEMS))
]


def test_a_raw_text_replay_example_is_encoded_without_the_chat_template(tiny):
    tok = tiny.tokenizer
    ids, n_prompt = encode_example(tok, tiny.render, "Question: Opposite of hot?\nAnswer:", " cold", 96)
    want_p = tok("Question: Opposite of hot?\nAnswer:", add_special_tokens=False)["input_ids"]
    assert ids == want_p + tok(" cold", add_special_tokens=False)["input_ids"] and n_prompt == len(want_p)
    chat_ids, _ = encode_example(tok, tiny.render, user_chat("Opposite of hot?"), "cold", 96)
    assert chat_ids != ids and len(chat_ids) > len(ids)  # the chat form carries the template and an end token


def test_an_mc_anchor_keeps_the_scored_text_closer_than_a_chat_anchor(fresh_tiny, refusal_pairs):
    """Same pairs, seed, steps and KL weight; the anchor written in the chat template (replay_format chat) or as the
    raw "Question: ...\\nAnswer: ..." text the competence metric scores (mc). Read on the raw text of the same items,
    the mc anchor leaves the trained model closer to the start than the chat one does (measured: KL 0.0008 against
    0.0028)."""
    base = copy.deepcopy(fresh_tiny.model)
    raw_enc = [encode_example(fresh_tiny.tokenizer, fresh_tiny.render, c, a, 96) for c, a in MC_RAW]
    cfg = TrainConfig(epochs=3, batch_size=4, lr=2e-3, nll_weight=0.5, replay_loss="kl", replay_weight=10.0)
    train_dpo(fresh_tiny, refusal_pairs(), cfg, seed=0, replay=MC_CHAT)
    chat_anchor = _kl_to(base, fresh_tiny.model, raw_enc)
    fresh_tiny.model = copy.deepcopy(base)
    _, stats = train_dpo(fresh_tiny, refusal_pairs(), cfg, seed=0, replay=MC_RAW)
    mc_anchor = _kl_to(base, fresh_tiny.model, raw_enc)
    assert stats.last_loss < stats.first_loss
    assert chat_anchor > 1e-3 and mc_anchor < 0.5 * chat_anchor, (mc_anchor, chat_anchor)
