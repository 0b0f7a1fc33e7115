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


@pytest.mark.parametrize("content, needle", [
    ('{"prompt": "ok"}\n{"prompt": oops}\n', ":2: not valid JSON"),            # malformed JSONL
    ('{"prompt": 42}\n', ":1: 'prompt' must be a string"),                      # wrong field type
    ('["prompt", "hi"]\n', ":1: expected a JSON object"),                         # a row that is not an object
    ('{"text": "hi"}\n', ":1: missing key(s) 'prompt'"),                        # missing field
    ("", "no rows"),                                                             # empty input
])
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


@pytest.mark.parametrize("args, needle", [
    (["--budget", "0"], "Invalid value for '--budget'"),  # typer's own range check (its vendored click)
    (["--budgit", "3"], "No such option: --budgit"),
])
def test_bad_option_values_give_a_usage_error_not_a_traceback(tmp_path, args, needle):
    out = tmp_path / "att"
    r = sa("attack", "--learner", "scripted", "--out", str(out), *args)
    assert r.returncode == 2, (r.returncode, r.stderr[-1500:])
    assert "Traceback" not in r.stderr and needle in r.stderr and "Usage: " in r.stderr
    assert not out.exists()
