"""Surrogate spike functions: Heaviside forward, a smooth derivative backward.

Each surrogate is a small picklable ``nn.Module`` (no closures), so models that hold one can be
copied, pickled by torch internals (DataParallel, deepcopy) and exported. The spike fires when the
input is ``>= 0``; callers pass ``membrane - threshold``.

Derivatives (``alpha`` sets the sharpness; each integrates to 1 over the real line):

- ``arctan``:   ``alpha / 2 / (1 + (pi/2 * alpha * x)^2)``            (default alpha 2)
- ``sigmoid``:  ``alpha * sig(alpha x) * (1 - sig(alpha x))``          (default alpha 4)
- ``triangle``: ``alpha * max(0, 1 - alpha * |x|)``                     (default alpha 1)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from astrosnn.errors import AstrosnnError

__all__ = [
    "ArcTan",
    "Sigmoid",
    "Surrogate",
    "SURROGATE_NAMES",
    "Triangle",
    "get_surrogate",
    "heaviside",
]


def heaviside(x: Tensor) -> Tensor:
    """1 where ``x >= 0`` else 0, in ``x``'s dtype."""
    return (x >= 0).to(x.dtype)


class _SurrogateSpike(torch.autograd.Function):
    """Heaviside forward; the surrogate module's derivative backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, surrogate: Surrogate) -> Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return heaviside(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * ctx.surrogate.derivative(x), None


class Surrogate(nn.Module):
    """Base class: ``forward(x)`` spikes where ``x >= 0``; ``derivative(x)`` is the surrogate gradient.

    ``code`` identifies the formula for the fused numba kernels in ``astrosnn.lm.scan``.
    """

    name: ClassVar[str] = ""
    code: ClassVar[int] = -1
    default_alpha: ClassVar[float] = 1.0

    def __init__(self, alpha: float | None = None) -> None:
        super().__init__()
        alpha = self.default_alpha if alpha is None else float(alpha)
        if not math.isfinite(alpha) or alpha <= 0:
            raise AstrosnnError(f"surrogate alpha must be a positive number, got {alpha}")
        self.alpha = alpha

    def derivative(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return _SurrogateSpike.apply(x, self)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class ArcTan(Surrogate):
    """Derivative ``alpha / 2 / (1 + (pi/2 * alpha * x)^2)`` (SpikingJelly's ATan)."""

    name = "arctan"
    code = 0
    default_alpha = 2.0

    def derivative(self, x: Tensor) -> Tensor:
        a = self.alpha
        return (a / 2) / (1 + (math.pi / 2 * a * x) ** 2)


class Sigmoid(Surrogate):
    """Derivative ``alpha * sig(alpha x) * (1 - sig(alpha x))``."""

    name = "sigmoid"
    code = 1
    default_alpha = 4.0

    def derivative(self, x: Tensor) -> Tensor:
        sg = torch.sigmoid(self.alpha * x)
        return self.alpha * sg * (1 - sg)


class Triangle(Surrogate):
    """Derivative ``alpha * max(0, 1 - alpha |x|)`` (piecewise linear, zero beyond ``1/alpha``)."""

    name = "triangle"
    code = 2
    default_alpha = 1.0

    def derivative(self, x: Tensor) -> Tensor:
        return self.alpha * torch.clamp(1 - self.alpha * x.abs(), min=0)


_SURROGATES: dict[str, type[Surrogate]] = {cls.name: cls for cls in (ArcTan, Sigmoid, Triangle)}
SURROGATE_NAMES: tuple[str, ...] = tuple(_SURROGATES)


def get_surrogate(name: str = "arctan", alpha: float | None = None) -> Surrogate:
    """A fresh surrogate module by name (``arctan``, ``sigmoid``, ``triangle``); alpha None = default."""
    cls = _SURROGATES.get(str(name).lower())
    if cls is None:
        raise AstrosnnError(
            f"unknown surrogate {name!r}; choose one of {', '.join(SURROGATE_NAMES)}"
        )
    return cls(alpha)
