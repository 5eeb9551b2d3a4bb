"""Every LM test runs on one torch thread (see the root conftest's ``one_torch_thread``)."""

import pytest


@pytest.fixture(autouse=True, scope="module")
def _lm_tests_use_one_thread(one_torch_thread):
    yield
