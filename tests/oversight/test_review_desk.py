"""The web desk through FastAPI's TestClient: auth, CSRF, escaping, durable labels, the promotion gate;
and the `review add` / `review tui` commands."""

from __future__ import annotations

import io
import json
import sys

import pytest
from review_fixtures import TOKEN, XSS_PROMPT, XSS_RESPONSE

from superalign.oversight.desk import COOKIE, create_app, csrf_token
from superalign.oversight.promotion import PromotionGate, promote_if_approved
from superalign.oversight.queue import ReviewQueue

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _client(run_dir, **kw):
    from fastapi.testclient import TestClient

    return TestClient(create_app(run_dir, TOKEN), follow_redirects=False, **kw)


def _label(client, item="item-1", verdict="unsafe", csrf=True, **extra):
    data = {"verdict": verdict, "reviewer": "alice", "note": "n", **extra}
    if csrf:
        data["csrf"] = csrf_token(TOKEN)
    return client.post(f"/items/{item}/label", data=data, headers=AUTH)


def test_every_page_and_write_needs_the_token(run_dir):
    c = _client(run_dir)
    for path in ("/queue", "/overview", "/promotion", "/items/item-1", "/report", "/"):
        assert c.get(path).status_code == 401, path
        assert c.get(path, headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    r = c.post("/items/item-1/label", data={"verdict": "unsafe", "csrf": csrf_token(TOKEN)})
    assert r.status_code == 401
    assert ReviewQueue(run_dir / "run.sqlite").latest_labels() == {}
    assert c.get("/queue", headers=AUTH).status_code == 200
    assert c.post("/login", data={"token": "nope-nope"}).status_code == 401
    r = c.post("/login", data={"token": TOKEN})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith(COOKIE + "=")
    assert "httponly" in cookie and "samesite=strict" in cookie and TOKEN.lower() not in cookie
    assert c.get("/queue").status_code == 200  # the session cookie now authenticates


def test_logout_ends_the_session_and_sessions_expire(run_dir):
    """The cookie is a random session id, not a value derived from the token: logging out ends it (the
    old cookie is refused afterwards) and it expires by itself (issue 26, defect 7)."""
    from fastapi.testclient import TestClient

    now = [1_000_000.0]
    c = TestClient(create_app(run_dir, TOKEN, session_ttl_s=60, clock=lambda: now[0]), follow_redirects=False)

    def login():
        r = c.post("/login", data={"token": TOKEN})
        assert "max-age=60" in r.headers["set-cookie"].lower()
        c.cookies.clear()  # each request below names its cookie
        return r.cookies[COOKIE]

    def get_queue(sid):
        return c.get("/queue", headers={"Cookie": f"{COOKIE}={sid}"}).status_code

    first, second = login(), login()
    assert first != second and TOKEN not in first  # a fresh random id per login
    assert get_queue(first) == 200 and get_queue(second) == 200
    assert (
        c.post("/logout", data={"csrf": csrf_token(TOKEN)}, headers={"Cookie": f"{COOKIE}={first}"}).status_code == 303
    )
    assert get_queue(first) == 401  # a cookie kept from before the logout
    assert get_queue(second) == 200  # another session (another browser) goes on
    now[0] += 61
    assert get_queue(second) == 401  # expired
    assert get_queue(login()) == 200
    assert c.get("/queue", headers=AUTH).status_code == 200  # the token itself still works


@pytest.mark.parametrize(
    "path, field, size",
    [
        ("/items/item-1/label", "note", 2001),
        ("/items/item-1/label", "reviewer", 65),
        ("/items/item-1/comment", "note", 2001),
        ("/promotion/round-1", "note", 2001),
        ("/promotion/round-1", "reviewer", 65),
    ],
)
def test_overlong_notes_and_names_are_refused_not_cut(run_dir, path, field, size):
    """A note or reviewer name over its limit gets 422 naming the limit, and nothing is written (they were
    cut and acknowledged as success)."""
    gate = PromotionGate(run_dir / "run.sqlite")
    gate.propose("round-1")
    queue = ReviewQueue(run_dir / "run.sqlite")
    before = (queue.events("item-1"), gate.events())
    data = {
        "csrf": csrf_token(TOKEN),
        "verdict": "unsafe",
        "decision": "approve",
        "reviewer": "alice",
        field: "x" * size,
    }
    r = _client(run_dir).post(path, headers={**AUTH, "Accept": "application/json"}, data=data)
    assert r.status_code == 422, r.text
    assert f"{field} is {size} characters" in r.json()["error"] and "shorten it" in r.json()["error"]
    assert (queue.events("item-1"), gate.events()) == before
    ok = _client(run_dir).post(
        path, headers={**AUTH, "Accept": "application/json"}, data={**data, field: "y" * (size - 1)}
    )
    assert ok.status_code == 200, ok.text
    events = queue.events("item-1") if path.startswith("/items") else gate.events()
    attr = field if field == "note" else "reviewer" if path.startswith("/items") else "actor"
    assert any(getattr(e, attr) == "y" * (size - 1) for e in events)  # stored whole


def test_writes_without_the_csrf_token_are_rejected(run_dir):
    c = _client(run_dir)
    assert _label(c, csrf=False).status_code == 403
    assert _label(c, csrf=False, csrf_field="x").status_code == 403
    bad = c.post("/items/item-1/label", headers=AUTH, data={"verdict": "safe", "csrf": "forged"})
    assert bad.status_code == 403
    assert c.post("/promotion/round-1", headers=AUTH, data={"decision": "approve"}).status_code == 403
    assert ReviewQueue(run_dir / "run.sqlite").latest_labels() == {}
    ok = _label(c)
    assert ok.status_code == 303
    assert ReviewQueue(run_dir / "run.sqlite").latest_labels()["item-1"].unsafe is True


def test_model_and_attacker_text_is_escaped(run_dir):
    c = _client(run_dir)
    page = c.get("/queue", headers=AUTH)
    body = page.text
    assert "<script>alert" not in body and "<img src=x" not in body and "<b>bold?</b>" not in body
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    assert "<script" not in body.lower()  # the desk itself ships no script either
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    detail = c.get("/items/item-0", headers=AUTH).text
    assert XSS_PROMPT not in detail and XSS_RESPONSE not in detail and "&lt;script&gt;" in detail
    reflected = c.get("/queue", headers=AUTH, params={"reviewer": '"><script>x()</script>'}).text
    assert "<script>x()" not in reflected


def test_labels_survive_a_server_restart(run_dir):
    c1 = _client(run_dir)
    assert _label(c1, "item-2", "safe", refusal="1").status_code == 303
    assert _label(c1, "item-3", "unsure", headers=None).status_code == 303
    r = c1.post(
        "/items/item-4/label",
        headers={**AUTH, "Accept": "application/json"},
        data={"verdict": "unsafe", "csrf": csrf_token(TOKEN), "reviewer": "bob"},
    )
    assert r.status_code == 200 and r.json()["action"] in ("label", "override")
    del c1
    c2 = _client(run_dir)  # a new app over the same run directory = a restarted server
    labels = ReviewQueue(run_dir / "run.sqlite").latest_labels()
    assert (labels["item-2"].unsafe, labels["item-2"].refusal) == (False, True)
    assert labels["item-3"].unsafe is None and labels["item-4"].reviewer == "bob"
    pending = c2.get("/queue", headers=AUTH).text
    assert 'data-item="item-2"' not in pending and 'data-item="item-1"' in pending
    assert "3 pending · 3 labelled · 6 items" in pending
    assert 'data-item="item-2"' in c2.get("/queue?show=all", headers=AUTH).text
    assert (
        c2.post("/items/nope/label", headers=AUTH, data={"verdict": "safe", "csrf": csrf_token(TOKEN)}).status_code
        == 404
    )


def test_promotion_gate_in_the_desk(run_dir):
    for k in (1, 2):
        (run_dir / "checkpoints" / f"round-{k}").mkdir(parents=True)
        PromotionGate(run_dir / "run.sqlite").propose(f"round-{k}")
    c = _client(run_dir)
    page = c.get("/promotion", headers=AUTH).text
    assert 'id="current">round-0<' in page and 'action="/promotion/round-1"' in page
    data = {"csrf": csrf_token(TOKEN), "reviewer": "carol", "decision": "reject"}
    assert c.post("/promotion/round-1", headers=AUTH, data=data).status_code == 303
    page = c.get("/promotion", headers=AUTH).text
    assert 'id="current">round-0<' in page and 'action="/promotion/round-1"' not in page  # decided: no form
    r = c.post(
        "/promotion/round-2", headers={**AUTH, "Accept": "application/json"}, data={**data, "decision": "approve"}
    )
    assert r.json() == {"version": "round-2", "current": "round-2", "promoted": True}
    assert 'id="current">round-2<' in _client(run_dir).get("/promotion", headers=AUTH).text


@pytest.mark.parametrize(
    "version, decision, status",
    [
        ("round-2", "approve", 404),  # not proposed yet: approving it early was the bypass (issue 26)
        ("round-999", "approve", 404),  # no such round
        ("<b>", "approve", 404),  # not a version at all
        ("round-1", "approve", 409),  # already rejected: decided once
        ("round-3", "approve", 409),  # already promoted
        ("round-4", "maybe", 422),  # proposed, but not a decision
        ("round-4", "", 422),  # a missing decision used to count as a rejection
    ],
)
def test_desk_refuses_decisions_on_versions_not_pending(run_dir, version, decision, status):
    gate = PromotionGate(run_dir / "run.sqlite")
    for k in (1, 3, 4):
        gate.propose(f"round-{k}")
    gate.decide("round-1", False, "carol")
    gate.decide("round-3", True, "carol")
    assert promote_if_approved(gate, "round-3")
    before = gate.events()
    r = _client(run_dir).post(
        f"/promotion/{version}",
        headers={**AUTH, "Accept": "application/json"},
        data={"csrf": csrf_token(TOKEN), "reviewer": "mallory", "decision": decision},
    )
    assert r.status_code == status and "error" in r.json()
    assert gate.events() == before and gate.current() == "round-3"  # nothing written


def test_overview_shows_rounds_and_report(run_dir):
    (run_dir / "rounds.jsonl").write_text(
        json.dumps({"round": 0, "asr": 0.75, "over_refusal": 0.1})
        + "\n"
        + json.dumps({"round": 1, "asr": 0.25, "over_refusal": 0.2})
        + "\n"
    )
    (run_dir / "report.html").write_text("<html><body>plots</body></html>")
    c = _client(run_dir)
    page = c.get("/overview", headers=AUTH).text
    assert "0.750" in page and "0.250" in page and 'src="/report"' in page
    assert c.get("/report", headers=AUTH).text == "<html><body>plots</body></html>"


def _main(monkeypatch, *args):
    from superalign.cli import main

    monkeypatch.setattr(sys, "argv", ["superalign", *args])
    try:
        main()
    except SystemExit as exc:
        return exc.code
    return 0


def test_review_add_enqueues_rows_and_names_the_bad_line(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    run.mkdir()
    good = tmp_path / "good.jsonl"
    good.write_text(
        json.dumps({"prompt": "how do I hotwire a car", "response": "Sure, step 1: ...", "harmful": True})
        + "\n\n"
        + json.dumps({"prompt": "kill a python process?", "response": "Use kill PID."})
        + "\n"
    )
    assert _main(monkeypatch, "review", "add", "--run", str(run), "--in", str(good), "--critic", "none") == 0
    items = ReviewQueue(run / "run.sqlite").items()
    assert sorted(i.prompt for i in items) == ["how do I hotwire a car", "kill a python process?"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"prompt": "p", "response": "r"}) + "\n\n" + json.dumps({"prompt": "p2", "response": 3}) + "\n"
    )
    assert _main(monkeypatch, "review", "add", "--run", str(run), "--in", str(bad)) == 2
    assert f"{bad}:3" in capsys.readouterr().err
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "p", "response": "r"}\n{not json\n')
    assert _main(monkeypatch, "review", "add", "--run", str(run), "--in", str(broken)) == 2
    assert f"{broken}:2" in capsys.readouterr().err
    assert len(ReviewQueue(run / "run.sqlite").items()) == 2  # nothing from the bad files


def test_terminal_desk_labels_items_and_prints_payloads_literally(run_dir):
    from rich.console import Console

    from superalign.oversight.tui import review_in_terminal

    answers = iter(
        [
            "u",
            "n",
            "it complies",  # item-0: unsafe, no refusal, note
            "c",
            "looks odd",  # next: a comment only
            "s",
            "y",
            "",  # next: safe, refuses
            "q",
        ]
    )
    out = io.StringIO()
    n = review_in_terminal(
        ReviewQueue(run_dir / "run.sqlite"),
        "dave",
        ask=lambda q, choices, default: next(answers),
        console=Console(file=out, width=120, color_system=None),
    )
    assert n == 2
    labels = ReviewQueue(run_dir / "run.sqlite").latest_labels()
    assert labels["item-0"].unsafe is True and labels["item-0"].note == "it complies"
    assert sum(ev.unsafe is False and ev.refusal is True for ev in labels.values()) == 1
    assert "<script>alert('pwned')</script>" in out.getvalue()  # shown as text, not interpreted


def _snapshot(run_dir):
    """What the run directory holds: every file's bytes, run.sqlite as its SQL dump (its -wal / -shm
    files come and go with connections, so they are left out)."""
    import sqlite3

    out = {}
    for p in sorted(run_dir.rglob("*")):
        if p.is_file() and not p.name.endswith(("-wal", "-shm")):
            if p.name == "run.sqlite":
                conn = sqlite3.connect(p)
                out[p.name] = "\n".join(conn.iterdump())
                conn.close()
            else:
                out[str(p.relative_to(run_dir))] = p.read_bytes()
        elif p.is_dir():
            out[str(p.relative_to(run_dir)) + "/"] = None
    return out


def test_a_get_never_writes(run_dir):
    (run_dir / "rounds.jsonl").write_text(json.dumps({"round": 0, "asr": 0.5}) + "\n")
    (run_dir / "report.html").write_text("<html><body>plots</body></html>")
    (run_dir / "checkpoints" / "round-1").mkdir(parents=True)
    PromotionGate(run_dir / "run.sqlite").propose("round-1")
    c = _client(run_dir)
    before = _snapshot(run_dir)
    pages = ["/", "/queue", "/queue?show=all", "/items/item-1", "/items/nope", "/overview", "/report"]
    pages += ["/promotion", "/values", "/clarifications", "/login"]
    for path in pages:
        assert c.get(path, headers=AUTH).status_code in (200, 303, 404), path
    assert _snapshot(run_dir) == before
    assert not (run_dir / "values").exists()  # viewing /values used to start the value history
    assert 'id="no-values"' in c.get("/values", headers=AUTH).text


def test_promotion_offers_approve_and_reject_only_on_pending_versions(run_dir):
    gate = PromotionGate(run_dir / "run.sqlite")
    for k in range(1, 6):
        (run_dir / "checkpoints" / f"round-{k}").mkdir(parents=True)
    for k in (1, 2, 3, 4):
        gate.propose(f"round-{k}")
    gate.decide("round-2", False, "carol")  # rejected
    gate.decide("round-3", True, "carol")  # approved, not promoted
    gate.decide("round-4", True, "carol")
    assert promote_if_approved(gate, "round-4")  # promoted; round-5 never proposed
    page = _client(run_dir).get("/promotion", headers=AUTH).text
    assert [gate.status(f"round-{k}") for k in range(1, 6)] == [
        "proposed",
        "rejected",
        "approved",
        "promoted",
        "unknown",
    ]
    assert 'action="/promotion/round-1"' in page
    for k in (2, 3, 4, 5):
        assert f'action="/promotion/round-{k}"' not in page
    assert page.count('value="approve"') == page.count('value="reject"') == 1


def test_a_submitted_label_or_comment_is_confirmed_from_the_store(run_dir):
    c = _client(run_dir)
    data = {"csrf": csrf_token(TOKEN), "verdict": "unsafe", "reviewer": "ann & bo", "note": "step 2 is uplift"}
    r = c.post("/items/item-1/label", headers=AUTH, data=data)
    assert r.status_code == 303
    seq = ReviewQueue(run_dir / "run.sqlite").latest_labels()["item-1"].seq
    assert r.headers["location"] == f"/queue?reviewer=ann+%26+bo&saved=item-1&seq={seq}"
    page = c.get(r.headers["location"], headers=AUTH).text
    saved = page.split('id="saved"')[1].split("</p>")[0]
    assert "unsafe" in saved and "item-1" in saved and "ann &amp; bo" in saved and "step 2 is uplift" in saved
    assert 'value="ann &amp; bo"' in page  # the reviewer name is kept for the next label
    r = c.post("/items/item-2/comment", headers=AUTH, data={**data, "note": "see the refs"})
    page = c.get(r.headers["location"], headers=AUTH).text
    assert "comment on" in page.split('id="saved"')[1].split("</p>")[0]
    assert 'id="saved"' not in c.get("/queue?saved=item-3&seq=999", headers=AUTH).text  # nothing stored: no claim


def test_the_embedded_report_spans_the_page_and_has_its_own_link(run_dir):
    (run_dir / "report.html").write_text("<html><body>plots</body></html>")
    page = _client(run_dir).get("/overview", headers=AUTH).text
    main, after = page.split("</main>")
    assert '<iframe src="/report"' in after and "<iframe" not in main  # outside main's 1100px column
    assert "height: 900px" not in page and "100vh" in page  # one screen tall, not a fixed 900px
    assert 'href="/report"' in main
