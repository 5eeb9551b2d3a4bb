"""Phase 1 in resumable pieces: `Backend.run_sequence` starts from given STDP traces and returns the final
(weights, traces); chaining pieces gives bit for bit the weights and traces of one piece, with every backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm import backends
from astrosnn.nalsm.engine import (
    PlasticityConfig,
    available_backends,
    run_phase1,
    run_phase1_chunk,
    simulate,
)
from astrosnn.nalsm.topology import build_network

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BACKENDS = available_backends()


def _inputs(batch: int, steps: int, n_in: int, p: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, steps, n_in, generator=g) < p


@pytest.fixture(scope="module")
def case():
    net = build_network((5, 5, 4), 30, seed=2)
    samples = _inputs(150, 20, 30, 0.15, seed=1)  # more than two compiled blocks of 64
    return net, samples


@pytest.fixture(scope="module")
def reference_run(case):
    net, samples = case
    return {rule: run_phase1_chunk(net, samples, PlasticityConfig(rule=rule), None, None)
            for rule in ("astro", "stdp")}


@pytest.mark.parametrize("rule", ["astro", "stdp"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_three_chunks_equal_one_piece(case, reference_run, backend, rule):
    net, samples = case
    cfg = PlasticityConfig(rule=rule)
    whole_w = run_phase1(net, samples, cfg, progress=False, backend=backend)
    w1, x1 = run_phase1_chunk(net, samples, cfg, None, None, backend=backend)
    assert torch.equal(w1, whole_w)
    w, x = None, None
    for lo, hi in ((0, 50), (50, 117), (117, 150)):  # pieces that cut the 64-sample blocks elsewhere
        w, x = run_phase1_chunk(net, samples[lo:hi], cfg, w, x, backend=backend)
    assert torch.equal(w, whole_w)
    assert torch.equal(x, x1)
    assert x.dtype == torch.float32 and x.shape == (net.n_neurons,) and bool((x > 0).any())
    assert (w != torch.from_numpy(net.weight)).sum() > 100  # phase 1 changed the weights
    ref_w, ref_x = reference_run[rule]  # fast: by construction; event/event64: spikes agree on this case
    assert torch.equal(w, ref_w)
    assert torch.equal(x, ref_x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sequence_equals_one_sample_batches(backend):
    """run_sequence == `simulate` one sample at a time with weights and traces carried (what phase 1 is)."""
    net = build_network((4, 4, 4), 20, seed=5)
    samples = _inputs(12, 25, 20, 0.2, seed=6)
    cfg = PlasticityConfig(rule="astro")
    g = torch.Generator().manual_seed(7)
    x0 = torch.rand(net.n_neurons, generator=g) * 0.3
    w, x = torch.from_numpy(net.weight).clone(), x0.clone()
    for sample in samples:
        result = simulate(net, sample.unsqueeze(0), cfg, weights=w, traces=x.unsqueeze(0), backend=backend)
        w, x = result.weights[0], result.traces[0]
    ws, xs = run_phase1_chunk(net, samples, cfg, None, x0.numpy(), backend=backend)  # numpy traces accepted
    assert torch.equal(ws, w)
    assert torch.equal(xs, x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_sequence_contract(backend):
    """Direct backend call: traces None = zeros, the arguments are not modified, new tensors come back."""
    net = build_network((4, 4, 4), 20, seed=0)
    run = backends.get_backend(backend)
    cfg = PlasticityConfig(rule="astro").resolved(net.n_liquid)
    samples = list(_inputs(5, 20, 20, 0.2, seed=1))
    w0 = torch.from_numpy(net.weight.astype(np.float32))
    w_keep = w0.clone()
    zeros = torch.zeros(net.n_neurons)
    w_a, x_a = run.run_sequence(net, iter(samples), cfg, w0)
    w_b, x_b = run.run_sequence(net, iter(samples), cfg, w0, zeros)
    assert torch.equal(w0, w_keep) and torch.equal(zeros, torch.zeros(net.n_neurons))
    assert torch.equal(w_a, w_b) and torch.equal(x_a, x_b)
    assert w_a.shape == (net.n_synapses,) and x_a.shape == (net.n_neurons,) and x_a.dtype == torch.float32
    w_e, x_e = run.run_sequence(net, iter([]), cfg, w_a, x_a)  # no samples: copies of the start
    assert torch.equal(w_e, w_a) and torch.equal(x_e, x_a)
    w_e += 1
    x_e += 1
    assert not torch.equal(w_e, w_a) and not torch.equal(x_e, x_a)


def test_backend_with_the_old_run_sequence_is_refused():
    ref = backends.get_backend("reference")

    class Old:
        run_batch = ref.run_batch

        def run_sequence(self, network, samples, plasticity, weights):
            return ref.run_sequence(network, samples, plasticity, weights)[0]

    backends.register_backend("old-style", Old())
    try:
        net = build_network((3, 3, 3), 5, seed=0)
        with pytest.raises(AstrosnnError, match="run_sequence must return"):
            run_phase1(net, _inputs(2, 10, 5, 0.3, seed=0), PlasticityConfig(), progress=False, backend="old-style")
    finally:
        backends._REGISTRY.pop("old-style")


def test_traces_of_the_wrong_shape():
    net = build_network((3, 3, 3), 5, seed=0)
    with pytest.raises(AstrosnnError, match="traces must have shape"):
        run_phase1_chunk(net, _inputs(1, 10, 5, 0.3, seed=0), PlasticityConfig(), None, torch.zeros(3))
