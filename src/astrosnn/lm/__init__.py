"""AM-SU layer, AstroSNN language model, baselines, training and generation.

The public API, imported lazily (``import astrosnn.lm`` stays cheap; the first use loads the submodule)::

    from astrosnn.lm import (build_model, count_parameters, model_kinds, register_model, train, TrainConfig,
                             generate, load_checkpoint, AMSU, AMSUConfig, AstroSNNConfig, ...)
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "AMSU": "amsu",
    "AMSUConfig": "amsu",
    "AstroSNNConfig": "model",
    "AstroSNNLM": "model",
    "DEFAULT_SIZE": "base",
    "LanguageModel": "base",
    "LanguageModelBase": "base",
    "LSTMConfig": "baselines",
    "LSTMLM": "baselines",
    "TransformerConfig": "baselines",
    "TransformerLM": "baselines",
    "build_model": "registry",
    "count_parameters": "registry",
    "make_config": "registry",
    "model_from_config_dict": "registry",
    "model_kinds": "registry",
    "register_model": "registry",
    "width_for_parameters": "registry",
    "register_memory": "memory",
    "TrainConfig": "training",
    "train": "training",
    "evaluate": "training",
    "Sampling": "generation",
    "Vocabulary": "generation",
    "generate": "generation",
    "stream_text": "generation",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
}

__all__ = sorted(_API)

def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'astrosnn.lm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"astrosnn.lm.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
