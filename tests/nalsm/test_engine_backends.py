"""Every compiled backend gives spikes, weights, traces and astrocyte identical to the reference: `fast` by the
same float32 operations in the same order, `event` / `event64` because on these cases every spike agrees and
weights, traces and astrocyte follow from the spikes in the reference's float32 formulas."""

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

COMPILED = [pytest.param(b, marks=pytest.mark.skipif(b not in available_backends(), reason=f"{b} not available"))
            for b in ("fast", "event", "event64")]  # fmt: skip


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize(
    ("rule", "decay", "rho", "magnitude"),
    [("astro", 1.0, 1.0, 3.0), ("astro", 0.99, 0.4, 3.0), ("stdp", 0.99, 1.0, 3.0), ("none", 1.0, 1.0, 1.1)],
)
def test_identical_to_reference(backend, rule, decay, rho, magnitude, random_spikes, assert_same_simulation):
    net = build_network((6, 5, 5), 40, seed=3, weight_magnitude=magnitude)
    x = random_spikes(3, 120, 40, 0.12, seed=4)
    cfg = PlasticityConfig(rule=rule, rate_decay=decay, astro_density=rho, seed=5)
    ref = simulate(net, x, cfg, backend="reference")
    assert_same_simulation(ref, simulate(net, x, cfg, backend=backend))
    assert ref.counts.sum() > 100  # the liquid was active: the comparison means something
    if rule != "none":
        assert (ref.weights != torch.from_numpy(net.weight)).sum() > 100


@pytest.mark.parametrize("backend", COMPILED)
def test_identical_with_per_sample_weights_and_start_traces(backend, random_spikes, assert_same_simulation):
    net = build_network((5, 5, 4), 30, seed=1)
    g = torch.Generator().manual_seed(2)
    w = torch.from_numpy(net.weight).expand(2, -1) * (0.5 + torch.rand(2, net.n_synapses, generator=g))
    traces = torch.rand(2, net.n_neurons, generator=g) * 0.2
    x = random_spikes(2, 60, 30, 0.15, seed=3)
    cfg = PlasticityConfig(rule="astro")
    assert_same_simulation(simulate(net, x, cfg, weights=w, traces=traces),
                           simulate(net, x, cfg, weights=w, traces=traces, backend=backend))  # fmt: skip


@pytest.mark.parametrize("backend", COMPILED)
def test_phase1_and_phase2_identical(backend, random_spikes, assert_same_simulation):
    net = build_network((5, 5, 4), 30, seed=2)
    samples = random_spikes(70, 20, 30, 0.15, seed=1)  # more than one compiled block of 64
    cfg = PlasticityConfig(rule="astro")
    w_ref = run_phase1(net, samples, cfg, progress=False)
    assert torch.equal(w_ref, run_phase1(net, samples, cfg, progress=False, backend=backend))
    f_ref = extract_features(net, w_ref, samples[:4], cfg.phase2(), record=True)
    assert_same_simulation(f_ref, extract_features(net, w_ref, samples[:4], cfg.phase2(), record=True,
                                                   backend=backend))  # fmt: skip


@pytest.mark.parametrize("backend", COMPILED)
def test_unsorted_synapse_list_still_works(backend, random_spikes):
    net = build_network((4, 4, 4), 20, seed=0)
    perm = np.random.default_rng(0).permutation(net.n_synapses)
    shuffled = Network(net.grid, net.positions, net.n_exc, net.n_inh, net.n_input, net.pre[perm], net.post[perm],
                       net.weight[perm], net.pre_kind[perm])
    x = random_spikes(2, 80, 20, 0.15, seed=9)
    cfg = PlasticityConfig(rule="astro")
    got = simulate(shuffled, x, cfg, backend=backend)
    ref = simulate(net, x, cfg)  # the sorted network: the compiled backends sum in that order
    assert torch.equal(got.spikes, ref.spikes)
    assert torch.equal(got.weights, ref.weights[:, perm])  # results come back in the caller's order


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
def test_the_reference_on_a_device_is_the_reference(device, random_spikes, assert_same_simulation):
    """The `cuda` backend's code path (tensors moved to a device once, results back on the CPU): exact on the
    CPU; on CUDA (atomic float32 sums) the spike counts agree on nearly every (sample, neuron)."""
    from astrosnn.nalsm.backends.reference import BACKEND, ReferenceBackend

    net = build_network((6, 5, 5), 40, seed=3)
    x = random_spikes(3, 120, 40, 0.12, seed=4)
    cfg = PlasticityConfig(rule="astro", seed=5)
    w = torch.from_numpy(net.weight).expand(3, -1).clone()
    on_device = ReferenceBackend(device=device)
    ref = BACKEND.run_batch(net, x, cfg, w.clone(), True, None)
    got = on_device.run_batch(net, x, cfg, w.clone(), True, None)
    assert got.counts.device.type == "cpu" and got.weights.device.type == "cpu"
    assert ref.counts.sum() > 100
    seq = [s for s in random_spikes(5, 20, 40, 0.15, seed=1)]
    w1, x1 = BACKEND.run_sequence(net, seq, cfg, torch.from_numpy(net.weight))
    w2, x2 = on_device.run_sequence(net, seq, cfg, torch.from_numpy(net.weight))
    if device == "cpu":
        assert_same_simulation(ref, got)
        assert torch.equal(w1, w2) and torch.equal(x1, x2)
    else:
        assert (ref.counts == got.counts).float().mean() > 0.99
        assert torch.allclose(w1, w2, atol=1e-3)


def test_the_cuda_backend_is_one_clear_line_without_a_gpu():
    from astrosnn.errors import AstrosnnError
    from astrosnn.nalsm.backends import get_backend

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(AstrosnnError, match="engine backend 'cuda' is not available: no CUDA device"):
        get_backend("cuda")
