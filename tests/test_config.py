import pytest
from pydantic import ValidationError

from superalign.config import load_config
from superalign.errors import UserError


def test_defaults_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\nrounds: 3\ntrain:\n  beta: 0.2\n")
    cfg = load_config(p, rounds=5)
    assert cfg.rounds == 5 and cfg.train.beta == 0.2
    with pytest.raises(ValidationError, match="frozen"):
        cfg.rounds = 1  # frozen


def test_unknown_key_names_line_and_suggests(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\nround: 3\n")
    with pytest.raises(UserError) as e:
        load_config(p)
    assert (
        "unknown key 'round'" in str(e.value) and f"{p}:2" in str(e.value) and "did you mean 'rounds'" in str(e.value)
    )


def test_nested_bad_value_names_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  lr: -1\n  betta: 0.1\n")
    with pytest.raises(UserError) as e:
        load_config(p)
    msg = str(e.value)
    assert "train.lr" in msg and f"{p}:2" in msg
    assert "train.betta" in msg and "did you mean 'beta'" in msg


def test_shipped_configs_load():
    for name in ("smoke", "demo", "scripted"):
        load_config(f"configs/{name}.yaml")


def test_readme_documents_every_config_key():
    """The README's config table lists every key of RunConfig (it is generated from the field help)."""
    from pathlib import Path

    from pydantic import BaseModel

    from superalign.config import RunConfig

    def keys(model, prefix=""):
        for name, f in model.model_fields.items():
            ann = f.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                yield from keys(ann, prefix + name + ".")
            else:
                yield prefix + name

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    missing = [k for k in keys(RunConfig) if f"`{k}`" not in readme]
    assert missing == [], f"README config table lacks {missing}"
