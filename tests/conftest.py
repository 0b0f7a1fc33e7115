"""Shared fixtures: the tiny random SmolLM2-shaped backend (real tokenizer, 2 layers) for fast tests."""

import pytest


@pytest.fixture(scope="session")
def tiny():
    from superalign.backends import load_backend

    return load_backend("tiny", batch_size=8, dtype="float32")  # fp32 on every CPU (auto is bf16 on AMX ones)


@pytest.fixture()
def fresh_tiny():
    """A tiny backend the test may train (not shared with other tests)."""
    from superalign.backends import load_backend

    return load_backend("tiny", batch_size=8, dtype="float32")  # fp32 on every CPU (auto is bf16 on AMX ones)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny-model training runs single-threaded: on 2 shared cores, OpenMP's second thread mostly spins.

    Measured: 5 LoRA DPO steps on the tiny model took 28-60 s wall (5-11 s CPU) with 2 threads on a loaded
    machine and 4-6 s (0.7-1.1 s CPU) with 1 thread. The thread count is restored after the module."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
