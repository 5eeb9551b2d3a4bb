"""Topology statistics, determinism, explicit networks and save/load (spec nalsm.md §1.2-1.3)."""

from __future__ import annotations

import numpy as np
import pytest

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.topology import (
    PRE_EXC,
    PRE_INH,
    PRE_INPUT,
    Network,
    build_network,
    clip_bounds,
    network_from_synapses,
)


@pytest.fixture(scope="module")
def net1000() -> Network:
    return build_network((10, 10, 10), 784, seed=0)


def _expected_recurrent(net: Network, c=(0.2, 0.1, 0.3, 0.05), lam=3.0) -> tuple[float, float]:
    pos = net.positions.astype(np.float64)
    d2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1)
    inh = np.arange(net.n_liquid) >= net.n_exc
    table = np.array([[c[0], c[2]], [c[1], c[3]]])  # [post kind, pre kind]
    p = table[inh[:, None].astype(int), inh[None, :].astype(int)] * np.exp(-d2 / lam**2)
    np.fill_diagonal(p, 0.0)
    return p.sum(), np.sqrt((p * (1 - p)).sum())


def test_counts_1000_neurons_784_inputs(net1000):
    net = net1000
    assert (net.n_liquid, net.n_exc, net.n_inh, net.n_input) == (1000, 800, 200, 784)
    assert net.n_synapses - net.n_recurrent == 117_600  # int(0.15 * 1000 * 784), exactly
    mean, std = _expected_recurrent(net)
    assert 16_000 < mean < 17_400  # the spec's ~16.7k
    assert abs(net.n_recurrent - mean) < 5 * std


def test_block_structure(net1000):
    net = net1000
    rec = net.pre_kind != PRE_INPUT
    assert np.all(rec[: net.n_recurrent]) and not np.any(rec[net.n_recurrent:])  # liquid first, then input
    assert np.all(net.pre[rec] != net.post[rec])  # no self-connections
    assert np.all(net.post < net.n_liquid)
    assert np.all((net.pre[~rec] >= net.n_liquid) & (net.pre[~rec] < net.n_neurons))
    assert np.all(net.pre_kind[rec] == np.where(net.pre[rec] >= net.n_exc, PRE_INH, PRE_EXC))
    pairs = net.pre * net.n_neurons + net.post
    assert np.unique(pairs).size == net.n_synapses  # no duplicate synapses
    # per-block in-degree ratios follow C: E<-E (0.2) has twice the rate of I<-E (0.1) per post neuron
    post_inh = net.post >= net.n_exc
    ee = np.sum((net.pre_kind == PRE_EXC) & ~post_inh) / net.n_exc
    ei = np.sum((net.pre_kind == PRE_EXC) & post_inh) / net.n_inh
    assert 1.6 < ee / ei < 2.4
    # input synapses project to E and I liquid neurons alike (about 15% of inputs each)
    per_post = np.bincount(net.post[~rec], minlength=net.n_liquid)
    assert abs(per_post[: net.n_exc].mean() - 117.6) < 3 and abs(per_post[net.n_exc:].mean() - 117.6) < 5


def test_positions_are_a_permutation_of_the_grid(net1000):
    pos = net1000.positions
    assert pos.shape == (1000, 3)
    flat = pos[:, 0] * 100 + pos[:, 1] * 10 + pos[:, 2]
    assert np.array_equal(np.sort(flat), np.arange(1000))
    # E neurons are scattered over the grid, not stacked at one end
    assert abs(pos[: net1000.n_exc, 0].mean() - 4.5) < 0.6


def test_weights_signs_and_clip_ranges(net1000):
    net = net1000
    w, kind = net.weight, net.pre_kind
    assert w.dtype == np.float32
    assert np.all(w[kind == PRE_EXC] == 3.0) and np.all(w[kind == PRE_INH] == -3.0)
    inp = w[kind == PRE_INPUT]
    assert set(np.unique(inp).tolist()) == {-3.0, 3.0}
    assert 0.47 < np.mean(inp > 0) < 0.53
    low, high = clip_bounds(net)
    assert np.all(low[kind == PRE_EXC] == 0) and np.all(high[kind == PRE_EXC] == 3)
    assert np.all(low[kind == PRE_INH] == -3) and np.all(high[kind == PRE_INH] == 0)
    assert np.all(low[kind == PRE_INPUT] == -3) and np.all(high[kind == PRE_INPUT] == 3)
    assert np.all((w >= low) & (w <= high))
    lsm = build_network((10, 10, 10), 784, seed=0, weight_magnitude=0.8)  # the lsm's |w|: same graph, same signs
    assert np.array_equal(np.sign(lsm.weight), np.sign(w)) and np.all(np.abs(lsm.weight) == np.float32(0.8))


def test_seeded_and_chunk_independent():
    a = build_network((5, 4, 3), 20, seed=7)
    b = build_network((5, 4, 3), 20, seed=7, chunk=7)
    c = build_network((5, 4, 3), 20, seed=8)
    for field in ("positions", "pre", "post", "weight", "pre_kind"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert not (a.n_synapses == c.n_synapses and np.array_equal(a.pre, c.pre))


def test_save_load_round_trip(tmp_path, net1000):
    for target in (tmp_path / "liquid", tmp_path / "net.safetensors"):
        net1000.save(target)
        back = Network.load(target)
        assert back.grid == net1000.grid and back.n_exc == 800 and back.n_input == 784
        for field in ("positions", "pre", "post", "weight", "pre_kind"):
            assert np.array_equal(getattr(back, field), getattr(net1000, field))
        assert back.params["seed"] == 0


def test_load_errors(tmp_path):
    with pytest.raises(AstrosnnError, match="not found"):
        Network.load(tmp_path / "missing")
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "network.json").write_text('{"format": "something else"}')
    with pytest.raises(AstrosnnError, match="not an astrosnn"):
        Network.load(folder)


@pytest.mark.parametrize("grid", [(0, 10, 10), (10, -1, 10), (3, 3)])
def test_bad_grid(grid):
    with pytest.raises(AstrosnnError, match="grid"):
        build_network(grid, 10)


def test_explicit_network_orders_and_kinds():
    # 2 exc (0, 1), 1 inh (2), 2 inputs (3, 4)
    net = network_from_synapses([3, 0, 2, 4], [0, 1, 0, 2], [3.0, 1.0, -2.0, -1.0], n_exc=2, n_inh=1, n_input=2)
    assert net.pre.tolist() == [0, 2, 3, 4]
    assert net.pre_kind.tolist() == [PRE_EXC, PRE_INH, PRE_INPUT, PRE_INPUT]
    assert net.weight.tolist() == [1.0, -2.0, 3.0, -1.0]
    assert net.n_recurrent == 2
    with pytest.raises(AstrosnnError, match="out of range"):
        network_from_synapses([0], [3], [1.0], n_exc=2, n_input=1)  # post must be a liquid neuron
