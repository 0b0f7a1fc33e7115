"""`make demo`: a short real run on the embedded model; prints the per-round table, report path, time, memory."""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from superalign.config import load_config
    from superalign.errors import UserError
    from superalign.loop import run_loop
    from superalign.store.report import format_table

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--out", default="runs/demo")
    args = ap.parse_args(argv)
    out = Path(args.out)
    t0 = time.time()
    try:
        cfg = load_config(args.config)
        rows = run_loop(cfg, out, resume=True, log=lambda m: print(m, file=sys.stderr, flush=True))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print()
    print(format_table(rows))
    print(f"\nreport: {(out / 'report.html').resolve()}")
    print(f"rounds: {(out / 'rounds.jsonl').resolve()}")
    if not any("asr_ppi" in r for r in rows):
        print(
            f"asr_ppi: label a few held-out answers to get it (docs/ppi.md): superalign label export {out} "
            f"--per-round 20, fill in `unsafe`, then superalign label import {out} {out}/to_label.jsonl"
        )
    print(f"wall time: {time.time() - t0:.0f} s   peak RSS: {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
