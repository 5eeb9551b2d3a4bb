"""Bounded option types for the command line: a bad value is one line, ``astrosnn: error: --option: why``.

Each function returns an argparse ``type=`` callable; it raises ``argparse.ArgumentTypeError`` with the reason,
which :class:`astrosnn.cli.OneLineParser` prints as one line (exit 2) instead of argparse's usage block.

    p.add_argument("--seed", type=integer(0, MAX_SEED))
    p.add_argument("--lr", type=number(0, None, low_open=True))
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable

MAX_SEED = 2**63 - 1


def _fmt(x: float | int) -> str:
    if isinstance(x, int) and x >= 2**20 and x == 2 ** (x.bit_length() - 1) - 0:
        return f"2**{x.bit_length() - 1}"
    if x == MAX_SEED:
        return "2**63-1"
    return f"{x:g}" if isinstance(x, float) else f"{x:,}"


def integer(low: int | None = None, high: int | Callable[[], int] | None = None) -> Callable[[str], int]:
    """An integer in [low, high] (`high` may be a function, read when the option is parsed). '1e3' is accepted
    when it is a whole number; '2.5', 'inf' and 'nan' are not."""

    def parse(text: str) -> int:
        value: int | None
        try:
            value = int(text.strip().replace("_", ""), 10)
        except ValueError:
            try:
                f = float(text)
            except ValueError:
                f = math.nan
            value = int(f) if math.isfinite(f) and f == int(f) else None
        top = high() if callable(high) else high
        if value is None:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
        if (low is not None and value < low) or (top is not None and value > top):
            lo = "" if low is None else _fmt(low)
            hi = "" if top is None else _fmt(top)
            rng = f"in [{lo}, {hi}]" if low is not None and top is not None else (f">= {lo}" if top is None else f"<= {hi}")
            raise argparse.ArgumentTypeError(f"must be an integer {rng}, got {text}")
        return value

    parse.__name__ = "integer"
    return parse


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False) -> Callable[[str], float]:  # fmt: skip
    """A finite float in the interval from `low` to `high` (each end open or closed)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        bad_low = low is not None and (value <= low if low_open else value < low)
        bad_high = high is not None and (value >= high if high_open else value > high)
        if bad_low or bad_high:
            left = "(" if low_open else "["
            right = ")" if high_open else "]"
            if high is None:
                what = f"> {low:g}" if low_open else f">= {low:g}"
            else:
                what = f"in {left}{'-inf' if low is None else f'{low:g}'}, {high:g}{right}"
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def max_threads() -> int:
    """The most torch threads an option may ask for: four per core (at least 8)."""
    return max(8, 4 * (os.cpu_count() or 1))


def threads() -> Callable[[str], int]:
    return integer(1, max_threads)


def seed() -> Callable[[str], int]:
    return integer(0, MAX_SEED)
