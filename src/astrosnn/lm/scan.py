"""The LIF neuron scan over a whole sequence, fused forward and backward.

For each channel, with ``keep_{t-1} = 1 - s_{t-1}`` (reset) or 1 (no reset)::

    u_t = beta * u_{t-1} * keep_{t-1} + I_t
    s_t = Theta(u_t + o_t - theta)          # surrogate derivative on the way back

Reset modes: ``"cut"`` (default: no gradient through ``keep``, see the spec: the uncut product of
``-beta*u*surrogate'`` terms overflows over a few hundred steps), ``"uncut"`` (the exact gradient of the
hard reset) and ``"none"`` (``u_t = beta u_{t-1} + I_t``).

Two backends with one contract: ``numba`` (CPU, float32/float64; forward and backward kernels inside a
custom ``torch.autograd.Function``, parallel over the batch) and ``torch`` (a plain loop over time,
differentiated by autograd: any device or dtype, and the reference the tests compare against).
"""

from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from numba import njit
from torch import Tensor

from astrosnn.core.surrogate import Surrogate
from astrosnn.errors import AstrosnnError

__all__ = ["RESET_MODES", "SCAN_BACKENDS", "lif_scan", "lif_scan_reference", "lif_scan_numba"]

RESET_MODES = ("cut", "uncut", "none")
SCAN_BACKENDS = ("auto", "numba", "torch")
_RESET_CODE = {"cut": 0, "uncut": 1, "none": 2}


def _check(reset: str, backend: str) -> None:
    if reset not in _RESET_CODE:
        raise AstrosnnError(f"unknown reset mode {reset!r}; choose one of {', '.join(RESET_MODES)}")
    if backend not in SCAN_BACKENDS:
        raise AstrosnnError(
            f"unknown scan backend {backend!r}; choose one of {', '.join(SCAN_BACKENDS)}"
        )


def lif_scan_reference(
    current: Tensor,
    feedback: Tensor | None,
    beta: Tensor,
    theta: Tensor,
    u0: Tensor,
    s0: Tensor,
    surrogate: Surrogate,
    reset: str = "cut",
) -> tuple[Tensor, Tensor]:
    """Plain torch loop over time; autograd does the backward. Shapes as in :func:`lif_scan`."""
    _check(reset, "torch")
    u, s = u0, s0
    spikes = []
    for t in range(current.shape[1]):
        if reset == "none":
            u = beta * u + current[:, t]
        else:
            keep = 1 - (s.detach() if reset == "cut" else s)
            u = beta * u * keep + current[:, t]
        v = u - theta if feedback is None else u + feedback[:, t] - theta
        s = surrogate(v)
        spikes.append(s)
    return torch.stack(spikes, dim=1), u


# ----------------------------------------------------------------------------------------------------
# numba kernels. Arrays are (B, T, N) C-contiguous, channels innermost; the batch is split across
# Python threads (the kernels release the GIL).


@njit(nogil=True, cache=True)
def _forward_kernel(current, feedback, u0, s0, spikes, u_all, dsg,
                    has_feedback, beta, theta, reset_on, code, c1, c2, one, zero):  # fmt: skip
    """Fills spikes, membranes and the surrogate derivative at each step (for the backward pass).

    Float constants arrive in the arrays' dtype so float32 stays float32; branches sit outside the
    inner channel loops so those vectorise.
    """
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
            if code == 0:  # arctan: c1 = pi/2 alpha, c2 = alpha/2
                for n in range(N):
                    a = c1 * v[n]
                    dsg[b, t, n] = c2 / (one + a * a)
            elif code == 1:  # sigmoid: c1 = alpha
                for n in range(N):
                    sg = one / (one + np.exp(-c1 * v[n]))
                    dsg[b, t, n] = c1 * sg * (one - sg)
            else:  # triangle: c1 = alpha
                for n in range(N):
                    r = one - c1 * abs(v[n])
                    dsg[b, t, n] = c1 * r if r > zero else zero


@njit(nogil=True, cache=True)
def _backward_kernel(grad_spikes, grad_u_last, u0, s0, u_all, spikes, dsg, grad_current,
                     grad_feedback, grad_beta_b, grad_theta_b, grad_u0, grad_s0,
                     beta, reset_on, uncut, one):  # fmt: skip
    """Reverse-time adjoint of the scan. With a_t = dL/du_t::

    dL/ds_t = g_s[t] - uncut * a_{t+1} beta u_t      (the reset's own gradient, if not cut)
    dL/dv_t = dL/ds_t * surrogate'(v_t)              (v_t = u_t + o_t - theta)
    a_t     = dL/dv_t + a_{t+1} beta keep_t   (+ g_u_last at t = T-1), keep_t = 1 - reset_on s_t
    """
    B, T, N = grad_spikes.shape
    for b in range(B):
        carry = grad_u_last[b].copy()  # a_{t+1} * beta * keep_t: what u_t receives from u_{t+1}
        adj = np.zeros_like(carry)  # a_{t+1}
        gbeta = np.zeros_like(carry)
        gtheta = np.zeros_like(carry)
        for t in range(T - 1, -1, -1):
            if t > 0:
                prev_u = u_all[b, t - 1]
                prev_s = spikes[b, t - 1]
            else:
                prev_u = u0[b]
                prev_s = s0[b]
            for n in range(N):
                gs = grad_spikes[b, t, n] - uncut * adj[n] * beta[n] * u_all[b, t, n]
                gv = gs * dsg[b, t, n]
                a = gv + carry[n]
                grad_feedback[b, t, n] = gv  # before grad_current: the two may alias
                grad_current[b, t, n] = a
                gtheta[n] -= gv
                keep_prev = one - reset_on * prev_s[n]
                gbeta[n] += a * prev_u[n] * keep_prev
                carry[n] = a * beta[n] * keep_prev
                adj[n] = a
        for n in range(N):
            grad_u0[b, n] = carry[n]
            grad_s0[b, n] = -uncut * adj[n] * beta[n] * u0[b, n]
            grad_beta_b[b, n] = gbeta[n]
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
    def forward(ctx: Any, current, feedback, beta, theta, u0, s0, surrogate, reset_code):  # noqa: ANN001
        B, T, N = current.shape
        dtype = current.dtype
        cur = _np(current)
        dt = cur.dtype.type
        has_fb = feedback is not None
        fb = _np(feedback.to(dtype)) if has_fb else cur  # never read without feedback
        spikes = torch.empty((B, T, N), dtype=dtype)
        u_all = torch.empty((B, T, N), dtype=dtype)
        dsg = torch.empty((B, T, N), dtype=dtype)
        alpha = float(surrogate.alpha)
        c1, c2 = (0.5 * math.pi * alpha, 0.5 * alpha) if surrogate.code == 0 else (alpha, 0.0)
        _over_batch(
            _forward_kernel,
            (cur, fb, _np(u0.to(dtype)), _np(s0.to(dtype)), spikes.numpy(), u_all.numpy(), dsg.numpy()),
            (has_fb, _np(beta.to(dtype)), _np(theta.to(dtype)), dt(reset_code != 2), surrogate.code,
             dt(c1), dt(c2), dt(1), dt(0)),
        )  # fmt: skip
        ctx.save_for_backward(beta, u0, s0, u_all, spikes, dsg)
        ctx.reset_code = reset_code
        ctx.has_feedback = has_fb
        return spikes, u_all[:, -1].clone()

    @staticmethod
    def backward(ctx: Any, grad_spikes: Tensor | None, grad_u_last: Tensor | None):  # noqa: ANN205
        beta, u0, s0, u_all, spikes, dsg = ctx.saved_tensors
        B, T, N = spikes.shape
        dtype = spikes.dtype
        dt = u_all.numpy().dtype.type
        gs = torch.zeros_like(spikes) if grad_spikes is None else grad_spikes.to(dtype)
        gu = torch.zeros_like(u0) if grad_u_last is None else grad_u_last.to(dtype)
        g_current = torch.empty((B, T, N), dtype=dtype)
        g_feedback = torch.empty((B, T, N), dtype=dtype) if ctx.has_feedback else g_current
        g_beta = torch.empty((B, N), dtype=dtype)
        g_theta = torch.empty((B, N), dtype=dtype)
        g_u0 = torch.empty((B, N), dtype=dtype)
        g_s0 = torch.empty((B, N), dtype=dtype)
        _over_batch(
            _backward_kernel,
            (_np(gs), _np(gu), _np(u0.to(dtype)), _np(s0.to(dtype)), u_all.numpy(), spikes.numpy(),
             dsg.numpy(), g_current.numpy(), g_feedback.numpy(), g_beta.numpy(), g_theta.numpy(),
             g_u0.numpy(), g_s0.numpy()),
            (_np(beta.to(dtype)), dt(ctx.reset_code != 2), dt(ctx.reset_code == 1), dt(1)),
        )  # fmt: skip
        need = ctx.needs_input_grad
        return (
            g_current if need[0] else None,
            g_feedback if ctx.has_feedback and need[1] else None,
            g_beta.sum(0) if need[2] else None,
            g_theta.sum(0) if need[3] else None,
            g_u0 if need[4] else None,
            g_s0 if need[5] else None,
            None,
            None,
        )


def lif_scan_numba(
    current: Tensor,
    feedback: Tensor | None,
    beta: Tensor,
    theta: Tensor,
    u0: Tensor,
    s0: Tensor,
    surrogate: Surrogate,
    reset: str = "cut",
) -> tuple[Tensor, Tensor]:
    """The fused numba scan (CPU, float32/float64). Shapes as in :func:`lif_scan`."""
    _check(reset, "numba")
    if current.device.type != "cpu" or current.dtype not in (torch.float32, torch.float64):
        raise AstrosnnError(
            f"the numba scan needs float32/float64 CPU tensors, got {current.dtype} on {current.device}"
        )
    return _LIFScanFunction.apply(
        current, feedback, beta, theta, u0, s0, surrogate, _RESET_CODE[reset]
    )


def lif_scan(
    current: Tensor,
    feedback: Tensor | None,
    beta: Tensor,
    theta: Tensor,
    u0: Tensor,
    s0: Tensor,
    surrogate: Surrogate,
    reset: str = "cut",
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Run LIF neurons over a sequence.

    Args:
        current: ``(B, T, N)`` input current ``I_t``.
        feedback: ``(B, T, N)`` extra potential ``o_t`` added only to the spike decision, or None.
        beta: ``(N,)`` membrane decay in (0, 1).
        theta: ``(N,)`` threshold.
        u0, s0: ``(B, N)`` membrane and spikes before the first step.
        surrogate: the surrogate spike module (its derivative is used backward).
        reset: ``"cut"`` | ``"uncut"`` | ``"none"``.
        backend: ``"auto"`` (numba on CPU float32/float64, else torch) | ``"numba"`` | ``"torch"``.

    Returns:
        ``spikes (B, T, N)`` in {0, 1} and the last membrane ``u_T (B, N)``; the last spikes are
        ``spikes[:, -1]``.
    """
    _check(reset, backend)
    if current.shape[1] == 0:
        return current.new_zeros(current.shape), u0
    if backend == "auto":
        fast = current.device.type == "cpu" and current.dtype in (torch.float32, torch.float64)
        backend = "numba" if fast else "torch"
    fn = lif_scan_numba if backend == "numba" else lif_scan_reference
    return fn(current, feedback, beta, theta, u0, s0, surrogate, reset)
