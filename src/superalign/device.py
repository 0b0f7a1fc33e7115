"""Where models run: `device: auto | cpu | cuda`, the dtype that goes with it, and batch sizes that back off
when CUDA runs out of memory.

- `resolve_device("auto")` is "cuda" when `torch.cuda.is_available()`, else "cpu"; "cuda" without a GPU is a
  UserError before anything loads.
- `resolve_dtype("auto", device)`: bfloat16 on CUDA (half the memory, tensor cores); on CPU, bfloat16 where the
  CPU has AMX-BF16 tile units and float32 elsewhere. Measured with SmolLM2-135M on 2 cores: on an AMX Xeon bf16
  generated 120 held-out answers in 11.5 s against 25.4 s in fp32 and scored 500 MC items in 19.9 s against
  42.6 s; on AVX-512 CPUs without AMX a bf16 forward was ~1.5x slower than fp32 (docs/history.md). An explicit
  float32 / bfloat16 is kept.
- `use_device(d)` sets the device that `load_backend(spec)` uses when a caller names none (the CLI sets it from
  `--device`, the loop from the config), so every model a command loads (learner, attacker model, judge
  model) lands on the same device without threading an argument through every experiment.
- `backoff_batches(fn, batch, ...)` runs `fn(batch)`; on a CUDA out-of-memory error it frees the cache, halves
  the batch, logs one line saying so and retries; at batch 1 it raises a UserError naming the settings to lower.

No torch import at module level: the CLI imports this for `--device` and must stay light.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from superalign.errors import UserError

DEVICES = ("auto", "cpu", "cuda")
T = TypeVar("T")

_current = "cpu"  # what load_backend uses when no device is named; library callers keep the CPU path


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # the scripted learner runs without torch
        return False
    return bool(torch.cuda.is_available())


def resolve_device(spec: str | None) -> str:
    """'cpu' or 'cuda' for `spec` (auto | cpu | cuda; None = auto); UserError for cuda without a GPU."""
    spec = (spec or "auto").strip().lower()
    if spec not in DEVICES:
        raise UserError(f"device {spec!r}: choose auto, cpu or cuda")
    if spec == "auto":
        return "cuda" if cuda_available() else "cpu"
    if spec == "cuda" and not cuda_available():
        import torch

        built = getattr(torch.version, "cuda", None)
        why = f"torch {torch.__version__} is built without CUDA" if not built else "torch sees no CUDA GPU"
        raise UserError(
            f"cuda was asked for, but {why}; use device auto or cpu (or install a CUDA build of "
            "torch on a machine with an NVIDIA GPU)"
        )
    return spec


def resolve_dtype(dtype: str | None, device: str) -> str:
    """The weights' dtype: `auto` = bfloat16 on CUDA and on CPUs with AMX-BF16, else float32; float32 /
    bfloat16 are kept as given."""
    if dtype in (None, "auto"):
        return "bfloat16" if device.startswith("cuda") or cpu_has_amx_bf16() else "float32"
    return dtype


def cpu_has_amx_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Does this CPU have AMX-BF16 (Sapphire Rapids and later Xeons)? Read from the kernel's CPU flags; False
    where they cannot be read (macOS, Windows)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


def current_device() -> str:
    """The device `load_backend` uses when none is named (see `use_device`)."""
    return _current


@contextlib.contextmanager
def use_device(device: str | None) -> Iterator[str]:
    """Within the block, models loaded without a named device go to `resolve_device(device)`."""
    global _current
    previous, _current = _current, resolve_device(device)
    try:
        yield _current
    finally:
        _current = previous


def set_device(device: str | None) -> str:
    """`use_device` for the rest of the process (a CLI command); returns the resolved device."""
    global _current
    _current = resolve_device(device)
    return _current


def oom_errors() -> tuple[type[BaseException], ...]:
    """The exception classes that mean 'the accelerator ran out of memory' (torch.cuda.OutOfMemoryError;
    it exists in CPU builds of torch too, so tests raise it to simulate an OOM)."""
    try:
        import torch
    except ImportError:
        return ()
    return (torch.cuda.OutOfMemoryError,)


def free_cached_memory() -> None:
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def backoff_batches(
    fn: Callable[[int], T],
    batch: int,
    what: str,
    log: Callable[[str], None] | None = None,
    hint: str = "",
    errors: tuple[type[BaseException], ...] | None = None,
) -> tuple[T, int]:
    """(fn(b), b) for the largest b in batch, batch/2, ..., 1 that does not run out of CUDA memory.

    Each back-off frees torch's cached blocks and logs one line (`what`: the work, e.g. "generation"); an OOM
    at batch 1 becomes a UserError with `hint` (the settings to lower). `errors` defaults to `oom_errors()`.
    `fn` must be safe to call again after a failed try (no half-applied side effects)."""
    errors = oom_errors() if errors is None else errors
    say = log or _stderr
    b = max(1, int(batch))
    while True:
        try:
            return fn(b), b
        except errors as exc:
            free_cached_memory()
            if b <= 1:
                raise UserError(
                    f"out of GPU memory in {what} even at batch 1 ({str(exc).splitlines()[0][:200]}); "
                    + (hint or "use a smaller model, dtype: bfloat16, or fewer tokens")
                ) from None
            smaller = max(1, b // 2)
            say(f"CUDA out of memory in {what} at batch {b}; retrying at batch {smaller}")
            b = smaller


def describe(device: str) -> str:
    """'cpu' or 'cuda (NVIDIA H100 80GB HBM3, 79.1 GiB)' for logs."""
    if not device.startswith("cuda"):
        return device
    import torch

    p = torch.cuda.get_device_properties(0)
    return f"cuda ({p.name}, {p.total_memory / 2**30:.1f} GiB)"


def is_cuda_model(model: Any) -> bool:
    try:
        return next(model.parameters()).device.type == "cuda"
    except (StopIteration, AttributeError):
        return False
