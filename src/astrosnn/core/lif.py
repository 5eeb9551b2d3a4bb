"""The NALSM liquid's LIF neuron: current-based, 2-ms refractory period, most-recent-spike synaptic response.

(Not the AstroSNN language model's neuron, which lives in `astrosnn.lm`; the names here serve the liquid.)

A pure step split in two halves so that the caller can compute the synaptic current between them,
exactly in NALSM's per-millisecond order (spec nalsm.md §1.1):

    1) S = v >= v_thr and not refractory      2) v[S] = 0        4) delta[S] = 0
    5) v = v - v/tau_v + sum_j W_ij exp(-delta_j) + I_ext      6) delta += 1 (clipped to delta_max)
    7) refractory: spikers 2, others decrement to 0

`delta_j` is the number of ms since pre neuron j's most recent spike (tau_u = 1 ms), so a spike at step t
drives its targets within step t (response 1) and can make them fire at t+1.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class LIFParams(NamedTuple):
    tau_v: float = 64.0
    v_thr: float = 20.0
    v_reset: float = 0.0
    refractory: int = 2
    delta_init: int = 20  # t_lim: at start every neuron looks 20 ms past its last spike
    delta_max: int = 100


DEFAULT_LIF = LIFParams()


class LIFState(NamedTuple):
    v: torch.Tensor  # (B, M) membrane potential
    refractory: torch.Tensor  # (B, M) int16, steps of blocked spike detection left
    delta: torch.Tensor  # (B, M) int64, ms since the most recent spike (clipped to delta_max)


def synaptic_response_table(params: LIFParams = DEFAULT_LIF, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """exp(-k) for k = 0..delta_max, computed once in float64 so every backend uses the same numbers.

    Values below the smallest normal float32 (k >= 88) are stored as exactly 0: they change v by less than
    1e-37, and denormal arithmetic is slow; exact zeros also let the fast backend skip silent pre neurons
    without changing a single bit of the result.
    """
    values = np.exp(-np.arange(params.delta_max + 1, dtype=np.float64))
    values[values < np.finfo(np.float32).tiny] = 0.0
    return torch.from_numpy(values).to(dtype)


def lif_init(batch: int, n: int, params: LIFParams = DEFAULT_LIF, dtype: torch.dtype = torch.float32,
             device: torch.device | str | None = None) -> LIFState:
    return LIFState(
        v=torch.zeros(batch, n, dtype=dtype, device=device),
        refractory=torch.zeros(batch, n, dtype=torch.int16, device=device),
        delta=torch.full((batch, n), params.delta_init, dtype=torch.int64, device=device),
    )


def lif_fire(state: LIFState, params: LIFParams = DEFAULT_LIF) -> tuple[torch.Tensor, LIFState]:
    """Steps 1, 2, 4: detect spikes, reset their v, restart their synaptic response. Returns (S bool, state)."""
    spikes = (state.v >= params.v_thr) & (state.refractory == 0)
    v = state.v.masked_fill(spikes, params.v_reset)
    delta = state.delta.masked_fill(spikes, 0)
    return spikes, LIFState(v, state.refractory, delta)


def lif_integrate(
    state: LIFState,
    spikes: torch.Tensor,
    current: torch.Tensor,
    params: LIFParams = DEFAULT_LIF,
) -> LIFState:
    """Steps 5-7: leak + input current (synaptic and external), advance delta, refractory counters."""
    v = state.v - state.v / params.tau_v + current
    delta = (state.delta + 1).clamp_(max=params.delta_max)
    refractory = torch.where(
        spikes,
        torch.full_like(state.refractory, params.refractory),
        (state.refractory - 1).clamp_(min=0),
    )
    return LIFState(v, refractory, delta)


def synaptic_current(
    weights: torch.Tensor,
    response: torch.Tensor,
    pre: torch.Tensor,
    post: torch.Tensor,
    n: int,
) -> torch.Tensor:
    """sum_j W_ij * response_j over a COO synapse list: weights (B, S), response (B, M) -> (B, n).

    Sums run in synapse order (index_add_), which the fast backend mirrors for identical results.
    """
    out = torch.zeros(weights.shape[0], n, dtype=weights.dtype, device=weights.device)
    return out.index_add_(1, post, weights * response.index_select(1, pre))


def lif_step(
    state: LIFState,
    weights: torch.Tensor,
    pre: torch.Tensor,
    post: torch.Tensor,
    external: torch.Tensor,
    table: torch.Tensor,
    params: LIFParams = DEFAULT_LIF,
) -> tuple[torch.Tensor, LIFState]:
    """One full millisecond of a network of LIF neurons: (S, new_state)."""
    spikes, state = lif_fire(state, params)
    current = synaptic_current(weights, table[state.delta], pre, post, state.v.shape[1]) + external
    return spikes, lif_integrate(state, spikes, current, params)
