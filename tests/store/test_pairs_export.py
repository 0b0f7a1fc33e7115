"""`superalign pairs export`: a run's preference pairs as TRL's conversational preference dataset."""

import json
import sys
from pathlib import Path

import pytest

from superalign.errors import UserError
from superalign.records import Pair
from superalign.store.pairs_export import preference_rows
from superalign.store.runstore import RunStore


def _main(monkeypatch, *args):
    from superalign.cli import main

    monkeypatch.setattr(sys, "argv", ["superalign", *map(str, args)])
    try:
        main()
    except SystemExit as exc:
        return exc.code
    return 0


def _pair(text, kind="refuse-harmful", provenance="critic", system=None):
    prompt = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return Pair(prompt, f"no: {text}", f"yes: {text}", 2.0, provenance, kind, f"q-{text}")


@pytest.fixture()
def store(tmp_path):
    with RunStore(tmp_path / "run" / "run.sqlite") as s:
        s.commit_step(0, "eval", payload={"round": 0})
        s.commit_step(1, "pairs", pairs=[_pair("a", system="Be safe."), _pair("b", "help-benign")])
        s.commit_step(2, "pairs", pairs=[_pair("c"), _pair("a", provenance="replay")])
        yield s


def test_rows_are_trl_conversational_preference_rows_by_round(store):
    rows = preference_rows(store)
    assert [r["prompt"][-1]["content"] for r in rows] == ["a", "b", "c"]  # round order, replayed "a" left out
    assert rows[0] == {
        "prompt": [{"role": "system", "content": "Be safe."}, {"role": "user", "content": "a"}],
        "chosen": [{"role": "assistant", "content": "no: a"}],
        "rejected": [{"role": "assistant", "content": "yes: a"}],
    }
    assert [r["prompt"][-1]["content"] for r in preference_rows(store, [2], replay=True)] == ["c", "a"]
    meta = preference_rows(store, [2], meta=True)
    assert meta == [
        {
            **preference_rows(store, [2])[0],
            "round": 2,
            "kind": "refuse-harmful",
            "provenance": "critic",
            "weight": 2.0,
            "query_id": "q-c",
        }
    ]
    with pytest.raises(UserError, match="--round 0: no preference pairs in that round; rounds with pairs: 1, 2"):
        preference_rows(store, [0])


def test_cli_writes_the_file_atomically_and_refuses_what_it_cannot_do(store, tmp_path, monkeypatch, capsys):
    run, out = tmp_path / "run", tmp_path / "export" / "pairs.jsonl"
    assert _main(monkeypatch, "pairs", "export", run, "--out", out, "--round", "1") == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["prompt"][-1]["content"] for r in rows] == ["a", "b"]
    assert not [p for p in out.parent.iterdir() if p.name != "pairs.jsonl"]  # no temp file left
    assert _main(monkeypatch, "pairs", "export", run, "--out", out, "--round", "3") == 2
    assert "rounds with pairs: 1, 2" in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 2  # the earlier file is untouched
    assert _main(monkeypatch, "pairs", "export", tmp_path, "--out", out) == 2
    assert "no run.sqlite" in capsys.readouterr().err


def test_a_scripted_runs_export_loads_as_a_dataset_trl_takes(tmp_path, monkeypatch):
    from superalign.config import load_config
    from superalign.loop import run_loop

    run = tmp_path / "run"
    run_loop(load_config("configs/scripted.yaml", rounds=1), run, log=lambda m: None)
    out = tmp_path / "pairs.jsonl"
    assert _main(monkeypatch, "pairs", "export", run, "--out", out) == 0
    with RunStore(run / "run.sqlite") as s:
        n = sum(p.provenance != "replay" for p in s.pairs(round=1, step="pairs"))
    assert n > 0 and len(out.read_text().splitlines()) == n
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_json(str(out), cache_dir=str(tmp_path / "hf-cache"))
    assert ds.column_names == ["prompt", "chosen", "rejected"] and len(ds) == n
    pytest.importorskip("trl")
    from transformers import AutoTokenizer
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    from superalign.backends.embedded import tokenizer_dir

    row = ds[0]
    assert is_conversational(row)
    text = maybe_apply_chat_template(row, AutoTokenizer.from_pretrained(Path(tokenizer_dir())))
    assert row["prompt"][-1]["content"] in text["prompt"]
    assert text["chosen"].startswith(row["chosen"][0]["content"])  # the answer, after the prompt's template
    assert text["rejected"].startswith(row["rejected"][0]["content"])
