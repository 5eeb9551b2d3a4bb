"""The LIF neuron scan over a whole sequence, and the registry of its backends.

For each channel, with ``keep_{t-1} = 1 - s_{t-1}`` (reset) or 1 (no reset)::

    u_t = beta * u_{t-1} * keep_{t-1} + I_t
    s_t = Theta(u_t + o_t - theta)          # surrogate derivative on the way back

Reset modes: ``"cut"`` (default: no gradient through ``keep``, see the spec: the uncut product of
``-beta*u*surrogate'`` terms overflows over a few hundred steps), ``"uncut"`` (the exact gradient of the
hard reset) and ``"none"`` (``u_t = beta u_{t-1} + I_t``).

Backends implement one signature (:class:`astrosnn.lm.scan_common.LIFScanFn`) and are registered with
:func:`register_scan_backend`: ``torch`` (:func:`lif_scan_reference` below: a plain loop over time,
differentiated by autograd; any device or dtype, and the reference the tests compare against), ``numba``
(CPU, :mod:`astrosnn.lm.scan_numba`) and ``triton`` (CUDA, :mod:`astrosnn.lm.scan_triton`). ``auto`` picks
the first registered backend, in registration order, whose ``supports`` accepts the tensors.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from astrosnn.core.surrogate import Surrogate
from astrosnn.errors import AstrosnnError
from astrosnn.lm.scan_common import RESET_MODES, LIFScanFn, check_reset, is_cpu_float

__all__ = ["RESET_MODES", "SCAN_BACKENDS", "ScanBackend", "check_scan_backend", "lif_scan",
           "lif_scan_reference", "register_scan_backend", "scan_backend_names"]  # fmt: skip


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
    check_reset(reset)
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


@dataclass(frozen=True)
class ScanBackend:
    """A registered scan backend: ``module:function`` (imported on first use, so that numba and triton,
    heavy and optional, load only when a scan needs them) and whether ``auto`` may pick it for a tensor."""

    name: str
    module: str
    function: str
    supports: Callable[[Tensor], bool]

    def load(self) -> LIFScanFn:
        return getattr(importlib.import_module(self.module), self.function)


_BACKENDS: dict[str, ScanBackend] = {}


def register_scan_backend(name: str, module: str, function: str, supports: Callable[[Tensor], bool]) -> None:
    """Add a backend; ``auto`` tries backends in registration order (register the general ones last)."""
    _BACKENDS[name] = ScanBackend(name, module, function, supports)


def scan_backend_names() -> tuple[str, ...]:
    """Every value a ``scan_backend`` option takes: ``auto`` and the registered backends."""
    return ("auto", *_BACKENDS)


def check_scan_backend(backend: str) -> None:
    if backend != "auto" and backend not in _BACKENDS:
        raise AstrosnnError(
            f"unknown scan backend {backend!r}; choose one of {', '.join(scan_backend_names())}"
        )


def _triton_supports(current: Tensor) -> bool:
    if current.device.type != "cuda":
        return False
    # lazy: importing triton is slow and only worth it on CUDA
    from astrosnn.lm.scan_triton import triton_available

    return triton_available(current.device)


register_scan_backend("numba", "astrosnn.lm.scan_numba", "lif_scan_numba", is_cpu_float)
register_scan_backend("triton", "astrosnn.lm.scan_triton", "lif_scan_triton", _triton_supports)
register_scan_backend("torch", __name__, "lif_scan_reference", lambda current: True)
SCAN_BACKENDS = scan_backend_names()


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
        backend: ``"auto"`` (numba on CPU float32/float64, triton on CUDA when installed, else torch) or a
            registered backend name (``"numba"`` | ``"triton"`` | ``"torch"``).

    Returns:
        ``spikes (B, T, N)`` in {0, 1} and the last membrane ``u_T (B, N)``; the last spikes are
        ``spikes[:, -1]``.
    """
    check_reset(reset)
    check_scan_backend(backend)
    if current.shape[1] == 0:
        return current.new_zeros(current.shape), u0
    if backend == "auto":
        chosen = next(b for b in _BACKENDS.values() if b.supports(current))
    else:
        chosen = _BACKENDS[backend]
    return chosen.load()(current, feedback, beta, theta, u0, s0, surrogate, reset)
