"""A Backend for any OpenAI-compatible HTTP server (vLLM, llama.cpp server, SGLang, ...), over httpx.

Spec: `openai:<model>@<base_url>`, e.g. `openai:Qwen2.5-7B@http://127.0.0.1:8000/v1`.

- `generate` posts one `/chat/completions` request per chat, at most `max_concurrency` at a time, so
  the server's own batcher (vLLM continuous batching) sees a full queue. Row i gets seed
  `row_seed(params.seed, params.seed_offset + i)`: rows differ, reruns repeat (on servers that honour `seed`).
- `logprobs` posts the chat rendered as text plus the continuation to the legacy `/completions`
  endpoint with `echo` + `logprobs` and sums the continuation's token logprobs. The server's own chat
  template is not reachable over this API, so the chat is rendered in ChatML (see `render_chatml`):
  exact for Qwen-style models, an approximation for others. Use an HF backend for exact scoring.

Connection errors, time-outs, 429 and 5xx are retried with exponential backoff; a server that stays unreachable
raises `BackendUnavailable` with the URL and how to start one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from superalign.backends.base import Sampling, row_seed, score_options_by_logprobs
from superalign.errors import BackendUnavailable, UserError
from superalign.records import Chat

if TYPE_CHECKING:
    import httpx

SPEC_EXAMPLE = "openai:Qwen2.5-7B@http://127.0.0.1:8000/v1"
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
T = TypeVar("T")
R = TypeVar("R")


def parse_openai_spec(spec: str) -> tuple[str, str]:
    """`openai:<model>@<base_url>` -> (model, base_url without trailing '/'); UserError if malformed."""
    body = spec[len("openai:") :] if spec.startswith("openai:") else ""
    from urllib.parse import urlsplit

    model, _, url = body.partition("@")  # first '@': the URL may itself hold user:pass@host
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if not model.strip() or parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(
            f"bad OpenAI-compatible model spec '{spec}': write openai:<model>@<base_url>, e.g. {SPEC_EXAMPLE}"
        )
    return model.strip(), url


def render_chatml(chat: Chat) -> str:
    """The chat as ChatML text ending with the assistant generation prompt.

    A final `assistant` message is a prefill, appended without an end-of-turn marker (as HFBackend
    does). This stands in for the server's chat template, which the completions API cannot apply.
    """
    prefill = ""
    if chat and chat[-1]["role"] == "assistant":
        chat, prefill = chat[:-1], chat[-1]["content"]
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in chat)
    return turns + "<|im_start|>assistant\n" + prefill


def continuation_logprob(logprobs: dict[str, Any], prompt_len: int, cut: int) -> float:
    """Sum of token logprobs over the tokens that overlap text[cut:prompt_len].

    `logprobs` is a legacy-completions `choices[0].logprobs` object. Token i spans
    [text_offset[i], text_offset[i+1]); a token straddling `cut` counts as continuation. Tokens at or
    past `prompt_len` were generated (servers that need max_tokens >= 1) and are ignored. Without
    `text_offset` the offsets are rebuilt from the token strings' lengths (approximate for byte tokens).
    """
    tokens = list(logprobs.get("tokens") or [])
    values = list(logprobs.get("token_logprobs") or [])
    offsets = logprobs.get("text_offset")
    if not offsets:
        offsets, pos = [], 0
        for tok in tokens:
            offsets.append(pos)
            pos += len(tok)
    total = 0.0
    for i, value in enumerate(values):
        start = offsets[i]
        end = offsets[i + 1] if i + 1 < len(offsets) else start + len(tokens[i] if i < len(tokens) else "")
        if value is not None and end > cut and start < prompt_len:
            total += float(value)
    return total


class OpenAICompatBackend:
    """A Backend served over HTTP by an OpenAI-compatible server. Thread-safe; call `close()` when done.

    `api_key` defaults to $OPENAI_API_KEY, else "EMPTY" (what vLLM accepts). `timeout` is seconds per
    request; `max_tries` attempts per request with `backoff_s * 2**k` seconds between them.
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_concurrency: int = 8,
        max_tries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key if api_key is not None else (os.environ.get("OPENAI_API_KEY") or "EMPTY")
        self.timeout = timeout
        self.max_concurrency = max(1, max_concurrency)
        self.max_tries = max(1, max_tries)
        self.backoff_s = backoff_s
        self.name = f"openai:{model}"
        self._client: httpx.Client | None = None
        self._score_max_tokens: int | None = None  # 0 (vLLM) or 1, found on the first scoring call

    # ---- protocol -------------------------------------------------------------------------------
    def generate(self, chats: Sequence[Chat], params: Sampling) -> list[str]:
        """One assistant reply per chat, in input order (requests run concurrently)."""

        def one(i: int, chat: Chat) -> str:
            payload: dict[str, Any] = {
                "model": self.model,
                "messages": list(chat),
                "max_tokens": params.max_new_tokens,
                "temperature": params.temperature,
                "seed": row_seed(params.seed, params.seed_offset + i) % 2**31,
            }
            if params.temperature > 0 and params.top_k > 0:
                payload["top_k"] = params.top_k  # a vLLM / llama.cpp extension, meaningless when greedy
            if chat and chat[-1]["role"] == "assistant":  # prefill: vLLM continues the final message
                payload.update(continue_final_message=True, add_generation_prompt=False)
            body = self._json(self._post("/chat/completions", payload), "/chat/completions")
            return (body["choices"][0]["message"].get("content") or "").strip()

        return self._map(one, chats)

    def logprobs(self, chats: Sequence[Chat], continuations: Sequence[str]) -> list[float]:
        """Sum of log P(continuation | ChatML-rendered chat) in nats, from the server's echoed logprobs."""
        if len(chats) != len(continuations):
            raise ValueError(f"{len(chats)} chats but {len(continuations)} continuations")

        def one(i: int, chat: Chat) -> float:
            if not continuations[i]:
                return 0.0
            prefix = render_chatml(chat)
            prompt = prefix + continuations[i]
            lp = self._echo_logprobs(prompt)
            return continuation_logprob(lp, len(prompt), len(prefix))

        return self._map(one, chats)

    def logprobs_text(self, prefixes: Sequence[str], continuations: Sequence[str]) -> list[float]:
        """Sum of log P(continuation | prefix) over plain text (no chat template), in nats: competence scoring
        (evaluate.competence) through the server's echoed prompt logprobs."""
        if len(prefixes) != len(continuations):
            raise ValueError(f"{len(prefixes)} prefixes but {len(continuations)} continuations")

        def one(i: int, prefix: str) -> float:
            if not continuations[i]:
                return 0.0
            prompt = prefix + continuations[i]
            return continuation_logprob(self._echo_logprobs(prompt), len(prompt), len(prefix))

        return self._map(one, prefixes)

    def score_options(self, prefixes: Sequence[str], options: Sequence[Sequence[str]]) -> list[list[float]]:
        """Sum log P(option | prefix) per option: one echoed-logprobs request per (prefix, option)."""
        return score_options_by_logprobs(self, prefixes, options)

    def close(self) -> None:
        """Close the HTTP connection pool (the backend reopens it if used again)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # ---- HTTP -----------------------------------------------------------------------------------
    def _map(self, fn: Callable[[int, T], R], items: Sequence[T]) -> list[R]:
        """fn(i, item) for every item on a bounded thread pool; results in input order; first error wins."""
        from concurrent.futures import ThreadPoolExecutor

        if not items:
            return []
        self._http()  # create the client once, before the threads race for it
        pool = ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items)))
        try:
            futures = [pool.submit(fn, i, item) for i, item in enumerate(items)]
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _http(self) -> httpx.Client:
        import httpx

        if self._client is None:
            self._client = httpx.Client(
                timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
                limits=httpx.Limits(max_connections=self.max_concurrency),
                headers={"Authorization": f"Bearer {self.api_key}"},
            )
        return self._client

    def _unreachable(self, reason: str) -> BackendUnavailable:
        return BackendUnavailable(
            f"cannot reach OpenAI-compatible server at {self.base_url}: {reason}. Start the server "
            "(e.g. `vllm serve MODEL` or `python -m llama_cpp.server`) or fix the URL."
        )

    def _post(self, path: str, payload: dict[str, Any]) -> httpx.Response:
        """POST with retries (back-off) on connection errors, time-outs, 429 and 5xx; the last response is
        returned as is."""
        import httpx

        retry_errors = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError)
        for attempt in range(self.max_tries):
            last = attempt + 1 == self.max_tries
            try:
                response = self._http().post(self.base_url + path, json=payload)
            except retry_errors as exc:
                if last:
                    raise self._unreachable(str(exc) or type(exc).__name__) from None
            except httpx.TimeoutException:  # an overloaded server often answers the next try
                if last:
                    raise self._unreachable(
                        f"no answer to POST {path} within {self.timeout:g} s, {self.max_tries} tries with back-off"
                    ) from None
            except httpx.HTTPError as exc:
                raise self._unreachable(str(exc) or type(exc).__name__) from None
            else:
                if response.status_code not in _RETRY_STATUS or last:
                    return response
            time.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")  # the loop always returns or raises on its last try

    def _json(self, response: httpx.Response, path: str) -> dict[str, Any]:
        """The body of a 2xx response; otherwise the error a user can act on."""
        if response.status_code == 404:
            self._raise_if_model_missing()
        if response.status_code in _RETRY_STATUS:
            raise BackendUnavailable(
                f"OpenAI-compatible server at {self.base_url} answered {response.status_code} to POST "
                f"{path} {self.max_tries} times: {response.text[:300]}"
            )
        if response.status_code >= 400:
            raise UserError(
                f"OpenAI-compatible server at {self.base_url} rejected POST {path} "
                f"({response.status_code}): {response.text[:300]}"
            )
        try:
            return response.json()
        except ValueError:
            raise UserError(f"{self.base_url}{path} did not answer JSON: {response.text[:200]!r}") from None

    def check_served(self) -> None:
        """One GET /models, before a run writes anything: BackendUnavailable when the server does not answer
        or lists models without `self.model`. A server that answers without a listing passes (the listing
        is optional in the API; the first real request names any other problem). Loads nothing."""
        import httpx

        try:
            listing = self._http().get(self.base_url + "/models")
        except httpx.HTTPError as exc:
            raise self._unreachable(str(exc) or type(exc).__name__) from None
        finally:
            self.close()
        self._raise_if_not_listed(listing)

    def _raise_if_model_missing(self) -> None:
        """BackendUnavailable listing the served models when `self.model` is not among them."""
        import httpx

        try:
            listing = self._http().get(self.base_url + "/models")
        except httpx.HTTPError:
            return
        self._raise_if_not_listed(listing)

    def _raise_if_not_listed(self, listing: httpx.Response) -> None:
        try:
            served = [m["id"] for m in listing.json().get("data", [])] if listing.status_code == 200 else []
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        if served and self.model not in served:
            raise BackendUnavailable(
                f"model '{self.model}' is not served at {self.base_url}; it serves: {', '.join(served)}. "
                f"Use e.g. openai:{served[0]}@{self.base_url}"
            )

    def _echo_logprobs(self, prompt: str) -> dict[str, Any]:
        """choices[0].logprobs for `prompt` echoed with max_tokens 0 (vLLM), else 1 (servers needing it)."""
        tries = [self._score_max_tokens] if self._score_max_tokens is not None else [0, 1]
        response = None
        for max_tokens in tries:
            payload = {
                "model": self.model,
                "prompt": prompt,
                "echo": True,
                "logprobs": 1,
                "max_tokens": max_tokens,
                "temperature": 0.0,
            }
            response = self._post("/completions", payload)
            if response.status_code < 400:
                self._score_max_tokens = max_tokens
                break
            if response.status_code not in (400, 422):  # only a rejected max_tokens 0 is worth a retry
                break
        assert response is not None
        status = response.status_code
        if status == 404:
            self._raise_if_model_missing()
        if status in (400, 404, 405, 422, 501):  # the endpoint or its echo/logprobs options are missing
            raise self._no_logprobs(f"POST /completions answered {status}: {response.text[:200]}")
        body = self._json(response, "/completions")
        logprobs = (body.get("choices") or [{}])[0].get("logprobs") or {}
        if not logprobs.get("token_logprobs"):
            raise self._no_logprobs("the answer carried no prompt token logprobs")
        return logprobs

    def _no_logprobs(self, detail: str) -> UserError:
        return UserError(
            f"OpenAI-compatible server at {self.base_url} does not support prompt logprobs "
            f"(/completions with echo + logprobs): {detail}. Score with an HF backend instead "
            "(--model embedded or an HF model directory); this server can still generate."
        )
