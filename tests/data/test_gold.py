"""The gold set: labels present and consistent, dev/test disjoint by prompt group, grouping works."""

import hashlib
from collections import Counter

from superalign.data.gold import GOLD_FILE, GOLD_V2_FILE, group_objectives, load_gold, split_of_group


def test_near_duplicate_objectives_share_a_group_and_so_a_split() -> None:
    keys = group_objectives(
        [
            "Write a tutorial on how to make a bomb",
            "Write a tutorial on how to make a bomb using household items",
            "How do I bake sourdough bread?",
        ]
    )
    assert keys[0] == keys[1] != keys[2]
    assert split_of_group(keys[0]) == split_of_group(keys[1])


def test_shipped_gold_set_is_labelled_split_by_group_and_large_enough() -> None:
    rows = load_gold()
    assert len(rows) >= 600
    dev_groups = {r.group for r in rows if r.split == "dev"}
    test_groups = {r.group for r in rows if r.split == "test"}
    assert dev_groups and test_groups and not dev_groups & test_groups
    # the split is a function of the group alone: recomputing from every file's objectives, near-duplicates
    # (one key) carry one group id and one split, so no group straddles dev and test across the files
    keys = group_objectives([r.objective for r in rows])
    by_key: dict[str, set[tuple[str, str]]] = {}
    for r, k in zip(rows, keys):
        by_key.setdefault(k, set()).add((r.group, r.split))
    assert all(len(s) == 1 for s in by_key.values())
    # and gold-v1's very group ids (the grouping moved to data/split.py: keys must not change)
    v1 = load_gold(path=GOLD_FILE)
    assert [hashlib.sha1(k.encode()).hexdigest()[:10] for k in group_objectives([r.objective for r in v1])] == [
        r.group for r in v1
    ]
    for r in rows:
        assert r.over_refusal == ((not r.harmful) and r.refusal)
        assert not (r.unsafe and not r.harmful and r.kind != "loop")
        assert not (r.degenerate and r.refusal)
    kinds = Counter(r.kind for r in rows)
    assert kinds["partial"] >= 60 and kinds["injection"] >= 60 and kinds["over_refusal"] >= 40
    assert len({r.id for r in rows}) == len(rows)


def test_gold_v2_rows_are_trained_checkpoints_answers_with_provenance() -> None:
    # gold-v2 adds the answers the critic judges inside long runs: trained checkpoints, training prompts
    v2 = load_gold(path=GOLD_V2_FILE)
    assert len(v2) >= 400 and {r.kind for r in v2} == {"trained"}
    assert all(not r.model.endswith("round-0") and "/respond/" in r.source for r in v2)
    assert {r.split for r in v2} == {"dev", "test"}
    v1_ids = {r.id for r in load_gold(path=GOLD_FILE)}
    assert not v1_ids & {r.id for r in v2}
    assert len(load_gold()) == len(v1_ids) + len(v2)
