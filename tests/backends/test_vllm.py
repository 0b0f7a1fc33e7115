"""executor: vllm against a local stub of vLLM's OpenAI-compatible server with runtime LoRA loading
(tests/backends/openai_stub.py): stacked round adapters, load / unload, generation and scoring through the
`openai:` client, and one smoke round of the loop end to end."""

import json
import zlib

import pytest
from openai_stub import STUB_MODEL, StubLog, serve_stub

from superalign.errors import UserError

torch = pytest.importorskip("torch")


def _tiny():
    from superalign.backends import load_backend

    return load_backend("tiny", batch_size=4, device="cpu", dtype="float32")


def _random_round(backend, ckpts, k, trained_from, seed, r=4):
    """A 'trained' round: a LoRA with random B on the backend's current weights, saved as round k's adapter,
    then merged into the backend (what train_dpo leaves behind)."""
    from superalign.config import TrainConfig
    from superalign.learner.checkpoint import save_adapter
    from superalign.learner.dpo import finish_trainable, make_trainable

    torch.manual_seed(seed)
    model = make_trainable(backend.model, TrainConfig(lora_r=r, lora_alpha=2 * r))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    finish_trainable(backend, model)
    save_adapter(backend.last_adapter, ckpts / f"round-{k}" / "adapter", trained_from)


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0]


def test_stacked_adapter_is_the_sum_of_the_rounds_deltas(tmp_path):
    """Round 3 trained from round 1 (round 2 rejected by the gate): base + stacked(1, 3) = round 3's merged weights;
    a round that trained nothing adds nothing."""
    from peft import PeftModel

    from superalign.backends.vllm import adapter_chain, stacked_adapter
    from superalign.learner.checkpoint import save_adapter

    ckpts = tmp_path / "checkpoints"
    b = _tiny()
    _random_round(b, ckpts, 1, 0, seed=1)
    after_1 = {k: v.clone() for k, v in b.model.state_dict().items()}
    _random_round(b, ckpts, 2, 1, seed=2)  # trained on, then rejected: not on round 3's line
    b.model.load_state_dict(after_1)
    _random_round(b, ckpts, 3, 1, seed=3, r=8)
    save_adapter(None, ckpts / "round-4" / "adapter", 3)  # no pairs in round 4
    ids = b.encode(b.render([{"role": "user", "content": "Tell me about rain."}]))
    expected = _logits(b.model, ids)

    assert [d.parent.name for d in adapter_chain(ckpts, 4)] == ["round-1", "round-3"]
    assert adapter_chain(ckpts, 0) == [] and stacked_adapter(ckpts, 1) == ckpts / "round-1" / "adapter"
    path = stacked_adapter(ckpts, 4)
    assert path == ckpts / "round-4" / "vllm-lora"
    cfg = json.loads((path / "adapter_config.json").read_text())
    assert cfg["r"] == 4 + 8 and cfg["lora_alpha"] == 12
    served = PeftModel.from_pretrained(_tiny().model, str(path))  # what a LoRA server computes: base + adapter
    got = _logits(served, ids)
    assert torch.allclose(got, expected, atol=2e-4), float((got - expected).abs().max())
    base = _logits(_tiny().model, ids)
    assert float((base - expected).abs().max()) > 1e-2  # the adapters changed the model: not a trivial match


def test_a_round_without_an_adapter_record_is_refused(tmp_path):
    from superalign.backends.vllm import adapter_chain
    from superalign.errors import BackendUnavailable

    (tmp_path / "round-1").mkdir()
    with pytest.raises(BackendUnavailable, match="no LoRA adapter record for round 1"):
        adapter_chain(tmp_path, 1)


def _adapter_dir(tmp_path, r=4):
    b = _tiny()
    _random_round(b, tmp_path / "ck", 1, 0, seed=0, r=r)
    return tmp_path / "ck" / "round-1" / "adapter"


def test_server_loads_serves_and_unloads_round_adapters(tmp_path):
    from superalign.backends import Sampling
    from superalign.backends.vllm import VLLMServer, serve_round
    from superalign.records import user_chat

    _adapter_dir(tmp_path)
    log = StubLog()
    with serve_stub(log=log, lora=True) as url:
        server = VLLMServer(url)
        assert server.base_model() == STUB_MODEL
        r0 = serve_round(server, tmp_path / "ck", 0, "abc", "tiny@round-0")
        assert r0.adapter is None and r0.generate([user_chat("hi")], Sampling(8)) == ["echo: hi"]
        r1 = serve_round(server, tmp_path / "ck", 1, "abc", "tiny@round-1")
        assert r1.adapter == "superalign-abc-round-1" and log.adapters == {
            r1.adapter: str((tmp_path / "ck" / "round-1" / "adapter").resolve())
        }
        texts = r1.generate([user_chat(f"q{i}") for i in range(6)], Sampling(8, 0.7, 20, seed=1))
        assert texts == [f"echo: q{i}" for i in range(6)]
        chats = log.bodies("/v1/chat/completions")
        assert [c["model"] for c in chats[-6:]] == [r1.adapter] * 6 and chats[-1]["top_k"] == 20
        lp = r1.logprobs_text(["Q: 2+2? A:", "Q: sky? A:"], [" 4", " blue sky"])
        # the stub's whitespace "tokens": the one straddling the cut ("A:" + its space) counts as continuation
        assert lp == [-2.0, -3.0] and log.bodies("/v1/completions")[-1]["model"] == r1.adapter
        again = serve_round(server, tmp_path / "ck", 1, "abc", "tiny@round-1")  # a resumed run: already loaded
        assert again.adapter == r1.adapter
        listed = server.client(STUB_MODEL)._http().get(url + "/models").json()["data"]
        assert [m["parent"] for m in listed] == [None, STUB_MODEL]
        name = r1.adapter
        r1.close()
        again.close()  # the server no longer has it: fine
        assert log.adapters == {} and log.adapter_events == [("load", name), ("unload", name)]
        server.close()


def test_server_errors_say_what_to_fix(tmp_path):
    from superalign.backends.vllm import VLLMServer, serve_round

    _adapter_dir(tmp_path, r=16)
    with serve_stub(lora=True, max_lora_rank=8) as url:
        with pytest.raises(UserError, match="max-lora-rank"):
            serve_round(VLLMServer(url), tmp_path / "ck", 1, "k", "x")
        with pytest.raises(UserError, match="did not load LoRA adapter"):
            VLLMServer(url).load_adapter("x", tmp_path / "nowhere")
    with serve_stub() as url:  # a server started without runtime LoRA updating
        with pytest.raises(UserError, match="VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"):
            serve_round(VLLMServer(url), tmp_path / "ck", 1, "k", "x")


def test_preflight_checks_the_vllm_settings():
    from superalign.config import RunConfig
    from superalign.preflight import check_run

    with pytest.raises(UserError, match="vllm_url: executor: vllm needs the server's URL"):
        check_run(RunConfig(learner="tiny", executor="vllm"))
    with pytest.raises(UserError, match="train.adapter must be lora"):
        check_run(
            RunConfig(learner="tiny", executor="vllm", vllm_url="http://127.0.0.1:9/v1", train={"adapter": "full"})
        )
    with pytest.raises(UserError, match="cannot reach"):
        check_run(RunConfig(learner="tiny", executor="vllm", vllm_url="http://127.0.0.1:9/v1"))
    with pytest.raises(UserError, match="learner: executor: vllm trains the learner here"):
        check_run(RunConfig(learner="scripted", executor="vllm", vllm_url="http://127.0.0.1:9/v1"))


def _reply(body):
    """Deterministic answers by request seed: some refusals, some compliance, so that the round builds pairs."""
    last = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
    if body.get("continue_final_message"):
        return "I can't help with that, but I can point you to safe resources."
    if zlib.crc32(f"{body.get('seed')}{last}".encode()) % 2:
        return "I can't help with that request."
    return "Sure. Step 1: get the materials. Step 2: follow the instructions carefully."


def test_smoke_round_on_the_vllm_executor(tmp_path):
    """configs/smoke.yaml with executor: vllm: round 0 and round 1 answer through the stub server, the round trains
    the tiny learner in the driver, registers its adapter (what the loop evaluates), and unloads it at the end."""
    from superalign.config import load_config
    from superalign.loop import run_loop

    log = StubLog()
    with serve_stub(log=log, lora=True, reply=_reply) as url:
        cfg = load_config("configs/smoke.yaml").model_copy(update={"executor": "vllm", "vllm_url": url})
        rows = run_loop(cfg, tmp_path / "run", log=lambda m: None)
    assert [r["round"] for r in rows] == [0, 1] and rows[1]["pairs"] > 0
    assert rows[0]["competence"] is not None  # scored through the server's echoed prompt logprobs
    adapter = tmp_path / "run" / "checkpoints" / "round-1" / "adapter"
    assert (adapter / "adapter_config.json").is_file() and json.loads((adapter / "superalign.json").read_text()) == {
        "trained_from": 0,
        "empty": False,
    }
    loads = [n for e, n in log.adapter_events if e == "load"]
    assert loads and all(n.endswith("-round-1") for n in loads) and log.adapters == {}
    models = {b["model"] for b in log.bodies("/v1/chat/completions")}
    assert models == {
        STUB_MODEL,
        loads[0],
    }  # round 0 and round 1's training samples: the base; round 1's eval: the adapter
