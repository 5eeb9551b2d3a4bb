"""Typed, validated configuration of a NALSM / LSM / LSM+STDP run, with the paper's presets.

A config is a tree of frozen dataclasses. `NALSMConfig.from_dict` (and `from_json`) reject unknown keys and
out-of-range values with an `AstrosnnError` naming the dotted key (e.g. ``liquid.grid``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm import schema as S
from astrosnn.nalsm.params import LiquidConfig, PlasticityConfig, grid_for_neurons, parse_grid
from astrosnn.runinfo import load_json

VARIANTS = ("nalsm", "lsm", "lsm-stdp")
READOUT_METHODS = ("adadelta", "ridge", "logistic")
READOUT_SCALES = ("batch", "train")
# Plasticity rule of each variant in the engine's PlasticityConfig.rule vocabulary.
VARIANT_RULE = {"nalsm": "astro", "lsm": "none", "lsm-stdp": "stdp"}
MAX_NEURONS = 100_000  # building draws N^2 pairs (1e10 here); the paper's largest liquid has 8000
MAX_SEED = 2**63 - 1  # seeds go to torch.manual_seed and numpy: larger ones overflow there
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_float32_positive(name: str, value: float) -> None:
    """A positive value that stays itself in float32 (the engine's dtype): 1e39 would become inf, 1e-50 zero."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise AstrosnnError(f"{name} must be a positive finite number, got {value!r}")
    if not FLOAT32_TINY <= value <= FLOAT32_MAX:
        raise AstrosnnError(f"{name} = {value!r} is outside float32's normal range "
                            f"[{FLOAT32_TINY:.3g}, {FLOAT32_MAX:.3g}] (it would become "
                            f"{'inf' if value > FLOAT32_MAX else 'zero or denormal'} in the engine)")


# A run config scales w_astro with the liquid unless it is set (PlasticityConfig.astro_weight None).
DEFAULT_PLASTICITY = PlasticityConfig(astro_weight=None)

__all__ = ["VARIANTS", "READOUT_METHODS", "READOUT_SCALES", "VARIANT_RULE", "LiquidConfig", "PlasticityConfig",
           "ProtocolConfig", "ReadoutConfig", "NALSMConfig", "grid_for_neurons", "parse_grid", "preset_names"]


@dataclass(frozen=True)
class ProtocolConfig(S.Section):
    """Phase 1 (unsupervised initialisation) and phase 2 (feature extraction), spec §6.1-6.2."""

    phase1_samples: int = 50000
    phase1_ms: int = 20
    phase2_ms: int = 250
    freeze_liquid: bool = False
    batch_size: int = 250
    bf_samples: int = 20  # samples recorded for the branching factor (paper: 20)

    _name = "protocol"
    _rules = {
        "phase1_samples": S.nonneg_int, "phase1_ms": S.pos_int, "phase2_ms": S.pos_int,
        "freeze_liquid": S.boolean, "batch_size": S.pos_int, "bf_samples": S.pos_int,  # 0 used to mean 1
    }


@dataclass(frozen=True)
class ReadoutConfig(S.Section):
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
        "method": S.choice(READOUT_METHODS), "lr": S.pos, "rho": S.unit_open, "eps": S.pos,
        "weight_decay": S.nonneg, "max_epochs": S.pos_int, "patience": S.pos_int, "batch_size": S.pos_int,
        "scale": S.choice(READOUT_SCALES), "ridge_alpha": S.pos,
    }


@dataclass(frozen=True)
class NALSMConfig(S.Section):
    """Everything that defines a run: the variant, the liquid, plasticity, protocol, readout and seed."""

    variant: str = "nalsm"
    seed: int = 0
    liquid: LiquidConfig = field(default_factory=LiquidConfig)
    plasticity: PlasticityConfig = DEFAULT_PLASTICITY  # rule and seed follow variant and seed
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)

    _name = ""
    _rules = {"variant": S.choice(VARIANTS), "seed": S.nonneg_int}
    _subsections = {"liquid": LiquidConfig, "plasticity": PlasticityConfig, "protocol": ProtocolConfig,
                    "readout": ReadoutConfig}

    def __post_init__(self) -> None:
        super().__post_init__()
        n = self.liquid.n_neurons
        if n > MAX_NEURONS:
            raise AstrosnnError(f"a liquid of {n} neurons ({'x'.join(map(str, self.liquid.grid))}) is too large: "
                                f"building it draws {float(n) ** 2:.2g} neuron pairs; at most {MAX_NEURONS} neurons")
        if self.seed > MAX_SEED:
            raise AstrosnnError(f"seed must be <= {MAX_SEED}, got {self.seed}")
        check_float32_positive("liquid.lsm_weight", self.liquid.lsm_weight)
        check_float32_positive("liquid.weight_magnitude", self.liquid.weight_magnitude)
        if self.plasticity.astro_weight is not None:
            check_float32_positive("plasticity.astro_weight", self.plasticity.astro_weight)
        p = self.plasticity
        if (p.rule, p.seed, p.rate_decay) != (self.rule, self.seed, 1.0):
            object.__setattr__(self, "plasticity", replace(p, rule=self.rule, seed=self.seed, rate_decay=1.0))

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
        return self.plasticity.resolved(self.liquid.n_neurons).astro_weight  # type: ignore[return-value]

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


def _load_presets() -> dict[str, dict[str, Any]]:
    text = resources.files("astrosnn").joinpath("presets/nalsm.json").read_text(encoding="utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def preset_names() -> list[str]:
    return sorted(_load_presets())

