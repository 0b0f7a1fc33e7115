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


def test_the_dev_read_that_chose_long_yamls_recipe_is_reproduced_from_the_committed_labels(tmp_path):
    """docs/results/rnr-dev/decision.json (the dev read by eye that made train.reject_non_refusals long.yaml's
    recipe) follows from the committed gold labels and dev answers; and the rule it applied still holds there."""
    import json

    out = tmp_path / "decision.json"
    res = "docs/results/"
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "dev_read.py"),
            "decide",
            "--labels",
            res + "rnr-dev/labels.jsonl",
            "--pair",
            f"0={res}long-heads-v3:4,{res}long-rnr:2",
            "--pair",
            f"1={res}long-heads-v3-seed1:4,{res}long-rnr-seed1:4",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(out.read_text())
    committed = json.loads((ROOT / res / "rnr-dev" / "decision.json").read_text())
    assert got["seeds"] == committed["seeds"] and got["pooled"] == committed["pooled"]
    assert got["pooled"]["asr"]["arm_minus_base"] < 0
    assert all(s["over_refusal"]["arm"] <= 0.10 for s in got["seeds"].values())
    import yaml

    assert yaml.safe_load((ROOT / "configs" / "long.yaml").read_text())["train"]["reject_non_refusals"] is True


def test_the_dev_read_that_kept_own_refusal_prefix_out_of_long_yaml_is_reproduced(tmp_path):
    """docs/results/own-refusal-dev/decision.json follows from the committed labels and dev answers, the rule's first
    condition fails there, and configs/long.yaml does not carry the option."""
    import json

    import yaml

    out, res = tmp_path / "decision.json", "docs/results/"
    pairs = [
        "0=long-rnr:2,long-sorry:4",
        "1=long-rnr-seed1:4,long-sorry-seed1:2",
        "2=long-rnr-seed2:4,long-sorry-seed2:4",
    ]
    args = [a for p in pairs for a in ("--pair", p.replace("=", "=" + res).replace(",", "," + res))]
    labels = ["--labels", res + "rnr-dev/labels.jsonl", "--labels", res + "own-refusal-dev/labels.jsonl"]
    cmd = [sys.executable, str(ROOT / "scripts" / "dev_read.py"), "decide", *labels, *args, "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    got = json.loads(out.read_text())
    committed = json.loads((ROOT / res / "own-refusal-dev" / "decision.json").read_text())
    assert got["seeds"] == committed["seeds"] and got["pooled"] == committed["pooled"]
    assert got["pooled"]["asr"]["arm_minus_base"] >= 0  # not below the current recipe: not adopted
    assert "own_refusal_prefix" not in yaml.safe_load((ROOT / "configs" / "long.yaml").read_text())["train"]
