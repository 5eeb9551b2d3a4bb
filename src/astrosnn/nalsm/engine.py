"""NALSM simulation: one interface over pluggable backends (spec nalsm.md §1.1, §3, §4, §6).

`simulate` runs a batch of samples from a reset state (v = 0, refractory 0, delta = 20, A = A0, rates at
their initial values) with per-sample weight copies; `run_phase1` is the unsupervised liquid initialisation
(weights and traces carried from sample to sample); `extract_features` is phase 2. All three validate their
inputs here and hand them to the backend named by `backend` (see `astrosnn.nalsm.backends`): "reference"
(plain torch, readable) or "fast" (numba); both give identical spikes and weights.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

import numpy as np
import torch
from tqdm.auto import tqdm

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.backends import Backend, available_backends, get_backend
from astrosnn.nalsm.params import INPUT_CURRENT, LIF, RULES, PlasticityConfig, SimulationResult
from astrosnn.nalsm.topology import Network, clip_bounds

__all__ = ["INPUT_CURRENT", "LIF", "RULES", "PlasticityConfig", "SimulationResult", "available_backends",
           "extract_features", "run_phase1", "run_phase1_chunk", "simulate"]


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


def _start_weights(network: Network, weights: torch.Tensor | np.ndarray | None, batch: int,
                   plasticity: PlasticityConfig) -> torch.Tensor:
    """(batch, S) float32 copies of the start weights; with plasticity on, first clipped to their block
    bounds (STDP clips every step)."""
    s = network.n_synapses
    if weights is None:
        w = torch.from_numpy(np.asarray(network.weight, dtype=np.float32))
    else:
        w = torch.as_tensor(weights, dtype=torch.float32)
    if w.shape == (s,):
        w = w.unsqueeze(0).expand(batch, s).clone()
    elif w.shape == (batch, s):
        w = w.clone()
    else:
        raise AstrosnnError(f"weights must have shape ({s},) or ({batch}, {s}), got {tuple(w.shape)}")
    if plasticity.rule == "none":
        return w
    low, high = (torch.from_numpy(b) for b in clip_bounds(network))
    return torch.clamp(w, low, high)


def simulate(
    network: Network,
    input_spikes: torch.Tensor,
    plasticity: PlasticityConfig,
    *,
    weights: torch.Tensor | np.ndarray | None = None,
    record: bool = True,
    backend: str = "reference",
    traces: torch.Tensor | None = None,
) -> SimulationResult:
    """Run a batch (B, T, n_in) of input spike trains from a reset state.

    weights: (S,) shared start weights or (B, S) per sample; default the network's weights.
    traces: optional (B, N + n_in) STDP traces to start from (phase 1 carries them; default zeros).
    """
    run = get_backend(backend)
    input_spikes = _check_inputs(network, input_spikes)
    batch = input_spikes.shape[0]
    w = _start_weights(network, weights, batch, plasticity)
    if traces is not None and tuple(traces.shape) != (batch, network.n_neurons):
        raise AstrosnnError(f"traces must have shape ({batch}, {network.n_neurons}), got {tuple(traces.shape)}")
    return run.run_batch(network, input_spikes, plasticity.resolved(network.n_liquid), w, record, traces)


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
    run = get_backend(backend)
    w = _start_weights(network, weights, 1, plasticity)[0]
    total = len(samples) if hasattr(samples, "__len__") else None  # type: ignore[arg-type]
    bar = tqdm(samples, total=total, desc="phase 1", unit="sample", disable=not progress)

    def checked() -> Iterator[torch.Tensor]:
        for sample in bar:
            yield _check_inputs(network, torch.as_tensor(sample).unsqueeze(0))[0]

    w, _ = _sequence(run, backend, run.run_sequence(network, checked(), plasticity.resolved(network.n_liquid), w))
    return w


def run_phase1_chunk(
    network: Network,
    samples: Iterable[torch.Tensor],
    plasticity: PlasticityConfig,
    weights: torch.Tensor | np.ndarray | None,
    traces: torch.Tensor | None,
    *,
    backend: str = "reference",
) -> tuple[torch.Tensor, torch.Tensor]:
    """A piece of phase 1 that can be continued: the samples (T1, n_in) one at a time from `weights` (S,)
    and STDP `traces` (N + n_in,) (None: zeros, the start of phase 1); returns the final (weights, traces).

    Chaining pieces (weights and traces out of one into the next) gives bit for bit the weights of one
    `run_phase1` over all the samples, with every backend (tests/nalsm/test_run_resume.py,
    tests/nalsm/test_engine_backends.py): that is what a resumed phase 1 relies on. It is the backend's
    ``run_sequence`` started from the given traces, so a piece runs as fast as a whole phase 1.
    """
    run = get_backend(backend)
    w = _start_weights(network, weights, 1, plasticity)[0]
    x = None
    if traces is not None:
        x = torch.as_tensor(traces, dtype=torch.float32)
        if tuple(x.shape) != (network.n_neurons,):
            raise AstrosnnError(f"traces must have shape ({network.n_neurons},), got {tuple(x.shape)}")
    checked = (_check_inputs(network, torch.as_tensor(s).unsqueeze(0))[0] for s in samples)
    return _sequence(run, backend, run.run_sequence(network, checked, plasticity.resolved(network.n_liquid), w, x))


def _sequence(run: Backend, name: str, out: object) -> tuple[torch.Tensor, torch.Tensor]:
    """A backend's ``run_sequence`` answer, checked to be the (weights, traces) pair of the interface."""
    if not (isinstance(out, tuple) and len(out) == 2):
        raise AstrosnnError(f"engine backend {name!r} ({type(run).__name__}): run_sequence must return "
                            f"(weights, traces), got {type(out).__name__}")
    return out  # type: ignore[return-value]


def extract_features(
    network: Network,
    weights: torch.Tensor | np.ndarray,
    input_spikes: torch.Tensor,
    plasticity: PlasticityConfig,
    *,
    freeze: bool = False,
    record: bool = False,
    backend: str = "reference",
    traces: torch.Tensor | None = None,
) -> SimulationResult:
    """Phase 2: every sample starts from `weights` (S,) and runs with plasticity as configured (pass
    `plasticity.phase2()` for the paper's x0.99 per-ms decay); freeze=True turns plasticity off.
    Features are `result.counts` (B, N). traces: (B, N + n_in) STDP traces to start from (default zeros,
    astrosnn's phase 2; the authors' loop carries them from batch to batch, see `NALSM.simulate`).
    """
    if freeze:
        plasticity = replace(plasticity, rule="none")
    return simulate(network, input_spikes, plasticity, weights=weights, record=record, backend=backend,
                    traces=traces)
