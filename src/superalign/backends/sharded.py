"""Scale-out: one Backend whose calls are split across workers — Ray actors, each holding its own backend.

`ShardedBackend` cuts every batch call into contiguous shards, one per worker, and concatenates the
answers in order. Sampling seeds are per row (`Sampling.seed_offset`), so a sharded call returns exactly
what one local call would: the Ray executor changes speed, never records. A worker is anything with
`submit(method, *args) -> handle` and `gather(handles) -> list`; `RayWorkers` puts a backend in each of
N Ray actors (a local HF model, or a client of an OpenAI-compatible server such as vLLM), `LocalWorkers`
runs in-process (tests, and the reference the Ray test compares with). Training never runs here: the
driver keeps the run store and trains in its own process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

from superalign.backends.base import Sampling
from superalign.errors import UserError
from superalign.records import Chat


class Workers(Protocol):
    """N backends that answer method calls; `submit` starts a call on worker i, `gather` waits for all, `close`
    releases the workers."""

    size: int

    def submit(self, worker: int, method: str, *args: Any) -> Any: ...

    def gather(self, handles: list[Any]) -> list[Any]: ...

    def close(self) -> None: ...


def shard_bounds(n: int, parts: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) ranges covering range(n) in at most `parts` near-equal non-empty pieces."""
    parts = max(1, min(parts, n))
    size, extra = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append((start, end))
        start = end
    return [b for b in out if b[1] > b[0]]


class ShardedBackend:
    """A Backend over `workers`: generate / logprobs / score_options split in contiguous shards."""

    def __init__(self, workers: Workers, name: str):
        self.workers, self.name = workers, name

    def _map(self, method: str, n: int, args_for: Any) -> list[Any]:
        bounds = shard_bounds(n, self.workers.size)
        handles = [self.workers.submit(i, method, *args_for(a, b)) for i, (a, b) in enumerate(bounds)]
        return [x for part in self.workers.gather(handles) for x in part]

    def generate(self, chats: Sequence[Chat], params: Sampling) -> list[str]:
        chats = list(chats)
        return self._map(
            "generate", len(chats), lambda a, b: (chats[a:b], replace(params, seed_offset=params.seed_offset + a))
        )

    def logprobs(self, chats: Sequence[Chat], continuations: Sequence[str]) -> list[float]:
        chats, conts = list(chats), list(continuations)
        return self._map("logprobs", len(chats), lambda a, b: (chats[a:b], conts[a:b]))

    def logprobs_text(self, prefixes: Sequence[str], continuations: Sequence[str]) -> list[float]:
        pre, conts = list(prefixes), list(continuations)
        return self._map("logprobs_text", len(pre), lambda a, b: (pre[a:b], conts[a:b]))

    def score_options(self, prefixes: Sequence[str], options: Sequence[Sequence[str]]) -> list[list[float]]:
        pre, opts = list(prefixes), [list(o) for o in options]
        return self._map("score_options", len(pre), lambda a, b: (pre[a:b], opts[a:b]))

    def close(self) -> None:
        self.workers.close()


class LocalWorkers:
    """In-process workers (one backend each): the sharding logic without Ray."""

    def __init__(self, backends: Sequence[Any]):
        self.backends, self.size = list(backends), len(backends)

    def submit(self, worker: int, method: str, *args: Any) -> Any:
        return getattr(self.backends[worker], method)(*args)

    def gather(self, handles: list[Any]) -> list[Any]:
        return handles

    def close(self) -> None:
        """The backends stay with their owner."""


class RayWorkers:
    """`actors` Ray actors, each loading `load_backend(spec)` once; torch threads split between them.

    `address`: None starts (or joins) a local Ray instance with `num_cpus`; "auto" or "ray://host:port"
    joins an existing cluster. Ray must be installed: `pip install 'superalign[ray]'`.
    """

    def __init__(
        self,
        spec: str,
        actors: int,
        batch_size: int = 32,
        dtype: str = "float32",
        address: str | None = None,
        num_cpus: int | None = None,
        threads_per_actor: int = 1,
        device: str = "cpu",
    ):
        try:
            import ray
        except ImportError:
            raise UserError("executor: ray needs Ray: pip install 'superalign[ray]' (or executor: local)") from None
        if not ray.is_initialized():
            kw: dict[str, Any] = {"address": address} if address else {"num_cpus": num_cpus}
            ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True, **kw)
        gpus = 1 if device == "cuda" else 0  # one GPU per actor: each holds the learner
        # Any: ray's stubs type an actor class's methods as plain functions (no `.remote`)
        actor_cls: Any = ray.remote(num_cpus=threads_per_actor, num_gpus=gpus)(_BackendActor)
        self.ray = ray
        self.actors = [actor_cls.remote(spec, batch_size, dtype, threads_per_actor, device) for _ in range(actors)]
        self.size = len(self.actors)
        ray.get([a.ready.remote() for a in self.actors])  # load errors surface here, not mid-round

    def submit(self, worker: int, method: str, *args: Any) -> Any:
        return self.actors[worker].call.remote(method, *args)

    def gather(self, handles: list[Any]) -> list[Any]:
        return self.ray.get(handles)

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.actors = []


class _BackendActor:
    """The body of one Ray actor: a backend loaded once, answering method calls."""

    def __init__(self, spec: str, batch_size: int, dtype: str, threads: int, device: str = "cpu"):
        import torch

        from superalign.backends import load_backend

        torch.set_num_threads(max(1, threads))
        self.backend = load_backend(spec, batch_size=batch_size, dtype=dtype, device=device)

    def ready(self) -> str:
        return self.backend.name

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self.backend, method)(*args)
