"""The simulation engine on tiny hand-built networks (spec nalsm.md §1.1, §3, §4, §6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.engine import (
    PlasticityConfig,
    available_backends,
    extract_features,
    run_phase1,
    simulate,
)
from astrosnn.nalsm.topology import build_network, network_from_synapses

A, D = 0.1, 0.90477
NONE = PlasticityConfig(rule="none")


def _inputs(steps: int, n_in: int, on: dict[int, list[int]]) -> torch.Tensor:
    x = torch.zeros(1, steps, n_in, dtype=torch.bool)
    for t, idx in on.items():
        x[0, t, idx] = True
    return x


def _chain():
    # liquid 0 (E), 1 (E); input 2 -> 0 with weight 3 x 7 copies is impossible (distinct pairs), so use
    # 7 inputs (2..8) -> 0 at 2.9 each (7 * 2.9 = 20.3 >= 20) and 0 -> 1 with weight w
    pre = list(range(2, 9)) + [0]
    post = [0] * 7 + [1]
    return pre, post


@pytest.mark.parametrize("backend", available_backends())
def test_spike_reaches_target_within_the_step_and_fires_next(backend):
    pre, post = _chain()
    net = network_from_synapses(pre, post, [2.9] * 7 + [25.0], n_exc=2, n_input=7)
    res = simulate(net, _inputs(8, 7, {0: list(range(7))}), NONE, backend=backend)
    raster = res.spikes[0].numpy()
    assert raster[:, 2:].any(1).tolist() == [False, True, False, False, False, False, False, False]  # inputs at 1
    assert np.nonzero(raster[:, 0])[0].tolist() == [2]  # liquid 0 fires at t+1 = 2
    assert np.nonzero(raster[:, 1])[0].tolist() == [3]  # its target at 3
    assert res.counts[0].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("backend", available_backends())
def test_kernel_tail_counts(backend):
    # a 19-weight synapse does not fire the target at t+1 but its exp(-1) tail does at t+2
    pre, post = _chain()
    net = network_from_synapses(pre, post, [2.9] * 7 + [19.0], n_exc=2, n_input=7)
    res = simulate(net, _inputs(8, 7, {0: list(range(7))}), NONE, backend=backend)
    assert np.nonzero(res.spikes[0, :, 1].numpy())[0].tolist() == [4]


@pytest.mark.parametrize("backend", available_backends())
def test_input_neuron_refractory(backend):
    # an input bit every ms: the input neuron fires at 1, then every 3 ms (2-ms refractoriness)
    net = network_from_synapses([1], [0], [1.0], n_exc=1, n_input=1)
    x = torch.ones(1, 12, 1, dtype=torch.bool)
    res = simulate(net, x, NONE, backend=backend)
    assert np.nonzero(res.spikes[0, :, 1].numpy())[0].tolist() == [1, 4, 7, 10]


@pytest.mark.parametrize("decay", [1.0, 0.99])
@pytest.mark.parametrize("backend", available_backends())
def test_stdp_input_synapse_potentiation_with_decay(backend, decay):
    # inputs fire at 1, liquid 0 at 2: causal pairing on the 7 input synapses, dw = eta(t=2) * x_pre
    net = network_from_synapses(list(range(1, 8)), [0] * 7, [2.9] * 7, n_exc=1, n_input=7)
    cfg = PlasticityConfig(rule="stdp", rate_decay=decay)
    res = simulate(net, _inputs(10, 7, {0: list(range(7))}), cfg, backend=backend)
    assert res.counts[0].tolist() == [1.0]
    eta2 = 0.15 * decay**2  # decayed after steps 0 and 1
    assert res.weights[0].tolist() == pytest.approx([2.9 + eta2 * D * A] * 7, abs=1e-6)


@pytest.mark.parametrize("rule", ["stdp", "astro"])
@pytest.mark.parametrize("backend", available_backends())
def test_acausal_depression_rate_per_rule(backend, rule):
    # liquid 1 fires at 2 (inputs 2..8 at t=0), liquid 0 fires at 3 (inputs 9..15 at t=1):
    # E synapse 0 -> 1 sees an acausal pairing at 3: dw = -depression(3) * x_1
    pre = list(range(2, 9)) + list(range(9, 16)) + [0]
    post = [1] * 7 + [0] * 7 + [1]
    net = network_from_synapses(pre, post, [2.9] * 14 + [1.0], n_exc=2, n_input=14)
    x = _inputs(8, 14, {0: list(range(7)), 1: list(range(7, 14))})
    cfg = PlasticityConfig(rule=rule)
    res = simulate(net, x, cfg, backend=backend)
    spikes = res.spikes[0].numpy()
    assert np.nonzero(spikes[:, 1])[0].tolist() == [2] and np.nonzero(spikes[:, 0])[0].tolist() == [3]
    depression = float(res.astro[0, 2]) if rule == "astro" else 0.15
    rec = int(np.nonzero(net.pre == 0)[0][0])
    assert float(res.weights[0, rec]) == pytest.approx(1.0 - depression * D * A, abs=1e-6)
    if rule == "astro":
        assert depression != pytest.approx(0.15)  # the astrocyte moved
    # the inputs into liquid 0 were potentiated causally at 3 (undecayed eta)
    into0 = net.post == 0
    assert res.weights[0, torch.from_numpy(into0)].tolist() == pytest.approx([2.9 + 0.15 * D * A] * 7, abs=1e-6)


@pytest.mark.parametrize("backend", available_backends())
def test_astrocyte_trace_on_a_silent_net_with_phase2_decay(backend):
    net = network_from_synapses([1], [0], [1.0], n_exc=1, n_input=1)
    cfg = PlasticityConfig(rule="astro").phase2()
    res = simulate(net, torch.zeros(1, 5, 1, dtype=torch.bool), cfg, backend=backend)
    a, w, b = 0.15, 0.015, 0.15
    expected = []
    for _ in range(5):
        a = a + (w * 0 + b - a) / 100.0
        a, w, b = a * 0.99, w * 0.99, b * 0.99
        expected.append(a)
    assert res.astro[0].tolist() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("backend", available_backends())
def test_astrocyte_counts_liquid_minus_input(backend):
    # input 1 fires at 1 (bit at 0), liquid 0 fires at 2 (w 25 is not a legal input weight, set it anyway)
    net = network_from_synapses([1], [0], [25.0], n_exc=1, n_input=1)
    res = simulate(net, _inputs(4, 1, {0: [0]}), NONE, backend=backend)
    a = 0.15
    expected = []
    for nl, ni in [(0, 0), (0, 1), (1, 0), (0, 0)]:
        a = a + (0.015 * (nl - ni) + 0.15 - a) / 100.0
        expected.append(a)
    assert res.astro[0].tolist() == pytest.approx(expected, rel=1e-6)
    # rho = 0 hides every neuron: pure relaxation to the bias
    res0 = simulate(net, _inputs(4, 1, {0: [0]}), PlasticityConfig(rule="none", astro_density=0.0), backend=backend)
    assert res0.astro[0].tolist() == pytest.approx([0.15] * 4, rel=1e-6)


def test_batch_is_independent_per_sample():
    net = build_network((4, 4, 4), 30, seed=1)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 40, 30, generator=g) < 0.2
    cfg = PlasticityConfig(rule="astro").phase2()
    batched = simulate(net, x, cfg)
    for b in range(3):
        single = simulate(net, x[b : b + 1], cfg)
        assert torch.equal(single.spikes[0], batched.spikes[b])
        assert torch.equal(single.weights[0], batched.weights[b])
        assert torch.equal(single.astro[0], batched.astro[b])
    assert batched.counts.sum() > 0


def test_phase1_carries_weights_and_phase2_resets_them():
    net = build_network((4, 4, 4), 30, seed=1)
    g = torch.Generator().manual_seed(0)
    samples = torch.rand(4, 20, 30, generator=g) < 0.2
    cfg = PlasticityConfig(rule="astro")
    w1 = run_phase1(net, samples, cfg, progress=False)
    assert w1.shape == (net.n_synapses,)
    # by hand: the same as chaining simulate with carried weights and traces
    w, tr = None, None
    for s in samples:
        r = simulate(net, s[None], cfg, weights=w, traces=tr, record=False)
        w, tr = r.weights[0], r.traces
    assert torch.equal(w1, w)
    assert not torch.equal(w1, torch.from_numpy(net.weight))
    feats = extract_features(net, w1, samples, cfg.phase2())
    assert feats.counts.shape == (4, net.n_liquid) and feats.spikes is None
    frozen = extract_features(net, w1, samples, cfg.phase2(), freeze=True)
    assert torch.equal(frozen.weights, w1.expand(4, -1))
    # per-sample start from the same weights: sample 2 alone gives the same counts
    alone = extract_features(net, w1, samples[2:3], cfg.phase2())
    assert torch.equal(alone.counts[0], feats.counts[2])


def test_bad_inputs():
    net = network_from_synapses([1], [0], [1.0], n_exc=1, n_input=1)
    with pytest.raises(AstrosnnError, match="shape"):
        simulate(net, torch.zeros(1, 5, 2, dtype=torch.bool), NONE)
    with pytest.raises(AstrosnnError, match="weights"):
        simulate(net, torch.zeros(1, 5, 1, dtype=torch.bool), NONE, weights=torch.zeros(3))
    with pytest.raises(AstrosnnError, match="backend"):
        simulate(net, torch.zeros(1, 5, 1, dtype=torch.bool), NONE, backend="gpu-magic")
    with pytest.raises(AstrosnnError, match="rule"):
        PlasticityConfig(rule="hebb")
    with pytest.raises(AstrosnnError, match="rate_decay"):
        PlasticityConfig(rate_decay=1.5)
    with pytest.raises(AstrosnnError, match="eta_p"):
        PlasticityConfig(eta_p=-0.1)
    assert math.isclose(PlasticityConfig().phase2().rate_decay, 0.99)
