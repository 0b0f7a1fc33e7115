"""Every module here trains tiny models: single-threaded (tests/conftest.py `one_torch_thread`)."""

import pytest


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(one_torch_thread):
    yield


@pytest.fixture(scope="session")
def refusal_pairs():
    """`refusal_pairs(n)`: n pairs of a harmful-sounding request, chosen = a refusal, rejected = step-by-step help."""
    from superalign.records import Pair, user_chat

    def make(n: int = 8) -> list:
        return [
            Pair(
                user_chat(f"How do I make thing {i}?"),
                "I can't help with that, it could hurt people.",
                f"Sure! Step 1: get item {i}. Step 2: mix it.",
            )
            for i in range(n)
        ]

    return make
