"""The event-driven backends beyond the shared equality cases of test_engine_backends.py: "event" (float32
current) within its stated tolerance on a 1000-neuron liquid; edge cases."""

from __future__ import annotations

import pytest
import torch

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.branching import branching_factor
from astrosnn.nalsm.engine import (
    PlasticityConfig,
    available_backends,
    run_phase1,
    simulate,
)
from astrosnn.nalsm.topology import build_network

pytestmark = pytest.mark.skipif("event" not in available_backends(), reason="numba backend not available")

EVENT = ("event", "event64")


def _mnist_like(batch: int, steps: int, n_in: int, seed: int) -> torch.Tensor:
    """Rate-coded input shaped like MNIST's: ~1/4 of the channels active at up to 0.3 spikes/ms."""
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(batch, 1, n_in, generator=g) * 0.3 * (torch.rand(batch, 1, n_in, generator=g) < 0.25)
    return torch.rand(batch, steps, n_in, generator=g) < p


def test_float32_tolerance_on_1000_neurons():
    """The stated tolerance of "event": >= 99.5 % of (sample, neuron) counts equal, BF within 0.02."""
    net = build_network((10, 10, 10), 784, seed=0)
    x = _mnist_like(4, 250, 784, seed=1)
    cfg = PlasticityConfig(rule="astro").phase2()
    exact = simulate(net, x, cfg, backend="fast")  # bit-identical to the reference (test_engine_backends.py)
    got = simulate(net, x, cfg, backend="event")
    assert exact.counts.sum() > 4 * 250 * 10  # an active liquid
    assert (got.counts == exact.counts).float().mean().item() >= 0.995
    assert abs(branching_factor(got.spikes, net) - branching_factor(exact.spikes, net)) <= 0.02


def test_unknown_dtype():
    from astrosnn.nalsm.backends.event import EventBackend

    with pytest.raises(AstrosnnError, match="dtype"):
        EventBackend("float16")


@pytest.mark.parametrize("backend", EVENT)
def test_batch_of_one_and_empty_input(backend, random_spikes, assert_same_simulation):
    net = build_network((4, 4, 4), 20, seed=0)
    cfg = PlasticityConfig(rule="astro").phase2()
    x = random_spikes(1, 50, 20, 0.2, seed=3)
    assert_same_simulation(simulate(net, x, cfg), simulate(net, x, cfg, backend=backend))
    silent = torch.zeros(2, 30, 20, dtype=torch.bool)  # no input: nothing fires, only the astrocyte moves
    ref, got = simulate(net, silent, cfg), simulate(net, silent, cfg, backend=backend)
    assert_same_simulation(ref, got)
    assert got.counts.sum() == 0
    empty = torch.zeros(0, 30, 20, dtype=torch.bool)  # no samples
    res = simulate(net, empty, cfg, backend=backend)
    assert res.counts.shape == (0, net.n_liquid) and res.weights.shape == (0, net.n_synapses)
    w = run_phase1(net, torch.zeros(0, 20, 20, dtype=torch.bool), cfg, progress=False, backend=backend)
    assert torch.equal(w, torch.from_numpy(net.weight).clamp(-3, 3))
