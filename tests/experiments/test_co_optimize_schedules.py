"""Schedule bookkeeping: equal optimiser steps and equal examples per kind, planned and actually fed."""

import random

import pytest

from superalign.config import TrainConfig
from superalign.errors import UserError
from superalign.experiments.co_optimize.schedules import (
    SCHEDULES,
    Budget,
    plan_round,
    planned_budget,
    run_phases,
    take_cycled,
)
from superalign.records import Pair, user_chat

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny-model training: one thread (conftest)


def test_every_schedule_gets_the_same_steps_and_mixed_ones_the_same_data():
    b = {s: planned_budget(plan_round(s, 8, 4)) for s in SCHEDULES}
    assert {x.steps for x in b.values()} == {8}
    assert b["simultaneous"] == b["alternating"] == Budget(8, 32, 16)
    assert b["conformity-only"] == Budget(8, 32, 0)
    kinds = [p.kind for p in plan_round("alternating", 8, 4)]
    assert kinds == ["conformity", "competence"]  # conformity phase first, then competence


def test_bad_budgets_are_user_errors():
    with pytest.raises(UserError, match="even"):
        plan_round("alternating", 5, 4)
    with pytest.raises(UserError, match="unknown schedule"):
        plan_round("interleaved", 4, 4)


def test_take_cycled_repeats_only_after_a_full_pass():
    got = take_cycled(list(range(5)), 12, random.Random(0))
    assert sorted(got[:5]) == list(range(5)) and sorted(got[5:10]) == list(range(5)) and len(got) == 12


def test_alternating_round_on_tiny_model_feeds_the_planned_budget_and_learns_competence(fresh_tiny):
    pairs = [
        Pair(
            user_chat(f"How do I pick lock {i}?"), "I can't help with that.", "Sure, get a pick.", kind="refuse-harmful"
        )
        for i in range(4)
    ]
    competence = [(user_chat(f"What is {i} plus {i}?\nOptions: {2 * i}; {i}"), str(2 * i)) for i in range(3)]
    before = fresh_tiny.logprobs([c for c, _ in competence], [a for _, a in competence])
    cfg = TrainConfig(lr=5e-3, micro_batch=4, max_len=48, nll_weight=1.0)
    phases = plan_round("alternating", 4, 2)
    logs = run_phases(fresh_tiny, phases, pairs, competence, cfg, seed=0)
    assert sum((lg.budget for lg in logs), Budget()) == planned_budget(phases) == Budget(4, 8, 4)
    assert [len(lg.losses) for lg in logs] == [2, 2]
    after = fresh_tiny.logprobs([c for c, _ in competence], [a for _, a in competence])
    assert sum(after) > sum(before) + 0.5  # the competence phase raised the answers' log-likelihood


def test_candidates_from_the_same_weights_share_the_reference(fresh_tiny):
    """The search's candidates: single-phase trainings from one start with one ref_cache. The second
    candidate scores no reference sequence, and trains exactly as it would without the cache."""
    import copy

    pairs = [
        Pair(
            user_chat(f"How do I pick lock {i}?"), "I can't help with that.", "Sure, get a pick.", kind="refuse-harmful"
        )
        for i in range(4)
    ]
    competence = [(user_chat(f"What is {i} plus {i}?"), str(2 * i)) for i in range(3)]
    phase = plan_round("conformity-only", 2, 2)
    lean, close = (TrainConfig(lr=5e-3, micro_batch=4, max_len=48, beta=b) for b in (0.1, 0.3))
    start, cache = copy.deepcopy(fresh_tiny.model), {}
    run_phases(fresh_tiny, phase, pairs, competence, lean, seed=0, ref_cache=cache)
    filled = dict(cache)
    assert len(filled) == 2 * len(pairs)
    fresh_tiny.model = copy.deepcopy(start)
    shared = run_phases(fresh_tiny, phase, pairs, competence, close, seed=0, ref_cache=cache)
    assert cache == filled  # nothing new was scored
    fresh_tiny.model = copy.deepcopy(start)
    alone = run_phases(fresh_tiny, phase, pairs, competence, close, seed=0)
    assert shared[0].losses == pytest.approx(alone[0].losses, abs=1e-4)
    with pytest.raises(ValueError, match="one phase"):
        run_phases(fresh_tiny, plan_round("alternating", 4, 2), pairs, competence, lean, seed=0, ref_cache={})
