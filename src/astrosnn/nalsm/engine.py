"""NALSM simulation engine: one interface, pluggable backends (spec nalsm.md §1.1, §3, §4, §6).

`simulate` runs a batch of samples from a reset state (v = 0, refractory 0, kernel delta = 20, A = A0,
rates at their initial values) with per-sample weight copies, in the exact per-ms order of §1.1:

    1 spikes  2 reset  3 record/count  4 kernel restart  5 v update (synaptic + input current 100)
    6 delta += 1  7 refractory  8 STDP (S of this step, traces of the previous step) + clip
    9 traces  10 astrocyte  11 multiplicative decay of eta_p, A, w_astro, b_astro (rate_decay per ms)

Backends: "reference" (plain torch, readable, batched) and, when numba is importable, "fast"
(`engine_numba`, event-driven plasticity, identical spikes and weights).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np
import torch

from astrosnn.core.astrocyte import (
    AstrocyteParams,
    astrocyte_decay,
    astrocyte_init,
    astrocyte_step,
    density_mask,
)
from astrosnn.core.lif import (
    LIFParams,
    kernel_table,
    lif_fire,
    lif_init,
    lif_integrate,
    synaptic_current,
)
from astrosnn.core.stdp import stdp_step
from astrosnn.core.traces import trace_step
from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.topology import PRE_INH, Network, clip_bounds

RULES = ("none", "stdp", "astro")
INPUT_CURRENT = 100.0
LIF = LIFParams()


@dataclass(frozen=True)
class PlasticityConfig:
    """Plasticity and astrocyte settings.

    rule: "none" (fixed weights), "stdp" (depression rate = eta_p), "astro" (depression rate = astrocyte A).
    rate_decay multiplies eta_p, A, w_astro and b_astro every ms (1.0 in phase 1, 0.99 in phase 2).
    The astrocyte is simulated for every rule (its trace is a diagnostic); only "astro" uses it.
    """

    rule: str = "astro"
    eta_p: float = 0.15
    trace_a: float = 0.1
    trace_decay: float = 0.90477
    astro_tau: float = 100.0
    astro_bias: float = 0.15
    astro_init: float = 0.15
    astro_weight: float = 0.015
    astro_density: float = 1.0
    rate_decay: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise AstrosnnError(f"plasticity rule must be one of {', '.join(RULES)}, got {self.rule!r}")
        for name in ("eta_p", "trace_a"):
            if not getattr(self, name) >= 0.0:
                raise AstrosnnError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.astro_density <= 1.0:
            raise AstrosnnError(f"astro_density must be in [0, 1], got {self.astro_density}")
        if not 0.0 < self.rate_decay <= 1.0:
            raise AstrosnnError(f"rate_decay must be in (0, 1], got {self.rate_decay}")
        if self.astro_tau <= 0:
            raise AstrosnnError(f"astro_tau must be > 0, got {self.astro_tau}")
        if not 0.0 <= self.trace_decay <= 1.0:
            raise AstrosnnError(f"trace_decay must be in [0, 1], got {self.trace_decay}")

    @property
    def astrocyte(self) -> AstrocyteParams:
        return AstrocyteParams(self.astro_tau, self.astro_weight, self.astro_bias, self.astro_init)

    def phase2(self, rate_decay: float = 0.99) -> PlasticityConfig:
        """The same settings with the phase-2 per-ms decay of all rates."""
        return replace(self, rate_decay=rate_decay)


@dataclass
class SimResult:
    spikes: torch.Tensor | None  # bool (B, T, N + n_in), None if record=False
    counts: torch.Tensor  # (B, N) liquid spike counts (float32)
    weights: torch.Tensor  # (B, S) final weights
    astro: torch.Tensor  # (B, T) astrocyte value A after each ms (= depression rate for rule "astro")
    traces: torch.Tensor | None = None  # (B, N + n_in) STDP traces at the end (carried in phase 1)


Backend = Callable[..., SimResult]


def _check_inputs(network: Network, input_spikes: torch.Tensor) -> torch.Tensor:
    if not isinstance(input_spikes, torch.Tensor):
        input_spikes = torch.as_tensor(np.asarray(input_spikes))
    if input_spikes.dim() != 3 or input_spikes.shape[2] != network.n_input:
        raise AstrosnnError(
            f"input spikes must have shape (batch, time, {network.n_input}), got {tuple(input_spikes.shape)}"
        )
    if input_spikes.dtype != torch.bool:
        if input_spikes.is_floating_point() and bool(torch.isnan(input_spikes).any()):
            raise AstrosnnError("input spikes contain NaN")
        input_spikes = input_spikes != 0
    return input_spikes


def _batch_weights(network: Network, weights: torch.Tensor | np.ndarray | None, batch: int) -> torch.Tensor:
    s = network.n_synapses
    if weights is None:
        w = torch.from_numpy(np.asarray(network.weight, dtype=np.float32))
    else:
        w = torch.as_tensor(weights, dtype=torch.float32)
    if w.shape == (s,):
        return w.unsqueeze(0).expand(batch, s).clone()
    if w.shape == (batch, s):
        return w.clone()
    raise AstrosnnError(f"weights must have shape ({s},) or ({batch}, {s}), got {tuple(w.shape)}")


def _reference(
    network: Network,
    input_spikes: torch.Tensor,
    plasticity: PlasticityConfig,
    weights: torch.Tensor,
    record: bool,
    traces: torch.Tensor | None,
) -> SimResult:
    """Plain torch, straight from the spec; batched over samples with per-sample weights (B, S)."""
    batch, steps, _ = input_spikes.shape
    n, m = network.n_liquid, network.n_neurons
    pre = torch.from_numpy(network.pre)
    post = torch.from_numpy(network.post)
    inhibitory = torch.from_numpy(network.pre_kind == PRE_INH)
    low, high = (torch.from_numpy(b) for b in clip_bounds(network))
    mask = torch.from_numpy(density_mask(n, network.n_input, plasticity.astro_density, plasticity.seed))
    table = kernel_table(LIF)
    f32 = torch.float32

    state = lif_init(batch, m, LIF)
    x = torch.zeros(batch, m, dtype=f32) if traces is None else traces.to(f32).clone()
    astro = astrocyte_init(batch, plasticity.astrocyte)
    eta = torch.full((batch,), plasticity.eta_p, dtype=f32)
    counts = torch.zeros(batch, n, dtype=f32)
    raster = torch.zeros(batch, steps, m, dtype=torch.bool) if record else None
    astro_trace = torch.zeros(batch, steps, dtype=f32)
    w = weights

    for t in range(steps):
        spikes, state = lif_fire(state, LIF)  # 1, 2, 4
        if raster is not None:  # 3
            raster[:, t] = spikes
        counts += spikes[:, :n]
        current = synaptic_current(w, table[state.delta], pre, post, m)  # 5
        current[:, n:] += input_spikes[:, t].to(f32) * INPUT_CURRENT  # input neurons: current 100
        state = lif_integrate(state, spikes, current, LIF)  # 5, 6, 7
        if plasticity.rule != "none":  # 8
            depression = astro.value if plasticity.rule == "astro" else eta
            w = stdp_step(w, spikes, x, pre, post, inhibitory, eta, depression, low, high)
        x = trace_step(x, spikes, plasticity.trace_a, plasticity.trace_decay)  # 9
        seen = spikes & mask
        astro = astrocyte_step(astro, seen[:, :n].sum(1), seen[:, n:].sum(1), plasticity.astro_tau)  # 10
        if plasticity.rate_decay != 1.0:  # 11
            eta = eta * plasticity.rate_decay
            astro = astrocyte_decay(astro, plasticity.rate_decay)
        astro_trace[:, t] = astro.value
    return SimResult(spikes=raster, counts=counts, weights=w, astro=astro_trace, traces=x)


BACKENDS: dict[str, Backend] = {"reference": _reference}
try:  # the fast backend needs numba (a dependency, but keep the reference usable without it)
    from astrosnn.nalsm.engine_numba import fast_backend

    BACKENDS["fast"] = fast_backend
except ImportError:  # pragma: no cover
    pass


def _backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise AstrosnnError(f"unknown engine backend {name!r}; choose from {', '.join(BACKENDS)}")
    return BACKENDS[name]


def simulate(
    network: Network,
    input_spikes: torch.Tensor,
    plasticity: PlasticityConfig,
    *,
    weights: torch.Tensor | np.ndarray | None = None,
    record: bool = True,
    backend: str = "reference",
    traces: torch.Tensor | None = None,
) -> SimResult:
    """Run a batch (B, T, n_in) of input spike trains from a reset state.

    weights: (S,) shared start weights or (B, S) per sample; default the network's weights.
    traces: optional (B, N + n_in) STDP traces to start from (phase 1 carries them; default zeros).
    """
    input_spikes = _check_inputs(network, input_spikes)
    w = _batch_weights(network, weights, input_spikes.shape[0])
    if traces is not None and tuple(traces.shape) != (input_spikes.shape[0], network.n_neurons):
        raise AstrosnnError(
            f"traces must have shape ({input_spikes.shape[0]}, {network.n_neurons}), got {tuple(traces.shape)}"
        )
    return _backend(backend)(network, input_spikes, plasticity, _clip_if_plastic(network, w, plasticity), record, traces)


def _clip_if_plastic(network: Network, w: torch.Tensor, plasticity: PlasticityConfig) -> torch.Tensor:
    """With plasticity on, start weights are first clipped to their block bounds (STDP clips every step)."""
    if plasticity.rule == "none":
        return w
    low, high = (torch.from_numpy(b) for b in clip_bounds(network))
    return torch.clamp(w, low, high)


def run_phase1(
    network: Network,
    samples: Iterable[torch.Tensor],
    plasticity: PlasticityConfig,
    *,
    weights: torch.Tensor | np.ndarray | None = None,
    progress: bool = True,
    backend: str = "reference",
) -> torch.Tensor:
    """Unsupervised liquid initialisation: samples (T1, n_in) one at a time (batch 1), weights and STDP
    traces carried from sample to sample, neuron/astrocyte/rate state reset per sample. Returns weights (S,).
    """
    from tqdm.auto import tqdm

    run = _backend(backend)
    w = _clip_if_plastic(network, _batch_weights(network, weights, 1), plasticity)
    total = len(samples) if hasattr(samples, "__len__") else None  # type: ignore[arg-type]
    bar = tqdm(samples, total=total, desc="phase 1", unit="sample", disable=not progress)
    if backend == "fast":
        return _phase1_fast(network, bar, plasticity, w[0])
    x = None
    for sample in bar:
        spikes = _check_inputs(network, torch.as_tensor(sample).unsqueeze(0))
        result = run(network, spikes, plasticity, w, False, x)
        w, x = result.weights, result.traces
    return w[0].clone()


def _phase1_fast(network: Network, samples: Iterable[torch.Tensor], plasticity: PlasticityConfig,
                 w: torch.Tensor, block: int = 64) -> torch.Tensor:
    """Phase 1 in compiled blocks of samples (same results as the per-sample loop)."""
    from astrosnn.nalsm.engine_numba import fast_sequence, prepare

    prep = prepare(network)
    weights = w.numpy().astype(np.float32, copy=True)
    traces = np.zeros(network.n_neurons, np.float32)
    pending: list[np.ndarray] = []

    def flush() -> None:
        if pending:
            fast_sequence(network, np.stack(pending), plasticity, weights, traces, prep)
            pending.clear()

    for sample in samples:
        arr = _check_inputs(network, torch.as_tensor(sample).unsqueeze(0))[0].numpy()
        if pending and arr.shape != pending[0].shape:
            flush()
        pending.append(arr)
        if len(pending) == block:
            flush()
    flush()
    return torch.from_numpy(weights)


def extract_features(
    network: Network,
    weights: torch.Tensor | np.ndarray,
    input_spikes: torch.Tensor,
    plasticity: PlasticityConfig,
    *,
    freeze: bool = False,
    record: bool = False,
    backend: str = "reference",
) -> SimResult:
    """Phase 2: every sample starts from `weights` (S,) and runs with plasticity as configured (pass
    `plasticity.phase2()` for the paper's x0.99 per-ms decay); freeze=True turns plasticity off.
    Features are `result.counts` (B, N).
    """
    if freeze:
        plasticity = replace(plasticity, rule="none")
    return simulate(network, input_spikes, plasticity, weights=weights, record=record, backend=backend)
