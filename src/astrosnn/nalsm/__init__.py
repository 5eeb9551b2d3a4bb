"""NALSM: liquid topology, simulation engine, plasticity phases, readout and diagnostics.

Public API (each name is imported on first use, so ``import astrosnn.nalsm`` stays light)::

    from astrosnn.nalsm import NALSM, NALSMConfig          # estimator + run config
    from astrosnn.nalsm import build_network, simulate, extract_features, run_phase1, PlasticityConfig
    from astrosnn.nalsm import branching_factor, run, RunConfig   # diagnostics; the `nalsm train` job
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "NALSM": "astrosnn.nalsm.model",
    "NALSMConfig": "astrosnn.nalsm.config",
    "LiquidConfig": "astrosnn.nalsm.params",
    "PlasticityConfig": "astrosnn.nalsm.params",
    "SimulationResult": "astrosnn.nalsm.params",
    "Network": "astrosnn.nalsm.topology",
    "build_network": "astrosnn.nalsm.topology",
    "simulate": "astrosnn.nalsm.engine",
    "extract_features": "astrosnn.nalsm.engine",
    "run_phase1": "astrosnn.nalsm.engine",
    "branching_factor": "astrosnn.nalsm.branching",
    "Backend": "astrosnn.nalsm.backends",
    "register_backend": "astrosnn.nalsm.backends",
    "get_backend": "astrosnn.nalsm.backends",
    "RunConfig": "astrosnn.nalsm.job",
    "run": "astrosnn.nalsm.job",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    raise AttributeError(f"module 'astrosnn.nalsm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = list(_LAZY)
