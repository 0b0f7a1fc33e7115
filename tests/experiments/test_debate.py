"""debate: verbatim quotes, option masking, both answer orders scored and averaged, the gates on known
inputs, the score cache, and a pilot run that stops (or not) on its gates."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import superalign.experiments.debate.run as rn
from superalign import stats as bs
from superalign.data.passages import load_passage_items
from superalign.experiments.debate import judge as jd, passages as ps, scoring as st
from superalign.experiments.debate.config import DebateConfig

PASSAGE = (
    "Protozoa that cause malaria are spread by a vector. They enter the blood through the bite of an infected "
    "mosquito. Mosquitoes breed in still water! Carbon-14 has 8 neutrons."
)


def test_sentences_are_verbatim_and_quotes_must_be_exact():
    sents = ps.sentences(PASSAGE)
    assert len(sents) == 4 and sents[2] == "Mosquitoes breed in still water!"
    assert all(ps.verify_quote(s, PASSAGE) for s in sents)
    assert ps.verify_quote("bite of an infected mosquito", PASSAGE)  # any exact substring
    assert not ps.verify_quote("They enter the blood through the bite of an infected housefly.", PASSAGE)
    assert not ps.verify_quote("they enter the blood", PASSAGE)  # case differs
    assert not ps.verify_quote("spread by  a vector", PASSAGE)  # spacing differs
    assert not ps.verify_quote("   ", PASSAGE) and not ps.verify_quote("", PASSAGE)


def test_masking_removes_the_options_their_stems_and_numbers():
    masked = ps.mask_options(PASSAGE, ["mosquito", "housefly"], "___")
    assert not ps.mentions(masked, "mosquito") and "Mosquitoes" not in masked and "mosquito" not in masked.lower()
    assert masked.count("___") == 2 and "Protozoa that cause malaria" in masked  # the rest stays
    num = ps.mask_options(PASSAGE, ["carbon 14", "carbon 8"], "[X]")
    assert "14" not in num and "8" not in num and "Carbon" not in num
    assert "neutrons" in num
    stop = ps.mask_options("Water flows from that lake into the river.", ["from that lake"], "_")
    assert stop == "Water flows _ into the river."  # whole option; stopwords alone would not be masked
    assert ps.mask_options("They enter through that door.", ["that door"], "_") == "They enter through _."
    assert ps.mask_options("Is that so?", ["that"], "_") == "Is _ so?"  # the whole option always


def test_items_have_passages_and_prefixes_agree():
    items = load_passage_items(0)
    assert len(items) == 887 and all(it.passage and it.correct != it.distractor for it in items)
    assert load_passage_items(50) == items[:50]
    assert len({it.id for it in items}) == 887


class ScriptedJudge:
    """A judge with a fixed letter bias that knows the answer only when an unmasked passage names it, and
    a weaker hint when the passage is masked. Records the chats it scores."""

    def __init__(self, answers: dict[str, str], bias: float = 1.0, masked_hint: float = 0.0) -> None:
        self.answers, self.bias, self.masked_hint, self.seen = answers, bias, masked_hint, []

    def render(self, chat):
        return json.dumps(chat)

    def bos_text(self):
        return ""

    def score_options(self, prefixes, options):
        out = []
        for pre, opts in zip(prefixes, options):
            if not pre.startswith("["):  # the plain-text cloze diagnostic: " correct", " distractor"
                q = re.search(r"Question: (.*)\n", pre).group(1)
                passage = pre.split("Question:")[0]
                know = 4.0 if self.answers[q] in passage else (self.masked_hint if passage else 0.0)
                out.append([know if o.strip() == self.answers[q] else 0.0 for o in opts])
                continue
            user = json.loads(pre)[0]["content"]
            self.seen.append(user)
            q = re.search(r"Question: (.*)\n", user).group(1)
            a = re.search(r"\nA\. (.*)\n", user).group(1)
            right_is_a = a == self.answers[q]
            know = 0.0
            if "Passage:" in user:
                know = 4.0 if self.answers[q] in user.split("Question:")[0] else self.masked_hint
            s_a = self.bias + (know if right_is_a else -know)
            out.append([s_a, 0.0] * (len(opts) // 2))  # letters, then (with text) the options alike
        return out


def test_both_answer_orders_are_scored_and_averaged():
    judge = jd.CachedJudge(lambda: ScriptedJudge({"Q?": "right"}, bias=1.0), "t")
    p = judge.p_correct([jd.JudgeRequest("Q?", "right", "wrong")])
    assert p.shape == (1, 2)
    # a judge that only prefers A: P(correct) = sigmoid(1) when correct = A and 1 - sigmoid(1) when = B
    assert p[0, 0] == pytest.approx(1 / (1 + np.exp(-1))) and p[0, 1] == pytest.approx(1 - p[0, 0])
    assert st.item_correct(p)[0] == 0.5  # its mean is exactly 0.5: a letter bias alone earns half an item
    seen = judge.model().seen
    assert "A. right\nB. wrong" in seen[0] and "A. wrong\nB. right" in seen[1]
    ctx = jd.JudgeRequest("Q?", "right", "wrong", jd.passage_context("the answer is right"))
    p = judge.p_correct([ctx])
    assert p[0, 0] > 0.99 and p[0, 1] > 0.9 and st.item_correct(p)[0] == 1.0


def test_scores_are_cached_and_a_rerun_loads_no_model(tmp_path: Path):
    req = [jd.JudgeRequest("Q?", "right", "wrong"), jd.JudgeRequest("Q?", "right", "wrong", "ctx")]
    first = jd.CachedJudge(lambda: ScriptedJudge({"Q?": "right"}), "t", tmp_path)
    p = first.p_correct(req)
    assert first.scored == 4
    again = jd.CachedJudge(lambda: pytest.fail("a cached score must not load the model"), "t", tmp_path)
    np.testing.assert_array_equal(again.p_correct(req), p)
    other = jd.CachedJudge(lambda: ScriptedJudge({"Q?": "right"}, bias=0.0), "t2", tmp_path)
    other.p_correct(req[:1])
    assert other.scored == 2  # another model tag does not share scores


def test_gate_gain_ci_and_threshold_on_known_inputs():
    better = np.array([1, 1, 1, 1, 0, 1, 1, 1, 0, 1], float)  # 0.8
    worse = np.array([1, 0, 1, 0, 0, 1, 0, 1, 0, 1], float)  # 0.5
    idx = bs.bootstrap_indices(10, 500, seed=0)
    g = st.gate("x", better, worse, 0.3, idx)
    assert g["gain"] == pytest.approx(0.3) and g["passed"]  # exactly at the threshold passes
    assert g["ci"][0] <= 0.3 <= g["ci"][1] and not g["ci_clears"]
    assert not st.gate("x", better, worse, 0.31, idx)["passed"]
    assert st.gate("x", worse, better, 0.0, idx)["gain"] == pytest.approx(-0.3)
    c = st.condition_summary(np.array([[0.9, 0.2], [0.7, 0.6], [0.4, 0.4]]), bs.bootstrap_indices(3, 200))
    assert c["accuracy"]["mean"] == pytest.approx(2 / 3, abs=1e-4)  # order means 0.55, 0.65, 0.40: right, right, wrong
    assert c["order_accuracy"] == [pytest.approx(2 / 3, abs=1e-4), pytest.approx(1 / 3, abs=1e-4)]
    assert c["p_says_a"] == pytest.approx(np.mean([0.9, 0.7, 0.4, 0.8, 0.4, 0.6]), abs=1e-4)


def test_the_cloze_diagnostic_is_plain_text_without_options():
    req = jd.JudgeRequest("Q?", "right", "wrong", "Some passage.")
    assert jd.cloze_prompt(req) == "Some passage.\nQuestion: Q?\nAnswer:"
    assert jd.cloze_prompt(jd.JudgeRequest("Q?", "right", "wrong")) == "Question: Q?\nAnswer:"
    scripted = ScriptedJudge({"Q?": "right"})
    judge = jd.CachedJudge(lambda: scripted, "t")
    p = judge.cloze_p_correct([req, jd.JudgeRequest("Q?", "right", "wrong", "the answer is right")])
    assert p[0, 0] == p[0, 1] == pytest.approx(0.5) and p[1, 0] == pytest.approx(1 / (1 + np.exp(-4)))
    assert not scripted.seen  # no chat was rendered


def _pilot(tmp_path: Path, monkeypatch, scripted: ScriptedJudge, stage: str = "pilot") -> dict:
    monkeypatch.setenv("SUPERALIGN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(rn, "judge_for", lambda *a, **k: jd.CachedJudge(lambda: scripted, "s"))
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    cfg = DebateConfig(stage=stage, pilot_items=40, bootstrap=200)
    return rn.run(out, False, None, "embedded", lambda *a: None, config=cfg)


def test_a_pilot_whose_judge_reads_the_passage_passes_and_stops_at_the_pilot(tmp_path, monkeypatch):
    items = load_passage_items(40)
    answers = {it.question: it.correct for it in items}
    m = _pilot(tmp_path, monkeypatch, ScriptedJudge(answers, bias=0.5, masked_hint=1.0))
    assert m["gates_passed"] and m["stopped"] == "pilot preset: gates only"
    # the naive judge only has its bias (half an item each); the passage names the answer in most items
    assert m["gates"]["conditions"]["naive"]["accuracy"]["mean"] == 0.5
    assert m["gates"]["conditions"]["passage_masked"]["accuracy"]["mean"] == 1.0
    text = (tmp_path / "out" / "results.md").read_text(encoding="utf-8")
    assert "**pass**" in text and "FAIL" not in text.split("## Diagnostic")[0]
    json.loads((tmp_path / "out" / "metrics.json").read_text(encoding="utf-8"))
    assert len(m["gates"]["items"]) == 40 and len(m["gates"]["items"][0]["letter:naive"]) == 2
    assert m["gates"]["cloze_judge"]["conditions"]["naive"]["accuracy"]["mean"] == 0.5  # ties only
    assert "plain-text cloze judge" in text


def test_a_failed_gate_stops_the_run_before_any_protocol(tmp_path, monkeypatch):
    items = load_passage_items(40)
    answers = {it.question: it.correct for it in items}
    m = _pilot(tmp_path, monkeypatch, ScriptedJudge(answers, bias=0.5, masked_hint=0.0), stage="protocols")
    assert [g["passed"] for g in m["gates"]["gates"]] == [True, False]
    assert not m["gates_passed"] and m["stopped"].startswith("gate failed: masked passage - naive")
    assert "**FAIL**" in (tmp_path / "out" / "results.md").read_text(encoding="utf-8")


def test_the_tiny_model_runs_the_pilot(tmp_path, monkeypatch):
    from superalign.backends.embedded import tiny_model_dir

    model_dir = str(tiny_model_dir())
    monkeypatch.setenv("SUPERALIGN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    out.mkdir()
    cfg = DebateConfig(stage="pilot", pilot_items=6, bootstrap=100, text_judge=False)
    m = rn.run(out, False, None, model_dir, lambda *a: None, config=cfg)
    assert m["preset"] == "custom" and m["model_prompts_scored"] == 6 * 3 * 2 + 6 * 3  # letter x 2 orders, cloze
    again = rn.run(out, False, None, model_dir, lambda *a: None, config=cfg)
    assert again["model_prompts_scored"] == 0 and again["gates"]["items"] == m["gates"]["items"]


def test_preset_by_name_runs_the_pilot_and_bad_names_exit_2(tmp_path, monkeypatch):
    from superalign.errors import UserError
    from superalign.experiments import run_experiment

    answers = {it.question: it.correct for it in load_passage_items(200)}
    monkeypatch.setenv("SUPERALIGN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(rn, "judge_for", lambda *a, **k: jd.CachedJudge(lambda: ScriptedJudge(answers), "s"))
    m = run_experiment("debate", tmp_path / "out", preset="pilot")
    assert m["preset"] == "pilot" and m["config"]["stage"] == "pilot" and len(m["gates"]["items"]) == 200
    assert (tmp_path / "out" / "report.html").is_file()
    with pytest.raises(UserError, match="has the presets pilot, quick, full"):
        run_experiment("debate", tmp_path / "o2", preset="pilto")
    with pytest.raises(UserError, match="--quick and --preset pilot disagree"):
        run_experiment("debate", tmp_path / "o3", quick=True, preset="pilot")
