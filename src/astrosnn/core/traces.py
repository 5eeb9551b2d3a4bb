"""STDP eligibility traces: x <- d * (x + a * S), updated after the weight update (spec §3)."""

from __future__ import annotations

import torch

DEFAULT_TRACE_A = 0.1  # increment per spike
DEFAULT_TRACE_DECAY = 0.90477  # per-ms multiplier (the spec's value)


def trace_step(trace: torch.Tensor, spikes: torch.Tensor, a: float = DEFAULT_TRACE_A,
               d: float = DEFAULT_TRACE_DECAY) -> torch.Tensor:
    """One ms of the per-neuron trace; spikes is bool or float of the same shape."""
    return d * (trace + a * spikes.to(trace.dtype))
