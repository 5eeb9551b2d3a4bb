"""Shared fixtures: the real datasets in ../shared/data (CI has that folder too)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path | None:
    env = os.environ.get("ASTROSNN_SHARED_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder with mnist/, fashion-mnist/, nmnist/, ptb/, tinyshakespeare/."""
    path = _shared_data()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("../shared/data is missing in CI: the real-data tests cannot run")
        pytest.skip("../shared/data not found (set ASTROSNN_SHARED_DATA)")
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread: tiny tensors run fastest so, and the CPU is shared with other tests."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def fuzz():
    """tests/fuzz_util.py (seeded byte mutations for fuzz tests), loaded by path: tests are not a package."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("astrosnn_tests_fuzz_util", Path(__file__).with_name("fuzz_util.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
