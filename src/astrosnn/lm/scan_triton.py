"""The LIF scan as Triton kernels, for CUDA tensors: the GPU counterpart of the numba scan.

Same contract and the same arithmetic as :func:`astrosnn.lm.scan_numba.lif_scan_numba` (see its kernels for the
adjoint): one program per batch row and block of channels, each lane owns one channel and walks the
sequence, forward in time, then backward in time recomputing spikes and surrogate slopes from the saved
membranes. float16 / bfloat16 inputs are computed and their membranes kept in float32, so the backward
pass sees the same spike decisions as the forward one.

Triton ships with the CUDA builds of PyTorch. With ``TRITON_INTERPRET=1`` set before the first import,
Triton runs these kernels on CPU tensors; the tests use that to check them against the reference scan.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor

from astrosnn.errors import AstrosnnError
from astrosnn.lm.scan_common import fused_backend, scan_input_grads, surrogate_constants

try:  # optional: present with CUDA builds of torch
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the installation
    triton = None

__all__ = ["lif_scan_triton", "triton_available"]

_BLOCK = 128
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def triton_available(device: torch.device | str) -> bool:
    """True when the Triton scan can run on tensors of ``device``."""
    if triton is None:
        return False
    return torch.device(device).type == "cuda" or _interpreting()


if triton is not None:

    @triton.jit
    def _forward_kernel(current, feedback, beta, theta, u0, s0, spikes, u_all, T, N,
                        HAS_FEEDBACK: tl.constexpr, RESET_ON: tl.constexpr,
                        COMPUTE: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip
        b = tl.program_id(0).to(tl.int64)
        n = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = n < N
        bt = tl.load(beta + n, mask=mask, other=0.0).to(COMPUTE)
        th = tl.load(theta + n, mask=mask, other=0.0).to(COMPUTE)
        u = tl.load(u0 + b * N + n, mask=mask, other=0.0).to(COMPUTE)
        s = tl.load(s0 + b * N + n, mask=mask, other=0.0).to(COMPUTE)
        base = b * T * N
        for t in range(T):
            off = base + t * N + n
            x = tl.load(current + off, mask=mask, other=0.0).to(COMPUTE)
            if RESET_ON:
                u = bt * u * (1.0 - s) + x
            else:
                u = bt * u + x
            v = u - th
            if HAS_FEEDBACK:
                v += tl.load(feedback + off, mask=mask, other=0.0).to(COMPUTE)
            s = tl.where(v >= 0.0, 1.0, 0.0).to(COMPUTE)
            tl.store(spikes + off, s, mask=mask)
            tl.store(u_all + off, u, mask=mask)

    @triton.jit
    def _backward_kernel(grad_spikes, grad_u_last, feedback, u0, s0, u_all, beta, theta,
                         grad_current, grad_feedback, grad_beta_b, grad_theta_b, grad_u0, grad_s0,
                         T, N, c1, c2,
                         HAS_FEEDBACK: tl.constexpr, RESET_ON: tl.constexpr, UNCUT: tl.constexpr,
                         SURROGATE: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip
        b = tl.program_id(0).to(tl.int64)
        n = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = n < N
        row = b * N + n
        bt = tl.load(beta + n, mask=mask, other=0.0).to(COMPUTE)
        th = tl.load(theta + n, mask=mask, other=0.0).to(COMPUTE)
        direct = tl.load(grad_u_last + row, mask=mask, other=0.0).to(COMPUTE)  # only at t = T-1
        adj = tl.zeros((BLOCK,), dtype=COMPUTE)  # a_{t+1}
        gbeta = tl.zeros((BLOCK,), dtype=COMPUTE)
        gtheta = tl.zeros((BLOCK,), dtype=COMPUTE)
        base = b * T * N
        for i in range(T):
            off = base + (T - 1 - i) * N + n
            u = tl.load(u_all + off, mask=mask, other=0.0).to(COMPUTE)
            v = u - th
            if HAS_FEEDBACK:
                v += tl.load(feedback + off, mask=mask, other=0.0).to(COMPUTE)
            if SURROGATE == 0:  # arctan: c1 = pi/2 alpha, c2 = alpha/2
                x = c1 * v
                slope = c2 / (1.0 + x * x)
            elif SURROGATE == 1:  # sigmoid: c1 = alpha
                sg = 1.0 / (1.0 + tl.exp(-c1 * v))
                slope = c1 * sg * (1.0 - sg)
            else:  # triangle: c1 = alpha
                r = 1.0 - c1 * tl.abs(v)
                slope = tl.where(r > 0.0, c1 * r, 0.0)
            keep = 1.0 - RESET_ON * tl.where(v >= 0.0, 1.0, 0.0)
            gbeta += adj * u * keep
            g_s = tl.load(grad_spikes + off, mask=mask, other=0.0).to(COMPUTE)
            gv = ((g_s - UNCUT * adj * bt * u) * slope).to(COMPUTE)
            if HAS_FEEDBACK:
                tl.store(grad_feedback + off, gv, mask=mask)
            gtheta -= gv
            a = gv + adj * bt * keep + direct
            direct = tl.zeros((BLOCK,), dtype=COMPUTE)
            tl.store(grad_current + off, a, mask=mask)
            adj = a.to(COMPUTE)
        u_first = tl.load(u0 + row, mask=mask, other=0.0).to(COMPUTE)
        keep0 = 1.0 - RESET_ON * tl.load(s0 + row, mask=mask, other=0.0).to(COMPUTE)
        tl.store(grad_u0 + row, adj * bt * keep0, mask=mask)
        tl.store(grad_s0 + row, -UNCUT * adj * bt * u_first, mask=mask)
        tl.store(grad_beta_b + row, gbeta + adj * u_first * keep0, mask=mask)
        tl.store(grad_theta_b + row, gtheta, mask=mask)


def _compute(dtype: torch.dtype):  # noqa: ANN202
    """Arithmetic type in the kernels, and the torch dtype of the saved membranes."""
    if dtype == torch.float64:
        return tl.float64, torch.float64
    return tl.float32, torch.float32


class _LIFScanTritonFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, current, feedback, beta, theta, u0, s0, surrogate, reset_id):  # noqa: ANN001
        B, T, N = current.shape
        dtype = current.dtype
        compute, u_dtype = _compute(dtype)
        current = current.contiguous()
        has_fb = feedback is not None
        feedback = feedback.to(dtype).contiguous() if has_fb else None
        beta, theta, u0, s0 = (t.to(dtype).contiguous() for t in (beta, theta, u0, s0))
        spikes = torch.empty((B, T, N), dtype=dtype, device=current.device)
        u_all = torch.empty((B, T, N), dtype=u_dtype, device=current.device)
        grid = (B, triton.cdiv(N, _BLOCK))
        _forward_kernel[grid](
            current, feedback if has_fb else current, beta, theta, u0, s0, spikes, u_all, T, N,
            HAS_FEEDBACK=has_fb, RESET_ON=int(reset_id != 2), COMPUTE=compute, BLOCK=_BLOCK,
        )  # fmt: skip
        ctx.save_for_backward(feedback, beta, theta, u0, s0, u_all)
        ctx.surrogate = surrogate
        ctx.reset_code = reset_id
        ctx.dtype = dtype
        return spikes, u_all[:, -1].to(dtype)

    @staticmethod
    def backward(ctx: Any, grad_spikes: Tensor | None, grad_u_last: Tensor | None):  # noqa: ANN205
        feedback, beta, theta, u0, s0, u_all = ctx.saved_tensors
        B, T, N = u_all.shape
        dtype = ctx.dtype
        compute, _ = _compute(dtype)
        device = u_all.device
        has_fb = feedback is not None
        gs = torch.zeros_like(u_all) if grad_spikes is None else grad_spikes.contiguous()
        gu = torch.zeros_like(u0) if grad_u_last is None else grad_u_last.contiguous()

        def empty(*shape: int) -> Tensor:
            return torch.empty(shape, dtype=dtype, device=device)

        g_current = empty(B, T, N)
        g_feedback = empty(B, T, N) if has_fb else g_current
        g_beta, g_theta, g_u0, g_s0 = empty(B, N), empty(B, N), empty(B, N), empty(B, N)
        code, c1, c2 = surrogate_constants(ctx.surrogate)
        grid = (B, triton.cdiv(N, _BLOCK))
        _backward_kernel[grid](
            gs, gu, feedback if has_fb else u_all, u0, s0, u_all, beta, theta,
            g_current, g_feedback, g_beta, g_theta, g_u0, g_s0, T, N, c1, c2,
            HAS_FEEDBACK=has_fb, RESET_ON=int(ctx.reset_code != 2), UNCUT=int(ctx.reset_code == 1),
            SURROGATE=code, COMPUTE=compute, BLOCK=_BLOCK,
        )  # fmt: skip
        return scan_input_grads(ctx.needs_input_grad, g_current, g_feedback if has_fb else None,
                                g_beta, g_theta, g_u0, g_s0)  # fmt: skip


def _check_inputs(current: Tensor) -> None:
    if triton is None:
        raise AstrosnnError(
            "the triton scan needs the 'triton' package (it comes with CUDA builds of torch); "
            "use scan backend 'torch' or 'auto' instead"
        )
    if not triton_available(current.device):
        raise AstrosnnError(
            f"the triton scan runs on CUDA tensors, got tensors on {current.device} "
            "(set TRITON_INTERPRET=1 to run it on the CPU for testing)"
        )
    if current.dtype not in _DTYPES:
        raise AstrosnnError(f"the triton scan needs floating-point tensors, got {current.dtype}")


lif_scan_triton = fused_backend(_LIFScanTritonFunction, _check_inputs)
"""The fused Triton scan (CUDA; CPU only under ``TRITON_INTERPRET=1``); a
:class:`~astrosnn.lm.scan_common.LIFScanFn`."""
