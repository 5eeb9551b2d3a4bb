"""Shared helpers of the NALSM engine tests (fixtures, since tests import with --import-mode=importlib)."""

from __future__ import annotations

import pytest
import torch


def _random_spikes(batch: int, steps: int, n_in: int, p: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, steps, n_in, generator=g) < p


def _assert_same_simulation(a, b) -> None:
    assert torch.equal(a.spikes, b.spikes)
    assert torch.equal(a.counts, b.counts)
    assert torch.equal(a.weights, b.weights)  # same spikes -> the same float32 STDP operations
    assert torch.equal(a.astro, b.astro)
    assert torch.equal(a.traces, b.traces)


@pytest.fixture
def random_spikes():
    """``(batch, steps, n_in, p, seed) -> bool spikes``, Bernoulli(p) per channel and ms."""
    return _random_spikes


@pytest.fixture
def assert_same_simulation():
    """Asserts two `SimulationResult`s are identical in spikes, counts, weights, astrocyte and traces."""
    return _assert_same_simulation
