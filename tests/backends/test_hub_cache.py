"""A model in the local Hugging Face cache is found by its hub id, never downloaded."""

import json

import pytest

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


def test_load_backend_takes_a_cached_hub_id_and_names_it(tmp_path, monkeypatch):
    import shutil

    import huggingface_hub.constants

    from superalign.backends import check_backend_spec, load_backend
    from superalign.backends.embedded import tiny_model_dir
    from superalign.errors import BackendUnavailable

    snap = _fake_cache(tmp_path, repo="org/tiny-lm", files=())
    for f in tiny_model_dir().iterdir():
        shutil.copy(f, snap / f.name)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    check_backend_spec("org/tiny-lm")  # found: no error
    cached, tiny = load_backend("org/tiny-lm", dtype="float32"), load_backend("tiny", dtype="float32")
    assert cached.name == "org/tiny-lm"
    chats = [[{"role": "user", "content": "hello"}]]
    assert cached.logprobs(chats, ["hi"]) == tiny.logprobs(chats, ["hi"])
    with pytest.raises(BackendUnavailable, match="local Hugging Face cache"):
        check_backend_spec("org/not-cached")
