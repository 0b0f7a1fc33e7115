"""Critic throughput: the learned critic's batched, length-sorted feature extraction vs naive per-item
HF scoring (one pair at a time, padded to the longest pair, no batching), same model, same layers,
same precision (fp32), in one run. Nothing is read from or written to the feature cache.

    python benchmarks/critic_bench.py --items 64 --json

"scored tok/s" counts real (non-pad) tokens of the scored pairs. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=64, help="pairs from PyRIT's objective set to score")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--layers", type=int, default=0, help="transformer blocks (0 = the critic's default)")
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    args = ap.parse_args()

    import torch

    from superalign.critic.classifier import load_objective_examples
    from superalign.critic.learned import PairFeatures

    base = PairFeatures(use_cache=False, batch_size=args.batch_size)
    pf = PairFeatures(use_cache=False, batch_size=args.batch_size, layers=args.layers or base.layers)
    exs = load_objective_examples()[: args.items]
    pairs = [(e.objective, e.response) for e in exs]
    model, tok = pf.load()
    lengths = [len(pf.token_ids(tok, p, r)[0]) for p, r in pairs]
    tokens, width = sum(lengths), max(lengths)
    pf.forward(model, tok, pairs[:2])  # warm-up

    t = time.perf_counter()
    batched = pf.forward(model, tok, pairs)
    t_batched = time.perf_counter() - t

    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    t = time.perf_counter()
    naive = []
    for p, r in pairs:  # naive: one pair per forward, padded to the longest pair, all hidden states
        seq, _ = pf.token_ids(tok, p, r)
        ids = torch.tensor([seq + [pad] * (width - len(seq))])
        mask = torch.tensor([[1] * len(seq) + [0] * (width - len(seq))])
        with torch.inference_mode():
            hs = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        naive.append(hs[-1][0, len(seq) - 1])
    t_naive = time.perf_counter() - t
    # same numbers either way: the batched path's last-token feature equals the naive one
    hidden = naive[0].shape[0]
    max_diff = max(float((torch.tensor(b[-hidden:]) - n).abs().max()) for b, n in zip(batched, naive))

    result = {
        "bench": "critic",
        "items": len(pairs),
        "scored_tokens": tokens,
        "layers": pf.layers,
        "precision": "fp32",
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "batched_items_per_s": round(len(pairs) / t_batched, 2),
        "batched_tok_per_s": round(tokens / t_batched, 1),
        "naive_items_per_s": round(len(pairs) / t_naive, 2),
        "naive_tok_per_s": round(tokens / t_naive, 1),
        "speedup": round(t_naive / t_batched, 2),
        "max_feature_diff": round(max_diff, 5),
        "full_depth_equivalent_tok_per_s": round(tokens / t_batched * pf.layers / 30, 1),
    }
    if not args.json:
        print(f"batched: {result['batched_tok_per_s']} tok/s, naive: {result['naive_tok_per_s']} tok/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
