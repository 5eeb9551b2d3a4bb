"""The astrocyte clock's recurrence ``c_t = exp(l_t) c_{t-1} + b_t`` as numba kernels for CPU tensors.

One pass forward, one reverse pass back (``O(B T C)``), inside a ``torch.autograd.Function``; the chunked torch
form (:func:`astrosnn.lm.clock.clock_chunked`) costs ``O(B T L C)`` for chunk length ``L`` and dominated a
training step at long sequences. Same contract as :func:`astrosnn.lm.clock.clock_reference` (with
``l = -A dt`` and ``b = dt u`` formed outside), which the tests hold it equal to in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numba import njit
from torch import Tensor

__all__ = ["decayed_sum_scan", "oscillator_scan"]


@njit(nogil=True, cache=True, error_model="numpy")
def _forward_kernel(log_decay, drive, c0, out):  # fmt: skip
    B, T, C = log_decay.shape
    for b in range(B):
        c = c0[b].copy()
        for t in range(T):
            for k in range(C):
                c[k] = np.exp(log_decay[b, t, k]) * c[k] + drive[b, t, k]
                out[b, t, k] = c[k]


@njit(nogil=True, cache=True, error_model="numpy")
def _backward_kernel(grad_out, grad_last, log_decay, c0, out, grad_log_decay, grad_drive, grad_c0):  # fmt: skip
    """With ``g_t = dL/dc_t`` (direct + carried): ``dL/db_t = g_t``, ``dL/dl_t = g_t a_t c_{t-1}``, and
    ``a_t g_t`` carries to ``t - 1``."""
    B, T, C = log_decay.shape
    for b in range(B):
        carry = grad_last[b].copy()
        for t in range(T - 1, -1, -1):
            for k in range(C):
                g = grad_out[b, t, k] + carry[k]
                a = np.exp(log_decay[b, t, k])
                prev = out[b, t - 1, k] if t > 0 else c0[b, k]
                grad_drive[b, t, k] = g
                grad_log_decay[b, t, k] = g * a * prev
                carry[k] = g * a
        for k in range(C):
            grad_c0[b, k] = carry[k]


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


class _DecayedSumScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, log_decay: Tensor, drive: Tensor, c0: Tensor):  # noqa: ANN205
        B, T, C = log_decay.shape
        log_decay, drive, c0 = (t.detach().contiguous() for t in (log_decay, drive, c0.to(log_decay.dtype)))
        out = torch.empty((B, T, C), dtype=log_decay.dtype)
        _forward_kernel(log_decay.numpy(), drive.numpy(), c0.numpy(), out.numpy())
        ctx.save_for_backward(log_decay, c0, out)
        return out, (out[:, -1] if T else c0).clone()

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor | None, grad_last: Tensor | None):  # noqa: ANN205
        log_decay, c0, out = ctx.saved_tensors
        go = torch.zeros_like(out) if grad_out is None else grad_out.to(out.dtype)
        gl = torch.zeros_like(c0) if grad_last is None else grad_last.to(out.dtype)
        g_log_decay, g_drive, g_c0 = torch.empty_like(out), torch.empty_like(out), torch.empty_like(c0)
        _backward_kernel(_np(go), _np(gl), log_decay.numpy(), c0.numpy(), out.numpy(),
                         g_log_decay.numpy(), g_drive.numpy(), g_c0.numpy())  # fmt: skip
        return g_log_decay, g_drive, g_c0


def decayed_sum_scan(log_decay: Tensor, drive: Tensor, c0: Tensor) -> tuple[Tensor, Tensor]:
    """``log_decay, drive (B, T, C)`` (``log_decay <= 0``), ``c0 (B, C)``, CPU float32/float64 ->
    ``(c (B, T, C), last (B, C))`` with ``c_t = exp(log_decay_t) c_{t-1} + drive_t``."""
    return _DecayedSumScan.apply(log_decay, drive, c0)


@njit(nogil=True, cache=True, error_model="numpy")
def _oscillator_forward(log_mag, angle, drive, c0, out):  # fmt: skip
    """``z_t = r_t e^{i a_t} z_{t-1} + b_t`` on real pairs: channels ``p`` (real) and ``P + p`` (imaginary)."""
    B, T, P = log_mag.shape
    for b in range(B):
        x = c0[b, :P].copy()
        y = c0[b, P:].copy()
        for t in range(T):
            for p in range(P):
                r = np.exp(log_mag[b, t, p])
                cos, sin = r * np.cos(angle[b, t, p]), r * np.sin(angle[b, t, p])
                xn = cos * x[p] - sin * y[p] + drive[b, t, p]
                y[p] = sin * x[p] + cos * y[p] + drive[b, t, P + p]
                x[p] = xn
                out[b, t, p] = xn
                out[b, t, P + p] = y[p]


@njit(nogil=True, cache=True, error_model="numpy")
def _oscillator_backward(grad_out, grad_last, log_mag, angle, c0, out,
                         grad_log_mag, grad_angle, grad_drive, grad_c0):  # fmt: skip
    """With ``g = dL/dz_t`` (as ``gx + i gy``) and ``w = m_t z_{t-1}``: ``dL/db_t = g``, ``dL/dlog r_t = Re(conj(g) w)``,
    ``dL/da_t = Re(conj(g) i w)``, and ``conj(m_t) g`` carries to ``t - 1``."""
    B, T, P = log_mag.shape
    for b in range(B):
        cx = grad_last[b, :P].copy()
        cy = grad_last[b, P:].copy()
        for t in range(T - 1, -1, -1):
            for p in range(P):
                gx = grad_out[b, t, p] + cx[p]
                gy = grad_out[b, t, P + p] + cy[p]
                r = np.exp(log_mag[b, t, p])
                cos, sin = r * np.cos(angle[b, t, p]), r * np.sin(angle[b, t, p])
                px = out[b, t - 1, p] if t > 0 else c0[b, p]
                py = out[b, t - 1, P + p] if t > 0 else c0[b, P + p]
                wx = cos * px - sin * py
                wy = sin * px + cos * py
                grad_drive[b, t, p] = gx
                grad_drive[b, t, P + p] = gy
                grad_log_mag[b, t, p] = gx * wx + gy * wy
                grad_angle[b, t, p] = gy * wx - gx * wy
                cx[p] = cos * gx + sin * gy
                cy[p] = cos * gy - sin * gx
        for p in range(P):
            grad_c0[b, p] = cx[p]
            grad_c0[b, P + p] = cy[p]


class _OscillatorScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, log_mag: Tensor, angle: Tensor, drive: Tensor, c0: Tensor):  # noqa: ANN205
        B, T, _ = drive.shape
        log_mag, angle, drive, c0 = (t.detach().contiguous() for t in (log_mag, angle, drive, c0))
        out = torch.empty_like(drive)
        _oscillator_forward(log_mag.numpy(), angle.numpy(), drive.numpy(), c0.numpy(), out.numpy())
        ctx.save_for_backward(log_mag, angle, c0, out)
        return out, (out[:, -1] if T else c0).clone()

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor | None, grad_last: Tensor | None):  # noqa: ANN205
        log_mag, angle, c0, out = ctx.saved_tensors
        go = torch.zeros_like(out) if grad_out is None else grad_out.to(out.dtype)
        gl = torch.zeros_like(c0) if grad_last is None else grad_last.to(out.dtype)
        g_mag, g_angle, g_drive, g_c0 = (torch.empty_like(t) for t in (log_mag, angle, out, c0))
        _oscillator_backward(_np(go), _np(gl), log_mag.numpy(), angle.numpy(), c0.numpy(), out.numpy(),
                             g_mag.numpy(), g_angle.numpy(), g_drive.numpy(), g_c0.numpy())  # fmt: skip
        return g_mag, g_angle, g_drive, g_c0


def oscillator_scan(log_mag: Tensor, angle: Tensor, drive: Tensor, c0: Tensor) -> tuple[Tensor, Tensor]:
    """``log_mag, angle (B, T, P)``, ``drive (B, T, 2P)``, ``c0 (B, 2P)`` (real parts, then imaginary), CPU
    float32/float64 -> ``(z (B, T, 2P), last (B, 2P))`` with ``z_t = exp(log_mag_t + i angle_t) z_{t-1} + drive_t``."""
    return _OscillatorScan.apply(log_mag, angle, drive, c0)
