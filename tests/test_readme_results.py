"""The README's result tables are rendered from committed raw results (scripts/results.py render), never typed."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_result_blocks_match_the_committed_results(tmp_path):
    copy = tmp_path / "README.md"
    shutil.copyfile(ROOT / "README.md", copy)
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "results.py"), "render", str(copy)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    assert copy.read_text() == (ROOT / "README.md").read_text(), (
        "README result blocks differ from docs/results/: run `python scripts/results.py render`"
    )
    assert "<!-- results:demo -->" in copy.read_text()
