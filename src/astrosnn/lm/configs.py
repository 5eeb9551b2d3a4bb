"""Nested config dataclasses: route flat option names onto their section, build configs from dicts.

A config may hold sections (fields whose default is another config dataclass, as ``AstroSNNConfig.amsu:
AMSUConfig``). Options and stored dicts may name a section's field flat (``threshold``), dotted
(``amsu.threshold``) or as a nested dict (``{"amsu": {"threshold": ...}}``): the flat form is how
``--set KEY=VALUE`` and checkpoints written before the sections existed spell them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from astrosnn.errors import AstrosnnError

__all__ = ["config_from_dict", "nest_options", "option_names", "sections"]


def sections(cls: type) -> dict[str, type]:
    """The section fields of config class `cls`: name -> section class."""
    return {
        f.name: f.default_factory
        for f in dataclasses.fields(cls)
        if dataclasses.is_dataclass(f.default_factory)
    }


def option_names(cls: type) -> set[str]:
    """Every name an option of `cls` may have: its own fields and, flat, its sections' fields."""
    names = {f.name for f in dataclasses.fields(cls)}
    for section in sections(cls).values():
        names |= {f.name for f in dataclasses.fields(section)}
    return names


def nest_options(cls: type, options: dict[str, Any], what: str) -> dict[str, Any]:
    """`options` with flat and dotted section fields moved into their section's dict.

    A name that is both a field of `cls` and of a section (``width``) belongs to `cls`. Unknown names are an
    AstrosnnError that starts with `what` (e.g. "unknown option(s) for model 'lstm'").
    """
    top = {f.name for f in dataclasses.fields(cls)}
    secs = sections(cls)
    fields_of = {name: {f.name for f in dataclasses.fields(sec)} for name, sec in secs.items()}
    out: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {name: {} for name in secs}
    unknown = []
    for key, value in options.items():
        section, dot, sub = key.partition(".")
        if key in secs and isinstance(value, dict):
            nested[key].update(value)
        elif key in top:
            out[key] = value
        elif dot and section in secs and sub in fields_of[section]:
            nested[section][sub] = value
        else:
            home = next((name for name, names in fields_of.items() if key in names), None)
            if home is None:
                unknown.append(key)
            else:
                nested[home][key] = value
    if unknown:
        raise AstrosnnError(f"{what}: {', '.join(sorted(unknown))}")
    for name, values in nested.items():
        if values:
            base = out.get(name)
            out[name] = dataclasses.replace(base, **values) if dataclasses.is_dataclass(base) else values
    return out


def config_from_dict(cls: type, d: dict[str, Any], what: str) -> Any:
    """``cls(**d)`` for a nested or flat dict `d`; bad values are an AstrosnnError naming `what`."""
    options = nest_options(cls, d, f"{what} has unknown field(s)")
    try:
        return cls(**options)
    except (TypeError, ValueError) as e:
        if isinstance(e, AstrosnnError):
            raise
        raise AstrosnnError(f"invalid {what}: {e}") from None
