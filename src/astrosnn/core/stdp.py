"""Pair-based trace STDP with a third factor (spec §3).

For a synapse pre j -> post i, per ms (S of this step, traces x of the previous step):

    pre excitatory or input:  dW = +eta_p * x_j * S_i  -  D * x_i * S_j
    pre inhibitory:           dW = -D * x_j * S_i      +  eta_p * x_i * S_j

D is the depression rate: the third factor (NALSM: the astrocyte value A; plain STDP: eta_p).
Weights are clipped to per-synapse bounds afterwards (E-pre [0,3], I-pre [-3,0], input [-3,3]).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class Synapses(NamedTuple):
    """Which neurons each synapse joins (indices into the neuron axis) and its weight bounds, all (S,)."""

    pre: torch.Tensor
    post: torch.Tensor
    inhibitory_pre: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor


def stdp_delta(
    spikes: torch.Tensor,
    traces: torch.Tensor,
    synapses: Synapses,
    potentiation: torch.Tensor,
    depression: torch.Tensor,
) -> torch.Tensor:
    """Weight change (B, S). spikes/traces (B, M); potentiation/depression (B,) or scalars."""
    pre, post = synapses.pre, synapses.post
    s = spikes.to(traces.dtype)
    causal = traces.index_select(1, pre) * s.index_select(1, post)  # pre before post
    acausal = traces.index_select(1, post) * s.index_select(1, pre)  # post before pre
    potentiated = torch.where(synapses.inhibitory_pre, acausal, causal)
    depressed = torch.where(synapses.inhibitory_pre, causal, acausal)
    pot = torch.as_tensor(potentiation, dtype=traces.dtype).reshape(-1, 1)
    dep = torch.as_tensor(depression, dtype=traces.dtype).reshape(-1, 1)
    return pot * potentiated - dep * depressed


def stdp_step(
    weights: torch.Tensor,
    spikes: torch.Tensor,
    traces: torch.Tensor,
    synapses: Synapses,
    potentiation: torch.Tensor,
    depression: torch.Tensor,
) -> torch.Tensor:
    """New weights (B, S): weights + stdp_delta, clipped to [low, high] per synapse."""
    dw = stdp_delta(spikes, traces, synapses, potentiation, depression)
    return torch.clamp(weights + dw, synapses.low, synapses.high)
