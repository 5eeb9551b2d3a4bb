"""The registry of language models: a kind names a (config class, model class) pair.

``build_model(kind, vocab_size, **options)`` makes any registered model; ``model_from_config_dict`` rebuilds
one from its stored config. Options the training code passes to every model (:data:`COMMON_OPTIONS`) are
dropped where a config has no such field (an LSTM has no heads), or renamed by the config class's
``option_aliases`` (the Transformer's ``seq_len`` is its ``context``). A section field of a nested config
(``threshold`` of ``AstroSNNConfig.amsu``) may be given flat.

Adding a model: one module with its config dataclass (``vocab_size`` first) and its model class (a
:class:`astrosnn.lm.base.LanguageModelBase`), plus one :func:`register_model` line below.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from astrosnn.errors import AstrosnnError
from astrosnn.lm.baselines import LSTMLM, LSTMConfig, TransformerConfig, TransformerLM
from astrosnn.lm.configs import config_from_dict, nest_options, option_names
from astrosnn.lm.model import AstroSNNConfig, AstroSNNLM

__all__ = ["COMMON_OPTIONS", "ModelSpec", "build_model", "count_parameters", "make_config",
           "model_from_config_dict", "model_kinds", "model_spec", "register_model", "width_for_parameters"]  # fmt: skip

COMMON_OPTIONS = ("width", "layers", "heads", "seq_len")


@dataclass(frozen=True)
class ModelSpec:
    kind: str
    config_class: type
    model_class: type[nn.Module]
    fixed: dict[str, Any] = field(default_factory=dict)  # options the kind implies (lif-snn: astrocyte off)


_MODELS: dict[str, ModelSpec] = {}


def register_model(kind: str, config_class: type, model_class: type[nn.Module], **fixed: Any) -> None:
    """Make `kind` buildable; `fixed` options are implied by the kind and may not be contradicted."""
    _MODELS[kind] = ModelSpec(kind, config_class, model_class, dict(fixed))


def model_kinds() -> tuple[str, ...]:
    """The registered kinds, in registration order."""
    return tuple(_MODELS)


def model_spec(kind: str) -> ModelSpec:
    spec = _MODELS.get(kind)
    if spec is None:
        raise AstrosnnError(f"unknown model {kind!r} (choose from {', '.join(_MODELS)})")
    return spec


def make_config(kind: str, vocab_size: int, **options: Any) -> Any:
    """The typed config for `kind`; options set to None are left at their defaults.

    Common options: width, layers, heads, seq_len (the Transformer's context; ignored by recurrent models).
    Any other field of the kind's config (or of one of its sections) may be passed too; unknown names are
    an error.
    """
    spec = model_spec(kind)
    cls = spec.config_class
    options = {k: v for k, v in options.items() if v is not None}
    names = option_names(cls)
    for common, alias in getattr(cls, "option_aliases", {}).items():
        if common in options:
            options.setdefault(alias, options.pop(common))
    for common in COMMON_OPTIONS:
        if common not in names:
            options.pop(common, None)  # accepted so one command line fits every model
    for name, value in spec.fixed.items():
        if name in options and options[name] != value:
            raise AstrosnnError(f"model {kind!r} contradicts {name}={options[name]!r}")
        options[name] = value
    nested = nest_options(cls, options, f"unknown option(s) for model {kind!r}")
    try:
        return cls(vocab_size=vocab_size, **nested)
    except (TypeError, ValueError) as e:
        if isinstance(e, AstrosnnError):
            raise
        raise AstrosnnError(f"invalid {kind} configuration: {e}") from None


def build_model(kind: str, vocab_size: int, **options: Any) -> nn.Module:
    """A fresh model of a registered `kind` (see :func:`model_kinds`) for `vocab_size` tokens."""
    config = make_config(kind, vocab_size, **options)
    return model_spec(kind).model_class(config)


def model_from_config_dict(kind: str, d: dict[str, Any]) -> nn.Module:
    """Rebuild a model from ``dataclasses.asdict(model.config)`` (a checkpoint's config.json), nested or flat."""
    spec = model_spec(kind)
    config = config_from_dict(spec.config_class, d, f"config for model {kind!r}")
    return spec.model_class(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def width_for_parameters(kind: str, vocab_size: int, target: int, **options: Any) -> int:
    """The width (a multiple of the head count, or of 8 without heads) whose model is closest to `target`
    parameters."""
    if target < 1:
        raise AstrosnnError(f"target parameter count must be positive, got {target}")
    options = {k: v for k, v in options.items() if v is not None and k != "width"}
    fields = {f.name: f for f in dataclasses.fields(model_spec(kind).config_class)}
    step = int(options.get("heads") or fields["heads"].default) if "heads" in fields else 8

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


register_model("astrosnn", AstroSNNConfig, AstroSNNLM, astrocyte=True)
register_model("lif-snn", AstroSNNConfig, AstroSNNLM, astrocyte=False)
register_model("linear-attention", AstroSNNConfig, AstroSNNLM, astrocyte=True, neuron="none")
register_model("lstm", LSTMConfig, LSTMLM)
register_model("transformer", TransformerConfig, TransformerLM)
