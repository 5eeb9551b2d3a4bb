"""The paper's branching-factor estimator on hand-built rasters with known answers (spec §5)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.branching import branching_factor, branching_factor_per_sample
from astrosnn.nalsm.topology import network_from_synapses


def _net():
    # 0 -> 1, 1 -> 2, 1 -> 3 (liquid), input 4 -> 1 (ignored by the estimator)
    return network_from_synapses([0, 1, 1, 4], [1, 2, 3, 1], [3.0, 3.0, 3.0, 3.0], n_exc=4, n_input=1)


def _raster() -> np.ndarray:
    r = np.zeros((250, 5), dtype=bool)
    r[[97, 99], 0] = True  # two ancestors of neuron 1's event at 100
    r[100, 1] = True
    r[[101, 104], 2] = True  # two descendants in [101, 104] ...
    r[105, 2] = True  # ... and one too late
    r[102, 3] = True  # a third descendant
    r[[10, 230], 1] = True  # events outside [29, 221) are ignored
    r[[11, 231], 2] = True
    r[99:104, 4] = True  # input spikes never count
    return r


def test_known_answer():
    # neuron 0: events 97 (desc: 1 at 100 -> 1/1) and 99 (1/1) -> 1.0
    # neuron 1: event 100, ancestors 2, descendants 3 -> 1.5
    # neurons 2, 3: events without postsynaptic liquid neurons -> 0
    bf = branching_factor(_raster()[None], _net())
    assert math.isclose(bf, (1.0 + 1.5 + 0.0 + 0.0) / 4)


def test_per_sample_and_silent_sample():
    silent = np.zeros((250, 5), dtype=bool)
    per = branching_factor_per_sample(np.stack([_raster(), silent]), _net())
    assert per[0] == pytest.approx(0.625) and math.isnan(per[1])
    assert branching_factor(np.stack([_raster(), silent]), _net()) == pytest.approx(0.625)  # NaN samples skipped
    assert math.isnan(branching_factor(silent[None], _net()))


def test_ancestors_clip_at_one_and_window_edges():
    r = np.zeros((250, 5), dtype=bool)
    r[29, 1] = True  # first admissible event time (25 + 4)
    r[30, 2] = True
    r[33, 3] = True  # 30..33 are the descendants window
    r[220, 1] = True  # last admissible event (224 - 4)
    r[224, 2] = True
    r[221, 1] = True  # not admissible
    # neuron 1: events 29 (2 desc, 0 anc -> 2), 220 (1 desc -> 1) -> 1.5; neurons 2, 3 -> 0 (their events
    # at 30, 33, 224: 224 is outside [29, 221) so neuron 2 has one event)
    assert branching_factor(r[None], _net()) == pytest.approx((1.5 + 0.0 + 0.0) / 3)


def test_too_short_raster():
    with pytest.raises(AstrosnnError, match="window"):
        branching_factor(np.zeros((1, 100, 5), dtype=bool), _net())


def _naive(raster: np.ndarray, net, start=25, stop=225, dt=4) -> float:
    """Direct transcription of the authors' per-neuron loop (compute_branching_factor.py)."""
    n = net.n_liquid
    rec = net.pre < n
    pres = {i: net.pre[rec][net.post[rec] == i] for i in range(n)}
    posts = {i: net.post[rec][net.pre[rec] == i] for i in range(n)}
    per_neuron = []
    for i in range(n):
        ratios = []
        for t in range(start + dt, stop - dt):
            if raster[t, i]:
                anc = raster[t - dt : t][:, pres[i]].sum()
                desc = raster[t + 1 : t + 1 + dt][:, posts[i]].sum()
                ratios.append(desc / max(anc, 1))
        per_neuron.append(np.mean(ratios) if ratios else np.nan)
    return float(np.nanmean(per_neuron))


def test_matches_the_authors_loop_on_a_random_raster():
    from astrosnn.nalsm.topology import build_network

    net = build_network((4, 4, 3), 5, seed=0)
    rng = np.random.default_rng(0)
    raster = rng.random((2, 250, net.n_neurons)) < 0.08
    per = branching_factor_per_sample(raster, net)
    for b in range(2):
        assert per[b] == pytest.approx(_naive(raster[b], net), rel=1e-12)
