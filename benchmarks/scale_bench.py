"""Scale-out throughput: the same generation call local vs sharded over N Ray actors, one run.

    python benchmarks/scale_bench.py --json [--actors 1 2] [--prompts 64] [--new 48] [--model embedded]

Each setting answers the same prompts with the same sampling; texts must be identical across settings
(per-row seeds), and the JSON's `identical` says whether they were. Local uses all torch threads in one
process; an N-actor setting gives each actor `max(1, cores // N)` threads. On one 2-core machine Ray cannot
beat local (same cores, plus actor start-up and pickling): the point is that the records stay the same and
the overhead is measured; docs/scale.md has the throughput model for more machines and a vLLM recipe.
Last line JSON: tok_s per setting, speedup of each over local, actor start-up seconds, identical.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _say(msg: str) -> None:
    print(f"[scale_bench] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new", type=int, default=48)
    ap.add_argument("--model", default="embedded")
    args = ap.parse_args(argv)

    from superalign.backends import Sampling, load_backend
    from superalign.backends.sharded import RayWorkers, ShardedBackend
    from superalign.data.benign import load_benign_edgy
    from superalign.records import user_chat

    cores = os.cpu_count() or 1
    chats = [user_chat(q.text) for q in load_benign_edgy()[: args.prompts]]
    params = Sampling(args.new, 0.8, 50, 0)
    local = load_backend(args.model, batch_size=32)

    def timed(backend) -> tuple[float, list[str]]:
        t0 = time.perf_counter()
        texts = backend.generate(chats, params)
        return time.perf_counter() - t0, texts

    def n_tokens(texts: list[str]) -> int:
        return sum(len(local.encode(t)) + 1 for t in texts)

    secs, ref = timed(local)
    rows = {"local": {"tok_s": n_tokens(ref) / secs, "startup_s": 0.0}}
    _say(f"local ({cores} threads): {rows['local']['tok_s']:.0f} tok/s")
    identical = True
    for n in args.actors:
        t0 = time.perf_counter()
        workers = RayWorkers(args.model, n, batch_size=32, num_cpus=cores, threads_per_actor=max(1, cores // n))
        startup = time.perf_counter() - t0
        secs, texts = timed(ShardedBackend(workers, args.model))
        workers.close()
        identical &= texts == ref
        rows[f"ray-{n}"] = {"tok_s": n_tokens(texts) / secs, "startup_s": startup}
        _say(f"ray, {n} actor(s): {rows[f'ray-{n}']['tok_s']:.0f} tok/s (+{startup:.1f} s start-up)")
    for name, r in rows.items():
        r["speedup_vs_local"] = r["tok_s"] / rows["local"]["tok_s"]
        print(f"{name:10} {r['tok_s']:8.0f} tok/s  x{r['speedup_vs_local']:.2f}  start-up {r['startup_s']:.1f} s")
    if args.json:
        print(
            json.dumps(
                {
                    "settings": {k: {m: round(v, 3) for m, v in r.items()} for k, r in rows.items()},
                    "identical": identical,
                    "prompts": args.prompts,
                    "max_new_tokens": args.new,
                    "cores": cores,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
