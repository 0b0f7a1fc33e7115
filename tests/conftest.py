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
