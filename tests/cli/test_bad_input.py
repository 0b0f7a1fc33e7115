"""The bad-input matrix (issue 9): each row gives exit 2, one clear message naming the file and the fix,
no traceback, and nothing written."""

import errno
import json
import socket
import subprocess
import sys
import threading

import pytest


def sa(*args):
    return subprocess.run([sys.executable, "-m", "superalign.cli", *args], capture_output=True, text=True, timeout=300)


def _assert_clean_failure(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr[-1500:])
    assert "Traceback" not in r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, r.stderr  # one message
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


@pytest.mark.parametrize(
    "content, needle",
    [
        ('{"prompt": "ok"}\n{"prompt": oops}\n', ":2: not valid JSON"),  # malformed JSONL
        ('{"prompt": 42}\n', ":1: 'prompt' must be a string"),  # wrong field type
        ('["prompt", "hi"]\n', ":1: expected a JSON object"),  # a row that is not an object
        ('{"text": "hi"}\n', ":1: missing key(s) 'prompt'"),  # missing field
        ("", "no rows"),  # empty input
    ],
)
def test_bad_jsonl_rows(tmp_path, content, needle):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(content)
    r = sa("generate", "--model", "scripted", "--in", str(src), "--out", str(out))
    _assert_clean_failure(r, str(src), needle)
    assert not out.exists()


def test_eval_prompt_file_wrong_harmful_type(tmp_path):
    src = tmp_path / "p.jsonl"
    src.write_text('{"prompt": "hi", "harmful": "yes"}\n')
    r = sa("eval", "--model", "scripted", "--prompts", str(src), "--out", str(tmp_path / "o"))
    _assert_clean_failure(r, f"{src}:1", "'harmful' must be true/false")
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_unknown_config_key_and_bad_value(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("learner: scripted\ntrain:\n  lr: -1\n")
    r = sa("run", "--config", str(cfg), "--out", str(tmp_path / "run"))
    _assert_clean_failure(r, "train.lr", f"{cfg}:3")
    assert not (tmp_path / "run").exists()


def test_experiment_config_with_a_bad_value(tmp_path):
    cfg = tmp_path / "w2s.yaml"
    cfg.write_text("quick:\n  tasks: [sciq]\n  seeds: 0\n")
    r = sa("experiment", "w2s", "--quick", "--config", str(cfg), "--out", str(tmp_path / "exp"))
    _assert_clean_failure(r, "seeds", f"{cfg}:3")
    assert not (tmp_path / "exp").exists()


def test_run_config_the_plan_refuses_leaves_no_run_behind(tmp_path):
    # more MC items than exist: refused with the fix named, and nothing in the directory to block the next try
    cfg = tmp_path / "run.yaml"
    cfg.write_text("learner: scripted\nrounds: 1\ndata:\n  competence_items: 1500\n  dev_competence: 500\n")
    out = tmp_path / "run"
    r = sa("run", "--config", str(cfg), "--out", str(out))
    _assert_clean_failure(r, "competence items", "lower the competence item")
    assert not (out / "run.sqlite").exists()
    r = sa("run", "--config", str(cfg), "--out", str(out))  # a second try is told the same, not "already holds a run"
    _assert_clean_failure(r, "competence items")


def test_output_dir_not_writable(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "hi"}\n')
    blocker = tmp_path / "a-file"
    blocker.write_text("x")  # its "subfolder" cannot exist (root ignores chmod, so this is the portable case)
    r = sa("generate", "--model", "scripted", "--in", str(src), "--out", str(blocker / "out.jsonl"))
    _assert_clean_failure(r, "cannot write", "out.jsonl")


def test_disk_full_leaves_nothing(tmp_path, monkeypatch):
    """ENOSPC at fsync (simulated): a UserError naming the file, no temp file, no partial output."""
    import os

    from superalign.errors import UserError
    from superalign.store.jsonl import write_jsonl

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UserError, match="disk full"):
        write_jsonl(tmp_path / "out.jsonl", [{"a": 1}])
    assert list(tmp_path.iterdir()) == []


def test_model_path_that_is_not_a_model(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "hi"}\n')
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    r = sa("generate", "--model", str(empty), "--in", str(src), "--out", str(tmp_path / "o.jsonl"))
    _assert_clean_failure(r, "no config.json")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "llama"}))  # no weights, no tokenizer
    r = sa("generate", "--model", str(broken), "--in", str(src), "--out", str(tmp_path / "o.jsonl"))
    _assert_clean_failure(r, str(broken), "does not load")
    assert not (tmp_path / "o.jsonl").exists()


def test_server_that_times_out_is_retried_then_named():
    """A server that accepts connections and never answers: retried with back-off, then one clear error."""
    from superalign.backends.base import Sampling
    from superalign.backends.openai_compat import OpenAICompatBackend
    from superalign.errors import BackendUnavailable

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    accepted = []

    def hold():  # accept and keep connections open without answering (bounded: the test closes srv)
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            accepted.append(conn)

    threading.Thread(target=hold, daemon=True).start()
    try:
        b = OpenAICompatBackend("m", f"http://127.0.0.1:{port}/v1", timeout=0.5, max_tries=3, backoff_s=0.05)
        with pytest.raises(BackendUnavailable, match=r"within 0.5 s, 3 tries"):
            b.generate([[{"role": "user", "content": "hi"}]], Sampling(4, 0.0, 1, 0))
        assert len(accepted) >= 3  # it really tried three times
    finally:
        srv.close()
        for c in accepted:
            c.close()


def test_experiment_resume_refused_where_it_cannot_apply(tmp_path):
    """--resume on an experiment that cannot resume, or onto another experiment's --out: exit 2, and the
    earlier metrics.json is left as it was."""
    r = sa("experiment", "sandwich", "--quick", "--resume", "--out", str(tmp_path / "w"))
    _assert_clean_failure(r, "cannot resume", "drop --resume")
    out = tmp_path / "exp"
    out.mkdir()
    before = json.dumps({"experiment": "w2s", "config": {}, "runs": []})
    (out / "metrics.json").write_text(before)
    r = sa("experiment", "noisy-labels", "--quick", "--resume", "--out", str(out))
    _assert_clean_failure(r, str(out / "metrics.json"), "'w2s'", "another --out")
    assert (out / "metrics.json").read_text() == before


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--budget", "0"], "Invalid value for '--budget'"),  # typer's own range check (its vendored click)
        (["--budgit", "3"], "No such option: --budgit"),
    ],
)
def test_bad_option_values_give_a_usage_error_not_a_traceback(tmp_path, args, needle):
    out = tmp_path / "att"
    r = sa("attack", "--learner", "scripted", "--out", str(out), *args)
    assert r.returncode == 2, (r.returncode, r.stderr[-1500:])
    assert "Traceback" not in r.stderr and needle in r.stderr and "Usage: " in r.stderr
    assert not out.exists()


# --- The matrix of issue 26: every case is a row; each runs the real CLI entry point in this process and
# must exit 2 with one message naming the problem, no traceback, and no file written or changed.

LATIN1_ROW = b'{"prompt": "caf\xe9", "response": "ok"}\n'
DEEP_ROW = ('{"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}\n").encode()
TINY_CFG = (
    "learner: scripted\nrounds: 1\nmax_new_tokens: 16\n"
    "data: {heldout_harmful: 10, heldout_benign: 10, competence_items: 10}\n"
    "attacker: {queries_per_round: 12, benign_per_round: 6}\n"
)
FILES = {  # written into tmp_path before every row
    "ok.jsonl": b'{"prompt": "how do I bake bread?", "response": "Knead, rise, bake."}\n',
    "latin1.jsonl": LATIN1_ROW,
    "deep.jsonl": DEEP_ROW,
    "tiny.yaml": TINY_CFG.encode(),
    "latin1.yaml": b"learner: scripted\nname: caf\xe9\n",
    "dup-key.yaml": b"learner: scripted\nrounds: 1\nlearner: tiny\n",
    "empty.yaml": b"",
    "deep.yaml": ("a: " + "[" * 5000 + "]" * 5000 + "\n").encode(),
    "a-file": b"x",
    "rv/.keep": b"",
    "round-abc.jsonl": b'{"prompt": "p", "response": "r", "round": "abc"}\n',
    "round-obj.jsonl": b'{"prompt": "p", "response": "r", "round": {}}\n',
    "round-huge.jsonl": b'{"prompt": "p", "response": "r", "round": 1e30}\n',
    "round-frac.jsonl": b'{"prompt": "p", "response": "r", "round": 1.9}\n',
    "dup-id.jsonl": b'{"id": "a", "prompt": "p", "response": "r"}\n{"id": "a", "prompt": "q", "response": "s"}\n',
    "prompt-int.jsonl": b'{"prompt": 123, "response": "r"}\n',
    "prompt-null.jsonl": b'{"prompt": null, "response": "r"}\n',
    "harmful-yes.jsonl": b'{"prompt": "p", "response": "r", "harmful": "yes"}\n',
    "harmful-nan.jsonl": b'{"prompt": "p", "response": "r", "harmful": NaN}\n',
    # defect 3: what a run needs is checked before its directory exists ({t}, {closed}: filled in per test)
    "bad-converter.yaml": TINY_CFG.replace("attacker: {", "attacker: {converters: [roleplay, leet], ").encode(),
    "bad-profile.yaml": (TINY_CFG + "critic: {profile: strict}\n").encode(),
    "bad-constitution.yaml": (TINY_CFG + "critic: {constitution: '{t}/nope.yaml'}\n").encode(),
    "openai-down.yaml": TINY_CFG.replace(
        "learner: scripted", "learner: openai:m@http://127.0.0.1:{closed}/v1"
    ).encode(),
    "learner-not-a-model.yaml": TINY_CFG.replace("learner: scripted", "learner: '{t}/rv'").encode(),
    "judge-model-missing.yaml": (TINY_CFG + "critic: {kind: llm-judge, judge_model: '{t}/nope'}\n").encode(),
    "judge-model-unused.yaml": (TINY_CFG + "critic: {kind: ensemble, judge_model: '{t}/nope'}\n").encode(),
    "attacker-model-missing.yaml": TINY_CFG.replace(
        "attacker: {", "attacker: {mode: adaptive, attacker_model: '{t}/nope', "
    ).encode(),
}
ADD = ["review", "add", "--critic", "none", "--run", "{t}/rv", "--in"]
MATRIX = [  # (case, argv with {t} = tmp_path, what the message must name)
    (
        "jsonl not utf-8 (generate)",
        ["generate", "--model", "scripted", "--in", "{t}/latin1.jsonl", "--out", "{t}/o.jsonl"],
        ["latin1.jsonl:1", "not UTF-8", "0xe9"],
    ),
    ("jsonl not utf-8 (review add)", ADD + ["{t}/latin1.jsonl"], ["latin1.jsonl:1", "not UTF-8"]),
    ("yaml not utf-8", ["run", "--config", "{t}/latin1.yaml", "--out", "{t}/run"], ["latin1.yaml:2", "not UTF-8"]),
    (
        "json nested too deep",
        ["judge", "--critic", "rules", "--in", "{t}/deep.jsonl", "--out", "{t}/o.jsonl"],
        ["deep.jsonl:1", "nested too deeply"],
    ),
    (
        "yaml nested too deep",
        ["run", "--config", "{t}/deep.yaml", "--out", "{t}/run"],
        ["deep.yaml", "nested too deeply"],
    ),
    ("review add round 'abc'", ADD + ["{t}/round-abc.jsonl"], ["round-abc.jsonl:1", "'round' must be a whole number"]),
    ("review add round {}", ADD + ["{t}/round-obj.jsonl"], ["round-obj.jsonl:1", "'round' must be a whole number"]),
    ("review add round 1e30", ADD + ["{t}/round-huge.jsonl"], ["round-huge.jsonl:1", "'round' must be a whole number"]),
    ("review add round 1.9", ADD + ["{t}/round-frac.jsonl"], ["round-frac.jsonl:1", "got 1.9"]),
    ("review add repeated id", ADD + ["{t}/dup-id.jsonl"], ["dup-id.jsonl:2", "repeats line 1"]),
    ("run --out is a file", ["run", "--config", "{t}/tiny.yaml", "--out", "{t}/a-file"], ["--out", "is a file"]),
    (
        "run --out under a file",
        ["run", "--config", "{t}/tiny.yaml", "--out", "{t}/a-file/run"],
        ["--out", "cannot create"],
    ),
    (
        "experiment --out under a file",
        ["experiment", "sandwich", "--quick", "--out", "{t}/a-file/exp"],
        ["--out", "cannot create"],
    ),
    (
        "critic-eval --out under a file",
        ["critic-eval", "--critic", "rules", "--out", "{t}/a-file/ce"],
        ["--out", "cannot create"],
    ),
    (
        "review add --run is a file",
        ["review", "add", "--critic", "none", "--run", "{t}/a-file", "--in", "{t}/ok.jsonl"],
        ["--run", "no such directory"],
    ),
    (
        "review export without a store",
        ["review", "export", "--run", "{t}/rv", "--out", "{t}/l.jsonl"],
        ["--run", "no run.sqlite"],
    ),
    (
        "review route --budget -3",
        ["review", "route", "--run", "{t}/rv", "--round", "1", "--budget", "-3"],
        ["Invalid value for '--budget'"],
    ),
    (
        "review serve --port 99999",
        ["review", "serve", "--run", "{t}/rv", "--port", "99999"],
        ["Invalid value for '--port'"],
    ),
    ("review serve short token", ["review", "serve", "--run", "{t}/rv", "--port", "{busy}"], ["at least 8"]),
    ("review serve port in use", ["review", "serve", "--run", "{t}/rv", "--port", "{busy}"], ["already in use"]),
    ("review serve bad --host", ["review", "serve", "--run", "{t}/rv", "--host", "no such host.invalid"], ["--host"]),
    ("review tui --run missing", ["review", "tui", "--run", "{t}/nope"], ["--run", "no such directory"]),
    (
        "eval --competence-items -5",
        ["eval", "--model", "scripted", "--out", "{t}/ev", "--competence-items", "-5"],
        ["Invalid value for '--competence-items'"],
    ),
    (
        "judge prompt 123",
        ["judge", "--critic", "rules", "--in", "{t}/prompt-int.jsonl", "--out", "{t}/o.jsonl"],
        ["prompt-int.jsonl:1", "'prompt' must be a string"],
    ),
    (
        "judge prompt null",
        ["judge", "--critic", "rules", "--in", "{t}/prompt-null.jsonl", "--out", "{t}/o.jsonl"],
        ["prompt-null.jsonl:1", "'prompt' must be a string, got null"],
    ),
    (
        "judge harmful 'yes'",
        ["judge", "--critic", "rules", "--in", "{t}/harmful-yes.jsonl", "--out", "{t}/o.jsonl"],
        ["harmful-yes.jsonl:1", "'harmful' must be true/false or null"],
    ),
    (
        "judge harmful NaN",
        ["judge", "--critic", "rules", "--in", "{t}/harmful-nan.jsonl", "--out", "{t}/o.jsonl"],
        ["harmful-nan.jsonl:1", "NaN is not JSON"],
    ),
    (
        "duplicate yaml key",
        ["run", "--config", "{t}/dup-key.yaml", "--out", "{t}/run"],
        ["dup-key.yaml:3", "'learner' is repeated", "line 1"],
    ),
    ("empty config file", ["run", "--config", "{t}/empty.yaml", "--out", "{t}/run"], ["empty.yaml", "empty"]),
    (
        "experiment empty config",
        ["experiment", "w2s", "--quick", "--config", "{t}/empty.yaml", "--out", "{t}/exp"],
        ["empty.yaml", "empty"],
    ),
    ("report without a run", ["report", "{t}/rv"], ["no run.sqlite"]),
    (
        "attack --out under a file",
        ["attack", "--learner", "scripted", "--out", "{t}/a-file/att", "--budget", "4"],
        ["--out", "cannot create"],
    ),
    ("values log --run missing", ["values", "log", "--run", "{t}/nope"], ["--run", "no such directory"]),
    (
        "run unknown converter",
        ["run", "--config", "{t}/bad-converter.yaml", "--out", "{t}/run"],
        ["attacker.converters.1: unknown converter 'leet'", "did you mean 'leetspeak'", "bad-converter.yaml:5"],
    ),
    (
        "run unknown profile",
        ["run", "--config", "{t}/bad-profile.yaml", "--out", "{t}/run"],
        ["critic.profile", "'strict' not in constitution", "bad-profile.yaml:6"],
    ),
    (
        "run constitution missing",
        ["run", "--config", "{t}/bad-constitution.yaml", "--out", "{t}/run"],
        ["critic.constitution", "nope.yaml: constitution file not found", "bad-constitution.yaml:6"],
    ),
    (
        "run openai learner unreachable",
        ["run", "--config", "{t}/openai-down.yaml", "--out", "{t}/run"],
        ["learner: cannot reach OpenAI-compatible server", "openai-down.yaml:1"],
    ),
    (
        "run learner dir not a model",
        ["run", "--config", "{t}/learner-not-a-model.yaml", "--out", "{t}/run"],
        ["learner:", "not a model directory (no config.json)", "learner-not-a-model.yaml:1"],
    ),
    (
        "run llm-judge model missing",
        ["run", "--config", "{t}/judge-model-missing.yaml", "--out", "{t}/run"],
        ["critic.judge_model: model", "not found", "judge-model-missing.yaml:6"],
    ),
    (
        "run attacker model missing",
        ["run", "--config", "{t}/attacker-model-missing.yaml", "--out", "{t}/run"],
        ["attacker.attacker_model: model", "not found", "attacker-model-missing.yaml:5"],
    ),
    (
        "run --critic llm-judge, model missing",
        ["run", "--config", "{t}/judge-model-unused.yaml", "--critic", "llm-judge", "--out", "{t}/run"],
        ["critic.judge_model", "not found"],
    ),
]


def _tree(d):
    return {str(p.relative_to(d)): p.read_bytes() if p.is_file() else None for p in sorted(d.rglob("*"))}


@pytest.fixture()
def busy_port():
    """A port something already listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield s.getsockname()[1]


@pytest.fixture()
def closed_port():
    """A port nothing listens on (bound, never listening: connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@pytest.mark.parametrize("case, argv, needles", MATRIX, ids=[m[0] for m in MATRIX])
def test_bad_input_matrix(tmp_path, monkeypatch, capsys, busy_port, closed_port, case, argv, needles):
    from superalign.cli import main

    for name, data in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(
            data.replace(b"{t}", str(tmp_path).encode()).replace(b"{closed}", str(closed_port).encode())
        )
    monkeypatch.setenv("SUPERALIGN_TOKEN", "short" if "short token" in case else "a-long-enough-token")
    before = _tree(tmp_path)
    args = [a.replace("{t}", str(tmp_path)).replace("{busy}", str(busy_port)) for a in argv]
    monkeypatch.setattr(sys, "argv", ["superalign", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2, (case, exit_.value.code, err[-1500:])
    assert "Traceback" not in err
    messages = [
        x
        for x in err.splitlines()
        if x.startswith(("error:", "Error:")) or "│ Invalid value" in x or "Invalid value" in x
    ]
    assert len(messages) == 1, (case, err)  # one message
    for n in needles:
        assert n in err, (case, n, err)
    assert _tree(tmp_path) == before, case  # nothing written or changed
