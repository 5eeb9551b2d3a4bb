"""NALSM: liquid topology, simulation engine, plasticity phases, readout and diagnostics.

`from astrosnn.nalsm import NALSM, NALSMConfig` (imported lazily, so the package stays light)."""

from __future__ import annotations

from typing import Any

_LAZY = {"NALSM": "astrosnn.nalsm.model", "NALSMConfig": "astrosnn.nalsm.config"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'astrosnn.nalsm' has no attribute {name!r}")


__all__ = list(_LAZY)
