"""Search over learning directions: the Pareto front on hand-made points, and the choice on a synthetic case."""

import pytest

from superalign.experiments.co_optimize.search import DevScore, Direction, choose, pareto_front, search_round

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny-model training: one thread (conftest)


def test_pareto_front_on_hand_made_points():
    pts = [(0.5, 0.5), (0.6, 0.4), (0.4, 0.6), (0.45, 0.45), (0.6, 0.4), (0.3, 0.3)]
    # (0.45, 0.45) and (0.3, 0.3) are dominated by (0.5, 0.5); equal points are both kept
    assert pareto_front(pts) == [0, 1, 2, 4]
    assert pareto_front([(1.0, 0.0)]) == [0]


def test_choice_rule_front_then_scalarisation():
    deltas = [(0.0, 0.0), (0.10, -0.02), (0.02, 0.05), (-0.01, 0.01)]
    # "stay" (0, 0) and (-0.01, 0.01) are dominated by (0.02, 0.05): the front is [1, 2]
    assert choose(deltas, "weighted", (0.5, 0.5)) == (1, [1, 2])  # 0.04 beats 0.035
    assert choose(deltas, "weighted", (0.2, 0.8))[0] == 2
    assert choose(deltas, "maxmin")[0] == 2  # best worst-case improvement
    # a dominated point never wins, however the weights lean
    assert choose([(0.0, 0.0), (0.2, 0.2), (0.19, 0.1)], "weighted", (1.0, 0.0))[0] == 1


def _synthetic(effects: dict[str, tuple[float, float]], allow_stay: bool = True):
    """A 'model' whose weights are a dict; training along d adds effects[d.name]; dev = the weights."""
    state = {"w": (0.5, 0.5)}
    seen_starts = []

    def train(d: Direction) -> int:
        seen_starts.append(state["w"])
        dc, df = effects[d.name]
        state["w"] = (state["w"][0] + dc, state["w"][1] + df)
        return 3

    nodes = search_round(
        1,
        [Direction(n) for n in effects],
        DevScore(0.5, 0.5),
        snapshot=lambda: dict(state),
        restore=lambda w: state.update(w),
        train=train,
        score=lambda: DevScore(*state["w"]),
        allow_stay=allow_stay,
    )
    return nodes, state, seen_starts


def test_search_picks_the_dominating_candidate_and_keeps_its_weights():
    effects = {"a": (0.01, -0.02), "dominant": (0.05, 0.08), "c": (0.04, 0.01), "d": (-0.1, 0.1)}
    nodes, state, starts = _synthetic(effects)
    assert starts == [(0.5, 0.5)] * 4  # every candidate trained from the same restored start
    chosen = [n for n in nodes if n.chosen]
    assert [n.name for n in chosen] == ["dominant"]
    assert state["w"] == (0.55, 0.58)  # the model is left at the chosen candidate's weights
    assert {n.name for n in nodes if n.on_front} == {"dominant", "d"}
    assert sum(n.steps for n in nodes) == 12  # every candidate's steps are counted


def test_search_stays_when_every_candidate_hurts():
    nodes, state, _ = _synthetic({"bad": (-0.05, -0.01), "worse": (-0.1, -0.1)})
    assert [n.name for n in nodes if n.chosen] == ["stay"] and state["w"] == (0.5, 0.5)
    nodes, state, _ = _synthetic({"bad": (-0.05, -0.01), "worse": (-0.1, -0.1)}, allow_stay=False)
    assert [n.name for n in nodes if n.chosen] == ["bad"] and state["w"] == (0.45, 0.49)
