"""STDP trace x <- d * (x + a * S) after a known spike train."""

from __future__ import annotations

import math

import torch

from astrosnn.core.traces import trace_step


def test_trace_after_known_spike_train():
    a, d = 0.1, 0.90477
    train = [1, 0, 0, 1, 0, 1, 1]
    x = torch.zeros(1)
    expected = 0.0
    for s in train:
        x = trace_step(x, torch.tensor([bool(s)]), a, d)
        expected = d * (expected + a * s)
    assert math.isclose(float(x), expected, rel_tol=1e-6)
    # closed form for the first four steps: d^4 a + d a
    x4 = torch.zeros(1)
    for s in train[:4]:
        x4 = trace_step(x4, torch.tensor([float(s)]), a, d)
    assert math.isclose(float(x4), d**4 * a + d * a, rel_tol=1e-6)


def test_trace_tau_ten_ms():
    # d^10 ~ 1/e (the authors' grid-searched multiplier for tau = 10 ms)
    assert abs(0.90477**10 - math.exp(-1)) < 1e-3
