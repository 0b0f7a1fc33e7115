"""A model in the local Hugging Face cache is found by its hub id, never downloaded."""

import json

from superalign.backends.hub_cache import cached_model_dir, looks_like_hub_id


def _fake_cache(root, repo="org/model", commit="a" * 40, files=("config.json",)):
    d = root / ("models--" + repo.replace("/", "--"))
    (d / "refs").mkdir(parents=True)
    (d / "refs" / "main").write_text(commit)
    snap = d / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in files:
        (snap / f).write_text(json.dumps({}))
    return snap


def test_a_cached_id_resolves_to_its_snapshot_and_an_uncached_one_to_none(tmp_path):
    snap = _fake_cache(tmp_path)
    assert cached_model_dir("org/model", tmp_path) == snap
    assert cached_model_dir("org/model@" + "a" * 40, tmp_path) == snap
    assert cached_model_dir("org/other", tmp_path) is None
    assert cached_model_dir("org/model@" + "b" * 40, tmp_path) is None


def test_a_cached_repo_without_a_model_config_is_not_a_model(tmp_path):
    _fake_cache(tmp_path, files=("tokenizer.json",))
    assert cached_model_dir("org/model", tmp_path) is None


def test_paths_are_not_taken_for_hub_ids():
    assert looks_like_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct")
    for spec in ("./runs/demo", "/abs/model", "~/model", "embedded", "runs/demo/checkpoints/round-2"):
        assert not looks_like_hub_id(spec)
