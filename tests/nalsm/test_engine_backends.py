"""The fast (numba) backend gives bit-identical spikes, weights, traces and astrocyte to the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from astrosnn.nalsm.engine import (
    PlasticityConfig,
    available_backends,
    extract_features,
    run_phase1,
    simulate,
)
from astrosnn.nalsm.topology import Network, build_network

pytestmark = pytest.mark.skipif("fast" not in available_backends(), reason="numba backend not available")


def _inputs(batch: int, steps: int, n_in: int, p: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, steps, n_in, generator=g) < p


def _same(a, b) -> None:
    assert torch.equal(a.spikes, b.spikes)
    assert torch.equal(a.counts, b.counts)
    assert torch.equal(a.weights, b.weights)  # exact: same float32 operations in the same order
    assert torch.equal(a.astro, b.astro)
    assert torch.equal(a.traces, b.traces)


@pytest.mark.parametrize(
    ("rule", "decay", "rho", "magnitude"),
    [("astro", 1.0, 1.0, 3.0), ("astro", 0.99, 0.4, 3.0), ("stdp", 0.99, 1.0, 3.0), ("none", 1.0, 1.0, 1.1)],
)
def test_identical_to_reference(rule, decay, rho, magnitude):
    net = build_network((6, 5, 5), 40, seed=3, weight_magnitude=magnitude)
    x = _inputs(3, 120, 40, 0.12, seed=4)
    cfg = PlasticityConfig(rule=rule, rate_decay=decay, astro_density=rho, seed=5)
    ref = simulate(net, x, cfg, backend="reference")
    fast = simulate(net, x, cfg, backend="fast")
    _same(ref, fast)
    assert ref.counts.sum() > 100  # the liquid was active: the comparison means something
    if rule != "none":
        assert (ref.weights != torch.from_numpy(net.weight)).sum() > 100


def test_identical_with_per_sample_weights_and_start_traces():
    net = build_network((5, 5, 4), 30, seed=1)
    g = torch.Generator().manual_seed(2)
    w = torch.from_numpy(net.weight).expand(2, -1) * (0.5 + torch.rand(2, net.n_synapses, generator=g))
    traces = torch.rand(2, net.n_neurons, generator=g) * 0.2
    x = _inputs(2, 60, 30, 0.15, seed=3)
    cfg = PlasticityConfig(rule="astro")
    _same(simulate(net, x, cfg, weights=w, traces=traces), simulate(net, x, cfg, weights=w, traces=traces, backend="fast"))


def test_phase1_and_phase2_identical():
    net = build_network((5, 5, 4), 30, seed=2)
    samples = _inputs(70, 20, 30, 0.15, seed=1)  # more than one compiled block of 64
    cfg = PlasticityConfig(rule="astro")
    w_ref = run_phase1(net, samples, cfg, progress=False)
    w_fast = run_phase1(net, samples, cfg, progress=False, backend="fast")
    assert torch.equal(w_ref, w_fast)
    f_ref = extract_features(net, w_ref, samples[:4], cfg.phase2(), record=True)
    f_fast = extract_features(net, w_ref, samples[:4], cfg.phase2(), record=True, backend="fast")
    _same(f_ref, f_fast)


def test_unsorted_synapse_list_still_works():
    net = build_network((4, 4, 4), 20, seed=0)
    perm = np.random.default_rng(0).permutation(net.n_synapses)
    shuffled = Network(net.grid, net.positions, net.n_exc, net.n_inh, net.n_input, net.pre[perm], net.post[perm],
                       net.weight[perm], net.pre_kind[perm])
    x = _inputs(2, 80, 20, 0.15, seed=9)
    cfg = PlasticityConfig(rule="astro")
    fast = simulate(shuffled, x, cfg, backend="fast")
    ref = simulate(net, x, cfg)  # the sorted network: the fast backend sums in that order
    assert torch.equal(fast.spikes, ref.spikes)
    assert torch.equal(fast.weights, ref.weights[:, perm])  # results come back in the caller's order
