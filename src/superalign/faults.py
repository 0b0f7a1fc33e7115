"""Fault-injection points for crash-safety tests (SIGKILL at the n-th tick of a process).

Code that does durable or long work calls `tick("phase")` at fine-grained points: each generated
batch, each scoring batch, each training step, inside checkpoint and file writes before their rename,
inside a store transaction before its commit. With `SUPERALIGN_FAULT_TICK=n` the process kills itself
(SIGKILL: no cleanup, no atexit) at its n-th tick; `SUPERALIGN_FAULT_TRACE=FILE` appends each tick's
phase to FILE so a test can pick kill points per phase. Unset, a tick is one dict lookup.
"""

from __future__ import annotations

import os
import signal

_count = [0]  # ticks seen by this process (a test hook; the only module state in the package)


def tick(phase: str) -> None:
    """Count one fault point; SIGKILL this process if it is the one `SUPERALIGN_FAULT_TICK` names."""
    target, trace = os.environ.get("SUPERALIGN_FAULT_TICK"), os.environ.get("SUPERALIGN_FAULT_TRACE")
    if target is None and trace is None:
        return
    _count[0] += 1
    if trace:
        with open(trace, "a", encoding="utf-8") as fh:
            fh.write(f"{_count[0]}\t{phase}\n")
    if target is not None and _count[0] == int(target):
        os.kill(os.getpid(), signal.SIGKILL)
