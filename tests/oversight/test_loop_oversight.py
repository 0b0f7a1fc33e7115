"""Oversight inside the loop: routed items get (simulated or human) labels that change the pairs, the
run pauses for a human (exit 3) and resumes, and the promotion gate decides which version is trained on."""

import subprocess
import sys

import pytest

from superalign.config import load_config
from superalign.errors import AwaitingHumans
from superalign.loop import run_loop
from superalign.oversight.promotion import PromotionGate
from superalign.oversight.queue import ReviewQueue


def _cfg(**oversight):
    cfg = load_config("configs/scripted.yaml", rounds=1)
    small = {
        "attacker": cfg.attacker.model_copy(update={"queries_per_round": 24, "benign_per_round": 12}),
        "data": cfg.data.model_copy(update={"heldout_harmful": 20, "heldout_benign": 20, "competence_items": 10}),
    }
    return cfg.model_copy(update={**small, "oversight": cfg.oversight.model_copy(update=oversight)})


def quiet(msg):
    pass


def test_oracle_review_labels_the_least_sure_and_overrides_the_critic(tmp_path):
    # A noisy simulated reviewer (every label flipped) makes the override visible: the pairs of reviewed
    # queries must follow the reviewer, not the critic.
    cfg = _cfg(review_fraction=0.1, reviewer="oracle", oracle_noise=1.0)
    rows = run_loop(cfg, tmp_path, log=quiet)
    from superalign.store.runstore import RunStore

    with RunStore(tmp_path / "run.sqlite") as store:
        route = store.step_payload(1, "route")
        verdicts = store.verdicts(round=1, step="judge")
        pairs = store.pairs(round=1, step="pairs")
        responses = {r.id: r for r in store.responses(round=1, step="respond")}
    assert route["routed"] == int(0.1 * len(verdicts)) > 0
    queue = ReviewQueue(tmp_path / "run.sqlite")
    labels = queue.latest_labels()
    # The reviewer always disagrees with its own truth (the oracle critic, rules) and so overrides the run's
    # critic (ensemble) wherever the two critics agree. Not "everywhere": on the least sure items they can
    # differ (scripted echoes of long jailbreak templates); which items get drawn depends on the data split.
    from superalign.critic import JudgeItem, build_critic, judge

    oracle = build_critic(cfg.critic.model_copy(update={"kind": "rules", "abstain_below": 0.0}))
    routed = [it for it in queue.items() if it.id in labels]
    truth = {
        v.response_id: v.unsafe
        for v in judge([JudgeItem(it.id, it.prompt, it.response, it.harmful) for it in routed], oracle)
    }
    assert all(labels[i].unsafe != truth[i] for i in labels)
    critic_says = {v.response_id: v.unsafe for v in verdicts}
    assert route["overrides"] == sum(labels[i].unsafe != critic_says[i] for i in labels) > 0
    assert len(labels) == route["routed"] and {e.provenance for e in labels.values()} == {"oracle"}
    # routed = the least confident verdicts
    conf = sorted(v.confidence for v in verdicts)
    routed_conf = sorted(v.confidence for v in verdicts if v.response_id in labels)
    assert max(routed_conf) <= conf[len(routed_conf)]
    human_pairs = [p for p in pairs if p.provenance == "human"]
    reviewed_queries = {responses[i].query_id for i in labels}
    assert human_pairs and {p.query_id for p in human_pairs} <= reviewed_queries
    assert rows[-1]["human_labels"] == route["routed"]


def test_human_reviewer_pauses_the_run_until_labels_exist(tmp_path):
    cfg = _cfg(review_fraction=0.05, reviewer="human")
    with pytest.raises(AwaitingHumans, match="await a human label"):
        run_loop(cfg, tmp_path, log=quiet)
    queue = ReviewQueue(tmp_path / "run.sqlite")
    pending = queue.items(pending_only=True)
    assert pending
    with pytest.raises(AwaitingHumans):  # resuming without labels pauses again, routing nothing new
        run_loop(cfg, tmp_path, resume=True, log=quiet)
    assert len(queue.items()) == len(pending)
    for it in pending:
        queue.add_label(it.id, "alice", unsafe=bool(it.harmful), refusal=False, note="checked")
    rows = run_loop(cfg, tmp_path, resume=True, log=quiet)
    assert rows[-1]["round"] == 1 and rows[-1]["human_labels"] == len(pending)


def test_auto_promotion_is_logged_as_auto(tmp_path):
    run_loop(_cfg(), tmp_path, log=quiet)
    gate = PromotionGate(tmp_path / "run.sqlite")
    assert gate.current() == "round-1"
    approvals = [e for e in gate.events("round-1") if e.action == "approved"]
    assert len(approvals) == 1 and approvals[0].auto and approvals[0].actor == "auto:loop"
    run_loop(_cfg(), tmp_path, resume=True, log=quiet)  # resuming a finished run decides nothing twice
    assert [e.action for e in gate.events("round-1")] == ["proposed", "approved", "promoted"]


def test_rejected_version_is_not_built_on(tmp_path):
    cfg = _cfg(promotion="human").model_copy(update={"rounds": 2})
    with pytest.raises(AwaitingHumans, match="round-1"):
        run_loop(cfg, tmp_path, log=quiet)
    gate = PromotionGate(tmp_path / "run.sqlite")
    assert gate.current() == "round-0" and gate.status("round-1") == "proposed"
    gate.decide("round-1", False, "bob", "over-refuses")
    with pytest.raises(AwaitingHumans, match="round-2"):  # round 2 trains, then waits for its own decision
        run_loop(cfg, tmp_path, resume=True, log=quiet)
    gate.decide("round-2", True, "bob")
    rows = run_loop(cfg, tmp_path, resume=True, log=quiet)
    assert [r.get("trained_from") for r in rows] == [None, 0, 0]  # round 2 started from the base, not round-1
    assert [r.get("promoted") for r in rows[1:]] == [False, True]
    assert gate.current() == "round-2"


def test_auto_gate_rejects_a_version_over_the_dev_over_refusal_limit(tmp_path, monkeypatch):
    import superalign.loop as loop

    real = loop._dev_eval

    def round_1_over_refuses(cfg, store, plan, critic, model, k):  # the scripted learner never over-refuses
        dev = real(cfg, store, plan, critic, model, k)
        return {**dev, "dev_over_refusal": 0.5} if k == 1 else dev

    monkeypatch.setattr(loop, "_dev_eval", round_1_over_refuses)
    cfg = _cfg(max_dev_over_refusal=0.1)
    dev = cfg.data.model_copy(update={"dev_harmful": 12, "dev_benign": 12})
    rows = run_loop(cfg.model_copy(update={"rounds": 2, "data": dev}), tmp_path, log=quiet)
    assert all(r["dev_n_harmful"] > 0 and r["dev_n_benign"] > 0 and r["dev_asr"] is not None for r in rows)
    assert [r.get("promoted") for r in rows[1:]] == [False, True]
    assert [r.get("trained_from") for r in rows] == [None, 0, 0]  # round 2 trained from the base again
    gate = PromotionGate(tmp_path / "run.sqlite")
    [rejected] = [e for e in gate.events("round-1") if e.action == "rejected"]
    assert rejected.auto and "dev over-refusal 0.500 > oversight.max_dev_over_refusal 0.100" in rejected.note
    assert gate.current() == "round-2"


def test_auto_gate_rejects_a_version_whose_dev_competence_fell(tmp_path, monkeypatch):
    import superalign.evaluate as evaluate

    real = evaluate.competence_correct

    def round_1_forgets(model, items):  # round 1's version gets a third of the dev items it got right wrong
        got = real(model, items)
        if model.name.endswith("@round-1") and len(items) == 30:
            return [0.0 if i % 3 == 0 else c for i, c in enumerate(got)]
        return got

    monkeypatch.setattr(evaluate, "competence_correct", round_1_forgets)
    cfg = _cfg(max_dev_competence_drop=0.02)
    data = cfg.data.model_copy(update={"dev_harmful": 0, "dev_benign": 0, "dev_competence": 30})
    rows = run_loop(cfg.model_copy(update={"rounds": 2, "data": data}), tmp_path, log=quiet)
    assert [r["dev_n_competence"] for r in rows] == [30, 30, 30] and "dev_asr" not in rows[0]
    assert rows[0]["dev_competence_drop"] == 0.0 and rows[2]["dev_competence_drop"] == 0.0
    drop = rows[1]["dev_competence_drop"]
    assert drop > 0.02 and rows[1]["dev_competence_drop_ci"][0] <= drop <= rows[1]["dev_competence_drop_ci"][1]
    assert [r.get("promoted") for r in rows[1:]] == [False, True]
    assert [r.get("trained_from") for r in rows] == [None, 0, 0]
    [rejected] = [e for e in PromotionGate(tmp_path / "run.sqlite").events("round-1") if e.action == "rejected"]
    assert "below round 0's > oversight.max_dev_competence_drop 0.020" in rejected.note


def test_human_gate_never_promotes_a_version_approved_before_it_was_proposed(tmp_path):
    """The gate test of issue 26: approvals of `round-2` sent before the loop proposed it (through the
    desk, or written straight into run.sqlite by an older desk) do not let round 2 through; the run
    still stops for it, and every promoted version has a reviewer's approval *after* its proposal."""
    from fastapi.testclient import TestClient

    from superalign.oversight.desk import create_app, csrf_token

    token = "gate-test-token-42"
    cfg = _cfg(promotion="human").model_copy(update={"rounds": 2})
    with pytest.raises(AwaitingHumans, match="round-1"):
        run_loop(cfg, tmp_path, log=quiet)
    desk = TestClient(create_app(tmp_path, token), follow_redirects=False)

    def decide(version, decision):
        return desk.post(
            f"/promotion/{version}",
            headers={"Authorization": f"Bearer {token}"},
            data={"csrf": csrf_token(token), "reviewer": "alice", "decision": decision},
        )

    assert decide("round-2", "approve").status_code == 404  # early approval through the desk: refused
    gate = PromotionGate(tmp_path / "run.sqlite")
    with gate._tx() as conn:  # early approval written behind the desk's back
        gate._log(conn, "round-2", "approved", "mallory", False, "")
    assert decide("round-1", "approve").status_code == 303
    with pytest.raises(AwaitingHumans, match="round-2 .* awaits a human decision"):
        run_loop(cfg, tmp_path, resume=True, log=quiet)
    assert gate.current() == "round-1" and gate.status("round-2") == "proposed"
    assert decide("round-2", "approve").status_code == 303
    rows = run_loop(cfg, tmp_path, resume=True, log=quiet)
    assert [r.get("promoted") for r in rows[1:]] == [True, True] and gate.current() == "round-2"
    for version in ("round-1", "round-2"):
        actions = [(e.action, e.actor) for e in gate.events(version)]
        proposed = max(i for i, (a, _) in enumerate(actions) if a == "proposed")
        assert ("approved", "alice") in actions[proposed:], actions


def test_cli_exit_code_3_when_paused(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "learner: scripted\nrounds: 1\nmax_new_tokens: 16\n"
        "data: {heldout_harmful: 10, heldout_benign: 10, competence_items: 10}\n"
        "attacker: {queries_per_round: 12, benign_per_round: 6}\noversight: {promotion: human}\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "superalign.cli", "run", "--config", str(cfg), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 3, r.stderr[-2000:]
    assert "paused:" in r.stderr and "superalign run --resume" in r.stderr


def test_learned_critic_is_refitted_on_earlier_rounds_labels(tmp_path, monkeypatch):
    """critic_for_round hands round k the learned critic refitted on reviewer labels of rounds < k."""
    import superalign.critic.reviewed as rv
    from superalign.oversight.in_loop import critic_for_round
    from superalign.oversight.queue import ReviewItem

    q = ReviewQueue(tmp_path / "run.sqlite")
    q.enqueue(
        [
            ReviewItem("r1", "harm?", "step 1 ...", round=1, harmful=True),
            ReviewItem("r2", "harm?", "step 2 ...", round=2, harmful=True),
        ]
    )
    q.add_label("r1", "ann", unsafe=True, refusal=False)
    q.add_label("r2", "ann", unsafe=True, refusal=False)
    seen = []
    monkeypatch.setattr(rv, "with_reviews", lambda critic, reviewed: seen.append(reviewed) or f"refit({critic})")
    learned = _cfg(review_fraction=0.05, reviewer="oracle")
    learned = learned.model_copy(update={"critic": learned.critic.model_copy(update={"kind": "learned"})})
    assert critic_for_round(learned, "C", tmp_path, 2, quiet) == "refit(C)"
    assert [r.response for r in seen[-1]] == ["step 1 ..."]  # round 2 learns from round 1 only
    assert critic_for_round(learned, "C", tmp_path, 1, quiet) == "C"  # nothing reviewed before round 1
    assert critic_for_round(_cfg(review_fraction=0.05), "C", tmp_path, 2, quiet) == "C"  # ensemble: unchanged


def _smoke_with_gate(**oversight):
    cfg = load_config("configs/smoke.yaml", dtype="float32")
    data = cfg.data.model_copy(update={"dev_harmful": 6, "dev_benign": 6, "dev_competence": 20})
    return cfg.model_copy(update={"data": data, "oversight": cfg.oversight.model_copy(update=oversight)})


def test_interpolation_is_exact_at_its_ends_and_linear_between():
    import torch

    from superalign.learner.checkpoint import Interpolation

    model = torch.nn.Linear(3, 2)
    base = {n: torch.zeros_like(t) for n, t in model.state_dict().items()}
    trained = {n: t.clone() for n, t in model.state_dict().items()}
    mix = Interpolation(model, base)
    mix.set(0.25)
    assert all(torch.allclose(model.state_dict()[n], 0.25 * trained[n]) for n in trained)
    mix.set(1.0)
    assert all(torch.equal(model.state_dict()[n], trained[n]) for n in trained)
    mix.set(0.0)
    assert all(torch.equal(model.state_dict()[n], base[n]) for n in trained)
    with pytest.raises(ValueError, match="differ in their weights"):
        Interpolation(model, {"weight": base["weight"]})


def test_a_version_over_a_dev_limit_is_scaled_back_to_the_first_alpha_that_meets_it(tmp_path, monkeypatch):
    """Round 1's trained version breaks the competence limit; scaled by 0.5 it meets it (a stand-in for the dev
    reading): that version is saved, evaluated and approved, and it IS base + 0.5 * (trained - base). A crash
    between the step's commit and the checkpoint's rewrite is finished by --resume without choosing again."""
    import shutil

    from safetensors.torch import load_file

    import superalign.learner.checkpoint as ckpt
    import superalign.loop as loop
    from superalign.store.runstore import RunStore

    real_metrics, readings = loop._dev_metrics, []

    def dev_reading(cfg, plan, critic, model, k, base_correct):
        dev, *rest = real_metrics(cfg, plan, critic, model, k, base_correct)
        if k == 1 and len(readings) < 2:  # the shrink step's readings: alpha 1, then alpha 0.5
            readings.append(1)
            dev = {**dev, "dev_competence_drop": 0.05 if len(readings) == 1 else 0.01}
        elif k == 1:  # the evaluation of the version saved
            dev = {**dev, "dev_competence_drop": 0.01}
        return (dev, *rest)

    monkeypatch.setattr(loop, "_dev_metrics", dev_reading)
    real_save, trained_copy = ckpt.save_checkpoint, tmp_path / "trained-round-1"

    def save_and_keep(learner, directory, adapter_from=None, meta=None):
        if meta is not None:
            raise KeyboardInterrupt("killed before the rewrite")
        path = real_save(learner, directory, adapter_from, meta)
        shutil.copytree(path, trained_copy)
        return path

    monkeypatch.setattr(ckpt, "save_checkpoint", save_and_keep)
    cfg = _smoke_with_gate(max_dev_competence_drop=0.02, shrink_alphas=(0.5, 0.25))
    with pytest.raises(KeyboardInterrupt):
        run_loop(cfg, tmp_path / "run", log=quiet)
    monkeypatch.setattr(ckpt, "save_checkpoint", real_save)
    rows = run_loop(cfg, tmp_path / "run", resume=True, log=quiet)
    with RunStore(tmp_path / "run" / "run.sqlite") as store:
        shrink = store.step_payload(1, "shrink")
    assert shrink["alpha"] == 0.5 and [t["alpha"] for t in shrink["tried"]] == [1.0, 0.5]
    assert shrink["tried"][0]["failures"] and not shrink["tried"][1]["failures"]
    assert rows[1]["promoted"] is True and len(readings) == 2  # resume did not choose again
    ck = tmp_path / "run" / "checkpoints" / "round-1"
    assert ckpt.checkpoint_meta(ck) == {"alpha": 0.5, "trained_from": 0}
    from superalign.backends import load_backend

    base = load_backend("tiny", dtype="float32").model.state_dict()
    trained, shipped = load_file(str(trained_copy / "model.safetensors")), load_file(str(ck / "model.safetensors"))
    for name, w in shipped.items():
        b = base[name].float()
        assert torch_allclose(w.float(), b + 0.5 * (trained[name].float() - b)), name
    assert any(not torch_allclose(shipped[n].float(), trained[n].float()) for n in shipped)


def test_the_shrink_steps_reading_of_the_version_kept_is_its_dev_evaluation(tmp_path, monkeypatch):
    """The scaled version chosen is read on dev once, by the shrink step: that reading is stored as the round's
    eval_dev (no second pass after the reload), and it is what reading the saved checkpoint gives."""
    import superalign.loop as loop
    from superalign.backends import load_backend
    from superalign.critic import build_critic
    from superalign.plan import make_plan
    from superalign.store.runstore import RunStore

    real_metrics, calls = loop._dev_metrics, []

    def dev_reading(cfg, plan, critic, model, k, base_correct):
        dev, *rest = real_metrics(cfg, plan, critic, model, k, base_correct)
        if k == 1:
            calls.append(1)
            dev = {**dev, "dev_competence_drop": 0.05 if len(calls) == 1 else 0.0}  # alpha 1 fails, 0.5 passes
        return (dev, *rest)

    monkeypatch.setattr(loop, "_dev_metrics", dev_reading)
    cfg = _smoke_with_gate(max_dev_competence_drop=0.02, shrink_alphas=(0.5, 0.25))
    cfg = cfg.model_copy(update={"rounds": 1})
    run_loop(cfg, tmp_path / "run", log=quiet)
    assert len(calls) == 2  # alpha 1 and alpha 0.5; no third reading for eval_dev
    with RunStore(tmp_path / "run" / "run.sqlite") as store:
        assert store.step_payload(1, "shrink")["alpha"] == 0.5
        stored = store.step_payload(1, "eval_dev")
        base_correct = store.step_payload(0, "eval_dev")["competence_correct"]
        answers = [r.text for r in store.responses(round=1, step="eval_dev")]
    shipped = load_backend(str(tmp_path / "run" / "checkpoints" / "round-1"), dtype="float32")
    cfg = loop.resolved_config(cfg)
    again, responses, _, correct = real_metrics(cfg, make_plan(cfg), build_critic(cfg.critic), shipped, 1, base_correct)
    assert [r.text for r in responses] == answers and correct == stored["competence_correct"]
    assert stored["dev_competence_drop"] == 0.0 and stored["dev_asr"] == again["dev_asr"]


def torch_allclose(a, b):
    import torch

    return torch.allclose(a, b, atol=1e-6)


def test_shrink_alphas_must_descend_in_the_open_interval():
    from pydantic import ValidationError

    from superalign.config import OversightConfig

    assert OversightConfig(shrink_alphas=(0.5, 0.25)).shrink_alphas == (0.5, 0.25)
    for bad in ((0.25, 0.5), (1.0,), (0.0,), (0.5, 0.5)):
        with pytest.raises(ValidationError, match="descending"):
            OversightConfig(shrink_alphas=bad)


def test_the_gates_competence_drop_is_weighted_to_the_reported_task_mix():
    """Dev items left after the reported ones are 71 % sciq; the reported ones are half ARC-Easy. When ARC-Easy
    loses more, the plain dev mean under-reads the reported drop: the gate reads the per-task drops at the
    reported mix, and keeps the plain mean beside it."""
    from types import SimpleNamespace

    from superalign.loop import dev_competence_drop

    item = lambda task: SimpleNamespace(task=task)  # noqa: E731
    plan = SimpleNamespace(
        competence_items=[item("sciq"), item("arc_easy")] * 250,
        dev_competence=[item("sciq")] * 700 + [item("arc_easy")] * 300,
    )
    base = [1.0] * 1000
    after = [0.0 if i < 7 or 700 <= i < 715 else 1.0 for i in range(1000)]  # sciq -1 point, ARC-Easy -5 points
    got = dev_competence_drop(plan, base, after)
    assert got["dev_competence_drop"] == pytest.approx(0.03) and got["dev_competence_drop_unweighted"] == 0.022
    lo, hi = got["dev_competence_drop_ci"]
    assert lo < 0.03 < hi
    balanced = SimpleNamespace(competence_items=plan.competence_items, dev_competence=plan.competence_items * 2)
    same = dev_competence_drop(balanced, base, after)
    assert same["dev_competence_drop"] == pytest.approx(same["dev_competence_drop_unweighted"], abs=1e-4)


def test_gate_confidence_reads_each_limit_at_its_upper_bound():
    # 2 of 40 dev refusals (0.05) pass a 0.10 limit at the point estimate; at 80 % one-sided confidence the
    # Wilson upper bound of 3 of 40 (0.118) breaks it while 2 of 40 (0.087) still passes. A competence drop of
    # 1.5 points with a 95 % interval of +-1.4 passes a 2-point limit at the point, not at 80 % (1.5 + 0.84 * 0.71)
    from superalign.oversight.in_loop import gate_failures

    point = _cfg(max_dev_over_refusal=0.1, max_dev_competence_drop=0.02)
    bound = _cfg(max_dev_over_refusal=0.1, max_dev_competence_drop=0.02, gate_confidence=0.8)
    m2 = {"dev_over_refusal": 0.05, "dev_n_benign": 40}
    m3 = {"dev_over_refusal": 0.075, "dev_n_benign": 40}
    assert gate_failures(point, m3) == [] and gate_failures(bound, m2) == []
    [why] = gate_failures(bound, m3)
    assert "3 of 40" in why and "upper bound 0.118" in why
    drop = {"dev_competence": 0.5, "dev_competence_drop": 0.015, "dev_competence_drop_ci": [0.001, 0.029]}
    assert gate_failures(point, drop) == []
    [why] = gate_failures(bound, drop)
    assert "upper bound 0.021" in why
    # a tighter interval (more dev items) passes at the same point estimate
    assert gate_failures(bound, {**drop, "dev_competence_drop_ci": [0.012, 0.018]}) == []


def test_gate_confidence_is_a_one_sided_level_above_one_half():
    from pydantic import ValidationError

    from superalign.config import OversightConfig

    assert OversightConfig(gate_confidence=0.8).gate_confidence == 0.8
    for bad in (0.5, 1.0):
        with pytest.raises(ValidationError, match="gate_confidence"):
            OversightConfig(gate_confidence=bad)
