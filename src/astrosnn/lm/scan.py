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

import math
from typing import Any

import numba
import numpy as np
import torch
from numba import njit, prange
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
# numba kernels. Arrays are (B, T, N) C-contiguous; the batch runs in parallel, channels innermost.


@njit(inline="always", cache=True)
def _surrogate_derivative(v: float, code: int, alpha: float) -> float:
    if code == 0:  # arctan
        a = 0.5 * math.pi * alpha * v
        return 0.5 * alpha / (1.0 + a * a)
    if code == 1:  # sigmoid
        sg = 1.0 / (1.0 + math.exp(-alpha * v))
        return alpha * sg * (1.0 - sg)
    r = 1.0 - alpha * abs(v)  # triangle
    return alpha * r if r > 0.0 else 0.0


@njit(parallel=True, cache=True)
def _forward_kernel(
    current, feedback, has_feedback, beta, theta, u0, s0, reset_code, spikes, u_all
):
    B, T, N = current.shape
    for b in prange(B):
        u = u0[b].copy()
        s = s0[b].copy()
        for t in range(T):
            for n in range(N):
                if reset_code == 2:
                    un = beta[n] * u[n] + current[b, t, n]
                else:
                    un = beta[n] * u[n] * (1.0 - s[n]) + current[b, t, n]
                v = un - theta[n]
                if has_feedback:
                    v += feedback[b, t, n]
                sn = 1.0 if v >= 0.0 else 0.0
                u[n] = un
                s[n] = sn
                u_all[b, t, n] = un
                spikes[b, t, n] = sn


@njit(parallel=True, cache=True)
def _backward_kernel(
    grad_spikes, grad_u_last, feedback, has_feedback, beta, theta, u0, s0, u_all, spikes,
    reset_code, code, alpha, grad_current, grad_feedback, grad_beta_b, grad_theta_b, grad_u0, grad_s0,
):  # fmt: skip
    B, T, N = grad_spikes.shape
    for b in prange(B):
        adj = grad_u_last[b].copy()  # dL/du_t, accumulated from the step after t
        gbeta = np.zeros(N, dtype=grad_beta_b.dtype)
        gtheta = np.zeros(N, dtype=grad_theta_b.dtype)
        # adj holds dL/du_{t+1} (times nothing yet) on entry to step t; next_adj is dL/du_{t+1}.
        next_adj = np.zeros(N, dtype=grad_u_last.dtype)
        for t in range(T - 1, -1, -1):
            for n in range(N):
                a_next = next_adj[n]
                u_t = u_all[b, t, n]
                gs = grad_spikes[b, t, n]
                if reset_code == 1:
                    gs -= a_next * beta[n] * u_t
                v = u_t - theta[n]
                if has_feedback:
                    v += feedback[b, t, n]
                gv = gs * _surrogate_derivative(v, code, alpha)
                if reset_code == 2:
                    a_t = gv + a_next * beta[n]
                else:
                    a_t = gv + a_next * beta[n] * (1.0 - spikes[b, t, n])
                if t == T - 1:
                    a_t += adj[n]
                grad_current[b, t, n] = a_t
                if has_feedback:
                    grad_feedback[b, t, n] = gv
                gtheta[n] -= gv
                if t > 0:
                    u_prev = u_all[b, t - 1, n]
                    s_prev = spikes[b, t - 1, n]
                else:
                    u_prev = u0[b, n]
                    s_prev = s0[b, n]
                if reset_code == 2:
                    gbeta[n] += a_t * u_prev
                else:
                    gbeta[n] += a_t * u_prev * (1.0 - s_prev)
                next_adj[n] = a_t
        for n in range(N):
            a0 = next_adj[n]
            if reset_code == 2:
                grad_u0[b, n] = a0 * beta[n]
                grad_s0[b, n] = 0.0
            else:
                grad_u0[b, n] = a0 * beta[n] * (1.0 - s0[b, n])
                grad_s0[b, n] = -a0 * beta[n] * u0[b, n] if reset_code == 1 else 0.0
            grad_beta_b[b, n] = gbeta[n]
            grad_theta_b[b, n] = gtheta[n]


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _use_threads() -> None:
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


class _LIFScanFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, current, feedback, beta, theta, u0, s0, surrogate, reset_code):  # noqa: ANN001
        B, T, N = current.shape
        dtype = current.dtype
        has_fb = feedback is not None
        fb = _np(feedback) if has_fb else np.zeros((1, 1, 1), dtype=_np(current).dtype)
        spikes = torch.empty((B, T, N), dtype=dtype)
        u_all = torch.empty((B, T, N), dtype=dtype)
        _use_threads()
        _forward_kernel(
            _np(current), fb, has_fb, _np(beta), _np(theta), _np(u0), _np(s0), reset_code,
            spikes.numpy(), u_all.numpy(),
        )  # fmt: skip
        ctx.save_for_backward(feedback if has_fb else None, beta, theta, u0, s0, u_all, spikes)
        ctx.surrogate = surrogate
        ctx.reset_code = reset_code
        u_last = u_all[:, -1].clone()
        return spikes, u_last

    @staticmethod
    def backward(ctx: Any, grad_spikes: Tensor | None, grad_u_last: Tensor | None):  # noqa: ANN205
        feedback, beta, theta, u0, s0, u_all, spikes = ctx.saved_tensors
        B, T, N = spikes.shape
        dtype = spikes.dtype
        if grad_spikes is None:
            grad_spikes = torch.zeros_like(spikes)
        if grad_u_last is None:
            grad_u_last = torch.zeros_like(u0)
        has_fb = feedback is not None
        fb = _np(feedback) if has_fb else np.zeros((1, 1, 1), dtype=u_all.numpy().dtype)
        g_current = torch.empty((B, T, N), dtype=dtype)
        g_feedback = (
            torch.empty((B, T, N), dtype=dtype) if has_fb else torch.empty((1, 1, 1), dtype=dtype)
        )
        g_beta = torch.empty((B, N), dtype=dtype)
        g_theta = torch.empty((B, N), dtype=dtype)
        g_u0 = torch.empty((B, N), dtype=dtype)
        g_s0 = torch.empty((B, N), dtype=dtype)
        _use_threads()
        _backward_kernel(
            _np(grad_spikes.to(dtype)), _np(grad_u_last.to(dtype)), fb, has_fb, _np(beta), _np(theta),
            _np(u0), _np(s0), u_all.numpy(), spikes.numpy(), ctx.reset_code, ctx.surrogate.code,
            float(ctx.surrogate.alpha), g_current.numpy(), g_feedback.numpy(), g_beta.numpy(),
            g_theta.numpy(), g_u0.numpy(), g_s0.numpy(),
        )  # fmt: skip
        need = ctx.needs_input_grad
        return (
            g_current if need[0] else None,
            g_feedback if has_fb and need[1] else None,
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
