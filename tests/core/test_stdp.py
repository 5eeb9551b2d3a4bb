"""Trace STDP: sign conventions per presynaptic kind and clipping (spec nalsm.md §3)."""

from __future__ import annotations

import pytest
import torch

from astrosnn.core.stdp import Synapses, stdp_delta, stdp_step

# neurons: 0 exc, 1 inh, 2 post (exc), 3 input; synapses 0->2 (E), 1->2 (I), 3->2 (input)
PRE = torch.tensor([0, 1, 3])
POST = torch.tensor([2, 2, 2])
INH = torch.tensor([False, True, False])
ETA, DEP = 0.15, 0.4
SYN = Synapses(PRE, POST, INH, torch.full((3,), -3.0), torch.full((3,), 3.0))


def _delta(spikes, traces):
    return stdp_delta(torch.tensor([spikes]), torch.tensor([traces]), SYN,
                      torch.tensor([ETA]), torch.tensor([DEP]))[0]


def test_causal_pairing_signs():
    # post spikes now, pre traces from earlier spikes
    dw = _delta([False, False, True, False], [0.5, 0.5, 0.0, 0.5])
    assert dw.tolist() == pytest.approx([ETA * 0.5, -DEP * 0.5, ETA * 0.5])


def test_acausal_pairing_signs():
    # pre neurons spike now, the post trace is from an earlier spike
    dw = _delta([True, True, False, True], [0.0, 0.0, 0.3, 0.0])
    assert dw.tolist() == pytest.approx([-DEP * 0.3, ETA * 0.3, -DEP * 0.3])


def test_no_spike_no_change():
    dw = _delta([False, False, False, False], [0.9, 0.9, 0.9, 0.9])
    assert torch.all(dw == 0)


def test_clipping_per_block():
    low = torch.tensor([0.0, -3.0, -3.0])
    high = torch.tensor([3.0, 0.0, 3.0])
    w = torch.tensor([[0.01, -0.01, 0.01]])
    # strong acausal pairing: E weight would go below 0, I weight above 0, input weight may change sign
    new = stdp_step(w, torch.tensor([[True, True, False, True]]), torch.tensor([[0.0, 0.0, 1.0, 0.0]]),
                    Synapses(PRE, POST, INH, low, high), torch.tensor([ETA]), torch.tensor([DEP]))[0]
    assert new[0] == 0.0  # E clipped at 0
    assert new[1] == 0.0  # I: -0.01 + 0.15 clipped at 0
    assert new[2] == pytest.approx(0.01 - DEP)  # input crosses zero
    w = torch.tensor([[2.99, -2.99, 2.99]])
    new = stdp_step(w, torch.tensor([[False, False, True, False]]), torch.tensor([[1.0, 1.0, 0.0, 1.0]]),
                    Synapses(PRE, POST, INH, low, high), torch.tensor([ETA]), torch.tensor([DEP]))[0]
    assert new.tolist() == pytest.approx([3.0, -3.0, 3.0])


def test_astrocyte_as_the_third_factor():
    from astrosnn.core.astrocyte import astrocyte_init, astrocyte_step

    astro = astrocyte_step(astrocyte_init(1), torch.tensor([300]), torch.tensor([100]))  # busy liquid: A rises
    assert float(astro.value) > 0.15
    dw = stdp_delta(torch.tensor([[True, True, False, True]]), torch.tensor([[0.0, 0.0, 0.3, 0.0]]), SYN,
                    torch.tensor([ETA]), astro.value)[0]
    assert dw.tolist() == pytest.approx([-float(astro.value) * 0.3, ETA * 0.3, -float(astro.value) * 0.3])
