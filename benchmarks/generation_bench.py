"""Generation and scoring speed: our HF backend vs HF `model.generate` (and llama.cpp when installed), one run.

    python benchmarks/generation_bench.py --json [--batch 32] [--new 64] [--dtype float32|bfloat16] [--repeats 2]
                                         [--fast-decode auto|on|off]

Same model (the embedded SmolLM2-135M, cached HF dir), same prompts (a round-like mix of benign-edgy and
harmful prompts), same batch size, same max_new_tokens, same sampling (temperature 0.8, top-k 50) for
both sides; greedy is also timed and its outputs compared token for token. tok/s counts generated tokens
(up to and including the stop token) over wall time, best of `--repeats`. Our side runs the whole list
through `HFBackend.generate_ids` (length-sorted batches, reserved KV cache, the fast decode step of
backends/fast_decode.py with its weight packing inside the timed call, top-k before softmax, per-row
seeds); HF's side runs `model.generate` on the same length-sorted batches with left padding.

llama.cpp single stream (llama-cpp-python on the shipped GGUF, one prompt at a time) runs when
`llama_cpp` is importable (`pip install llama-cpp-python`, builds from source in ~3 min); otherwise the
line says so and `speedup_vs_llamacpp` is null. Scoring: `logprobs_ids` on 16 x 128-token sequences.

The last line is JSON with speedup_vs_hf_sampled, speedup_vs_hf_greedy, speedup_vs_llamacpp, tok_s,
scoring_tok_s, greedy_identical and the settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _say(msg: str) -> None:
    print(f"[generation_bench] {msg}", file=sys.stderr, flush=True)


def _prompts(n: int) -> list[str]:
    from superalign.data.benign import load_benign_edgy
    from superalign.data.seeds import load_harmful_seeds

    benign = [q.text for q in load_benign_edgy()][: n // 2]
    harmful = [q.text for q in load_harmful_seeds()][: n - len(benign)]
    return (benign + harmful)[:n]


def _best(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _hf_generate(backend, prompts: list[list[int]], batch: int, new: int, sample: bool) -> list[list[int]]:
    """HF model.generate over the same length-sorted batches; new token ids per row (through the stop)."""
    import torch

    from superalign.backends.hf import _length_sorted

    tok, model = backend.tokenizer, backend.model
    pad = tok.pad_token_id
    out: list[list[int]] = [[] for _ in prompts]
    for idx in _length_sorted([len(p) for p in prompts], batch):
        width = max(len(prompts[i]) for i in idx)
        ids = torch.tensor([[pad] * (width - len(prompts[i])) + prompts[i] for i in idx])
        mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in idx])
        kw = dict(do_sample=True, temperature=0.8, top_k=50) if sample else dict(do_sample=False)
        with torch.inference_mode():
            gen = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=new,
                pad_token_id=pad,
                eos_token_id=backend.stop_ids,
                **kw,
            )
        for row, i in enumerate(idx):
            toks = gen[row, width:].tolist()
            cut = next((j for j, t in enumerate(toks) if t in backend.stop_ids), None)
            out[i] = toks[: cut + 1] if cut is not None else toks
    return out


def _ours(backend, prompts: list[list[int]], new: int, sample: bool) -> list[list[int]]:
    """Our decode loop over the same batches; counts the stop token like HF's side does."""
    from superalign.backends.base import Sampling

    params = Sampling(new, 0.8 if sample else 0.0, 50, 0)
    rows = backend.generate_ids(prompts, params)  # includes packing the weights for the fast decode step
    return [toks + ([backend.stop_ids[0]] if len(toks) < new else []) for toks in rows]


def _llamacpp_child(prompts_text: list[str], new: int, conn) -> None:
    """Runs in a child process: single-stream llama.cpp tok/s on the shipped GGUF, sent back on `conn`."""
    from llama_cpp import Llama

    from superalign.backends.embedded import gguf_location

    folder, name = gguf_location()
    llm = Llama(model_path=str(folder / name), n_ctx=1024, n_threads=2, verbose=False, seed=0)
    n_tok, t0 = 0, time.perf_counter()
    for p in prompts_text:
        r = llm.create_chat_completion(
            messages=[{"role": "user", "content": p}], max_tokens=new, temperature=0.8, top_k=50
        )
        n_tok += r["usage"]["completion_tokens"]
    conn.send(n_tok / (time.perf_counter() - t0))


def _llamacpp(prompts_text: list[str], new: int) -> float | None:
    """llama.cpp's tok/s, or None with a message when it is not installed or its process dies (a
    llama.cpp built for one CPU can crash on another: the benchmark still prints our numbers)."""
    import importlib.util
    import multiprocessing as mp

    if importlib.util.find_spec("llama_cpp") is None:
        _say("llama.cpp: llama_cpp not importable (pip install llama-cpp-python); skipped")
        return None
    ctx = mp.get_context("spawn")  # a clean process: no torch thread pools shared with llama.cpp's
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_llamacpp_child, args=(prompts_text, new, send))
    proc.start()
    send.close()
    try:  # poll is also true when the child died (then recv raises EOFError)
        tok_s = recv.recv() if recv.poll(600) else None
    except EOFError:
        tok_s = None
    proc.join(30)
    if proc.is_alive():  # hung past the wait: do not leave it running beside our numbers
        proc.kill()
        proc.join()
    if tok_s is None:
        _say(
            f"llama.cpp: its process ended without a result (exit code {proc.exitcode}; "
            "a negative code is the signal, e.g. -11 = segfault); skipped. Rebuild it for this CPU: "
            "pip install --force-reinstall --no-cache-dir llama-cpp-python==0.3.36"
        )
    return tok_s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the JSON summary as the last line")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--prompts", type=int, default=64, help="prompts per timed pass (a round-like list)")
    ap.add_argument("--new", type=int, default=64, help="max new tokens")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--llamacpp-prompts", type=int, default=8)
    ap.add_argument(
        "--model",
        default="embedded",
        help="embedded (the benchmark) | tiny (a smoke check) | an HF dir, e.g. a trained checkpoint "
        "whose refusals end early (llama.cpp then skipped: it runs the shipped GGUF)",
    )
    ap.add_argument(
        "--fast-decode",
        default="auto",
        choices=["auto", "on", "off"],
        help="the fast decode step (backends/fast_decode.py): auto = bf16 only (the backend's default)",
    )
    args = ap.parse_args(argv)

    from superalign.backends import load_backend
    from superalign.records import user_chat

    backend = load_backend(args.model, batch_size=args.batch, dtype=args.dtype)
    backend.fast_decode = {"auto": None, "on": True, "off": False}[args.fast_decode]
    texts = _prompts(args.prompts)
    prompts = [backend.encode(backend.render(user_chat(t))) for t in texts]
    res: dict[str, float] = {}
    outs = {}
    for sample in (True, False):
        label = "sampled" if sample else "greedy"
        t_hf, o_hf = _best(
            lambda sample=sample: _hf_generate(backend, prompts, args.batch, args.new, sample), args.repeats
        )
        t_us, o_us = _best(lambda sample=sample: _ours(backend, prompts, args.new, sample), args.repeats)
        res[f"hf_{label}_tok_s"] = sum(map(len, o_hf)) / t_hf
        res[f"ours_{label}_tok_s"] = sum(map(len, o_us)) / t_us
        outs[label] = (o_hf, o_us)
        _say(f"{label}: HF generate {res[f'hf_{label}_tok_s']:.0f} tok/s, ours {res[f'ours_{label}_tok_s']:.0f} tok/s")
    greedy_identical = outs["greedy"][0] == outs["greedy"][1]

    import torch

    seqs = [(p[:32], (p * 8)[32:128]) for p in prompts[:16]]  # 16 x 128-token sequences, 96 scored each
    t_sc, _ = _best(lambda: backend.logprobs_ids(seqs), args.repeats)
    scoring = sum(len(a) + len(b) for a, b in seqs) / t_sc
    _say(f"scoring 16 x 128 tokens: {scoring:.0f} tok/s")
    if args.model == "embedded":
        llama = _llamacpp(texts[: args.llamacpp_prompts], args.new)
    else:
        _say(f"llama.cpp skipped: it runs the shipped GGUF, not {args.model}")
        llama = None
    summary = {
        "speedup_vs_hf_sampled": round(res["ours_sampled_tok_s"] / res["hf_sampled_tok_s"], 3),
        "speedup_vs_hf_greedy": round(res["ours_greedy_tok_s"] / res["hf_greedy_tok_s"], 3),
        "speedup_vs_llamacpp": round(res["ours_sampled_tok_s"] / llama, 3) if llama else None,
        "tok_s": round(res["ours_sampled_tok_s"], 1),
        **{k: round(v, 1) for k, v in res.items()},
        "llamacpp_tok_s": round(llama, 1) if llama else None,
        "scoring_tok_s": round(scoring, 1),
        "greedy_identical": greedy_identical,
        "batch": args.batch,
        "prompts": args.prompts,
        "max_new_tokens": args.new,
        "dtype": args.dtype,
        "fast_decode": args.fast_decode,
        "threads": torch.get_num_threads(),
    }
    print(f"{'':24}{'HF generate':>14}{'ours':>10}")
    for label in ("sampled", "greedy"):
        print(f"{label + ' tok/s':24}{res[f'hf_{label}_tok_s']:>14.0f}{res[f'ours_{label}_tok_s']:>10.0f}")
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
