"""The leaky-integrate-and-modulate (LIM) astrocyte of NALSM as a reusable third factor.

One global astrocyte per batch element integrates (liquid spikes - input spikes) per ms:

    A <- A + (w * (sum_liquid S - sum_input S) + b - A) / tau

and its value A is the modulation a plasticity rule consumes (NALSM: the STDP depression rate).
The astrocyte sees only the neurons of a density mask (fraction rho, spec §4 ablation).
In phase 2, A, w and b decay multiplicatively each ms (`astrocyte_decay`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from astrosnn.errors import AstrosnnError


class AstrocyteParams(NamedTuple):
    """The LIM astrocyte's constants; the defaults are the paper's (weight: for a 1000-neuron liquid)."""

    tau: float = 100.0
    weight: float = 0.015
    bias: float = 0.15
    init: float = 0.15


DEFAULT_ASTROCYTE = AstrocyteParams()


class AstrocyteState(NamedTuple):
    value: torch.Tensor  # (B,) the modulation A
    weight: torch.Tensor  # (B,) w_astro (decays in phase 2)
    bias: torch.Tensor  # (B,) b_astro (decays in phase 2)


def astrocyte_init(batch: int, params: AstrocyteParams = DEFAULT_ASTROCYTE, dtype: torch.dtype = torch.float32,
                   device: torch.device | str | None = None) -> AstrocyteState:
    return AstrocyteState(
        value=torch.full((batch,), params.init, dtype=dtype, device=device),
        weight=torch.full((batch,), params.weight, dtype=dtype, device=device),
        bias=torch.full((batch,), params.bias, dtype=dtype, device=device),
    )


def astrocyte_step(
    state: AstrocyteState,
    liquid_count: torch.Tensor,
    input_count: torch.Tensor,
    tau: float = DEFAULT_ASTROCYTE.tau,
) -> AstrocyteState:
    """One ms of the leaky integrator; counts are (B,) numbers of spikes the astrocyte sees."""
    drive = (liquid_count - input_count).to(state.value.dtype)
    value = state.value + (state.weight * drive + state.bias - state.value) / tau
    return AstrocyteState(value, state.weight, state.bias)


def astrocyte_decay(state: AstrocyteState, rate: float) -> AstrocyteState:
    """Phase-2 multiplicative decay of A, w_astro and b_astro (rate 0.99 per ms; 1.0 = none)."""
    if rate == 1.0:
        return state
    return AstrocyteState(state.value * rate, state.weight * rate, state.bias * rate)


def density_mask(n_liquid: int, n_input: int, rho: float, seed: int = 0) -> np.ndarray:
    """Bool mask (n_liquid + n_input,) of the neurons the astrocyte sees.

    Exactly ceil(rho * n) neurons of each population (as the authors' code), chosen at random (seeded)
    without replacement.
    """
    if not 0.0 <= rho <= 1.0:
        raise AstrosnnError(f"astrocyte density rho must be in [0, 1], got {rho}")
    mask = np.zeros(n_liquid + n_input, dtype=bool)
    if rho == 1.0:
        mask[:] = True
        return mask
    rng = np.random.default_rng([seed, 0xA57])
    mask[rng.choice(n_liquid, size=int(np.ceil(rho * n_liquid)), replace=False)] = True
    mask[n_liquid + rng.choice(n_input, size=int(np.ceil(rho * n_input)), replace=False)] = True
    return mask
