"""Build any astrosnn language model by name, rebuild one from its saved config, size it to a parameter count."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from astrosnn.errors import AstrosnnError

MODEL_KINDS = ("astrosnn", "lif-snn", "lstm", "transformer")


def _config_class(kind: str) -> type:
    if kind in ("astrosnn", "lif-snn"):
        from astrosnn.lm.model import AstroSNNConfig

        return AstroSNNConfig
    if kind == "lstm":
        from astrosnn.lm.baselines import LSTMConfig

        return LSTMConfig
    if kind == "transformer":
        from astrosnn.lm.baselines import TransformerConfig

        return TransformerConfig
    raise AstrosnnError(f"unknown model {kind!r} (choose from {', '.join(MODEL_KINDS)})")


def _model_class(kind: str) -> type:
    if kind in ("astrosnn", "lif-snn"):
        from astrosnn.lm.model import AstroSNNLM

        return AstroSNNLM
    from astrosnn.lm.baselines import LSTMLM, TransformerLM

    return {"lstm": LSTMLM, "transformer": TransformerLM}[kind]


def _astrocyte_field(cls: type) -> str:
    names = {f.name for f in dataclasses.fields(cls)}
    for name in ("astrocyte", "use_astrocyte", "astrocyte_on"):
        if name in names:
            return name
    raise AstrosnnError(f"{cls.__name__} has no astrocyte on/off field")


def make_config(kind: str, vocab_size: int, **options: Any):
    """The typed config for `kind`; options set to None are left at their defaults.

    Common options: width, layers, heads, seq_len (the Transformer's context; ignored by recurrent models).
    Any other field of the kind's config dataclass may be passed too; unknown names are an error.
    """
    cls = _config_class(kind)
    options = {k: v for k, v in options.items() if v is not None}
    seq_len = options.pop("seq_len", None)
    fields = {f.name for f in dataclasses.fields(cls)}
    if kind == "transformer" and seq_len is not None:
        options.setdefault("context", seq_len)
    if kind in ("astrosnn", "lif-snn"):
        flag = _astrocyte_field(cls)
        if flag in options and bool(options[flag]) != (kind == "astrosnn"):
            raise AstrosnnError(f"model {kind!r} contradicts {flag}={options[flag]!r}")
        options[flag] = kind == "astrosnn"
    if kind == "lstm":
        options.pop("heads", None)  # an LSTM has no heads; accepted so one command line fits every model
    unknown = sorted(set(options) - fields)
    if unknown:
        raise AstrosnnError(f"unknown option(s) for model {kind!r}: {', '.join(unknown)}")
    try:
        return cls(vocab_size=vocab_size, **options)
    except (TypeError, ValueError) as e:
        if isinstance(e, AstrosnnError):
            raise
        raise AstrosnnError(f"invalid {kind} configuration: {e}") from None


def build_model(kind: str, vocab_size: int, **options: Any) -> nn.Module:
    """A fresh model of `kind` ("astrosnn", "lif-snn", "lstm", "transformer") for `vocab_size` tokens."""
    config = make_config(kind, vocab_size, **options)
    return _model_class(kind)(config)


def model_from_config_dict(kind: str, d: dict[str, Any]) -> nn.Module:
    """Rebuild a model from `dataclasses.asdict(model.config)` (as stored in a checkpoint's config.json)."""
    cls = _config_class(kind)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - fields)
    if unknown:
        raise AstrosnnError(f"config for model {kind!r} has unknown field(s): {', '.join(unknown)}")
    try:
        config = cls(**d)
    except (TypeError, ValueError) as e:
        if isinstance(e, AstrosnnError):
            raise
        raise AstrosnnError(f"invalid {kind} configuration: {e}") from None
    return _model_class(kind)(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def width_for_parameters(kind: str, vocab_size: int, target: int, **options: Any) -> int:
    """The width (a multiple of the head count, or of 8 for the LSTM) whose model is closest to `target` parameters."""
    if target < 1:
        raise AstrosnnError(f"target parameter count must be positive, got {target}")
    options = {k: v for k, v in options.items() if v is not None and k != "width"}
    step = 8 if kind == "lstm" else int(options.get("heads") or getattr(_config_class(kind), "heads", 8))

    def params(width: int) -> int:
        return count_parameters(build_model(kind, vocab_size, width=width, **options))

    lo, hi = 1, 2
    while params(hi * step) < target:
        lo, hi = hi, hi * 2
        if hi * step > 1 << 16:
            break
    while hi - lo > 1:  # parameter count grows with width
        mid = (lo + hi) // 2
        if params(mid * step) < target:
            lo = mid
        else:
            hi = mid
    return min((lo * step, hi * step), key=lambda w: abs(params(w) - target))
