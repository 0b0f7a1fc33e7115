"""The desk in a real browser: Playwright drives Debian's Chromium (never `playwright install`).

Set SUPERALIGN_SCREENSHOTS=DIR to keep the screenshots (docs/img/ holds the README's).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from review_fixtures import TOKEN, XSS_PROMPT

from superalign.oversight.promotion import PromotionGate
from superalign.oversight.queue import ReviewQueue


def _chromium() -> str:
    """Debian's chromium, installed with apt-get (as root) when missing; skip only where that can't be."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if shutil.which("apt-get") is None:
        pytest.skip("no chromium on PATH and no apt-get to install Debian's chromium package")
    if os.geteuid() != 0:
        pytest.skip("no chromium on PATH; installing Debian's chromium needs root (apt-get install -y chromium)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, capture_output=True, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "chromium"], check=True, env=env, capture_output=True, timeout=900)
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("apt-get installed chromium but it is not on PATH")
    return path


@pytest.mark.slow  # ~8-10 s on 2 shared cores (chromium start-up), more than the fast suite wants
def test_browser_logs_in_labels_items_and_payloads_stay_inert(live_desk, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    base, run_dir = live_desk
    (run_dir / "checkpoints" / "round-1").mkdir(parents=True)
    PromotionGate(run_dir / "run.sqlite").propose("round-1")  # only a proposed version can be approved
    shots = Path(os.environ.get("SUPERALIGN_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    dialogs: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=_chromium(),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            assert page.goto(f"{base}/queue").status == 401  # no token, no queue
            page.fill("#token", TOKEN)
            page.click("#login")
            page.wait_for_url(f"{base}/queue")
            assert "Review queue" in page.content()
            first = page.locator("[data-item]").first
            assert first.get_attribute("data-item") == "item-0"  # the abstention is routed first
            assert first.locator("pre.prompt").inner_text() == XSS_PROMPT  # shown as text
            assert page.locator("img[src=x]").count() == 0 and page.locator("main script").count() == 0
            page.screenshot(path=str(shots / "review-queue.png"), full_page=False)

            first.locator("input[aria-label=note]").fill("complies with the jailbreak")
            first.locator("button[value=unsafe]").click()
            page.wait_for_load_state()
            nxt = page.locator("[data-item]").first
            assert nxt.get_attribute("data-item") != "item-0"  # labelled items leave the pending list
            nxt_id = nxt.get_attribute("data-item")
            nxt.locator("input[name=refusal]").check()
            nxt.locator("button[value=safe]").click()
            page.wait_for_load_state()

            page.goto(f"{base}/promotion")
            assert page.inner_text("#current") == "round-0"
            page.locator("button[value=approve]").first.click()
            page.wait_for_load_state()
            assert page.inner_text("#current") == "round-1"
            page.screenshot(path=str(shots / "review-promotion.png"), full_page=True)
        finally:
            browser.close()
    assert dialogs == []  # no injected alert() ever ran
    labels = ReviewQueue(run_dir / "run.sqlite").latest_labels()
    assert labels["item-0"].unsafe is True and labels["item-0"].note == "complies with the jailbreak"
    assert labels[nxt_id].unsafe is False and labels[nxt_id].refusal is True
    assert (shots / "review-queue.png").stat().st_size > 10_000
