"""Typed, validated configuration of a NALSM / LSM / LSM+STDP run, with the paper's presets.

A config is a tree of frozen dataclasses. `NALSMConfig.from_dict` (and `from_json`) reject unknown keys and
out-of-range values with an `AstrosnnError` naming the dotted key (e.g. ``liquid.grid``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.engine import PlasticityConfig

_ENGINE = PlasticityConfig()  # default plasticity settings (spec sections 3-4)

VARIANTS = ("nalsm", "lsm", "lsm-stdp")
READOUT_METHODS = ("adadelta", "ridge", "logistic")
READOUT_SCALES = ("batch", "train")
# Plasticity rule of each variant in the engine's PlasticityConfig.rule vocabulary.
VARIANT_RULE = {"nalsm": "astro", "lsm": "none", "lsm-stdp": "stdp"}


def _fail(key: str, message: str) -> AstrosnnError:
    return AstrosnnError(f"config key '{key}': {message}")


def _check_number(key: str, value: Any, *, integer: bool = False, low: float | None = None,
                  high: float | None = None, low_open: bool = False) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(key, f"expected a number, got {value!r}")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise _fail(key, f"expected an integer, got {value!r}")
        value = int(value)
    elif not math.isfinite(value):
        raise _fail(key, f"must be finite, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise _fail(key, f"must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise _fail(key, f"must be <= {high}, got {value!r}")
    return value


def _check_choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _fail(key, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def _prob(key: str, v: Any) -> float:
    return float(_check_number(key, v, low=0.0, high=1.0))


def _pos(key: str, v: Any) -> float:
    return float(_check_number(key, v, low=0.0, low_open=True))


def _nonneg(key: str, v: Any) -> float:
    return float(_check_number(key, v, low=0.0))


def _pos_int(key: str, v: Any) -> int:
    return int(_check_number(key, v, integer=True, low=1))


def _nonneg_int(key: str, v: Any) -> int:
    return int(_check_number(key, v, integer=True, low=0))


def _bool(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise _fail(key, f"expected true or false, got {v!r}")
    return v


def _grid(key: str, v: Any) -> tuple[int, int, int]:
    if isinstance(v, str):
        v = parse_grid(v, key=key)
    if not isinstance(v, list | tuple) or len(v) != 3:
        raise _fail(key, f"expected three grid sides, got {v!r}")
    return tuple(_pos_int(key, s) for s in v)  # type: ignore[return-value]


def parse_grid(text: str, *, key: str = "liquid.grid") -> tuple[int, int, int]:
    """'10x10x10' -> (10, 10, 10); each side must be a positive integer."""
    parts = str(text).lower().split("x")
    try:
        sides = tuple(int(p) for p in parts)
    except ValueError:
        raise _fail(key, f"expected AxBxC with integer sides, got {text!r}") from None
    if len(sides) != 3:
        raise _fail(key, f"expected AxBxC (three sides), got {text!r}")
    for s in sides:
        if s < 1:
            raise _fail(key, f"every side must be >= 1, got {text!r}")
    return sides  # type: ignore[return-value]


def grid_for_neurons(n: int) -> tuple[int, int, int]:
    """The most cube-like grid with exactly n cells (1000 -> 10x10x10, 8000 -> 20x20x20)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise AstrosnnError(f"--neurons must be a positive integer, got {n!r}")
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


class _Section:
    """Shared behaviour of the config sections: validation on construction, dict round trip."""

    _name = ""
    _rules: dict[str, Any] = {}

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, _Section):
                continue
            rule = self._rules.get(f.name)
            if rule is not None and value is not None:
                object.__setattr__(self, f.name, rule(f"{self._name}.{f.name}".lstrip("."), value))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, _Section):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Any, *, prefix: str | None = None):
        prefix = cls._name if prefix is None else prefix
        if not isinstance(data, dict):
            raise _fail(prefix or "<root>", f"expected a mapping, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            dotted = f"{prefix}.{key}" if prefix else str(key)
            if key not in known:
                raise AstrosnnError(f"unknown config key '{dotted}' (known: {', '.join(known)})")
            sub = _SECTION_TYPES.get(key) if cls is NALSMConfig else None
            kwargs[key] = sub.from_dict(value, prefix=dotted) if sub is not None else value
        return cls(**kwargs)


@dataclass(frozen=True)
class LiquidConfig(_Section):
    """Topology (spec §1.2-1.3): grid, Gaussian wiring, input projection, initial weight magnitudes."""

    grid: tuple[int, int, int] = (10, 10, 10)
    lam: float = 3.0
    c_ee: float = 0.2
    c_ei: float = 0.1
    c_ie: float = 0.3
    c_ii: float = 0.05
    input_density: float = 0.15
    weight_magnitude: float = 3.0  # initial |w| of every synapse for nalsm / lsm-stdp (the upper clip)
    lsm_weight: float = 0.8  # |w| of every synapse of the fixed-weight lsm (paper sweeps 0.4..1.4)

    _name = "liquid"
    _rules = {
        "grid": _grid, "lam": _pos, "c_ee": _prob, "c_ei": _prob, "c_ie": _prob, "c_ii": _prob,
        "input_density": _prob, "weight_magnitude": _pos, "lsm_weight": _pos,
    }

    @property
    def n_neurons(self) -> int:
        return self.grid[0] * self.grid[1] * self.grid[2]


@dataclass(frozen=True)
class PlasticitySettings(_Section):
    """STDP (§3) and astrocyte (§4) settings. astro_weight None = 0.015 * (1000 / N)^(1/3)."""

    # the engine's PlasticityConfig holds the spec's numbers; one source for both
    eta_p: float = _ENGINE.eta_p
    trace_a: float = _ENGINE.trace_a
    trace_decay: float = _ENGINE.trace_decay
    astro_tau: float = _ENGINE.astro_tau
    astro_bias: float = _ENGINE.astro_bias
    astro_init: float = _ENGINE.astro_init
    astro_weight: float | None = None
    astro_density: float = _ENGINE.astro_density
    phase2_decay: float = 0.99

    _name = "plasticity"
    _rules = {
        "eta_p": _nonneg, "trace_a": _nonneg,
        "trace_decay": lambda k, v: float(_check_number(k, v, low=0.0, high=1.0, low_open=True)),
        "astro_tau": _pos, "astro_bias": lambda k, v: float(_check_number(k, v)),
        "astro_init": lambda k, v: float(_check_number(k, v)), "astro_weight": _nonneg,
        "astro_density": lambda k, v: float(_check_number(k, v, low=0.0, high=1.0, low_open=True)),
        "phase2_decay": lambda k, v: float(_check_number(k, v, low=0.0, high=1.0, low_open=True)),
    }


@dataclass(frozen=True)
class ProtocolConfig(_Section):
    """Phase 1 (unsupervised initialisation) and phase 2 (feature extraction), spec §6.1-6.2."""

    phase1_samples: int = 50000
    phase1_ms: int = 20
    phase2_ms: int = 250
    freeze_liquid: bool = False
    batch_size: int = 250
    bf_samples: int = 20  # samples recorded for the branching factor (paper: 20)

    _name = "protocol"
    _rules = {
        "phase1_samples": _nonneg_int, "phase1_ms": _pos_int, "phase2_ms": _pos_int,
        "freeze_liquid": _bool,
        "batch_size": _pos_int, "bf_samples": _nonneg_int,
    }


@dataclass(frozen=True)
class ReadoutConfig(_Section):
    """Linear softmax readout (§6.3) trained with Adadelta, or a closed-form scikit-learn fit."""

    method: str = "adadelta"
    lr: float = 0.1
    rho: float = 0.95
    eps: float = 1e-8  # TF1's Adadelta default (torch's is 1e-6)
    weight_decay: float = 5e-10
    max_epochs: int = 5000
    patience: int = 300
    batch_size: int = 250
    scale: str = "batch"  # "batch": divide by the max of each minibatch (paper); "train": by the training max
    ridge_alpha: float = 1.0

    _name = "readout"
    _rules = {
        "method": lambda k, v: _check_choice(k, v, READOUT_METHODS), "lr": _pos,
        "rho": lambda k, v: float(_check_number(k, v, low=0.0, high=1.0, low_open=True)),
        "eps": _pos, "weight_decay": _nonneg, "max_epochs": _pos_int, "patience": _pos_int,
        "batch_size": _pos_int, "scale": lambda k, v: _check_choice(k, v, READOUT_SCALES),
        "ridge_alpha": _pos,
    }


@dataclass(frozen=True)
class NALSMConfig(_Section):
    """Everything that defines a run: the variant, the liquid, plasticity, protocol, readout and seed."""

    variant: str = "nalsm"
    seed: int = 0
    liquid: LiquidConfig = field(default_factory=LiquidConfig)
    plasticity: PlasticitySettings = field(default_factory=PlasticitySettings)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)

    _name = ""
    _rules = {"variant": lambda k, v: _check_choice(k, v, VARIANTS), "seed": _nonneg_int}

    @property
    def rule(self) -> str:
        """The engine's plasticity rule for this variant: astro, none or stdp."""
        return VARIANT_RULE[self.variant]

    @property
    def initial_weight(self) -> float:
        return self.liquid.lsm_weight if self.variant == "lsm" else self.liquid.weight_magnitude

    @property
    def astro_weight(self) -> float:
        """w_astro: the configured value, else the paper's 0.015 (1000 neurons) scaled by (1000/N)^(1/3),
        which also gives the paper's 0.0075 for 8000 neurons."""
        if self.plasticity.astro_weight is not None:
            return self.plasticity.astro_weight
        return round(0.015 * (1000 / self.liquid.n_neurons) ** (1 / 3), 6)

    def override(self, changes: dict[str, Any]) -> NALSMConfig:
        """A copy with dotted keys replaced, e.g. {"liquid.grid": (4, 4, 4), "seed": 3}; validated."""
        data = self.to_dict()
        for dotted, value in changes.items():
            node = data
            *parents, leaf = dotted.split(".")
            for p in parents:
                if not isinstance(node.get(p), dict):
                    raise AstrosnnError(f"unknown config key '{dotted}'")
                node = node[p]
            if leaf not in node:
                raise AstrosnnError(f"unknown config key '{dotted}'")
            node[leaf] = list(value) if isinstance(value, tuple) else value
        return NALSMConfig.from_dict(data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, path: str | Path) -> NALSMConfig:
        from astrosnn.runinfo import load_json

        return cls.from_dict(load_json(path))

    @classmethod
    def from_preset(cls, name: str, **changes: Any) -> NALSMConfig:
        """A named preset (see `preset_names()`), with optional dotted-key overrides passed as
        keyword arguments using '__' for '.', e.g. ``liquid__grid=(4, 4, 4)``."""
        presets = _load_presets()
        if name not in presets:
            raise AstrosnnError(f"unknown preset {name!r} (known: {', '.join(sorted(presets))})")
        cfg = cls.from_dict(presets[name])
        return cfg.override({k.replace("__", "."): v for k, v in changes.items()}) if changes else cfg


_SECTION_TYPES: dict[str, type[_Section]] = {
    "liquid": LiquidConfig, "plasticity": PlasticitySettings, "protocol": ProtocolConfig,
    "readout": ReadoutConfig,
}


def _load_presets() -> dict[str, dict[str, Any]]:
    text = resources.files("astrosnn").joinpath("presets/nalsm.json").read_text(encoding="utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def preset_names() -> list[str]:
    return sorted(_load_presets())

