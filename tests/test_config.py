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


def test_config_doc_is_generated_from_the_fields():
    """docs/config.md is scripts/config_table.py's output: a key added, removed or re-described without
    regenerating the page (python scripts/config_table.py --write) fails here."""
    import importlib.util
    from pathlib import Path

    from pydantic import BaseModel

    from superalign.config import RunConfig

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("config_table", root / "scripts" / "config_table.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def keys(model, prefix=""):
        for name, f in model.model_fields.items():
            ann = f.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                yield from keys(ann, prefix + name + ".")
            else:
                yield prefix + name

    expected = mod.render()
    missing = [k for k in keys(RunConfig) if f"| `{k}` |" not in expected]
    assert missing == [], f"scripts/config_table.py leaves out {missing}"
    page = (root / "docs" / "config.md").read_text(encoding="utf-8")
    assert page == expected, "docs/config.md is stale: run python scripts/config_table.py --write"


@pytest.mark.parametrize(
    "extra,fix",
    [("  adapter: full\n", "needs adapter: lora"), ("  engine: trl\n", "native engine only")],
)
def test_replay_loss_kl_needs_lora_and_the_native_engine(tmp_path, extra, fix):
    """replay_loss: kl takes its reference from the LoRA adapter switched off (learner/dpo.py `replay_kl`): full
    fine-tuning has none, and the trl engine does not implement it; both are refused with the fix."""
    assert load_config(None).train.replay_loss == "nll"
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  replay_loss: kl\n")
    assert load_config(p).train.replay_loss == "kl"  # lora + native: accepted
    p.write_text("train:\n  replay_loss: kl\n" + extra)
    with pytest.raises(UserError) as e:
        load_config(p)
    msg = str(e.value)
    assert "replay_loss: kl" in msg and fix in msg and "replay_loss: nll" in msg and f"{p}:1" in msg
