"""Every experiment's presets live twice — in code (PRESETS) and in configs/experiments/NAME.yaml, the file
users copy and pass with --config — and must agree; a file with a bad key fails with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from superalign.errors import UserError
from superalign.experiments import EXPERIMENTS, load_experiment, load_experiment_config

CONFIGS = Path(__file__).parents[2] / "configs" / "experiments"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_the_yaml_mirrors_the_presets(name: str) -> None:
    module = load_experiment(name)
    data = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text(encoding="utf-8"))
    assert set(data) == set(module.PRESETS) and {"full", "quick"} <= set(data)
    for quick in (False, True):
        assert (
            load_experiment_config(module, CONFIGS / f"{name}.yaml", quick)
            == module.PRESETS["quick" if quick else "full"]
        )
    for preset in module.PRESETS:  # any named preset (debate's pilot) by --preset
        assert load_experiment_config(module, CONFIGS / f"{name}.yaml", False, preset) == module.PRESETS[preset]


def test_a_bad_key_names_the_file_and_line(tmp_path: Path) -> None:
    module = load_experiment("noisy-labels")
    path = tmp_path / "nl.yaml"
    text = (CONFIGS / "noisy-labels.yaml").read_text(encoding="utf-8").replace("quick:\n", "quick:\n  epz: [0.0]\n", 1)
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index("  epz: [0.0]") + 1
    with pytest.raises(UserError, match=rf"unknown key 'epz' \({path}:{line}\); did you mean 'eps'"):
        load_experiment_config(module, path, quick=True)
    with pytest.raises(UserError, match="no 'full:' entry"):
        path.write_text("quick:\n  seeds: 2\n", encoding="utf-8")
        load_experiment_config(module, path, quick=False)


def test_a_single_entry_file_replaces_the_preset_and_is_named_custom(tmp_path: Path) -> None:
    from superalign.experiments.common import choose_preset

    module = load_experiment("w2s")
    path = tmp_path / "w2s.yaml"
    path.write_text("tasks: [sciq]\nlimit: 60\nseeds: 2\n", encoding="utf-8")
    cfg = load_experiment_config(module, path, quick=True)
    assert cfg.tasks == ("sciq",) or list(cfg.tasks) == ["sciq"]
    assert choose_preset(module.PRESETS, True, cfg) == ("custom", cfg)
    assert choose_preset(module.PRESETS, True, None)[0] == "quick"
