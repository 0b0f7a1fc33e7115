"""critic-eval building blocks: honest abstention counting, grouped bootstrap CIs, PyRIT's harm
figures, and the comparison tables (fast, no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from superalign.critic.agreement import (
    binary_block,
    binary_metrics,
    group_bootstrap,
    harm_block,
    harm_reference,
    pyrit_reference,
    write_tables,
)


def test_abstentions_are_counted_not_hidden() -> None:
    m = binary_metrics([True, None, False, None], [True, True, False, False])
    assert m["accuracy"] == 1.0 and m["coverage"] == 0.5 and m["abstained"] == 2
    assert m["accuracy_abstain_wrong"] == 0.5  # every abstention counts as an error here


def test_group_bootstrap_resamples_whole_groups_and_is_deterministic() -> None:
    values = [1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    groups = ["a", "a", "b", "b", "c", "d"]
    stat = lambda idx: float(np.mean([values[i] for i in idx]))  # noqa: E731
    lo, hi = group_bootstrap(stat, groups, n_boot=300)
    assert lo <= 0.5 <= hi and lo < hi
    assert group_bootstrap(stat, groups, n_boot=300) == [lo, hi]
    # one group only: every resample is that group, so the CI collapses onto its value
    assert group_bootstrap(stat, ["a"] * 6, n_boot=50) == [0.5, 0.5]


def test_harm_reference_reads_pyrits_published_mae() -> None:
    ref = harm_reference("violence", 96)
    assert ref["same_dataset"] and ref["n"] == 96 and 0.1 < ref["mae"] < 0.2  # 0.161 in pyrit 1.1.0


def _metrics(tmp_path: Path) -> dict:
    rng = np.random.default_rng(0)
    gold = [bool(g) for g in rng.integers(0, 2, 60)]
    probs = [0.8 if g else 0.2 for g in gold]
    probs[0] = 1.0 - probs[0]  # one error
    groups = [f"g{i // 3}" for i in range(60)]
    cats = ["refusal" if i % 2 else "refusal_extra" for i in range(60)]
    block = binary_block(probs, gold, groups, cats, abstain_below=0.0)
    harm_gold = list(rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], 40))
    harm = harm_block(
        [min(1.0, g + 0.25) for g in harm_gold],
        harm_gold,
        [f"h{i // 2}" for i in range(40)],
        ["violence"] * 20 + ["sexual"] * 20,
    )
    return {
        "critic": "test",
        "folds": 5,
        "refusal": block,
        "objective": block,
        "harm": harm,
        "pyrit": {"refusal": pyrit_reference("refusal", 150), "objective": pyrit_reference("objective", 395)},
    }


def test_blocks_report_f1_cis_categories_calibration_and_mae(tmp_path: Path) -> None:
    m = _metrics(tmp_path)
    r = m["refusal"]
    assert r["accuracy"] == round(59 / 60, 4) and r["f1"] == r["f1_score"] > 0.9
    assert r["ci95"]["accuracy"][0] <= r["accuracy"] <= r["ci95"]["accuracy"][1]
    assert set(r["by_category"]) == {"refusal", "refusal_extra"}
    assert r["calibration"]["n"] == 60 and 0.0 <= r["calibration"]["ece"] <= 1.0
    h = m["harm"]
    assert abs(h["mae"] - h["mae_pooled"]) < 0.05 and 0.0 < h["mae"] <= 0.25
    assert h["by_category"]["violence"]["pyrit_best_mae"] is not None


def test_tables_put_pyrit_beside_ours(tmp_path: Path) -> None:
    write_tables(_metrics(tmp_path), tmp_path)
    md = (tmp_path / "table.md").read_text()
    assert "| refusal accuracy | 0.983 [" in md and "| harm MAE: violence |" in md
    row = next(line for line in md.splitlines() if line.startswith("| objective accuracy"))
    assert "0.896" in row  # PyRIT's best published objective scorer, same 395 responses
    assert "<table" in (tmp_path / "table.html").read_text()


def test_tables_carry_the_gold_block_below_pyrits(tmp_path: Path) -> None:
    from superalign.critic.gold_eval import GOLD_HEADER

    write_tables(
        _metrics(tmp_path), tmp_path, ("Gold test split", GOLD_HEADER, [("unsafe accuracy", "0.880", "0.840")])
    )
    md = (tmp_path / "table.md").read_text()
    assert (
        md.index("| refusal accuracy |") < md.index("Gold test split") < md.index("| unsafe accuracy | 0.880 | 0.840 |")
    )
    assert "Gold test split" in (tmp_path / "table.html").read_text()
