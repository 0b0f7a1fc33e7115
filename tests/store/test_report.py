"""The HTML report and terminal table: the numbers a user reads, offline, safely escaped, atomically."""

import base64
import os

import pytest

from superalign.store.report import format_table, write_report

ROUNDS = [
    {
        "round": 0,
        "asr": 0.91,
        "asr_ci": [0.85, 0.95],
        "asr_keyword_bound": 0.97,
        "over_refusal": 0.05,
        "competence": 0.5123,
        "competence_ci": [0.47, 0.55],
        "human_labels": 0,
        "pairs": 0,
        "train_loss_first": None,
        "train_loss_last": None,
        "minutes": 1.5,
        "model": "embedded@round-0",
        "critic": "ensemble",
    },
    {
        "round": 1,
        "asr": 0.4,
        "asr_ci": [0.3, 0.5],
        "asr_keyword_bound": 0.6,
        "over_refusal": 0.125,
        "competence": 0.498,
        "competence_ci": [0.455, 0.54],
        "human_labels": 12,
        "pairs": 240,
        "train_loss_first": 0.693,
        "train_loss_last": 0.2512,
        "minutes": 9.25,
        "model": "embedded@round-1",
        "critic": "ensemble",
    },
]


def _write(tmp_path, **meta):
    return write_report(tmp_path / "out", ROUNDS, title="demo <run>", meta=meta or None)


def test_report_is_self_contained_with_table_and_plots(tmp_path):
    path = _write(tmp_path, config='{"rounds": 1}')
    assert path == tmp_path / "out" / "report.html"
    page = path.read_text(encoding="utf-8")
    for text in (
        "0.512 [0.47, 0.55]",
        "0.498 [0.46, 0.54]",
        "0.910 [0.85, 0.95]",
        "0.970",
        "0.125",
        "0.251",
        "240",
        "9.250",
        "embedded@round-1",
        "ensemble",
        "demo &lt;run&gt;",
    ):
        assert text in page, text
    assert page.count('<img src="data:image/png;base64,') == 4  # asr, over-refusal, competence, loss
    png = page.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(png).startswith(b"\x89PNG")
    # readable offline: nothing fetched from elsewhere
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "<link" not in page


def test_examples_escape_untrusted_output(tmp_path):
    examples = [
        {
            "round": 1,
            "prompt": "say <b>hi</b>",
            "response": "<script>alert('pwned')</script>",
            "verdict_explanation": "refusal & safe",
        }
    ]
    page = _write(tmp_path, examples=examples).read_text(encoding="utf-8")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in page
    assert "say &lt;b&gt;hi&lt;/b&gt;" in page and "refusal &amp; safe" in page


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _write(tmp_path)
    _write(tmp_path)  # rewriting is safe
    assert sorted(os.listdir(out)) == ["report.html"]
    old = (out / "report.html").read_text(encoding="utf-8")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    from superalign.errors import UserError

    with pytest.raises(UserError, match="report.html: cannot write"):  # one message a user can act on
        write_report(out, ROUNDS[:1], title="other")
    assert sorted(os.listdir(out)) == ["report.html"]
    assert (out / "report.html").read_text(encoding="utf-8") == old


def test_missing_keys_are_left_out(tmp_path):
    rounds = [{"round": 0, "asr": 0.5, "over_refusal": 0.1, "competence": 0.3, "human_labels": 0}]
    page = write_report(tmp_path, rounds, title="t").read_text(encoding="utf-8")
    assert "train_loss" not in page.split("<h2>Plots</h2>")[0]
    assert page.count("data:image/png;base64,") == 3
    assert write_report(tmp_path, [], title="empty").is_file()


def test_format_table_fixed_width():
    table = format_table(ROUNDS)
    lines = table.splitlines()
    assert lines[0].split() == [
        "round",
        "asr",
        "asr_keyword_bound",
        "over_refusal",
        "competence",
        "human_labels",
        "pairs",
        "train_loss",
        "minutes",
    ]
    assert len({len(line) for line in lines}) == 1  # every line the same width
    assert "0.512 [0.47, 0.55]" in lines[2] and "0.251" in lines[3] and lines[2].split()[-2] == "-"
    assert format_table([]) == "(no rounds yet)"


def test_report_plots_asr_per_attack_style_and_per_held_out_subset():
    from superalign.store.report import render_report

    rows = [
        {"round": 0, "asr": 0.6, "asr_by_subset": {"in-distribution": {"asr": 0.5, "asr_independent": 0.4}}},
        {
            "round": 1,
            "asr": 0.3,
            "attack_asr_by_style": {"plain": {"asr": 0.5, "n": 10}, "template": {"asr": 0.2, "n": 5}},
            "asr_by_subset": {"in-distribution": {"asr": 0.2, "asr_independent": 0.25}},
        },
    ]
    html = render_report(rows, title="t")
    assert "Training-attack ASR by style" in html and "Held-out ASR by subset" in html
    assert "_flat:" not in str(rows)  # the caller's rows are not modified


def test_rounds_count_the_trained_rounds_not_the_rows(tmp_path):
    """A 2-round run has 3 rows (round 0 evaluates the base model): the report said "rounds 3"."""
    rounds = [{**ROUNDS[0]}, {**ROUNDS[1]}, {**ROUNDS[1], "round": 2}]
    page = write_report(tmp_path, rounds, title="t").read_text(encoding="utf-8")
    meta = page.split("<h2>Per-round metrics</h2>")[0]
    assert "<th class='key'>rounds</th><td class='key'>2 trained (rounds 0–2; round 0 evaluates the base model)" in meta
    page = write_report(tmp_path, rounds[:1], title="t").read_text(encoding="utf-8")
    assert "<td class='key'>0 trained (round 0 evaluates the base model)</td>" in page


def test_training_plots_show_the_last_step_loss_and_reward_accuracy_not_the_first_step(tmp_path):
    """DPO's first-step loss is ln 2 for every round (policy = reference): plotting it showed nothing."""
    first_only = [{"round": 0, "asr": 0.5}, {"round": 1, "asr": 0.4, "train_loss_first": 0.6931}]
    page = write_report(tmp_path, first_only, title="t").read_text(encoding="utf-8")
    assert "DPO loss" not in page and "Training loss" not in page  # nothing informative to plot
    rows = [
        {"round": 0, "asr": 0.5, "train_loss_first": None, "train_loss_last": None, "reward_accuracy": None},
        {"round": 1, "asr": 0.4, "train_loss_first": 0.6931, "train_loss_last": 0.17, "reward_accuracy": 0.92},
        {"round": 2, "asr": 0.3, "train_loss_first": 0.6931, "train_loss_last": 0.05, "reward_accuracy": 0.97},
    ]
    page = write_report(tmp_path, rows, title="t").read_text(encoding="utf-8")
    captions = [c.split("</figcaption>")[0] for c in page.split("<figcaption>")[1:]]
    assert "DPO loss at the last training step (ln 2 = 0.693 at the first)" in captions
    assert any(c.startswith("Reward accuracy") for c in captions)
