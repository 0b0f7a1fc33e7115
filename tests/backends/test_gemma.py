"""The optional second model family: Gemma-3-270M (backends/gemma.py) and the family-aware feature prompt."""

from __future__ import annotations

from pathlib import Path

import pytest

import superalign.backends.gemma as gemma
from superalign.backends import check_backend_spec
from superalign.critic.content import ContentFeatures, features_for_backbone
from superalign.critic.learned import PairFeatures, turn_format
from superalign.errors import BackendUnavailable


def test_without_the_wheels_gemma_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERALIGN_CACHE", str(tmp_path))
    monkeypatch.setattr(gemma, "gemma_available", lambda: False)
    with pytest.raises(BackendUnavailable, match="make install-gemma"):
        gemma.gemma_model_dir()
    with pytest.raises(BackendUnavailable, match="requirements-gemma.txt"):
        check_backend_spec("gemma")
    assert not list(Path(tmp_path).iterdir())  # nothing half-written


def test_a_converted_copy_in_the_cache_is_used_without_the_wheels(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERALIGN_CACHE", str(tmp_path))
    monkeypatch.setattr(gemma, "gemma_available", lambda: False)
    done = tmp_path / gemma.CACHE_NAME
    done.mkdir()
    (done / "model.safetensors").write_bytes(b"x")
    assert gemma.gemma_model_dir() == done


class FakeTokenizer:
    def __init__(self, vocab: dict[str, int], bos: int | None) -> None:
        self.vocab, self.bos_token_id, self.unk_token_id = vocab, bos, 0

    def convert_tokens_to_ids(self, token: str) -> int:
        return self.vocab.get(token, self.unk_token_id)


def test_the_feature_prompt_follows_the_tokenizers_family(tiny):
    assert turn_format(tiny.tokenizer) == ([], "<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n")
    ids, start = PairFeatures().token_ids(tiny.tokenizer, "Hi?", "Hello.")
    assert tiny.tokenizer.decode(ids[:start]) == "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
    gemma_tok = FakeTokenizer({"<start_of_turn>": 105, "<end_of_turn>": 106}, bos=2)
    assert turn_format(gemma_tok) == ([2], "<start_of_turn>user\n", "<end_of_turn>\n<start_of_turn>model\n")
    assert turn_format(FakeTokenizer({}, bos=None)) == ([], "User: ", "\nAssistant: ")


def test_a_second_backbone_appends_its_features(tmp_path, monkeypatch):
    from superalign.backends.embedded import tiny_model_dir

    monkeypatch.setenv("SUPERALIGN_CACHE", str(tmp_path))
    one = PairFeatures(model_dir=str(tiny_model_dir(0)), layers=2, response_tokens=32)
    two = PairFeatures(model_dir=str(tiny_model_dir(1)), layers=1, response_tokens=32)
    prompts, responses = ["How do I bake bread?"] * 2, ["Mix flour and water.", "I can't help with that."]
    alone = ContentFeatures(one).encode(prompts, responses)  # [SmolLM2 whole, content | hand]
    both = ContentFeatures(one, second=two).encode(prompts, responses)
    w1 = ContentFeatures(one, blocks=("whole", "content")).encode(prompts, responses).shape[1]
    extra = ContentFeatures(two, blocks=("whole", "content")).encode(prompts, responses)
    assert (both[:, :w1] == alone[:, :w1]).all()  # the first model's blocks lead
    assert (both[:, w1 : w1 + extra.shape[1]] == extra).all()  # then the second model's
    assert (both[:, w1 + extra.shape[1] :] == alone[:, w1:]).all()  # the hand features last, once
    assert ContentFeatures(one, second=two).tag() == ContentFeatures(one).tag() + "+" + two.tag()


def test_the_backbone_setting_picks_the_features():
    assert features_for_backbone("smollm2") == ContentFeatures()
    g = features_for_backbone("gemma")
    assert g.pair.model_dir == "gemma" and g.pair.layers == 18 and g.blocks == ContentFeatures().blocks
