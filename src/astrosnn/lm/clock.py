"""The astrocyte clock: an input-gated leaky counter that gives the AM-SU's keys and queries an order signal.

The paper's AM-SU tells positions apart only through its short key shift (4 taps), so a memory that must
address the k-th item of a list (delayed recall, selective copying) learns the first 3-4 and guesses the rest.
The clock is a bank of ``C`` leaky integrators with input-dependent step sizes (a diagonal selective state
space, as in Mamba)::

    dt_t = softplus(W_dt x_t + b_dt)                 (C,)  how much token t advances the clock
    u_t  = W_u x_t + b_u                             (C,)  what it adds
    c_t  = exp(-A * dt_t) * c_{t-1} + dt_t * u_t     (C,)  A > 0, one rate per channel (multi-scale)

A token with ``dt ~ 0`` leaves the clock where it was (noise is skipped); a large ``dt`` resets it to
``dt * u`` (a marker restarts the count). After ``n`` ticks of equal size the channels hold
``u (1 - a^n) / (1 - a)`` for their decays ``a = exp(-A dt)``: a code of ``n`` that linear maps can turn into
distinct keys (at the write) and queries (at the read). The AM-SU adds ``W_ck c_t`` and ``W_cq c_t`` to its
key and query pre-activations.

Biological reading: astrocytic calcium integrates the synaptic events it sees, with leaks on several time scales
(microdomains to whole-cell waves), and which events count is gated by the input: a slow, input-gated trace that
reports how much has happened since a salient event, a clock the neurons' memory can be addressed by.

``clock_kind="oscillator"`` replaces the counters by damped rotations that keep count by phase
(:mod:`astrosnn.lm.clock_oscillator`).

Forms: :func:`clock_step` (one token), :func:`clock_reference` (the readable per-token loop over a sequence),
:func:`clock_chunked` (torch, any device: within a chunk one masked ``exp`` of log-decay differences, exact
and stable since every exponent is <= 0) and the numba scan of :mod:`astrosnn.lm.clock_numba` (CPU, one pass
each way); :func:`clock_sequence` picks the scan for CPU float tensors and the chunked form elsewhere. The
tests hold them all equal in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from astrosnn.lm.scan_common import is_cpu_float

__all__ = ["CLOCK_KINDS", "clock_chunked", "clock_drive", "clock_rates_init", "clock_reference", "clock_sequence", "clock_step"]


CLOCK_KINDS = ("counter", "oscillator")  # leaky counters (here) or damped rotations (clock_oscillator)


def clock_rates_init(channels: int) -> Tensor:
    """Per-channel rates ``A``, log-spaced from 1/16 to 2: decays per unit tick from 0.94 to 0.14."""
    if channels == 1:
        return torch.tensor([0.5])
    return torch.logspace(-4, 1, channels, base=2.0)


def clock_drive(x: Tensor, weight: Tensor, bias: Tensor, steps: int) -> tuple[Tensor, Tensor]:
    """``x (..., d)`` -> step sizes ``dt (..., steps)`` and drive ``u`` (the other outputs) in one matrix product:
    ``steps = C`` for the counters, one per oscillator (``C / 2``) for :mod:`astrosnn.lm.clock_oscillator`."""
    dt_raw, u = F.linear(x, weight, bias).split([steps, weight.shape[0] - steps], dim=-1)
    return F.softplus(dt_raw), u


def clock_step(dt: Tensor, u: Tensor, rate: Tensor, clock: Tensor) -> Tensor:
    """One token: ``dt, u, clock (B, C)``, ``rate (C,)`` -> the new clock ``(B, C)``."""
    return torch.exp(-rate * dt) * clock + dt * u


def clock_reference(dt: Tensor, u: Tensor, rate: Tensor, clock: Tensor) -> tuple[Tensor, Tensor]:
    """The per-token loop: ``dt, u (B, T, C)``, ``clock (B, C)`` -> ``(c (B, T, C), last clock)``."""
    out = []
    for t in range(dt.shape[1]):
        clock = clock_step(dt[:, t], u[:, t], rate, clock)
        out.append(clock)
    c = torch.stack(out, dim=1) if out else dt.new_zeros(dt.shape)
    return c, clock


def clock_sequence(
    dt: Tensor, u: Tensor, rate: Tensor, clock: Tensor, chunk_size: int = 32
) -> tuple[Tensor, Tensor]:
    """:func:`clock_reference`'s result (to float rounding) by the fastest exact form for the tensors: the
    numba scan on CPU float32/float64, else :func:`clock_chunked` (``chunk_size`` only matters there)."""
    if is_cpu_float(dt) and dt.dtype == u.dtype == rate.dtype == clock.dtype:
        # numba loads only when a CPU sequence needs it
        from astrosnn.lm.clock_numba import decayed_sum_scan

        return decayed_sum_scan(-rate * dt, dt * u, clock)
    return clock_chunked(dt, u, rate, clock, chunk_size)


def clock_chunked(
    dt: Tensor, u: Tensor, rate: Tensor, clock: Tensor, chunk_size: int = 32
) -> tuple[Tensor, Tensor]:
    """The chunked form of :func:`clock_reference` in plain torch (same arguments and result, to float
    rounding); any device."""
    B, T, C = dt.shape
    log_decay = -rate * dt  # (B, T, C), <= 0
    drive = dt * u
    out = []
    for start in range(0, T, chunk_size):
        stop = min(start + chunk_size, T)
        cum = log_decay[:, start:stop].cumsum(dim=1)  # (B, L, C): log of the decay from the chunk start
        L = stop - start
        diff = cum.unsqueeze(2) - cum.unsqueeze(1)  # (B, t, s, C): log decay from s to t
        causal = torch.ones(L, L, dtype=torch.bool, device=dt.device).tril()
        weights = torch.exp(diff.masked_fill(~causal[None, :, :, None], float("-inf")))
        c = torch.einsum("btsc,bsc->btc", weights, drive[:, start:stop]) + torch.exp(cum) * clock.unsqueeze(1)
        out.append(c)
        clock = c[:, -1]
    c = torch.cat(out, dim=1) if out else dt.new_zeros(dt.shape)
    return c, clock
