"""What every LIF scan backend shares: the reset modes, the kernels' surrogate constants, the backward's
return helper and the one signature a backend implements (:class:`LIFScanFn`).

A leaf module: the backends (:mod:`~astrosnn.lm.scan`, :mod:`~astrosnn.lm.scan_numba`,
:mod:`~astrosnn.lm.scan_triton`) import it, it imports none of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor

from astrosnn.core.surrogate import Surrogate
from astrosnn.errors import AstrosnnError

__all__ = ["LIFScanFn", "RESET_MODES", "check_reset", "fused_backend", "is_cpu_float", "reset_code", "reset_mode", "scan_input_grads",
           "surrogate_constants"]  # fmt: skip

RESET_MODES = ("cut", "uncut", "none")
_RESET_CODE = {"cut": 0, "uncut": 1, "none": 2}


class LIFScanFn(Protocol):
    """One backend of the LIF scan (see :func:`astrosnn.lm.scan.lif_scan` for shapes and meaning)."""

    def __call__(
        self,
        current: Tensor,
        feedback: Tensor | None,
        beta: Tensor,
        theta: Tensor,
        u0: Tensor,
        s0: Tensor,
        surrogate: Surrogate,
        reset: str = "cut",
    ) -> tuple[Tensor, Tensor]: ...


def is_cpu_float(t: Tensor) -> bool:
    """A CPU tensor of float32 or float64 (what the numba kernels take)."""
    return t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)


def fused_backend(function: Any, check: Callable[[Tensor], None]) -> LIFScanFn:
    """A backend from a fused ``torch.autograd.Function`` (inputs as below, the reset as its kernel code) and a
    check that raises an AstrosnnError for tensors the kernels cannot take."""

    def scan(current, feedback, beta, theta, u0, s0, surrogate, reset="cut"):  # noqa: ANN001, ANN202
        check(current)
        return function.apply(current, feedback, beta, theta, u0, s0, surrogate, reset_code(reset))

    return scan


def check_reset(reset: str) -> None:
    if reset not in _RESET_CODE:
        raise AstrosnnError(f"unknown reset mode {reset!r}; choose one of {', '.join(RESET_MODES)}")


def reset_code(reset: str) -> int:
    """The kernels' code of a reset mode: cut 0, uncut 1, none 2."""
    check_reset(reset)
    return _RESET_CODE[reset]


def reset_mode(reset: bool, cut_reset_grad: bool) -> str:
    """The scan's reset mode from the two configuration switches."""
    if not reset:
        return "none"
    return "cut" if cut_reset_grad else "uncut"


def surrogate_constants(surrogate: Surrogate) -> tuple[int, float, float]:
    """The kernels' surrogate code and constants: arctan (c1 = pi/2 alpha, c2 = alpha/2), else c1 = alpha."""
    alpha = float(surrogate.alpha)
    code = surrogate.code
    c1, c2 = (0.5 * math.pi * alpha, 0.5 * alpha) if code == 0 else (alpha, 0.0)
    return code, c1, c2


def scan_input_grads(need, g_current, g_feedback, g_beta_rows, g_theta_rows, g_u0, g_s0) -> tuple:  # noqa: ANN001
    """The backward's return value for (current, feedback, beta, theta, u0, s0, surrogate, reset)."""
    return (
        g_current if need[0] else None,
        g_feedback if g_feedback is not None and need[1] else None,
        g_beta_rows.sum(0) if need[2] else None,  # per batch row -> per neuron
        g_theta_rows.sum(0) if need[3] else None,
        g_u0 if need[4] else None,
        g_s0 if need[5] else None,
        None,
        None,
    )
