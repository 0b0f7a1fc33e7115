"""Every backend satisfies the protocols of backends/base.py, and the shared `score_options_by_logprobs` gives
what HFBackend's shared-prefix scoring gives (and what evaluate.competence_correct's grouping used to give)."""

import pytest
from openai_stub import STUB_MODEL, serve_stub

from superalign.backends import Backend, PairTrainable, Trainable, require_trainable
from superalign.backends.base import score_options_by_logprobs
from superalign.backends.openai_compat import OpenAICompatBackend
from superalign.backends.scripted import ScriptedBackend
from superalign.backends.sharded import LocalWorkers, ShardedBackend
from superalign.backends.vllm import VLLMLearner, VLLMServer
from superalign.errors import UserError

PREFIXES = ["Question: What is the capital of France?\nAnswer:", "Question: Which gas do plants take in?\nAnswer:"]
OPTIONS = [[" Paris", " Lyon", " Marseille"], [" carbon dioxide", " oxygen", " helium"]]


def _grouped(backend, prefixes, options):
    """What evaluate.competence_correct computed for a backend without score_options, before the protocol."""
    flat = backend.logprobs_text([p for p, os in zip(prefixes, options) for _ in os], [o for os in options for o in os])
    out, at = [], 0
    for os in options:
        out.append(flat[at : at + len(os)])
        at += len(os)
    return out


def test_scripted_backend_is_a_pair_trainable_backend():
    b = ScriptedBackend()
    assert isinstance(b, Backend) and isinstance(b, PairTrainable) and not isinstance(b, Trainable)
    assert b.score_options(PREFIXES, OPTIONS) == _grouped(b, PREFIXES, OPTIONS)  # identical numbers
    b.close()
    with pytest.raises(UserError, match="give embedded, tiny or an HF model dir"):
        require_trainable(b, "--learner scripted: this trains weights; give embedded, tiny or an HF model dir")


def test_hf_backend_is_trainable(tiny):
    assert isinstance(tiny, Backend) and isinstance(tiny, Trainable) and not isinstance(tiny, PairTrainable)
    assert require_trainable(tiny, "unused") is tiny


def test_remote_and_sharded_backends_are_backends_only():
    """Structural: OpenAICompat has a `model` attribute (the served name) but is no Trainable; no server needed."""
    client = OpenAICompatBackend("m", "http://127.0.0.1:9/v1")
    sharded = ShardedBackend(LocalWorkers([ScriptedBackend(), ScriptedBackend()]), "sharded")
    learner = VLLMLearner(VLLMServer("http://127.0.0.1:9/v1", model="m"), "m", None, "vllm")
    for b in (client, sharded, learner):
        assert isinstance(b, Backend)
        assert not isinstance(b, Trainable) and not isinstance(b, PairTrainable)
    sharded.close()  # local workers: nothing to release


def test_sharded_and_openai_score_options_group_logprobs_text():
    sharded = ShardedBackend(LocalWorkers([ScriptedBackend(), ScriptedBackend()]), "sharded")
    assert sharded.score_options(PREFIXES, OPTIONS) == _grouped(ScriptedBackend(), PREFIXES, OPTIONS)
    with serve_stub() as url:
        client = OpenAICompatBackend(STUB_MODEL, url)
        try:
            got = client.score_options(PREFIXES, OPTIONS)
            assert got == _grouped(client, PREFIXES, OPTIONS) and [len(g) for g in got] == [3, 3]
        finally:
            client.close()


@pytest.mark.parametrize("shared", [False, True], ids=["own-prefixes", "shared-prefix"])
def test_shared_helper_matches_hf_score_options(tiny, shared):
    """HFBackend runs each prefix once (and a long common prefix once per call); the shared helper scores each
    (prefix, option) as a full sequence: the same log-probs within float tolerance."""
    prefixes = PREFIXES
    if shared:  # >= SHARED_PREFIX_MIN tokens in common: the shared-prefix KV path
        rubric = "You judge answers. " * 20
        prefixes = [rubric + p for p in PREFIXES]
    fast = tiny.score_options(prefixes, OPTIONS)
    slow = score_options_by_logprobs(tiny, prefixes, OPTIONS)
    assert len(fast) == len(slow) == 2
    for f, s in zip(fast, slow):
        assert f == pytest.approx(s, rel=1e-4, abs=1e-3)
