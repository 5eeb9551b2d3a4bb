"""Validated, frozen config sections: the checks and the dict round trip every NALSM config record shares.

A section is a frozen dataclass deriving from `Section`; `_rules` maps a field to its check, which returns
the normalised value or raises an `AstrosnnError` naming the dotted key (e.g. ``liquid.grid``). Pure Python:
importing it pulls in neither torch nor numba.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, fields, replace
from typing import Any, ClassVar

from astrosnn.errors import AstrosnnError


def fail(key: str, message: str) -> AstrosnnError:
    return AstrosnnError(f"config key '{key}': {message}")


def check_number(key: str, value: Any, *, integer: bool = False, low: float | None = None,
                 high: float | None = None, low_open: bool = False) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(key, f"expected a number, got {value!r}")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise fail(key, f"expected an integer, got {value!r}")
        value = int(value)
    elif not math.isfinite(value):
        raise fail(key, f"must be finite, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise fail(key, f"must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise fail(key, f"must be <= {high}, got {value!r}")
    return value


def choice(choices: tuple[str, ...]):
    """A check that the value is one of `choices`."""
    def check(key: str, value: Any) -> str:
        if value not in choices:
            raise fail(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value
    return check


def number(key: str, v: Any) -> float:
    return float(check_number(key, v))


def prob(key: str, v: Any) -> float:
    return float(check_number(key, v, low=0.0, high=1.0))


def unit_open(key: str, v: Any) -> float:
    """(0, 1]: a decay factor or fraction that must not be 0."""
    return float(check_number(key, v, low=0.0, high=1.0, low_open=True))


def pos(key: str, v: Any) -> float:
    return float(check_number(key, v, low=0.0, low_open=True))


def nonneg(key: str, v: Any) -> float:
    return float(check_number(key, v, low=0.0))


def pos_int(key: str, v: Any) -> int:
    return int(check_number(key, v, integer=True, low=1))


def nonneg_int(key: str, v: Any) -> int:
    return int(check_number(key, v, integer=True, low=0))


def boolean(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise fail(key, f"expected true or false, got {v!r}")
    return v


class Section:
    """Validation on construction and a dict round trip for a frozen dataclass.

    `_name` is the section's dotted prefix in error messages; `_rules` the per-field checks (None values
    skip their check); `_subsections` the fields holding nested sections (read back with their own type);
    `_derived` fields set by the enclosing config, neither written by `to_dict` nor accepted by `from_dict`.
    """

    _name: ClassVar[str] = ""
    _rules: ClassVar[dict[str, Any]] = {}
    _subsections: ClassVar[dict[str, type[Section]]] = {}
    _derived: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            rule = self._rules.get(f.name)
            if rule is not None and value is not None and not isinstance(value, Section):
                object.__setattr__(self, f.name, rule(f"{self._name}.{f.name}".lstrip("."), value))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            if f.name in self._derived:
                continue
            value = getattr(self, f.name)
            if isinstance(value, Section):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Any, *, prefix: str | None = None, base: Section | None = None):
        """A section from a mapping; keys it lacks keep `base`'s values (default: the field defaults)."""
        prefix = cls._name if prefix is None else prefix
        if not isinstance(data, dict):
            raise fail(prefix or "<root>", f"expected a mapping, got {type(data).__name__}")
        own = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        known = [name for name in own if name not in cls._derived]
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            dotted = f"{prefix}.{key}" if prefix else str(key)
            if key not in known:
                raise AstrosnnError(f"unknown config key '{dotted}' (known: {', '.join(known)})")
            sub = cls._subsections.get(key)
            if sub is not None:
                f = own[key]
                default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
                value = sub.from_dict(value, prefix=dotted, base=default)
            kwargs[key] = value
        return cls(**kwargs) if base is None else replace(base, **kwargs)
