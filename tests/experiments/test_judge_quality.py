"""judge-quality: disjoint item blocks, answer matching, rankers of known error rate, the same generations for
every ranker, shared-prefill sampling, the gates, and a short end-to-end run on the tiny random model."""

from __future__ import annotations

import json
import random

import pytest

import superalign.experiments.judge_quality.run as rn
from superalign.data.passages import PassageItem
from superalign.experiments.judge_quality import answers as an, rankers as rk
from superalign.experiments.judge_quality.config import JudgeQualityConfig


def item(i: int, answer: str = "mitochondria") -> PassageItem:
    return PassageItem(f"x-{i}", f"What is question {i}?", answer, "ribosome", f"Passage {i} about {answer}.")


def groups(n: int, k: int = 4, seed: int = 0) -> list[rk.Group]:
    """n decidable groups: each has 1..k-1 right answers among k."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        right = rng.randint(1, k - 1)
        correct = tuple(j < right for j in range(k))
        answers = tuple(("mitochondria" if c else f"wrong {j}") for j, c in enumerate(correct))
        out.append(rk.Group(item(i), answers, correct))
    return out


def test_blocks_are_disjoint_and_overlap_is_caught():
    split = an.split_items(100, 100, 300)
    assert rn.check_disjoint(split) == {"dev": 100, "test": 100, "train": 300}
    ids = [it.id for it in split.dev + split.test + split.train]
    assert len(set(ids)) == 500
    assert an.split_items(100, 100, 50).train == split.train[:50]  # a smaller train block is a prefix
    with pytest.raises(ValueError, match="dev and train"):
        rn.check_disjoint(an.Split(split.dev, split.test, split.train + split.dev[:1]))
    with pytest.raises(ValueError, match="887"):
        an.split_items(500, 300, 100)


def test_answer_matching_is_a_normalised_whole_phrase():
    assert an.contains_answer("It is the Mitochondria.", "mitochondria")
    assert an.contains_answer("the nucleus, an organelle", "Nucleus")
    assert not an.contains_answer("mitochondrial DNA", "mitochondria")  # a word boundary, not a substring
    assert not an.contains_answer("", "x") and not an.contains_answer("anything", "")
    assert an.exact_answer("The mitochondria!", "mitochondria") and not an.exact_answer(
        "in mitochondria", "mitochondria"
    )
    assert an.first_line("carbon dioxide\n\nBecause plants ...") == "carbon dioxide"


@pytest.mark.parametrize("flip", [0.1, 0.3])
def test_flipped_oracle_picks_wrong_at_its_flip_rate(flip):
    gs = groups(2000)
    oracle = rk.Oracle(flip, seed=3)
    scores = oracle.scores(gs)
    right, dec = rk.pick_accuracy(gs, rk.pick(scores, seed=3))
    assert dec == 2000
    assert abs(right / dec - (1 - flip)) < 0.03  # measured pick accuracy matches 1 - flip rate
    assert abs(rk.pair_accuracy(gs, scores) - (1 - flip)) < 0.03
    assert sum(oracle.flipped(2000)) / 2000 == pytest.approx(flip, abs=0.03)


def test_oracle_is_perfect_and_random_picks_at_the_base_rate():
    gs = groups(2000)
    right, dec = rk.pick_accuracy(gs, rk.pick(rk.Oracle().scores(gs)))
    assert right == dec == 2000
    base = sum(sum(g.correct) for g in gs) / (4 * len(gs))
    right, dec = rk.pick_accuracy(gs, rk.pick(rk.RandomRanker(1).scores(gs), seed=1))
    assert abs(right / dec - base) < 0.04
    # ties are broken at random: a constant ranker is a random one
    right, _ = rk.pick_accuracy(gs, rk.pick([[0.0] * 4 for _ in gs], seed=2))
    assert abs(right / dec - base) < 0.04


def test_self_consistency_prefers_the_answer_the_samples_share():
    g = rk.Group(item(0), ("the mitochondria", "mitochondria", "a ribosome", "golgi body"), (True, True, False, False))
    s = rk.SelfConsistency().scores([g])[0]
    assert s[0] == s[1] == max(s) and s[2] < s[0] and s[3] == 0.0
    assert rk.word_f1("red blood cells", "blood cells") == pytest.approx(0.8)


def test_only_groups_with_disagreeing_answers_count():
    gs = [
        rk.Group(item(0), ("a", "b"), (True, True)),
        rk.Group(item(1), ("a", "b"), (False, False)),
        rk.Group(item(2), ("a", "b"), (False, True)),
    ]
    right, dec = rk.pick_accuracy(gs, rk.Picks(best=[0, 0, 1], worst=[1, 1, 0]))
    assert (right, dec) == (1, 1)


def test_dev_gates_decide_on_the_phrase_match():
    items = [item(i) for i in range(40)]
    cfg = JudgeQualityConfig(dev_items=40, bootstrap=200)
    greedy = ["mitochondria" if i % 2 else "ribosome" for i in range(40)]  # 0.5
    samples = [["mitochondria", "x", "y", "z"] if i % 2 else ["x"] * 4 for i in range(40)]  # single 0.125, best 0.5
    g = rn.dev_gates(items, greedy, samples, cfg)
    assert g["match"]["phrase"]["greedy"]["mean"] == 0.5
    assert g["match"]["phrase"]["best_minus_single"]["diff"] == pytest.approx(0.375)
    assert g["passed"]
    g = rn.dev_gates(items, ["mitochondria"] * 40, [["mitochondria"] * 4] * 40, cfg)
    assert [x["passed"] for x in g["gates"]] == [False, False]  # 1.0 greedy; samples never differ


@pytest.fixture(scope="module")
def tiny():
    from superalign.backends import load_backend

    return load_backend("tiny", batch_size=8, dtype="float32")


def test_sample_k_is_seeded_and_draws_k_answers(tiny):
    from superalign.backends.base import Sampling
    from superalign.experiments.judge_quality.sampling import sample_k

    chats = [an.answer_chat(item(i)) for i in range(3)]
    p = Sampling(max_new_tokens=6, temperature=1.0, top_k=50, seed=5)
    a, b = sample_k(tiny, chats, 4, p), sample_k(tiny, chats, 4, p)
    assert a == b and [len(r) for r in a] == [4, 4, 4]
    assert any(len(set(r)) > 1 for r in a)  # the k rows are separate draws
    assert sample_k(tiny, chats, 4, Sampling(max_new_tokens=6, temperature=1.0, seed=6)) != a


def test_model_rankers_score_every_answer(tiny):
    gs = groups(3)
    lp = rk.MeanLogprob(tiny).scores(gs)
    assert [len(r) for r in lp] == [4, 4, 4]
    want = tiny.logprobs([an.answer_chat(gs[0].item)], [gs[0].answers[0]])[0] / len(tiny.encode(gs[0].answers[0]))
    assert lp[0][0] == pytest.approx(want, abs=1e-3)
    sj = rk.SelfJudge(tiny).scores(gs)
    assert [len(r) for r in sj] == [4, 4, 4] and len({round(x, 6) for r in sj for x in r}) > 1


def test_the_outside_judge_asks_a_base_model_in_plain_text_and_is_left_out_without_one():
    asked: list[str] = []

    class Recorder:  # an OptionScorer that says yes exactly to the answers containing the reference answer
        def score_options(self, prefixes, options):
            asked.extend(prefixes)
            return [[0.0, -1.0] if "Proposed answer: mitochondria" in p else [-1.0, 0.0] for p in prefixes]

    gs = groups(5)
    scores = rk.OutsideJudge(Recorder()).scores(gs)  # type: ignore[arg-type]
    assert len(asked) == 20 and all(p.startswith("<bos>Passage: ") and p.endswith("\nAnswer:") for p in asked)
    assert not any("<|im_start|>" in p or "user:" in p for p in asked)  # no chat turns for a base model
    assert rk.pick_accuracy(gs, rk.pick(scores)) == (5, 5)  # a judge that tells right from wrong picks right
    names = [r.name for r in rn.build_rankers(("self-judge", "gemma-judge", "random"), (), None, 0)]
    assert names == ["self-judge", "random"]  # no outside model: no gemma-judge arm
    with_outside = rn.build_rankers(("gemma-judge",), (), None, 0, outside=Recorder())
    assert [r.name for r in with_outside] == ["gemma-judge"]


def test_end_to_end_every_ranker_sees_the_same_answers(tmp_path, monkeypatch, tiny):
    """A tiny run with the gates opened (a random model answers nothing right): every ranker scores the very
    same groups, every arm trains and is measured, and the outputs are written."""
    seen: list[tuple[str, int]] = []
    real = rn.build_rankers

    class Spy:
        def __init__(self, inner: rk.Ranker) -> None:
            self.inner, self.name = inner, inner.name

        def scores(self, gs):
            seen.append((self.name, id(gs)))
            assert all(isinstance(g, rk.Group) for g in gs)
            return self.inner.scores(gs)

    monkeypatch.setattr(rn, "build_rankers", lambda *a: [Spy(r) for r in real(*a)])
    import superalign.backends as backends

    monkeypatch.setattr(backends, "load_backend", lambda *a, **k: tiny)
    monkeypatch.setattr(rn, "outside_judge", lambda cfg: tiny)  # the outside judge's seat, whether Gemma is installed
    monkeypatch.setattr(tiny, "close", lambda: None, raising=False)  # the learner is the judge here: keep it open
    cfg = JudgeQualityConfig(
        dev_items=10, test_items=10, train_items=12, max_new_tokens=4, diversity_items=4, greedy_min=0.0,
        min_best_of_k_gain=0.0, epochs=1, batch_size=4, bootstrap=100, max_len=256,
    )  # fmt: skip
    m = rn.run(tmp_path, True, None, "tiny", lambda *a: None, config=cfg)
    names = [
        "oracle", "oracle-flip-10", "oracle-flip-30", "self-consistency", "mean-logprob", "self-judge", "gemma-judge",
        "random",
    ]  # fmt: skip
    assert [n for n, _ in seen] == names and len({i for _, i in seen}) == 1  # one and the same groups object
    assert list(m["arms"]) == names and m["gates_passed"]
    train = m["raw"]["train"]
    assert len(train) == 12 and all(len(t["samples"]) == 4 for t in train)
    for runs in m["raw"]["arms"].values():
        r = runs[0]
        assert r["train"]["steps"] == 3 and len(r["correct"]) == 10 and all(0 <= b < 4 for b in r["best"])
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["split"] == {"dev": 10, "test": 10, "train": 12}
    assert "## Arms" in (tmp_path / "results.md").read_text()


def _scripted_arms(monkeypatch, split, rows):
    """train_arms with scripted training answers (`rows`, 12 items), a recording fake SFT and a fixed test result:
    (the split with those training items, the list of (cfg, seed, item ids, picks) each arm trained on, a backend)."""
    split = type(split)(split.dev, split.test, [item(i) for i in range(12)])
    calls: list[tuple[JudgeQualityConfig, int, list[str], list[int]]] = []

    def fake_train(backend, base, gs, best, cfg, seed):
        calls.append((cfg, seed, [g.item.id for g in gs], best))
        return {"steps": 1, "loss_first": None, "loss_last": None}

    class Backend:
        model = object()

    monkeypatch.setattr(rn, "sampled", lambda backend, items, cfg, seed: rows)
    monkeypatch.setattr(rn, "train_arm", fake_train)
    test_m = {"correct": [1, 0] * 5, "answers": ["a"] * 10, "sample_distinct": 1.0, "greedy_distinct": 1.0}
    monkeypatch.setattr(rn, "measure", lambda backend, items, cfg: {**test_m, "greedy_words": 1.0})
    return split, calls, Backend()


@pytest.mark.parametrize("train_on", ["all", "some-right"])
def test_some_right_trains_every_arm_on_the_items_with_a_right_answer_only(monkeypatch, train_on):
    """train_on: some-right leaves out the items whose k answers are all wrong (where every ranker, the oracle too,
    can only pick a wrong answer), for every arm alike; `all` trains on every item."""
    split = rn.split_items(10, 10, 12)
    rows = [["mitochondria"] * 4 if i % 3 == 0 else ["wrong"] * 4 if i % 3 == 1 else ["wrong", "x", "mitochondria", "y"]
            for i in range(12)]  # fmt: skip
    split, calls, backend = _scripted_arms(monkeypatch, split, rows)
    cfg = JudgeQualityConfig(rankers=("oracle", "random"), flips=(), train_on=train_on, bootstrap=100)
    m = rn.train_arms(backend, split, cfg, lambda *a: None)
    trained = [(c.train_on, ids, best) for c, _, ids, best in calls]
    assert [t[0] for t in trained] == [train_on, train_on]
    kept = [i for i in range(12) if i % 3 != 1] if train_on == "some-right" else list(range(12))
    assert all(ids == [f"x-{i}" for i in kept] for _, ids, _ in trained)
    oracle = [rows[i][b] for i, b in zip(kept, trained[0][2])]
    assert all(a == "mitochondria" for i, a in zip(kept, oracle) if i % 3 != 1)  # the oracle picks a right answer
    assert oracle.count("wrong") == (4 if train_on == "all" else 0)  # and a wrong one only where all are wrong
    assert [r["train"]["examples"] for a in m["raw"]["arms"].values() for r in a] == [len(kept)] * 2


def test_a_later_seed_run_on_its_own_is_the_same_arm_as_in_a_two_seed_run(monkeypatch):
    """first_seed: seed 1 alone trains and picks exactly as the second seed of a seeds=2 run (same data)."""
    split = rn.split_items(10, 10, 12)
    rows = [["wrong", "x", "mitochondria", "mitochondria"] for _ in range(12)]
    split, calls, backend = _scripted_arms(monkeypatch, split, rows)
    both = JudgeQualityConfig(rankers=("oracle", "random"), flips=(), seeds=2, bootstrap=100)
    m2 = rn.train_arms(backend, split, both, lambda *a: None)
    two = [(seed, best) for _, seed, _, best in calls]
    calls.clear()
    later = both.model_copy(update={"seeds": 1, "first_seed": 1})
    m1 = rn.train_arms(backend, split, later, lambda *a: None)
    trained = [(seed, best) for _, seed, _, best in calls]
    assert [s for s, _ in two] == [0, 0, 1, 1] and [s for s, _ in trained] == [1, 1]
    assert trained == two[2:]  # the same picks at seed 1, oracle and random
    assert two[0][1] != two[2][1] or two[1][1] != two[3][1]  # and the seeds do differ somewhere
    for name in ("oracle", "random"):
        assert [r["seed"] for r in m1["raw"]["arms"][name]] == [1]
        assert m1["raw"]["arms"][name][0]["best"] == m2["raw"]["arms"][name][1]["best"]
