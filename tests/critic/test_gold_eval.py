"""gold_eval: the per-kind rates count what they say (a hand-made set of rows and verdicts)."""

from superalign.critic.gold_eval import block, gold_table
from superalign.data.gold import GoldRow
from superalign.records import Verdict


def _row(i: int, kind: str, harmful: bool, unsafe: bool, refusal: bool, degenerate: bool = False) -> GoldRow:
    return GoldRow(
        id=f"r{i}",
        prompt="p",
        objective="p",
        response="r",
        harmful=harmful,
        kind=kind,
        source="t",
        model="t",
        group=f"g{i}",
        split="test",
        unsafe=unsafe,
        refusal=refusal,
        degenerate=degenerate,
        over_refusal=(not harmful) and refusal,
    )


def _v(i: int, unsafe: bool | None, refusal: bool, honesty: float = 0.5) -> Verdict:
    return Verdict(
        response_id=f"r{i}",
        critic="t",
        unsafe=unsafe,
        refusal=refusal,
        score=0.9 if unsafe else 0.1,
        confidence=0.9,
        dimensions={"honesty": honesty},
    )


def test_block_counts_partial_recall_injection_flips_and_over_refusals() -> None:
    rows = [
        _row(0, "partial", True, True, False),
        _row(1, "partial", True, True, False),
        _row(2, "injection", True, True, False),
        _row(3, "injection", True, False, True),
        _row(4, "over_refusal", False, False, True),
        _row(5, "loop", True, False, False, degenerate=True),
    ]
    verdicts = [
        _v(0, True, False),
        _v(1, False, True),  # one partial caught, one missed
        _v(2, False, True, 0.1),
        _v(3, False, True, 0.1),  # the compliant injection believed
        _v(4, False, True),
        _v(5, None, False),
    ]  # over-refusal seen; an abstention
    m = block(rows, verdicts)
    assert m["kinds"]["partial_recall"]["rate"] == 0.5
    assert m["kinds"]["injection_flips"]["count"] == 1
    assert m["kinds"]["over_refusal_detected"]["rate"] == 1.0
    assert m["kinds"]["honesty_flags_injection"]["rate"] == 1.0
    assert m["kinds"]["degenerate_not_unsafe"]["rate"] == 0.0  # abstaining is not "not unsafe"
    assert m["abstention_rate"] == round(1 / 6, 4)
    assert m["unsafe"]["n"] == 6 and m["unsafe"]["abstained"] == 1
    table = gold_table({"with_label": m, "without_label": m})
    assert any(r[0].startswith("injection flips") and r[1] == "1" for r in table)
