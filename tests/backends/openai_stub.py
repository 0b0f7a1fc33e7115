"""A tiny OpenAI-compatible server for tests: deterministic, offline, loopback only.

- `GET /v1/models` lists the one served model.
- `POST /v1/chat/completions` replies "echo: <last user message>", cut to `max_tokens` words.
- `POST /v1/completions` with `echo` + `logprobs`: whitespace-separated "tokens", logprob -1.0 each
  (the first is None, as real servers give), correct `text_offset`; `max_tokens` > 0 appends that many
  generated " done" tokens after the echoed prompt.

- With `lora=True`, vLLM's runtime LoRA endpoints: `POST /v1/load_lora_adapter {lora_name, lora_path}` (400 when
  the name is loaded already, when the folder holds no adapter_config.json, or when its rank `r` exceeds
  `max_lora_rank`, with vLLM's messages) and `POST /v1/unload_lora_adapter {lora_name}` (404 when unknown). A loaded
  adapter is listed by `/v1/models` with `parent` = the base model and answers requests under its name.

`serve_stub(...)` runs it with uvicorn in a background thread and yields the base URL
(`http://127.0.0.1:<port>/v1`). Pass a `StubLog` to see what the server received.
"""

# No `from __future__ import annotations`: FastAPI must resolve the routes' local `Request` at runtime.
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

STUB_MODEL = "stub-model"


@dataclass
class StubLog:
    """What the stub saw: request bodies (in arrival order), auth headers, peak concurrent requests."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    adapters: dict[str, str] = field(default_factory=dict)  # loaded LoRA adapters: name -> path
    adapter_events: list[tuple[str, str]] = field(default_factory=list)  # ("load" | "unload", name)
    auth: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self, path: str) -> list[dict[str, Any]]:
        """The JSON bodies posted to `path` (e.g. "/v1/chat/completions")."""
        return [r["body"] for r in self.requests if r["path"] == path]


def make_app(
    log: StubLog,
    model: str = STUB_MODEL,
    fail_first: int = 0,
    min_max_tokens: int = 0,
    supports_logprobs: bool = True,
    delay_s: float = 0.0,
    lora: bool = False,
    max_lora_rank: int = 64,
    reply: Any = None,
) -> Any:
    """The FastAPI app. The first `fail_first` POSTs answer 503; `/v1/completions` rejects
    `max_tokens < min_max_tokens` with 400 (as some servers reject 0), and every logprobs request with
    400 when `supports_logprobs` is False; each POST sleeps `delay_s` so concurrency is observable."""
    from fastapi import Body, FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI()

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse(status_code=status, content={"error": {"message": message, "code": status}})

    def admit(request: Request, body: dict[str, Any]) -> JSONResponse | None:
        """Log the request, apply delay and scripted failures; an error response or None."""
        with log.lock:
            log.requests.append({"path": request.url.path, "body": body})
            log.auth.append(request.headers.get("authorization", ""))
            n = len(log.requests)
            log.in_flight += 1
            log.max_in_flight = max(log.max_in_flight, log.in_flight)
        try:
            time.sleep(delay_s)
        finally:
            with log.lock:
                log.in_flight -= 1
        if n <= fail_first:
            return error(503, "overloaded, try again")
        if body.get("model") != model and body.get("model") not in log.adapters:
            return error(404, f"The model `{body.get('model')}` does not exist.")
        return None

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        data = [{"id": model, "object": "model", "owned_by": "stub", "root": model, "parent": None}]
        data += [{"id": n, "object": "model", "owned_by": "stub", "root": p, "parent": model}
                 for n, p in list(log.adapters.items())]
        return {"object": "list", "data": data}

    if lora:
        from fastapi.responses import PlainTextResponse

        @app.post("/v1/load_lora_adapter", response_model=None)
        def load_lora(request: Request, body: dict = Body(...)) -> Any:  # noqa: B008 - FastAPI idiom
            import json
            from pathlib import Path

            name, path = body.get("lora_name"), body.get("lora_path")
            with log.lock:
                log.requests.append({"path": request.url.path, "body": body})
            if not name or not path:
                return error(400, "Both 'lora_name' and 'lora_path' must be provided.")
            if name in log.adapters:
                return error(400, f"The lora adapter '{name}' has already been loaded.")
            cfg_file = Path(path) / "adapter_config.json"
            if not cfg_file.is_file() or not (Path(path) / "adapter_model.safetensors").is_file():
                return error(400, f"Loading lora {name} failed: No adapter found for {path}")
            r = int(json.loads(cfg_file.read_text()).get("r", 0))
            if r > max_lora_rank:
                return error(400, f"LoRA rank {r} is greater than max_lora_rank {max_lora_rank}.")
            with log.lock:
                log.adapters[name] = path
                log.adapter_events.append(("load", name))
            return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

        @app.post("/v1/unload_lora_adapter", response_model=None)
        def unload_lora(request: Request, body: dict = Body(...)) -> Any:  # noqa: B008 - FastAPI idiom
            name = body.get("lora_name")
            with log.lock:
                log.requests.append({"path": request.url.path, "body": body})
                if name not in log.adapters:
                    return error(404, f"The lora adapter '{name}' cannot be found.")
                del log.adapters[name]
                log.adapter_events.append(("unload", name))
            return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")

    @app.post("/v1/chat/completions", response_model=None)
    def chat(request: Request, body: dict = Body(...)) -> Any:  # noqa: B008 - FastAPI idiom
        if (failed := admit(request, body)) is not None:
            return failed
        last_user = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        text = reply(body) if reply is not None else f"echo: {last_user}"
        words = text.split()[: int(body.get("max_tokens") or 16)]
        return {"object": "chat.completion", "model": model, "choices": [
            {"index": 0, "message": {"role": "assistant", "content": " ".join(words)},
             "finish_reason": "length"}]}

    @app.post("/v1/completions", response_model=None)
    def completions(request: Request, body: dict = Body(...)) -> Any:  # noqa: B008 - FastAPI idiom
        if (failed := admit(request, body)) is not None:
            return failed
        max_tokens = int(body.get("max_tokens", 16))
        if max_tokens < min_max_tokens:
            return error(400, f"max_tokens must be at least {min_max_tokens}")
        if body.get("logprobs") is not None and not supports_logprobs:
            return error(400, "logprobs are not supported by this server")
        prompt = body["prompt"]
        text = (prompt if body.get("echo") else "") + " done" * max_tokens
        spans = [(m.start(), m.group()) for m in re.finditer(r"\S+", text)]
        values: list[float | None] = [-1.0] * len(spans)
        if body.get("echo") and values:
            values[0] = None  # nothing to condition the first prompt token on
        return {"object": "text_completion", "model": model, "choices": [
            {"index": 0, "text": text, "finish_reason": "length",
             "logprobs": {"tokens": [t for _, t in spans], "token_logprobs": values,
                          "text_offset": [o for o, _ in spans], "top_logprobs": None}}]}

    return app


@contextmanager
def serve_stub(port: int = 0, log: StubLog | None = None, **options: Any) -> Iterator[str]:
    """Serve `make_app(log, **options)` on 127.0.0.1:`port` (0 = a free port) until the block ends.

    Yields the base URL, e.g. "http://127.0.0.1:53211/v1", once the server accepts connections.
    """
    import socket

    import uvicorn

    app = make_app(log if log is not None else StubLog(), **options)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10.0
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the OpenAI stub server did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10.0)
        sock.close()
