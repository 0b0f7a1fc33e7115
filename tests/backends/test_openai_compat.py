"""OpenAI-compatible backend against a local FastAPI stub (offline, loopback only, ~seconds)."""

from __future__ import annotations

import socket
import time

import pytest
from openai_stub import STUB_MODEL, StubLog, serve_stub

from superalign.backends import Backend, Sampling, load_backend
from superalign.backends.openai_compat import (
    SPEC_EXAMPLE,
    OpenAICompatBackend,
    continuation_logprob,
    parse_openai_spec,
    render_chatml,
)
from superalign.errors import BackendUnavailable, UserError
from superalign.records import user_chat


def _backend(url: str, **kwargs: object) -> OpenAICompatBackend:
    kwargs.setdefault("backoff_s", 0.01)
    return OpenAICompatBackend(STUB_MODEL, url, **kwargs)  # type: ignore[arg-type]


# ---- spec -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("openai:Qwen2.5-7B@http://127.0.0.1:8000/v1", ("Qwen2.5-7B", "http://127.0.0.1:8000/v1")),
        ("openai:org/model-1B@https://example.test/v1/", ("org/model-1B", "https://example.test/v1")),
        ("openai:m@http://user:pw@127.0.0.1:9/v1", ("m", "http://user:pw@127.0.0.1:9/v1")),
    ],
)
def test_parse_spec_splits_model_and_url(spec: str, expected: tuple[str, str]) -> None:
    assert parse_openai_spec(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "openai:",
        "openai:Qwen",
        "openai:@http://127.0.0.1:8000/v1",
        "openai:Qwen@127.0.0.1:8000",
        "openai:Qwen@http://",
        "Qwen@http://127.0.0.1:8000/v1",
    ],
)
def test_bad_spec_says_what_to_write(spec: str) -> None:
    with pytest.raises(UserError) as err:
        parse_openai_spec(spec)
    assert "openai:<model>@<base_url>" in str(err.value) and SPEC_EXAMPLE in str(err.value)


def test_load_backend_builds_it_from_a_spec() -> None:
    backend = load_backend("openai:Qwen2.5-7B@http://127.0.0.1:8000/v1/")
    assert isinstance(backend, OpenAICompatBackend) and isinstance(backend, Backend)
    assert backend.name == "openai:Qwen2.5-7B" and backend.base_url == "http://127.0.0.1:8000/v1"


def test_api_key_comes_from_env_else_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert OpenAICompatBackend("m", "http://127.0.0.1:1/v1").api_key == "EMPTY"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    log = StubLog()
    with serve_stub(log=log) as url:
        _backend(url).generate([user_chat("hi")], Sampling())
    assert log.auth == ["Bearer sk-test"]


# ---- generate ---------------------------------------------------------------------------------------
def test_generate_returns_replies_in_input_order_with_bounded_concurrency() -> None:
    log = StubLog()
    chats = [user_chat(f"question {i}", system="be brief") for i in range(12)]
    with serve_stub(log=log, delay_s=0.1) as url:
        backend = _backend(url, max_concurrency=4)
        replies = backend.generate(chats, Sampling(max_new_tokens=32))
    assert replies == [f"echo: question {i}" for i in range(12)]
    # requests overlap (never one at a time) but never beyond the bound; a wall-time check failed on a loaded box
    assert 2 <= log.max_in_flight <= 4


def test_generate_sends_row_seeds_and_top_k_only_when_sampling() -> None:
    log = StubLog()
    chats = [user_chat("one two three four"), user_chat("five"), user_chat("six")]
    with serve_stub(log=log) as url:
        backend = _backend(url)
        greedy = backend.generate(chats, Sampling(max_new_tokens=2, seed=7))
        backend.generate(chats, Sampling(temperature=0.7, top_k=20, seed=7))
    assert greedy == ["echo: one", "echo: five", "echo: six"]  # max_tokens honoured
    first, second = log.bodies("/v1/chat/completions")[:3], log.bodies("/v1/chat/completions")[3:]
    from superalign.backends.base import row_seed

    want = {row_seed(7, i) % 2**31: chats[i] for i in range(3)}  # one seed per row: rows differ, runs repeat
    assert sorted(b["seed"] for b in first) == sorted(want)
    assert all("top_k" not in b and b["temperature"] == 0.0 and b["max_tokens"] == 2 for b in first)
    assert all(b["top_k"] == 20 and b["temperature"] == 0.7 for b in second)
    assert all(b["messages"] == want[b["seed"]] for b in first)


def test_generate_retries_a_5xx_then_succeeds() -> None:
    log = StubLog()
    with serve_stub(log=log, fail_first=1) as url:
        replies = _backend(url, max_concurrency=1).generate([user_chat("a"), user_chat("b")], Sampling())
    assert replies == ["echo: a", "echo: b"]
    assert len(log.requests) == 3  # the failed try, its retry, the second chat


def test_persistent_5xx_is_reported_after_the_tries_run_out() -> None:
    log = StubLog()
    with serve_stub(log=log, fail_first=100) as url, pytest.raises(BackendUnavailable) as err:
        _backend(url, max_tries=3).generate([user_chat("a")], Sampling())
    assert "503" in str(err.value) and url in str(err.value)
    assert len(log.requests) == 3


def test_unreachable_server_fails_fast_with_the_url_and_the_fix() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and is closed now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    backend = OpenAICompatBackend("m", url)  # default retries and backoff
    start = time.monotonic()
    with pytest.raises(BackendUnavailable) as err:
        backend.generate([user_chat("hello")] * 3, Sampling())
    assert time.monotonic() - start < 5.0
    message = str(err.value)
    assert f"cannot reach OpenAI-compatible server at {url}" in message
    assert "vllm serve" in message and err.value.__cause__ is None and err.value.__suppress_context__


def test_unknown_model_lists_the_served_models() -> None:
    with serve_stub() as url, pytest.raises(BackendUnavailable) as err:
        OpenAICompatBackend("no-such-model", url).generate([user_chat("hi")], Sampling())
    assert "no-such-model" in str(err.value) and STUB_MODEL in str(err.value)


def test_a_run_checks_the_server_before_it_writes_anything() -> None:
    """check_backend_spec (what a run calls before it creates its directory): one GET /models, no POST;
    a closed port and a model the server does not serve are each one clear error (issue 26, defect 3)."""
    from superalign.backends import check_backend_spec

    log = StubLog()
    with serve_stub(log=log) as url:
        check_backend_spec(f"openai:{STUB_MODEL}@{url}")
        assert log.requests == []  # the stub logs POSTs: nothing was generated
        with pytest.raises(BackendUnavailable, match=f"'other' is not served at {url}; it serves: {STUB_MODEL}"):
            check_backend_spec(f"openai:other@{url}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(
        BackendUnavailable, match=f"cannot reach OpenAI-compatible server at http://127.0.0.1:{port}/v1"
    ):
        check_backend_spec(f"openai:m@http://127.0.0.1:{port}/v1")
    assert time.monotonic() - start < 5.0


# ---- logprobs ---------------------------------------------------------------------------------------
CHATS = [user_chat("hello there"), user_chat("how do I bake bread?", system="You are kind."), user_chat("x")]
CONTINUATIONS = ["Sure thing", "I can't help with that today", ""]


def test_logprobs_sum_exactly_the_continuation_tokens() -> None:
    log = StubLog()
    with serve_stub(log=log) as url:
        scores = _backend(url).logprobs(CHATS, CONTINUATIONS)
    assert scores == [-1.0 * len(c.split()) for c in CONTINUATIONS]
    bodies = log.bodies("/v1/completions")
    assert len(bodies) == 2  # the empty continuation costs no request
    assert all(b["echo"] is True and b["max_tokens"] == 0 for b in bodies)
    assert {b["prompt"] for b in bodies} == {
        render_chatml(CHATS[0]) + "Sure thing",
        render_chatml(CHATS[1]) + CONTINUATIONS[1],
    }


def test_logprobs_falls_back_to_max_tokens_1_and_ignores_the_generated_token() -> None:
    log = StubLog()
    with serve_stub(log=log, min_max_tokens=1) as url:
        backend = _backend(url, max_concurrency=1)
        scores = backend.logprobs(CHATS, CONTINUATIONS)
    assert scores == [-2.0, -6.0, 0.0]
    assert [b["max_tokens"] for b in log.bodies("/v1/completions")] == [0, 1, 1]  # learnt once


def test_server_without_logprobs_points_to_an_hf_backend() -> None:
    with serve_stub(supports_logprobs=False) as url, pytest.raises(UserError) as err:
        _backend(url).logprobs(CHATS[:1], CONTINUATIONS[:1])
    assert "does not support prompt logprobs" in str(err.value) and "HF backend" in str(err.value)


def test_chatml_rendering_and_offsetless_token_accounting() -> None:
    chat = user_chat("hi", system="sys") + [{"role": "assistant", "content": "Sure,"}]
    assert render_chatml(chat) == (
        "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nSure,"
    )
    prefix, cont = "<|im_start|>assistant\n", "Hello world"
    tokens = ["<|im_start|>", "assistant", "\n", "Hello", " world"]  # BPE-like, no text_offset given
    lp = {"tokens": tokens, "token_logprobs": [None, -0.5, -0.25, -1.5, -2.0]}
    assert continuation_logprob(lp, len(prefix + cont), len(prefix)) == -3.5
