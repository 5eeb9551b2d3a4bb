"""The event-driven backends: "event64" spike for spike with the reference on the engine test cases (and then
weights, traces and astrocyte bit for bit: they follow from the spikes in the reference's float32 formulas);
"event" (float32 current) within its stated tolerance on a 1000-neuron liquid; edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.branching import branching_factor
from astrosnn.nalsm.engine import (
    PlasticityConfig,
    available_backends,
    extract_features,
    run_phase1,
    simulate,
)
from astrosnn.nalsm.topology import Network, build_network

pytestmark = pytest.mark.skipif("event" not in available_backends(), reason="numba backend not available")

EVENT = ("event", "event64")


def _inputs(batch: int, steps: int, n_in: int, p: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, steps, n_in, generator=g) < p


def _same(a, b) -> None:
    assert torch.equal(a.spikes, b.spikes)
    assert torch.equal(a.counts, b.counts)
    assert torch.equal(a.weights, b.weights)  # same spikes -> the same float32 STDP operations
    assert torch.equal(a.astro, b.astro)
    assert torch.equal(a.traces, b.traces)


# the cases of test_engine_backends.py::test_identical_to_reference
@pytest.mark.parametrize("backend", EVENT)
@pytest.mark.parametrize(
    ("rule", "decay", "rho", "magnitude"),
    [("astro", 1.0, 1.0, 3.0), ("astro", 0.99, 0.4, 3.0), ("stdp", 0.99, 1.0, 3.0), ("none", 1.0, 1.0, 1.1)],
)
def test_spike_for_spike_with_reference(backend, rule, decay, rho, magnitude):
    net = build_network((6, 5, 5), 40, seed=3, weight_magnitude=magnitude)
    x = _inputs(3, 120, 40, 0.12, seed=4)
    cfg = PlasticityConfig(rule=rule, rate_decay=decay, astro_density=rho, seed=5)
    ref = simulate(net, x, cfg, backend="reference")
    _same(ref, simulate(net, x, cfg, backend=backend))
    assert ref.counts.sum() > 100
    if rule != "none":
        assert (ref.weights != torch.from_numpy(net.weight)).sum() > 100


@pytest.mark.parametrize("backend", EVENT)
def test_per_sample_weights_and_start_traces(backend):
    net = build_network((5, 5, 4), 30, seed=1)
    g = torch.Generator().manual_seed(2)
    w = torch.from_numpy(net.weight).expand(2, -1) * (0.5 + torch.rand(2, net.n_synapses, generator=g))
    traces = torch.rand(2, net.n_neurons, generator=g) * 0.2
    x = _inputs(2, 60, 30, 0.15, seed=3)
    cfg = PlasticityConfig(rule="astro")
    _same(simulate(net, x, cfg, weights=w, traces=traces),
          simulate(net, x, cfg, weights=w, traces=traces, backend=backend))


@pytest.mark.parametrize("backend", EVENT)
def test_phase1_and_phase2(backend):
    net = build_network((5, 5, 4), 30, seed=2)
    samples = _inputs(70, 20, 30, 0.15, seed=1)  # more than one compiled block of 64
    cfg = PlasticityConfig(rule="astro")
    w_ref = run_phase1(net, samples, cfg, progress=False)
    assert torch.equal(w_ref, run_phase1(net, samples, cfg, progress=False, backend=backend))
    f_ref = extract_features(net, w_ref, samples[:4], cfg.phase2(), record=True)
    _same(f_ref, extract_features(net, w_ref, samples[:4], cfg.phase2(), record=True, backend=backend))


def test_unsorted_synapse_list():
    net = build_network((4, 4, 4), 20, seed=0)
    perm = np.random.default_rng(0).permutation(net.n_synapses)
    shuffled = Network(net.grid, net.positions, net.n_exc, net.n_inh, net.n_input, net.pre[perm], net.post[perm],
                       net.weight[perm], net.pre_kind[perm])
    x = _inputs(2, 80, 20, 0.15, seed=9)
    cfg = PlasticityConfig(rule="astro")
    ref = simulate(net, x, cfg)
    for backend in EVENT:
        got = simulate(shuffled, x, cfg, backend=backend)
        assert torch.equal(got.spikes, ref.spikes)
        assert torch.equal(got.weights, ref.weights[:, perm])  # back in the caller's order


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
def test_batch_of_one_and_empty_input(backend):
    net = build_network((4, 4, 4), 20, seed=0)
    cfg = PlasticityConfig(rule="astro").phase2()
    x = _inputs(1, 50, 20, 0.2, seed=3)
    _same(simulate(net, x, cfg), simulate(net, x, cfg, backend=backend))
    silent = torch.zeros(2, 30, 20, dtype=torch.bool)  # no input: nothing fires, only the astrocyte moves
    ref, got = simulate(net, silent, cfg), simulate(net, silent, cfg, backend=backend)
    _same(ref, got)
    assert got.counts.sum() == 0
    empty = torch.zeros(0, 30, 20, dtype=torch.bool)  # no samples
    res = simulate(net, empty, cfg, backend=backend)
    assert res.counts.shape == (0, net.n_liquid) and res.weights.shape == (0, net.n_synapses)
    w = run_phase1(net, torch.zeros(0, 20, 20, dtype=torch.bool), cfg, progress=False, backend=backend)
    assert torch.equal(w, torch.from_numpy(net.weight).clamp(-3, 3))
