"""LIF step rules on single neurons (spec nalsm.md §1.1)."""

from __future__ import annotations

import math

import torch

from astrosnn.core.lif import (
    LIFParams,
    lif_fire,
    lif_init,
    lif_integrate,
    lif_step,
    synaptic_response_table,
)


def test_synaptic_response_table_is_exp_minus_k():
    table = synaptic_response_table()
    assert table.shape == (101,)
    assert table[0] == 1.0
    assert math.isclose(float(table[1]), math.exp(-1), rel_tol=1e-7)
    assert math.isclose(float(table[20]), math.exp(-20), rel_tol=1e-6)
    # below the smallest normal float32 the kernel is exactly 0 (no denormals; < 1e-37 effect on v)
    assert float(table[87]) > 0 and torch.all(table[88:] == 0)


def test_initial_state_looks_20ms_past_a_spike():
    state = lif_init(2, 3)
    assert torch.all(state.v == 0) and torch.all(state.refractory == 0)
    assert torch.all(state.delta == 20)


def test_refractory_blocks_two_steps_while_v_integrates():
    params = LIFParams()
    state = lif_init(1, 1)
    drive = torch.full((1, 1), 30.0)
    spikes, vs = [], []
    for _ in range(8):
        s, state = lif_fire(state, params)
        state = lif_integrate(state, s, drive, params)
        spikes.append(bool(s))
        vs.append(float(state.v))
    # v reaches 30 at step 0, spike at 1, blocked at 2 and 3 although v >= 20, spike again at 4
    assert spikes == [False, True, False, False, True, False, False, True]
    assert vs[2] > 20 and vs[3] > vs[2]  # integrates (no clamping) during refractoriness
    assert math.isclose(vs[2], 30 - 30 / 64 + 30, rel_tol=1e-6)


def test_reset_to_zero_and_leak():
    state = lif_init(1, 1)
    state = state._replace(v=torch.tensor([[25.0]]))
    s, state = lif_fire(state)
    assert bool(s) and float(state.v) == 0.0 and int(state.delta) == 0
    state = lif_integrate(state, s, torch.zeros(1, 1))
    assert int(state.refractory) == 2 and int(state.delta) == 1
    state = state._replace(v=torch.tensor([[10.0]]))
    state = lif_integrate(state, torch.zeros(1, 1, dtype=torch.bool), torch.zeros(1, 1))
    assert math.isclose(float(state.v), 10 - 10 / 64, rel_tol=1e-7)
    assert int(state.refractory) == 1 and int(state.delta) == 2


def test_spike_reaches_target_same_step_and_decays_by_e():
    # neuron 0 -> neuron 1 with weight w; neuron 0 is pushed over threshold
    table = synaptic_response_table()
    pre, post = torch.tensor([0]), torch.tensor([1])
    w = torch.tensor([[19.0]])
    state = lif_init(1, 2)._replace(v=torch.tensor([[25.0, 0.0]]))
    ext = torch.zeros(1, 2)
    s, state = lif_step(state, w, pre, post, ext, table)
    assert s.tolist() == [[True, False]]
    expected = 19.0 + 19.0 * math.exp(-20)  # delta was 20 for neuron 1's own (absent) inputs: none; pre reset to 0
    assert math.isclose(float(state.v[0, 1]), expected, rel_tol=1e-6)
    s, state = lif_step(state, w, pre, post, ext, table)
    assert s.tolist() == [[False, False]]  # 19 < 20: no spike
    v1 = 19.0 - 19.0 / 64 + 19.0 * math.exp(-1)
    assert math.isclose(float(state.v[0, 1]), v1, rel_tol=1e-5)
    s, state = lif_step(state, w, pre, post, ext, table)
    assert s.tolist() == [[False, True]]  # the kernel tail carried it over threshold
