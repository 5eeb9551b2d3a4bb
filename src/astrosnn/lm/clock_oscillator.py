"""Oscillating astrocyte clock: pairs of clock channels that rotate as they tick, a phase code of the count.

The leaky counters of :mod:`astrosnn.lm.clock` code the number of ticks ``n`` by saturating exponentials, all
monotone in ``n``; a memory addressed by them must separate the k-th of 16 items by thresholds on monotone
curves. Here each of ``P`` oscillators is a damped rotation in the plane, one complex number per pair::

    z_t = exp((-A + i w) dt_t) z_{t-1} + dt_t (u_t + i v_t)       A > 0 damping, w angular frequency per tick

A token with ``dt ~ 0`` leaves the phase where it was; ``n`` ticks of equal size turn the phase by ``n w dt``:
with several frequencies, ``(cos, sin)`` of the count at several periods, the sinusoidal position code of
Transformers, which linear key and query maps turn into a similarity that peaks where the counts agree. The
state is kept real, ``(B, 2P)``: the ``P`` real parts, then the ``P`` imaginary parts.

Biological reading: astrocytic calcium oscillates (intracellular waves with periods set by IP3 and the stores),
and its phase advances with the events that drive it: an oscillator driven by input events keeps count by phase.

Forms, as for the counter: :func:`oscillator_step`, :func:`oscillator_reference` (per-token loop),
:func:`oscillator_chunked` (torch complex, any device) and the numba scan
:func:`astrosnn.lm.clock_numba.oscillator_scan` (CPU); :func:`oscillator_sequence` picks. The tests hold them equal
in float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from astrosnn.lm.scan_common import is_cpu_float

__all__ = ["oscillator_chunked", "oscillator_init", "oscillator_reference", "oscillator_sequence", "oscillator_step"]


def oscillator_init(pairs: int) -> tuple[Tensor, Tensor]:
    """Damping ``A`` (1/64 to 1/4 per tick) and angular frequency ``w`` (periods of 3 to 64 ticks), ``(P,)`` each,
    fastest period with the strongest damping."""
    if pairs == 1:
        return torch.tensor([1 / 16]), torch.tensor([2 * math.pi / 8])
    rates = torch.logspace(-2, -6, pairs, base=2.0)
    periods = torch.logspace(math.log2(3), 6, pairs, base=2.0)
    return rates, 2 * math.pi / periods


def _complex(real_pairs: Tensor) -> Tensor:
    x, y = real_pairs.chunk(2, dim=-1)
    return torch.complex(x, y)


def _real(z: Tensor) -> Tensor:
    return torch.cat([z.real, z.imag], dim=-1)


def oscillator_step(dt: Tensor, u: Tensor, rate: Tensor, freq: Tensor, clock: Tensor) -> Tensor:
    """One token: ``dt (B, P)``, ``u, clock (B, 2P)``, ``rate, freq (P,)`` -> the new clock ``(B, 2P)``."""
    turn = torch.exp(torch.complex(-rate * dt, freq * dt))
    return _real(turn * _complex(clock) + dt * _complex(u))


def oscillator_reference(dt: Tensor, u: Tensor, rate: Tensor, freq: Tensor, clock: Tensor) -> tuple[Tensor, Tensor]:
    """The per-token loop: ``dt (B, T, P)``, ``u (B, T, 2P)``, ``clock (B, 2P)`` -> ``(c (B, T, 2P), last)``."""
    out = []
    for t in range(dt.shape[1]):
        clock = oscillator_step(dt[:, t], u[:, t], rate, freq, clock)
        out.append(clock)
    c = torch.stack(out, dim=1) if out else u.new_zeros(u.shape)
    return c, clock


def oscillator_chunked(
    dt: Tensor, u: Tensor, rate: Tensor, freq: Tensor, clock: Tensor, chunk_size: int = 32
) -> tuple[Tensor, Tensor]:
    """The chunked form in torch complex arithmetic (same arguments and result as the loop, to rounding): within a
    chunk one masked ``exp`` of log-turn differences, whose real parts are <= 0."""
    B, T, P = dt.shape
    log_turn = torch.complex(-rate * dt, freq * dt)  # (B, T, P)
    drive = dt * _complex(u)
    z = _complex(clock)
    out = []
    for start in range(0, T, chunk_size):
        stop = min(start + chunk_size, T)
        L = stop - start
        cum = log_turn[:, start:stop].cumsum(dim=1)
        causal = torch.ones(L, L, dtype=torch.bool, device=dt.device).tril()[None, :, :, None]
        diff = (cum.unsqueeze(2) - cum.unsqueeze(1)).masked_fill(~causal, 0)  # 0, not -inf: exp stays finite
        weights = diff.exp() * causal
        c = torch.einsum("btsp,bsp->btp", weights, drive[:, start:stop]) + cum.exp() * z.unsqueeze(1)
        out.append(c)
        z = c[:, -1]
    c = _real(torch.cat(out, dim=1)) if out else u.new_zeros(u.shape)
    return c, _real(z)


def oscillator_sequence(
    dt: Tensor, u: Tensor, rate: Tensor, freq: Tensor, clock: Tensor, chunk_size: int = 32
) -> tuple[Tensor, Tensor]:
    """The loop's result by the fastest exact form: the numba scan on CPU float tensors, else the chunked one."""
    if is_cpu_float(dt) and dt.dtype == u.dtype == rate.dtype == freq.dtype == clock.dtype:
        # numba loads only when a CPU sequence needs it
        from astrosnn.lm.clock_numba import oscillator_scan

        return oscillator_scan(-rate * dt, freq * dt, dt.repeat(1, 1, 2) * u, clock)
    return oscillator_chunked(dt, u, rate, freq, clock, chunk_size)
