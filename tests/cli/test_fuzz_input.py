"""Property-based fuzz of what users hand the CLI (issue 26): JSONL rows and config files, valid-looking
and not. Whatever the bytes, reading them gives rows / a config or one UserError, never another
exception (a traceback). Bounded: a fixed number of examples, a per-example deadline, a few seconds."""

import json
import sys
from datetime import timedelta

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="pip install hypothesis (the test extra)")
from hypothesis import (  # noqa: E402
    HealthCheck,
    given,
    settings,
    strategies as st,
)

from superalign.config import RunConfig, load_config  # noqa: E402
from superalign.errors import UserError  # noqa: E402
from superalign.store.jsonl import read_jsonl  # noqa: E402

BOUNDED = settings(
    max_examples=150,
    deadline=timedelta(milliseconds=2000),
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
row_keys = st.sampled_from(["prompt", "response", "harmful", "round", "id", "category", "x"])
rows = st.dictionaries(row_keys, values, max_size=6)


def _line(row_or_bytes):
    if isinstance(row_or_bytes, bytes):
        return row_or_bytes.replace(b"\n", b" ") + b"\n"
    return json.dumps(row_or_bytes, allow_nan=True).encode() + b"\n"  # NaN / Infinity on purpose


jsonl_files = st.lists(st.one_of(rows, st.binary(max_size=40), st.just(b"[" * 3000)), max_size=6).map(
    lambda parts: b"".join(_line(p) for p in parts)
)


@BOUNDED
@given(data=jsonl_files)
def test_jsonl_rows_give_rows_or_one_user_error(tmp_path, data):
    from superalign.oversight.review_cli import _check_rows

    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    try:
        got = read_jsonl(
            path,
            required=["prompt", "response"],
            types={"prompt": (str,), "response": (str,), "harmful": (bool, type(None))},
        )
        _check_rows(path, got)  # what `review add` asks of each row on top
    except UserError as exc:
        assert str(path) in str(exc)
        return
    assert all(isinstance(r["prompt"], str) and isinstance(r["response"], str) for r in got)


@BOUNDED
@given(data=jsonl_files)
def test_review_add_cli_exits_0_or_2(tmp_path, monkeypatch, capsys, data):
    from superalign.cli import main

    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    monkeypatch.setattr(
        sys, "argv", ["superalign", "review", "add", "--critic", "none", "--run", str(run), "--in", str(path)]
    )
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code in (0, 2) and "Traceback" not in err, err[-800:]
    if code == 2:
        assert len([x for x in err.splitlines() if x.startswith("error:")]) == 1


config_keys = st.sampled_from(
    [
        "learner",
        "rounds",
        "seed",
        "max_new_tokens",
        "data",
        "attacker",
        "train",
        "critic",
        "oversight",
        "name",
        "rounds ",
        "<<",
        "batch_size",
    ]
)
config_docs = st.dictionaries(config_keys, values, max_size=5)
yaml_text = st.one_of(
    config_docs.map(lambda d: json.dumps(d, allow_nan=True)),  # JSON is YAML
    st.text(alphabet=st.sampled_from(list("learner: scripted\n  -[]{}&*!|>'\"#%@`,?0.9e\t")), max_size=80),
    st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
)


@BOUNDED
@given(text=yaml_text, latin1=st.booleans())
def test_config_files_give_a_config_or_one_user_error(tmp_path, text, latin1):
    path = tmp_path / "c.yaml"
    path.write_bytes(text.encode("latin-1", errors="replace") if latin1 else text.encode("utf-8", "surrogatepass"))
    try:
        cfg = load_config(path)
    except UserError as exc:
        assert str(path) in str(exc) or "bad config" in str(exc)
        return
    assert isinstance(cfg, RunConfig)
