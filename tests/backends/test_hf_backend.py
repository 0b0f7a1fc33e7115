import pytest
import torch

from superalign.backends import Sampling
from superalign.records import user_chat

CHATS = [
    user_chat("How do I kill a Python process?"),
    user_chat("Name a red planet."),
    user_chat("Write one word about the sea, please, in a friendly tone."),
]


def test_greedy_matches_hf_generate(tiny):
    """Our KV-cache decode loop gives exactly HF `generate`'s greedy tokens (batched, left-padded)."""
    ours = tiny.generate(CHATS, Sampling(max_new_tokens=12))
    for chat, text in zip(CHATS, ours):
        enc = tiny.tokenizer(tiny.render(chat), return_tensors="pt", add_special_tokens=False)
        ref = tiny.model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tiny.tokenizer.pad_token_id)
        assert text == tiny.tokenizer.decode(ref[0, enc.input_ids.shape[1] :], skip_special_tokens=True).strip()


def test_sampling_is_seeded_and_topk_limited(tiny):
    p = Sampling(max_new_tokens=8, temperature=1.0, top_k=5, seed=3)
    assert tiny.generate(CHATS, p) == tiny.generate(CHATS, p)
    assert tiny.generate(CHATS, p) != tiny.generate(CHATS, Sampling(8, 1.0, 5, seed=4))
    logits = torch.randn(4, 100)
    picks = tiny._pick(logits, Sampling(temperature=1.0, top_k=3), [torch.Generator().manual_seed(i) for i in range(4)])
    top3 = logits.topk(3, dim=-1).indices
    assert all(int(p) in top3[i].tolist() for i, p in enumerate(picks))


def test_sampled_rows_do_not_depend_on_batch_or_shard(tiny):
    """Row seeds: the same call split in shards (seed_offset) or batched differently gives the same texts."""
    from dataclasses import replace

    chats = [user_chat(f"Tell me about topic number {i}.") for i in range(6)]
    p = Sampling(max_new_tokens=8, temperature=1.0, top_k=20, seed=11)
    whole = tiny.generate(chats, p)
    shards = tiny.generate(chats[:2], p) + tiny.generate(chats[2:], replace(p, seed_offset=2))
    assert shards == whole
    old_bs = tiny.batch_size
    try:
        tiny.batch_size = 1
        assert tiny.generate(chats, p) == whole
    finally:
        tiny.batch_size = old_bs


def test_prefill_is_continued(tiny):
    chat = user_chat("hi") + [{"role": "assistant", "content": "I can't"}]
    assert tiny.render(chat).endswith("<|im_start|>assistant\nI can't")


def test_logprobs_sum_and_shared_prefix_scoring_agree(tiny):
    pre = ["Question: What boils at 100 C?\nAnswer:", "Question: Which planet is red?\nAnswer:"]
    opts = [[" water", " iron", " salt", " ice cold"], [" Mars", " Venus", " Earth", " Jupiter"]]
    shared = tiny.score_options(pre, opts)
    for p, os, row in zip(pre, opts, shared):
        full = tiny.logprobs_text([p] * len(os), os)
        assert max(abs(a - b) for a, b in zip(full, row)) < 0.05
        assert all(x < 0 for x in row)
    # a longer continuation has a lower (more negative) log-prob than its own prefix
    a, b = tiny.logprobs_text(["x"] * 2, [" water", " water water water"])
    assert b < a


def test_finished_rows_leave_the_batch_without_changing_the_others(tiny):
    """Rows that stop early are dropped from the batch (and their KV cache); the rows that go on produce
    exactly the tokens they produce when nobody stops (seeded sampling: the random tiny model's greedy text
    is the same token for every row, so it cannot end rows at different steps)."""
    prompts = [tiny.encode(tiny.render(user_chat(f"Say something about item {i}."))) for i in range(6)]
    for params in (
        Sampling(max_new_tokens=14, temperature=1.0, top_k=20, seed=5),
        Sampling(max_new_tokens=14, temperature=0.7, top_k=50, seed=9),
    ):
        free = tiny.decode_batch(prompts, params)
        # a stop token that ends some rows early, at different steps, and never occurs in others
        firsts: dict[int, set[int]] = {}
        for r, toks in enumerate(free):
            for t in toks:
                firsts.setdefault(t, set()).add(r)
        stop = next(t for t, rows in sorted(firsts.items()) if 0 < len(rows) < len(free))
        old = tiny.stop_ids
        sizes: list[int] = []
        hook = tiny.model.register_forward_pre_hook(
            lambda m, a, kw, sizes=sizes: sizes.append(kw["input_ids"].shape[0]), with_kwargs=True
        )
        try:
            tiny.stop_ids = [stop]
            stopped = tiny.decode_batch(prompts, params)
        finally:
            tiny.stop_ids = old
            hook.remove()
        assert sizes[0] == len(prompts) and sizes[-1] < len(prompts)  # later steps ran on fewer rows
        expect = [toks[: toks.index(stop)] if stop in toks else toks for toks in free]
        assert stopped == expect
        assert any(len(s) < len(f) for s, f in zip(stopped, free)) and any(s == f for s, f in zip(stopped, free))


def test_prefix_shared_by_every_item_runs_once_and_scores_the_same(tiny):
    """A long common prefix (a judge rubric) is run once per call; the scores equal scoring each item
    alone (no shared part), with suffixes and options of different lengths in one batch."""
    from superalign.backends.hf import SHARED_PREFIX_MIN, shared_prefix_len

    rubric = "You are a careful judge. Read the request and the response, then answer with one letter. " * 3
    pre = [rubric + f"Request: {q}\nVerdict:" for q in ("Hi", "How do I bake bread at home?", "Tell me a joke")]
    opts = [[" A", " B", " C"], [" A", " B", " C"], [" A", " B", " C"]]
    ids = [tiny.encode(p) for p in pre]
    assert shared_prefix_len(ids) >= SHARED_PREFIX_MIN
    assert shared_prefix_len([[1, 2, 3], [1, 2, 3]]) == 2  # each keeps one token of its own
    together = tiny.score_options(pre, opts)
    alone = [tiny.score_options([p], [os])[0] for p, os in zip(pre, opts)]  # one item: nothing shared
    for a, b in zip(together, alone):
        assert a == pytest.approx(b, abs=1e-4)
    calls = []
    hook = tiny.model.register_forward_pre_hook(lambda m, a, kw: calls.append(kw["input_ids"].shape), with_kwargs=True)
    try:
        tiny.score_options(pre, opts)
    finally:
        hook.remove()
    assert calls[0][0] == 1 and calls[0][1] == shared_prefix_len(ids)  # the shared part, once
    assert all(c[1] < len(ids[0]) - SHARED_PREFIX_MIN for c in calls[1:])  # the rest never re-reads it


class _BaseModelTokenizer:
    """A base model's tokenizer: no chat template; a plain encode starts with BOS when `adds_bos`."""

    chat_template = None
    bos_token, bos_token_id = "<s>", 1

    def __init__(self, adds_bos: bool) -> None:
        self.adds_bos = adds_bos

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": ([1] if self.adds_bos and add_special_tokens else []) + [7] * len(text)}


@pytest.mark.parametrize("adds_bos", [True, False])
def test_a_base_model_without_chat_template_gets_role_lines_after_its_bos(adds_bos):
    from superalign.backends.hf import HFBackend

    backend = HFBackend.__new__(HFBackend)  # render reads the tokenizer only
    backend.tokenizer = _BaseModelTokenizer(adds_bos)
    text = backend.render([{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hel"}])
    assert text == ("<s>" if adds_bos else "") + "user: Hi?\nassistant:Hel"
