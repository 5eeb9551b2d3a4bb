"""The Hugging Face config of an astrosnn language model: :class:`AstroSNNHFConfig` (``model_type`` "astrosnn").

It wraps a native model: ``astrosnn_kind`` (a registered kind: astrosnn, lif-snn, lstm, transformer) and
``astrosnn_config`` (``dataclasses.asdict`` of the native config, as in a native checkpoint's
``model_config``). Named apart from :class:`astrosnn.lm.AstroSNNConfig`, the native model's config.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import PretrainedConfig

from astrosnn.errors import AstrosnnError
from astrosnn.lm.registry import model_from_config_dict

MODEL_TYPE = "astrosnn"


class AstroSNNHFConfig(PretrainedConfig):
    """``transformers`` config holding the native model kind and config dict (see the module docstring)."""

    model_type = MODEL_TYPE

    def __init__(
        self,
        astrosnn_kind: str = "astrosnn",
        astrosnn_config: dict[str, Any] | None = None,
        vocab_level: str = "char",
        use_cache: bool = True,
        **kwargs: Any,
    ) -> None:
        self.astrosnn_kind = astrosnn_kind
        self.astrosnn_config = dict(astrosnn_config or {})
        self.vocab_level = vocab_level
        native = self.astrosnn_config
        if "vocab_size" in native:
            kwargs.setdefault("vocab_size", native["vocab_size"])
        if "width" in native:
            kwargs.setdefault("hidden_size", native["width"])
        if "layers" in native:
            kwargs.setdefault("num_hidden_layers", native["layers"])
        kwargs.setdefault("tie_word_embeddings", bool(native.get("tie_embeddings", False)))
        super().__init__(**kwargs)
        self.use_cache = use_cache


def native_model(config: AstroSNNHFConfig) -> torch.nn.Module:
    """The native model a config describes; a bad kind or config is an AstrosnnError."""
    if not isinstance(config.astrosnn_config, dict) or not config.astrosnn_config:
        raise AstrosnnError("astrosnn config: astrosnn_config (the native model config) is missing")
    return model_from_config_dict(config.astrosnn_kind, config.astrosnn_config)
