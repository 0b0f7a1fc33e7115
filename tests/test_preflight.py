"""Checking a run config before anything is written (issue 26, defect 3) reads names, not models."""

import subprocess
import sys


def test_the_default_config_is_checked_without_loading_a_model():
    """The defaults (embedded learner, content critic, templates on) pass, and the check imports neither
    torch nor transformers: the content critic's SmolLM2 and heads load only when the run judges."""
    code = (
        "import sys; from superalign.config import RunConfig; from superalign.preflight import check_run; "
        "check_run(RunConfig(critic={'kind': 'llm-judge'}, attacker={'mode': 'adaptive'})); check_run(RunConfig()); "
        "print(sorted(m for m in ('torch', 'transformers', 'sklearn') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
