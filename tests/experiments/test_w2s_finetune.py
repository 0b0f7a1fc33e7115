"""The fine-tuned weak-to-strong student (experiments/w2s/finetune.py) on the tiny 2-layer model."""

import numpy as np
import pytest
import torch

from superalign.backends.embedded import tiny_model_dir
from superalign.critic.learned import PairFeatures
from superalign.experiments.w2s.finetune import FinetuneConfig, _batch, encode_bottom, predict_student, train_student

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny-model training: one thread (conftest)

PROMPTS = ["Is it good?", "Tell me more", "Why?"]
RESPONSES = ["A fine film.", "No, this is a much longer reply about a great many things", "Because."]


def test_frozen_bottom_plus_top_equals_the_full_model_on_padded_batches():
    from transformers import AutoModel, AutoTokenizer

    d = str(tiny_model_dir())
    bottom = encode_bottom(PROMPTS, RESPONSES, blocks=1, model_dir=d, bf16=False, batch_size=2)
    full = AutoModel.from_pretrained(d, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(d)
    x, lens, w = _batch(bottom, [0, 1, 2])
    assert torch.allclose(w.sum(1), torch.ones(3))  # response weights: a mean over the response tokens
    with torch.inference_mode():
        got = bottom.top(inputs_embeds=x, use_cache=False).last_hidden_state
        for row, (p, r) in enumerate(zip(PROMPTS, RESPONSES)):
            ids, start = PairFeatures(model_dir=d).token_ids(tok, p, r)
            ref = full(input_ids=torch.tensor([ids]), use_cache=False).last_hidden_state[0]
            assert int(lens[row]) == len(ids) and bottom.starts[row] == start
            torch.testing.assert_close(got[row, : len(ids)], ref, atol=1e-5, rtol=1e-4)  # padding never leaks


def _signal(n, seed):
    rng = np.random.default_rng(seed)
    noise = ["apple", "river", "stone", "cloud", "music", "paper", "green", "quiet"]
    y = rng.integers(0, 2, n)
    responses = [("wonderful " if v else "terrible ") + " ".join(rng.choice(noise, 5)) for v in y]
    return ["Is this review positive?"] * n, responses, y


def test_student_learns_the_signal_and_leaves_the_pristine_blocks_untouched():
    prompts, responses, y = _signal(120, 0)
    bottom = encode_bottom(prompts, responses, blocks=1, model_dir=str(tiny_model_dir()))
    before = {k: v.clone() for k, v in bottom.top.state_dict().items()}
    cfg = FinetuneConfig(blocks=1, epochs=8, lr=1e-3, head_lr=3e-2)
    train, test = list(range(80)), list(range(80, 120))
    s1 = train_student(bottom, train, y[train].astype(np.float32), cfg, seed=3)
    assert s1.losses[-1] < 0.5 * s1.losses[0], s1.losses
    acc = float(((predict_student(s1, bottom, test) >= 0.5) == (y[test] == 1)).mean())
    assert acc >= 0.9, acc
    assert all(torch.equal(before[k], v) for k, v in bottom.top.state_dict().items())  # each student trains a copy
    assert any(not torch.equal(before[k], v) for k, v in s1.top.state_dict().items())  # ... and the blocks did move
    s2 = train_student(bottom, train, y[train].astype(np.float32), cfg, seed=3)
    np.testing.assert_array_equal(predict_student(s1, bottom, test), predict_student(s2, bottom, test))  # same seed
