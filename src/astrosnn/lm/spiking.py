"""The LM's spiking neurons: leaky integrate-and-fire with hard reset, as a pure one-token step function
(:func:`spiking_step`) and a thin module (:class:`SpikingLIF`). Not :mod:`astrosnn.core.lif` (the NALSM
neurons): these are the surrogate-gradient neurons of AM-SU and the MLP.

``u_t = beta * u_{t-1} * (1 - s_{t-1}) + I_t``, ``s_t = Theta(u_t + o_t - theta)``; ``o_t`` is an optional
extra potential (the astrocyte's feedback in AM-SU). ``beta = sigmoid(per-channel parameter)``.
The sequence form is :func:`astrosnn.lm.scan.lif_scan` (fused numba on CPU).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from astrosnn.core.surrogate import Surrogate, get_surrogate
from astrosnn.errors import AstrosnnError
from astrosnn.lm.scan import check_scan_backend, lif_scan
from astrosnn.lm.scan_common import check_reset

__all__ = ["SpikingLIF", "SpikingState", "spiking_step"]


class SpikingState(NamedTuple):
    """What a spiking layer carries between tokens: membrane ``u`` and last spikes ``s``, both ``(B, N)``."""

    u: Tensor
    s: Tensor


def spiking_step(
    current: Tensor,
    state: SpikingState,
    beta: Tensor,
    theta: Tensor,
    surrogate: Surrogate,
    reset: str = "cut",
    feedback: Tensor | None = None,
) -> tuple[Tensor, SpikingState]:
    """One time step: ``current (B, N)`` [+ ``feedback (B, N)``] -> ``(spikes (B, N), new state)``."""
    if reset == "none":
        u = beta * state.u + current
    else:
        keep = 1 - (state.s.detach() if reset == "cut" else state.s)
        u = beta * state.u * keep + current
    v = u - theta if feedback is None else u + feedback - theta
    s = surrogate(v)
    return s, SpikingState(u, s)


def _logit(p: float) -> float:
    if not 0.0 < p < 1.0:
        raise AstrosnnError(f"a decay must lie in (0, 1), got {p}")
    return math.log(p / (1 - p))


class SpikingLIF(nn.Module):
    """A layer of ``size`` LIF neurons; input ``(B, T, size)`` currents, output ``(B, T, size)`` spikes.

    State is explicit: ``forward(x, state=None)`` returns ``(spikes, SpikingState)``; pass the state back to
    continue the sequence (``None`` = fresh zeros).
    """

    def __init__(
        self,
        size: int,
        beta_init: float = 0.9,
        threshold: float = 1.0,
        threshold_learnable: bool = False,
        surrogate: str = "arctan",
        surrogate_alpha: float | None = None,
        reset: str = "cut",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        check_reset(reset)
        check_scan_backend(backend)
        self.size = size
        self.reset_mode = reset
        self.backend = backend
        self.surrogate = get_surrogate(surrogate, surrogate_alpha)
        self.beta_logit = nn.Parameter(torch.full((size,), _logit(beta_init)))
        theta = torch.full((size,), float(threshold))
        if threshold_learnable:
            self.theta = nn.Parameter(theta)
        else:
            self.register_buffer("theta", theta)

    @property
    def beta(self) -> Tensor:
        return torch.sigmoid(self.beta_logit)

    def init_state(self, batch_size: int, device=None, dtype=None) -> SpikingState:  # noqa: ANN001
        ref = self.beta_logit
        z = torch.zeros(
            batch_size, self.size, device=device or ref.device, dtype=dtype or ref.dtype
        )
        return SpikingState(z, z.clone())

    def forward(
        self, x: Tensor, state: SpikingState | None = None, feedback: Tensor | None = None
    ) -> tuple[Tensor, SpikingState]:
        if state is None:
            state = self.init_state(x.shape[0], x.device, x.dtype)
        beta = self.beta.to(x.dtype)
        theta = self.theta.to(x.dtype)
        spikes, u = lif_scan(
            x,
            feedback,
            beta,
            theta,
            state.u,
            state.s,
            self.surrogate,
            self.reset_mode,
            self.backend,
        )
        s_last = spikes[:, -1] if x.shape[1] else state.s
        return spikes, SpikingState(u, s_last)

    def step(
        self, x: Tensor, state: SpikingState | None = None, feedback: Tensor | None = None
    ) -> tuple[Tensor, SpikingState]:
        """One token: ``x (B, size)`` -> ``(spikes (B, size), state)``."""
        if state is None:
            state = self.init_state(x.shape[0], x.device, x.dtype)
        return spiking_step(
            x, state, self.beta.to(x.dtype), self.theta.to(x.dtype), self.surrogate,
            self.reset_mode, feedback,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"size={self.size}, reset={self.reset_mode!r}"
