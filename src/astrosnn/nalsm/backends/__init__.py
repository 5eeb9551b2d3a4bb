"""Engine backends: one interface (`Backend`), a registry, and the two built-in implementations.

- ``reference`` (`backends.reference`): plain torch, batched, written straight from the spec; the readable one.
- ``cuda`` (`backends.cuda`): the reference on a CUDA GPU (float32 atomic sums: a stated tolerance).
- ``fast`` (`backends.fast`): numba, event-driven plasticity; bit-identical spikes, weights and traces
  (tests/nalsm/test_engine_backends.py holds them equal).
- ``event`` / ``event64`` (`backends.event`): numba, event-driven synaptic current as well (a running
  current per neuron); not bit-identical: float32 / float64 current and potential, stated tolerance
  (tests/nalsm/test_backend_event.py, BENCHMARKS.md).

The built-ins are imported on first use, so the registry itself is light and numba is imported only when
the fast backend is asked for. To add a backend, implement `Backend` and call
``register_backend("name", instance)`` (or pass a ``"module.path"`` whose module has a ``BACKEND``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from astrosnn.errors import AstrosnnError

if TYPE_CHECKING:
    import torch

    from astrosnn.nalsm.params import PlasticityConfig, SimulationResult
    from astrosnn.nalsm.topology import Network

AUTO = "auto"  # the fastest available backend


class Backend(Protocol):
    """How a backend simulates the liquid. `engine.simulate`, `engine.run_phase1` and `engine.run_phase1_chunk`
    validate the inputs first: spikes are bool, weights and traces float32, weights already clipped to their
    bounds when plasticity is on, and `plasticity.astro_weight` is concrete. Both entry points must give the
    same numbers as the reference."""

    def run_batch(self, network: Network, input_spikes: torch.Tensor, plasticity: PlasticityConfig,
                  weights: torch.Tensor, record: bool, traces: torch.Tensor | None) -> SimulationResult:
        """Phase 2: B independent samples (B, T, n_in) from a reset state, each with its own weights (B, S)
        (the caller's tensor may be modified); traces (B, N + n_in) to start from, or None for zeros."""
        ...

    def run_sequence(self, network: Network, samples: Iterable[torch.Tensor], plasticity: PlasticityConfig,
                     weights: torch.Tensor, traces: torch.Tensor | None = None,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Phase 1: samples (T, n_in) one after another with weights (S,) and STDP traces carried, the
        neuron/astrocyte/rate state reset per sample. traces: (N + n_in,) float32 to start from (None: zeros,
        the start of phase 1); neither argument is modified. Returns the final (weights (S,), traces
        (N + n_in,)), new tensors. A sequence split anywhere, the weights and traces of one piece passed to
        the next, must give bit for bit what it gives in one piece: a resumed phase 1
        (`engine.run_phase1_chunk`) relies on that."""
        ...


_REGISTRY: dict[str, Backend | str] = {
    "reference": "astrosnn.nalsm.backends.reference",
    "fast": "astrosnn.nalsm.backends.fast",
    "event": "astrosnn.nalsm.backends.event",
    "event64": "astrosnn.nalsm.backends.event64",
    "cuda": "astrosnn.nalsm.backends.cuda",
}


def register_backend(name: str, backend: Backend | str) -> None:
    """Make `backend` (an instance, or the path of a module defining ``BACKEND``) available as `name`."""
    if not name or name == AUTO:
        raise AstrosnnError(f"invalid backend name {name!r}")
    _REGISTRY[name] = backend


def backend_names() -> list[str]:
    """Every registered name (whether or not its dependencies are installed)."""
    return sorted(_REGISTRY)


def get_backend(name: str) -> Backend:
    """The backend registered as `name` (imported on first use)."""
    entry = _REGISTRY.get(name)
    if entry is None:
        raise AstrosnnError(f"unknown engine backend {name!r}; choose from {', '.join([AUTO, *backend_names()])}")
    if isinstance(entry, str):
        try:
            entry = importlib.import_module(entry).BACKEND
        except ImportError as e:
            raise AstrosnnError(f"engine backend {name!r} is not available: {e}") from None
        _REGISTRY[name] = entry
    return entry  # type: ignore[return-value]


def available_backends() -> list[str]:
    """The registered backends that load here (the fast ones need numba, cuda a GPU)."""
    names = []
    for name in backend_names():
        try:
            get_backend(name)
        except AstrosnnError:
            continue
        names.append(name)
    return names


def resolve_backend(name: str) -> str:
    """`name` checked against the registry; "auto" -> "fast" where available, else "reference"."""
    if name == AUTO:
        return "fast" if "fast" in available_backends() else "reference"
    get_backend(name)
    return name


__all__ = ["AUTO", "Backend", "available_backends", "backend_names", "get_backend", "register_backend",
           "resolve_backend"]
