"""Tiny-model training tests run single-threaded: on 2 shared cores, OpenMP's second thread mostly spins.

Measured: 5 LoRA DPO steps on the tiny model took 28-60 s wall (5-11 s CPU) with 2 threads on a loaded
machine and 4-6 s (0.7-1.1 s CPU) with 1 thread. The thread count is restored after each module.
"""

import pytest


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
