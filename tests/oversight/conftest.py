"""Fixtures for the review desk tests: a queued run directory and a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import threading
import time

import pytest
from review_fixtures import TOKEN, free_port, make_items

from superalign.oversight.queue import ReviewQueue


@pytest.fixture()
def run_dir(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    ReviewQueue(d / "run.sqlite").enqueue(make_items(6))
    return d


@pytest.fixture()
def live_desk(run_dir):
    """(base_url, run_dir) of a real uvicorn serving the desk; stopped after the test."""
    import uvicorn

    from superalign.oversight.desk import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(run_dir, TOKEN), host="127.0.0.1", port=port, log_level="warning", limit_concurrency=200
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", run_dir
    server.should_exit = True
    thread.join(timeout=10)
