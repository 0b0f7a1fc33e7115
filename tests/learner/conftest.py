"""Every module here trains tiny models: single-threaded (tests/conftest.py `one_torch_thread`)."""

import pytest


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(one_torch_thread):
    yield
