"""The LIF scan as numba kernels for CPU tensors (float32/float64): forward and backward kernels inside a
custom ``torch.autograd.Function``, parallel over the batch. Same contract as the torch reference
:func:`astrosnn.lm.scan.lif_scan_reference`, which the tests hold it equal to.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from numba import njit
from torch import Tensor

from astrosnn.errors import AstrosnnError
from astrosnn.lm.scan_common import (
    fused_backend,
    is_cpu_float,
    scan_input_grads,
    surrogate_constants,
)

__all__ = ["lif_scan_numba"]


# ----------------------------------------------------------------------------------------------------
# numba kernels. Arrays are (B, T, N) C-contiguous, channels innermost; the batch is split across
# Python threads (the kernels release the GIL).


@njit(nogil=True, cache=True, error_model="numpy")
def _forward_kernel(current, feedback, u0, s0, spikes, u_all,
                    has_feedback, beta, theta, reset_on, one, zero):  # fmt: skip
    """Fills spikes and membranes. Float constants arrive in the arrays' dtype (float32 stays float32)."""
    B, T, N = current.shape
    for b in range(B):
        u = u0[b].copy()
        s = s0[b].copy()
        v = np.empty_like(u)
        for t in range(T):
            for n in range(N):
                un = beta[n] * u[n] * (one - reset_on * s[n]) + current[b, t, n]
                u[n] = un
                u_all[b, t, n] = un
                v[n] = un - theta[n]
            if has_feedback:
                for n in range(N):
                    v[n] += feedback[b, t, n]
            for n in range(N):
                s[n] = one if v[n] >= zero else zero
                spikes[b, t, n] = s[n]


@njit(nogil=True, cache=True, error_model="numpy")
def _backward_kernel(grad_spikes, grad_u_last, feedback, u0, s0, u_all, grad_current, grad_feedback,
                     grad_beta_b, grad_theta_b, grad_u0, grad_s0,
                     has_feedback, beta, theta, reset_on, uncut, code, c1, c2, one, zero):  # fmt: skip
    """Reverse-time adjoint of the scan; spikes and surrogate slopes are recomputed from ``u`` (less memory
    traffic than storing them). With ``a_t = dL/du_t`` and ``keep_t = 1 - reset_on s_t``::

        dL/ds_t = g_s[t] - uncut * a_{t+1} beta u_t      (the reset's own gradient, if not cut)
        dL/dv_t = dL/ds_t * surrogate'(v_t)              (v_t = u_t + o_t - theta)
        a_t     = dL/dv_t + a_{t+1} beta keep_t   (+ g_u_last at t = T-1)
        dL/dbeta += a_{t+1} u_t keep_t
    """
    B, T, N = grad_spikes.shape
    for b in range(B):
        direct = grad_u_last[b].copy()  # only at t = T-1
        adj = np.zeros_like(direct)  # a_{t+1}
        gbeta = np.zeros_like(direct)
        gtheta = np.zeros_like(direct)
        v = np.empty_like(direct)
        slope = np.empty_like(direct)
        keep = np.empty_like(direct)
        for t in range(T - 1, -1, -1):
            # simple loops over contiguous rows: they vectorise (one fused loop did not)
            u_row = u_all[b, t]
            for n in range(N):
                v[n] = u_row[n] - theta[n]
            if has_feedback:
                f_row = feedback[b, t]
                for n in range(N):
                    v[n] += f_row[n]
            if code == 0:  # arctan: c1 = pi/2 alpha, c2 = alpha/2
                for n in range(N):
                    x = c1 * v[n]
                    slope[n] = c2 / (one + x * x)
            elif code == 1:  # sigmoid: c1 = alpha
                for n in range(N):
                    sg = one / (one + np.exp(-c1 * v[n]))
                    slope[n] = c1 * sg * (one - sg)
            else:  # triangle: c1 = alpha
                for n in range(N):
                    r = one - c1 * abs(v[n])
                    slope[n] = c1 * r if r > zero else zero
            for n in range(N):
                keep[n] = one - reset_on * (one if v[n] >= zero else zero)
            g_row = grad_spikes[b, t]
            gf_row = grad_feedback[b, t]
            for n in range(N):
                gbeta[n] += adj[n] * u_row[n] * keep[n]
                gv = (g_row[n] - uncut * adj[n] * beta[n] * u_row[n]) * slope[n]
                gf_row[n] = gv  # before grad_current: the two may alias
                gtheta[n] -= gv
                v[n] = gv
            gc_row = grad_current[b, t]
            for n in range(N):
                a = v[n] + adj[n] * beta[n] * keep[n] + direct[n]
                direct[n] = zero
                gc_row[n] = a
                adj[n] = a
        for n in range(N):
            keep0 = one - reset_on * s0[b, n]
            grad_u0[b, n] = adj[n] * beta[n] * keep0
            grad_s0[b, n] = -uncut * adj[n] * beta[n] * u0[b, n]
            grad_beta_b[b, n] = gbeta[n] + adj[n] * u0[b, n] * keep0
            grad_theta_b[b, n] = gtheta[n]


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


@functools.lru_cache(maxsize=4)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="astrosnn-scan")


def _over_batch(kernel, batched: tuple[np.ndarray, ...], rest: tuple) -> None:  # noqa: ANN001
    """Run ``kernel(*batched[b0:b1], *rest)`` on slices of the batch, one per torch thread.

    The kernels release the GIL, so Python threads run them in parallel; this avoids numba's OpenMP
    layer, whose spinning workers slowed torch's own OpenMP ops afterwards (seen: 5x slower LayerNorm).
    """
    batch = batched[0].shape[0]
    workers = max(1, min(torch.get_num_threads(), batch))
    if workers == 1 or batch * batched[0][0].size < 65536:
        kernel(*batched, *rest)
        return
    bounds = np.linspace(0, batch, workers + 1).astype(int)
    jobs = [
        _pool(workers).submit(kernel, *(a[b0:b1] for a in batched), *rest)
        for b0, b1 in zip(bounds[:-1], bounds[1:])
    ]
    for job in jobs:
        job.result()


class _LIFScanFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, current, feedback, beta, theta, u0, s0, surrogate, reset_id):  # noqa: ANN001
        B, T, N = current.shape
        dtype = current.dtype
        cur = _np(current)
        dt = cur.dtype.type
        has_fb = feedback is not None
        feedback = feedback.to(dtype).contiguous() if has_fb else None
        beta, theta, u0, s0 = (t.to(dtype).contiguous() for t in (beta, theta, u0, s0))
        spikes = torch.empty((B, T, N), dtype=dtype)
        u_all = torch.empty((B, T, N), dtype=dtype)
        _over_batch(
            _forward_kernel,
            (cur, _np(feedback) if has_fb else cur, _np(u0), _np(s0), spikes.numpy(), u_all.numpy()),
            (has_fb, _np(beta), _np(theta), dt(reset_id != 2), dt(1), dt(0)),
        )  # fmt: skip
        ctx.save_for_backward(feedback, beta, theta, u0, s0, u_all)
        ctx.surrogate = surrogate
        ctx.reset_code = reset_id
        return spikes, u_all[:, -1].clone()

    @staticmethod
    def backward(ctx: Any, grad_spikes: Tensor | None, grad_u_last: Tensor | None):  # noqa: ANN205
        feedback, beta, theta, u0, s0, u_all = ctx.saved_tensors
        B, T, N = u_all.shape
        dtype = u_all.dtype
        dt = u_all.numpy().dtype.type
        has_fb = feedback is not None
        gs = torch.zeros_like(u_all) if grad_spikes is None else grad_spikes.to(dtype)
        gu = torch.zeros_like(u0) if grad_u_last is None else grad_u_last.to(dtype)
        g_current = torch.empty((B, T, N), dtype=dtype)
        g_feedback = torch.empty((B, T, N), dtype=dtype) if has_fb else g_current
        g_beta = torch.empty((B, N), dtype=dtype)
        g_theta = torch.empty((B, N), dtype=dtype)
        g_u0 = torch.empty((B, N), dtype=dtype)
        g_s0 = torch.empty((B, N), dtype=dtype)
        code, c1, c2 = surrogate_constants(ctx.surrogate)
        _over_batch(
            _backward_kernel,
            (_np(gs), _np(gu), _np(feedback) if has_fb else u_all.numpy(), _np(u0), _np(s0),
             u_all.numpy(), g_current.numpy(), g_feedback.numpy(), g_beta.numpy(), g_theta.numpy(),
             g_u0.numpy(), g_s0.numpy()),
            (has_fb, _np(beta), _np(theta), dt(ctx.reset_code != 2), dt(ctx.reset_code == 1), code,
             dt(c1), dt(c2), dt(1), dt(0)),
        )  # fmt: skip
        return scan_input_grads(ctx.needs_input_grad, g_current, g_feedback if has_fb else None,
                                g_beta, g_theta, g_u0, g_s0)  # fmt: skip


def _check_inputs(current: Tensor) -> None:
    if not is_cpu_float(current):
        raise AstrosnnError(
            f"the numba scan needs float32/float64 CPU tensors, got {current.dtype} on {current.device}"
        )


lif_scan_numba = fused_backend(_LIFScanFunction, _check_inputs)
"""The fused numba scan (CPU, float32/float64); a :class:`~astrosnn.lm.scan_common.LIFScanFn`."""
