"""The numbers of a NALSM liquid in one place: topology, dynamics and plasticity settings, result type.

A leaf module (spec nalsm.md §1-4): every engine backend, the run config (`config.NALSMConfig`) and the
topology builder take their defaults from here. Importing it never imports numba.

- `LiquidConfig`: grid, Gaussian wiring, input projection, initial weight magnitudes (§1.2-1.3);
  `build_network`'s keyword defaults are its field defaults.
- `PlasticityConfig`: STDP (§3) and astrocyte (§4) settings plus what a simulation needs to run them
  (rule, per-ms rate decay, density-mask seed). It is also the `plasticity` section of a run config.
- `LIF`, `INPUT_CURRENT`: neuron dynamics constants (§1.1); `SimulationResult`: what a backend returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from astrosnn.core.astrocyte import DEFAULT_ASTROCYTE, AstrocyteParams
from astrosnn.core.lif import DEFAULT_LIF
from astrosnn.core.traces import DEFAULT_TRACE_A, DEFAULT_TRACE_DECAY
from astrosnn.errors import AstrosnnError
from astrosnn.nalsm import schema as S

if TYPE_CHECKING:
    import torch

LIF = DEFAULT_LIF  # the liquid's LIF neuron (tau_v 64 ms, threshold 20, refractory 2 ms)
INPUT_CURRENT = 100.0  # current an input spike injects into its input neuron (fires it next ms)
WEIGHT_CLIP = 3.0  # plastic weights stay in E-pre [0, 3], I-pre [-3, 0], input [-3, 3]
RULES = ("none", "stdp", "astro")  # plasticity rules: fixed weights, STDP, astrocyte-modulated STDP
ASTRO_REFERENCE_NEURONS = 1000  # the liquid size of the paper's w_astro (DEFAULT_ASTROCYTE.weight)


def scaled_astro_weight(n_liquid: int) -> float:
    """The paper's w_astro for 1000 neurons scaled by (1000 / N)^(1/3): 0.015 at 1000, 0.0075 at 8000."""
    return round(DEFAULT_ASTROCYTE.weight * (ASTRO_REFERENCE_NEURONS / n_liquid) ** (1 / 3), 6)


def parse_grid(text: str, *, key: str = "liquid.grid") -> tuple[int, int, int]:
    """'10x10x10' -> (10, 10, 10); each side must be a positive integer."""
    parts = str(text).lower().split("x")
    try:
        sides = tuple(int(p) for p in parts)
    except ValueError:
        raise S.fail(key, f"expected AxBxC with integer sides, got {text!r}") from None
    if len(sides) != 3:
        raise S.fail(key, f"expected AxBxC (three sides), got {text!r}")
    for s in sides:
        if s < 1:
            raise S.fail(key, f"every side must be >= 1, got {text!r}")
    return sides  # type: ignore[return-value]


def grid_for_neurons(n: int) -> tuple[int, int, int]:
    """The most cube-like grid with exactly n cells (1000 -> 10x10x10, 8000 -> 20x20x20)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise AstrosnnError(f"n_neurons must be a positive integer, got {n!r}")
    best: tuple[int, int, int] | None = None
    for a in range(1, round(n ** (1 / 3)) + 2):
        if n % a:
            continue
        m = n // a
        for b in range(a, math.isqrt(m) + 1):
            if m % b == 0:
                cand = (a, b, m // b)
                if best is None or max(cand) - min(cand) < max(best) - min(best):
                    best = cand
    if best is None:
        best = (1, 1, n)
    return tuple(sorted(best, reverse=True))  # type: ignore[return-value]


def _grid(key: str, v) -> tuple[int, int, int]:
    if isinstance(v, str):
        v = parse_grid(v, key=key)
    if not isinstance(v, list | tuple) or len(v) != 3:
        raise S.fail(key, f"expected three grid sides, got {v!r}")
    return tuple(S.pos_int(key, s) for s in v)  # type: ignore[return-value]


@dataclass(frozen=True)
class LiquidConfig(S.Section):
    """Topology (spec §1.2-1.3): grid, Gaussian wiring, input projection, initial weight magnitudes."""

    grid: tuple[int, int, int] = (10, 10, 10)
    lam: float = 3.0
    c_ee: float = 0.2  # connection probability scale, post E <- pre E
    c_ei: float = 0.1  # post I <- pre E
    c_ie: float = 0.3  # post E <- pre I
    c_ii: float = 0.05  # post I <- pre I
    input_density: float = 0.15
    weight_magnitude: float = 3.0  # initial |w| of every synapse for nalsm / lsm-stdp (clip: WEIGHT_CLIP)
    lsm_weight: float = 0.8  # |w| of every synapse of the fixed-weight lsm (paper sweeps 0.4..1.4)

    _name: ClassVar[str] = "liquid"
    _rules: ClassVar[dict] = {
        "grid": _grid, "lam": S.pos, "c_ee": S.prob, "c_ei": S.prob, "c_ie": S.prob, "c_ii": S.prob,
        "input_density": S.prob, "weight_magnitude": S.pos, "lsm_weight": S.pos,
    }

    @property
    def n_neurons(self) -> int:
        return self.grid[0] * self.grid[1] * self.grid[2]


@dataclass(frozen=True)
class PlasticityConfig(S.Section):
    """STDP (§3) and astrocyte (§4) settings, and how a simulation applies them.

    rule: "none" (fixed weights), "stdp" (depression rate = eta_p), "astro" (depression rate = astrocyte A).
    The astrocyte is simulated for every rule (its trace is a diagnostic); only "astro" uses it.
    astro_weight None: `scaled_astro_weight` of the simulated liquid's size.
    rate_decay multiplies eta_p, A, w_astro and b_astro every ms: 1.0 in phase 1, `phase2()` sets phase2_decay.
    seed: of the astrocyte's density mask.

    As the `plasticity` section of a run config, rule, rate_decay and seed are derived (from the variant,
    the phase and the run's seed) and not written to or read from config files.
    """

    rule: str = "astro"
    eta_p: float = 0.15
    trace_a: float = DEFAULT_TRACE_A
    trace_decay: float = DEFAULT_TRACE_DECAY
    astro_tau: float = DEFAULT_ASTROCYTE.tau
    astro_bias: float = DEFAULT_ASTROCYTE.bias
    astro_init: float = DEFAULT_ASTROCYTE.init
    astro_weight: float | None = DEFAULT_ASTROCYTE.weight
    astro_density: float = 1.0
    phase2_decay: float = 0.99
    rate_decay: float = 1.0
    seed: int = 0

    _name: ClassVar[str] = "plasticity"
    _rules: ClassVar[dict] = {
        "rule": S.choice(RULES), "eta_p": S.nonneg, "trace_a": S.nonneg, "trace_decay": S.prob,
        "astro_tau": S.pos, "astro_bias": S.number, "astro_init": S.number, "astro_weight": S.nonneg,
        "astro_density": S.prob, "phase2_decay": S.unit_open, "rate_decay": S.unit_open, "seed": S.nonneg_int,
    }
    _derived: ClassVar[tuple[str, ...]] = ("rule", "rate_decay", "seed")

    def resolved(self, n_liquid: int) -> PlasticityConfig:
        """A copy with a concrete astro_weight for a liquid of n_liquid neurons."""
        return self if self.astro_weight is not None else replace(self, astro_weight=scaled_astro_weight(n_liquid))

    @property
    def astrocyte(self) -> AstrocyteParams:
        if self.astro_weight is None:
            raise AstrosnnError("astro_weight is None: call resolved(n_liquid) first")
        return AstrocyteParams(self.astro_tau, self.astro_weight, self.astro_bias, self.astro_init)

    def phase2(self, rate_decay: float | None = None) -> PlasticityConfig:
        """The same settings with the phase-2 per-ms decay of all rates (default phase2_decay, 0.99)."""
        return replace(self, rate_decay=self.phase2_decay if rate_decay is None else rate_decay)


@dataclass
class SimulationResult:
    """What a backend returns for a batch of B samples of T ms."""

    spikes: torch.Tensor | None  # bool (B, T, N + n_in), None if record=False
    counts: torch.Tensor  # (B, N) liquid spike counts (float32)
    weights: torch.Tensor  # (B, S) final weights
    astro: torch.Tensor  # (B, T) astrocyte value A after each ms (= depression rate for rule "astro")
    traces: torch.Tensor | None = None  # (B, N + n_in) STDP traces at the end (carried in phase 1)
