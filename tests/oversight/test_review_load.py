"""A bounded load test: 50 concurrent reviewers against a real uvicorn on 127.0.0.1 lose no verdict."""

from __future__ import annotations

import threading
import time

from review_fixtures import TOKEN, free_port, make_items

from superalign.oversight.desk import csrf_token
from superalign.oversight.queue import ReviewQueue

REVIEWERS = 50
LABELS_EACH = 2  # 100 labels: each commit fsyncs (~40 ms here), so more only adds minutes


def test_fifty_concurrent_reviewers_lose_no_verdict(live_desk):
    import httpx

    base, run_dir = live_desk
    queue = ReviewQueue(run_dir / "run.sqlite")
    queue.enqueue(make_items(REVIEWERS * LABELS_EACH, prefix="load"))
    acked: dict[str, tuple[int, bool]] = {}
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(REVIEWERS)

    def reviewer(k: int) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            start.wait(timeout=30)
            if client.get("/queue").status_code != 200:
                errors.append(f"reviewer {k}: queue page failed")
            for j in range(LABELS_EACH):
                item = f"load-{k * LABELS_EACH + j}"
                unsafe = (k + j) % 2 == 0
                r = client.post(
                    f"/items/{item}/label",
                    data={"csrf": csrf_token(TOKEN), "reviewer": f"r{k}", "verdict": "unsafe" if unsafe else "safe"},
                )
                if r.status_code != 200:
                    errors.append(f"{item}: HTTP {r.status_code} {r.text[:100]}")
                    continue
                with lock:
                    acked[item] = (r.json()["seq"], unsafe)

    t0 = time.time()
    threads = [threading.Thread(target=reviewer, args=(k,), daemon=True) for k in range(REVIEWERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "the load test did not finish in 120 s"
    assert errors == []
    assert len(acked) == REVIEWERS * LABELS_EACH
    stored = queue.latest_labels()
    for item, (seq, unsafe) in acked.items():  # every acknowledged verdict is there, with its value
        assert stored[item].seq == seq and stored[item].unsafe is unsafe
    assert len({s for s, _ in acked.values()}) == len(acked)
    print(f"{len(acked)} labels from {REVIEWERS} reviewers in {time.time() - t0:.1f}s")


def test_serve_command_prints_a_generated_token_and_binds_localhost(run_dir):
    import os
    import subprocess
    import sys

    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "SUPERALIGN_TOKEN"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "superalign.cli", "review", "serve", "--run", str(run_dir), "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = []
        deadline = time.time() + 60
        while time.time() < deadline and not any("review desk:" in ln for ln in lines):
            lines.append(proc.stderr.readline())  # type: ignore[union-attr]
        token = next(ln.rsplit(" ", 1)[1].strip() for ln in lines if ln.startswith("access token"))
        assert f"http://127.0.0.1:{port}/login" in "".join(lines)
        for _ in range(100):  # uvicorn may need a moment after our line
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/queue", timeout=5).status_code == 401
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        ok = httpx.get(f"http://127.0.0.1:{port}/queue", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert ok.status_code == 200 and "item-0" in ok.text
    finally:
        proc.terminate()
        proc.wait(timeout=20)
