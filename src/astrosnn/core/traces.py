"""STDP eligibility traces: x <- d * (x + a * S), updated after the weight update (spec §3)."""

from __future__ import annotations

import torch


def trace_step(trace: torch.Tensor, spikes: torch.Tensor, a: float = 0.1, d: float = 0.90477) -> torch.Tensor:
    """One ms of the per-neuron trace; spikes is bool or float of the same shape."""
    return d * (trace + a * spikes.to(trace.dtype))
