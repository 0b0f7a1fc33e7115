"""The review desk: a FastAPI app over a run directory (queue, run overview, promotion gate).

Security model (docs/review.md):
- every request needs the access token: `Authorization: Bearer <token>`, or the HttpOnly,
  SameSite=Strict session cookie that POST /login sets after checking the token (a random session id
  that expires after `session_ttl_s` and that POST /logout ends; held in this process, so a restart
  ends every session too); anything else gets 401;
- every write form carries a CSRF token (an HMAC of the access token); a POST without it gets 403;
- all text is rendered by jinja2 with autoescape, and a Content-Security-Policy forbids scripts, so
  a `<script>` or `onerror=` payload in a prompt or response is inert;
- a label is acknowledged (303, or 200 JSON) only after its SQLite transaction committed; a note,
  reason or reviewer name over its limit is refused (422, nothing written), never cut;
- `serve` binds to 127.0.0.1 unless told otherwise.
"""

# No `from __future__ import annotations`: FastAPI must see the real `Request` type of the handlers.

import errno
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from superalign.errors import UserError

COOKIE = "superalign_session"
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-src 'self'; "
    "form-action 'self'; frame-ancestors 'self'; base-uri 'none'"
)
_VERDICTS = {"unsafe": True, "safe": False, "unsure": None}
SESSION_TTL_S = 8 * 3600  # a working day: then the reviewer logs in again
MAX_NOTE = 2000  # characters of a note or reason
MAX_NAME = 64  # characters of a reviewer name


class FieldTooLong(ValueError):
    """A form field over its limit: answered 422 with this message, nothing written."""


class Sessions:
    """Random session ids with an expiry (seconds of `clock`), in this process: logout ends one."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl_s, self.clock = ttl_s, clock
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def start(self) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            now = self.clock()
            self._expiry = {k: t for k, t in self._expiry.items() if t > now}  # forget expired ones
            self._expiry[sid] = now + self.ttl_s
        return sid

    def valid(self, sid: str) -> bool:
        with self._lock:
            expiry = self._expiry.get(sid)
            if expiry is not None and expiry <= self.clock():
                del self._expiry[sid]
                expiry = None
        return expiry is not None

    def end(self, sid: str) -> None:
        with self._lock:
            self._expiry.pop(sid, None)


def _mac(token: str, purpose: str) -> str:
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def csrf_token(token: str) -> str:
    """The CSRF token that write forms must carry for a desk started with access `token`."""
    return _mac(token, "csrf")


def resolve_token(explicit: str | None = None) -> tuple[str, bool]:
    """(token, generated): the explicit one, else $SUPERALIGN_TOKEN, else a new random one."""
    tok = explicit or os.environ.get("SUPERALIGN_TOKEN", "")
    if tok:
        return tok, False
    return secrets.token_urlsafe(24), True


def create_app(
    run_dir: str | Path, token: str, session_ttl_s: float = SESSION_TTL_S, clock: Callable[[], float] = time.time
) -> Any:
    """The desk's FastAPI app for `run_dir` (its run.sqlite holds queue, labels and gate state); a login
    session lasts `session_ttl_s` seconds of `clock`."""
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

    from superalign.oversight.pages import make_env
    from superalign.oversight.promotion import DecisionRefused, PromotionGate, candidate_versions, promote_if_approved
    from superalign.oversight.queue import ReviewQueue

    _check_token(token)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    queue = ReviewQueue(run_dir / "run.sqlite")
    gate = PromotionGate(run_dir / "run.sqlite")
    env = make_env()
    sessions, csrf = Sessions(session_ttl_s, clock), csrf_token(token)
    app = FastAPI(title="superalign review desk", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(FieldTooLong)
    async def too_long(request: Request, exc: FieldTooLong) -> Any:
        return JSONResponse({"error": str(exc)}, status_code=422)

    def authed(request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and hmac.compare_digest(auth[7:].strip().encode(), token.encode()):
            return True
        return sessions.valid(request.cookies.get(COOKIE, ""))

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable) -> Any:
        if request.url.path != "/login" and not authed(request):
            resp: Any = HTMLResponse(page("login", "Log in", error="Log in first.", authed=False), status_code=401)
        else:
            resp = await call_next(request)
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    def page(name: str, title: str, **ctx: Any) -> str:
        ctx.setdefault("authed", True)
        return env.get_template(name).render(title=title, csrf=csrf, run_name=run_dir.name, **ctx)

    async def form_of(request: Request) -> dict[str, str]:
        """The POSTed form; raises 403 unless it carries the CSRF token."""
        from fastapi import HTTPException

        form = {k: str(v) for k, v in (await request.form()).items()}
        if not hmac.compare_digest(form.get("csrf", "").encode(), csrf.encode()):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page and submit again")
        return form

    def done(request: Request, to: str, body: dict[str, Any]) -> Any:
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(body)
        return RedirectResponse(to, status_code=303)

    @app.get("/login", response_class=HTMLResponse)
    def login_form() -> str:
        return page("login", "Log in", error="", authed=False)

    @app.post("/login")
    async def login(request: Request) -> Any:
        form = await request.form()
        if not hmac.compare_digest(str(form.get("token", "")).encode(), token.encode()):
            return HTMLResponse(page("login", "Log in", error="Wrong token.", authed=False), status_code=401)
        resp = RedirectResponse("/queue", status_code=303)
        resp.set_cookie(
            COOKIE, sessions.start(), httponly=True, samesite="strict", path="/", max_age=int(session_ttl_s)
        )
        return resp

    @app.post("/logout")
    async def logout(request: Request) -> Any:
        await form_of(request)
        sessions.end(request.cookies.get(COOKIE, ""))  # the old cookie is refused from now on
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    @app.get("/")
    def root() -> Any:
        return RedirectResponse("/queue", status_code=303)

    @app.get("/queue", response_class=HTMLResponse)
    def show_queue(show: str = "pending", reviewer: str = "reviewer", saved: str = "", seq: int = 0) -> str:
        items = queue.items(pending_only=show != "all", limit=200)
        # The confirmation of a label or comment just submitted: the event as stored (committed), by seq.
        confirm = next((e for e in queue.events(saved) if e.seq == seq), None) if saved and seq else None
        return page(
            "queue",
            "Queue",
            items=items,
            labels=queue.latest_labels(),
            counts=queue.counts(),
            show_all=show == "all",
            reviewer=reviewer,
            confirm=confirm,
        )

    @app.get("/items/{item_id}", response_class=HTMLResponse)
    def show_item(item_id: str) -> Any:
        it = queue.item(item_id)
        if it is None:
            return HTMLResponse(page("login", "Not found", error=f"No item {item_id}."), status_code=404)
        return page("item", f"Item {item_id}", it=it, events=queue.events(item_id))

    @app.post("/items/{item_id}/label")
    async def label(item_id: str, request: Request) -> Any:
        form = await form_of(request)
        verdict = form.get("verdict", "")
        if verdict not in _VERDICTS:
            return JSONResponse({"error": "verdict must be unsafe, safe or unsure"}, status_code=422)
        try:  # add_label returns after COMMIT: only then do we acknowledge
            ev = queue.add_label(
                item_id, _reviewer(form), _VERDICTS[verdict], form.get("refusal") in ("1", "on"), _note(form, "note")
            )
        except KeyError:
            return JSONResponse({"error": f"no item {item_id}"}, status_code=404)
        return done(request, _saved_url(_reviewer(form), ev), {"seq": ev.seq, "action": ev.action})

    @app.post("/items/{item_id}/comment")
    async def comment(item_id: str, request: Request) -> Any:
        form = await form_of(request)
        try:
            ev = queue.add_comment(item_id, _reviewer(form), _note(form, "note"))
        except KeyError:
            return JSONResponse({"error": f"no item {item_id}"}, status_code=404)
        return done(request, _saved_url(_reviewer(form), ev), {"seq": ev.seq, "action": ev.action})

    @app.get("/overview", response_class=HTMLResponse)
    def overview() -> str:
        from superalign.store.report import cell, report_columns

        rows = _rounds(run_dir / "rounds.jsonl")
        cols = report_columns(rows)
        return page(
            "overview",
            "Run overview",
            cols=cols,
            rows=[[cell(r, c) for c in cols] for r in rows],
            counts=queue.counts(),
            current=gate.current(),
            has_report=(run_dir / "report.html").is_file(),
        )

    @app.get("/report")
    def report() -> Any:
        path = run_dir / "report.html"
        if not path.is_file():
            return HTMLResponse("no report.html yet", status_code=404)
        return Response(path.read_bytes(), media_type="text/html; charset=utf-8")

    @app.get("/promotion", response_class=HTMLResponse)
    def promotion(reviewer: str = "reviewer") -> str:
        names = candidate_versions(run_dir)
        names += [e.version for e in gate.events() if e.version not in names]
        return page(
            "promotion",
            "Promotion gate",
            versions=[(v, gate.status(v)) for v in names],
            current=gate.current(),
            events=gate.events(),
            reviewer=reviewer,
        )

    @app.post("/promotion/{version}")
    async def decide(version: str, request: Request) -> Any:
        form = await form_of(request)
        if form.get("decision") not in ("approve", "reject"):
            return JSONResponse({"error": "decision must be approve or reject"}, status_code=422)
        approve = form.get("decision") == "approve"
        try:  # refused unless `version` is proposed and pending: nothing is written then
            gate.decide(version, approve, _reviewer(form), _note(form, "note"))
        except DecisionRefused as exc:
            return JSONResponse({"error": str(exc)}, status_code=404 if exc.status == "unknown" else 409)
        promoted = approve and promote_if_approved(gate, version, actor=_reviewer(form))
        return done(request, "/promotion", {"version": version, "current": gate.current(), "promoted": promoted})

    _mount_values(app, run_dir, page, form_of, done)
    return app


def _mount_values(app: Any, run_dir: Path, page: Callable[..., str], form_of: Callable, done: Callable) -> None:
    """/values (versions + re-judge reports) and /clarifications (accept / reject model proposals)."""
    from fastapi import Request
    from fastapi.responses import HTMLResponse, JSONResponse

    from superalign.oversight.clarify import ClarificationStore
    from superalign.oversight.rejudge import load_reports
    from superalign.oversight.values import stored_versions

    # GETs read only: the values history and the clarifications table are created by the first write.
    @app.get("/values", response_class=HTMLResponse)
    def values_page() -> str:
        return page("values", "Values", versions=stored_versions(run_dir), reports=load_reports(run_dir))

    @app.get("/clarifications", response_class=HTMLResponse)
    def clarifications(reviewer: str = "reviewer") -> str:
        items = ClarificationStore(run_dir, read_only=True).all()
        items.sort(key=lambda p: p.status != "pending")  # pending first, then decided (stable)
        return page("clarifications", "Value clarifications", items=items, reviewer=reviewer)

    @app.post("/clarifications/{pid}")
    async def decide_clarification(pid: str, request: Request) -> Any:
        form = await form_of(request)
        decision, reason = form.get("decision", ""), _note(form, "reason")
        store = ClarificationStore(run_dir)
        try:  # accept commits the new value version before it answers
            if decision == "accept":
                p = store.accept(pid, _reviewer(form), reason)
            elif decision == "reject":
                p = store.reject(pid, _reviewer(form), reason)
            else:
                return JSONResponse({"error": "decision must be accept or reject"}, status_code=422)
        except UserError as exc:
            code = 404 if str(exc).startswith("no value clarification") else 409 if "already" in str(exc) else 422
            return JSONResponse({"error": str(exc)}, status_code=code)
        return done(request, "/clarifications", {"id": p.id, "status": p.status, "version": p.version})


def _saved_url(reviewer: str, ev: Any) -> str:
    """The queue page that confirms the stored event `ev` (a label or comment just committed)."""
    from urllib.parse import urlencode

    return "/queue?" + urlencode({"reviewer": reviewer, "saved": ev.item_id, "seq": ev.seq})


def _reviewer(form: dict[str, str]) -> str:
    name = " ".join(form.get("reviewer", "").split())
    if len(name) > MAX_NAME:
        raise FieldTooLong(
            f"reviewer is {len(name)} characters; the most is {MAX_NAME}: shorten it (nothing was saved)"
        )
    return name or "reviewer"


def _note(form: dict[str, str], key: str) -> str:
    text = form.get(key, "")
    if len(text) > MAX_NOTE:
        raise FieldTooLong(f"{key} is {len(text)} characters; the most is {MAX_NOTE}: shorten it (nothing was saved)")
    return text


def _rounds(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _check_token(token: str) -> None:
    if len(token) < 8:
        raise UserError(
            f"the access token ($SUPERALIGN_TOKEN) is {len(token)} characters; it must be at least 8 "
            "(set a longer one, or unset it and the desk prints a generated one)"
        )


def _check_bind(host: str, port: int) -> None:
    """UserError (exit 2) if `host:port` cannot be bound: uvicorn logs the error and exits with 1 or 3,
    and 3 means "paused for a human" to this CLI."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OverflowError) as exc:
        raise UserError(f"--host {host}: not an address this machine can bind ({exc}); use 127.0.0.1") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
        try:
            s.bind(addr)
        except OSError as exc:
            why = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise UserError(
                f"--host {host} --port {port}: cannot listen there ({why}); "
                "choose another --port (or stop what is using it)"
            ) from None


def serve(
    run_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    log: Callable[[str], None] = print,
) -> None:
    """Run the desk with uvicorn until interrupted; prints the token when it generated one."""
    import uvicorn

    tok, generated = resolve_token(token)
    _check_token(tok)
    _check_bind(host, port)  # before create_app, which creates run.sqlite in an empty directory
    app = create_app(run_dir, tok)
    if generated:
        log(f"access token (set SUPERALIGN_TOKEN to choose one): {tok}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        log(f"warning: binding to {host}: anyone who can reach it and has the token can label")
    log(f"review desk: http://{host}:{port}/login  (run: {Path(run_dir).resolve()})")
    uvicorn.run(app, host=host, port=port, log_level="warning")
