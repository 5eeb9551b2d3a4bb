"""The LIM astrocyte: value after known spike counts, phase-2 decay, density mask."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from astrosnn.core.astrocyte import (
    AstrocyteParams,
    astrocyte_decay,
    astrocyte_init,
    astrocyte_step,
    density_mask,
)
from astrosnn.errors import AstrosnnError


def test_astrocyte_after_known_counts():
    params = AstrocyteParams(tau=100.0, weight=0.015, bias=0.15, init=0.15)
    state = astrocyte_init(1, params)
    liquid = [50, 0, 120, 10]
    inputs = [20, 40, 30, 10]
    a = 0.15
    for nl, ni in zip(liquid, inputs):
        state = astrocyte_step(state, torch.tensor([nl]), torch.tensor([ni]), params.tau)
        a = a + (0.015 * (nl - ni) + 0.15 - a) / 100.0
    assert math.isclose(float(state.value), a, rel_tol=1e-6)
    # first step by hand: 0.15 + (0.015*30 + 0.15 - 0.15)/100 = 0.1545
    s1 = astrocyte_step(astrocyte_init(1, params), torch.tensor([50]), torch.tensor([20]), 100.0)
    assert math.isclose(float(s1.value), 0.1545, rel_tol=1e-6)


def test_astrocyte_can_go_negative():
    state = astrocyte_init(1)
    for _ in range(200):
        state = astrocyte_step(state, torch.tensor([0]), torch.tensor([100]))
    assert float(state.value) < 0  # not clipped: depression turns into potentiation


def test_phase2_decay_scales_value_weight_and_bias():
    state = astrocyte_init(2)
    out = astrocyte_decay(state, 0.99)
    assert torch.allclose(out.value, torch.full((2,), 0.15 * 0.99))
    assert torch.allclose(out.weight, torch.full((2,), 0.015 * 0.99))
    assert torch.allclose(out.bias, torch.full((2,), 0.15 * 0.99))
    assert astrocyte_decay(state, 1.0) is state


@pytest.mark.parametrize("rho", [0.1, 0.25, 0.6, 1.0])
def test_density_mask_fraction(rho):
    mask = density_mask(1000, 784, rho, seed=3)
    assert mask[:1000].sum() == int(np.ceil(rho * 1000))
    assert mask[1000:].sum() == int(np.ceil(rho * 784))
    assert np.array_equal(mask, density_mask(1000, 784, rho, seed=3))  # seeded


def test_density_mask_rejects_bad_rho():
    with pytest.raises(AstrosnnError, match="rho"):
        density_mask(10, 5, 1.5)
