"""The README's result tables (and docs/loop.md's) are rendered from committed raw results (scripts/results.py
render), never typed."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("doc", ["README.md", "docs/loop.md"])
def test_result_blocks_match_the_committed_results(tmp_path, doc):
    copy = tmp_path / "doc.md"
    shutil.copyfile(ROOT / doc, copy)
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "results.py"), "render", str(copy)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    assert copy.read_text() == (ROOT / doc).read_text(), (
        f"{doc}'s result blocks differ from docs/results/: run `python scripts/results.py render {doc}`"
    )
    assert "<!-- results:" in copy.read_text()


def test_readme_renders_the_demo_and_the_long_run_summary():
    text = (ROOT / "README.md").read_text()
    assert "<!-- results:demo -->" in text
    assert "<!-- results:summary=" in text
