"""Validation shared by the LM configs."""

from __future__ import annotations

import math

from astrosnn.errors import AstrosnnError


def check_dropout(rate: float) -> None:
    """A dropout rate must be a number in [0, 1)."""
    ok = isinstance(rate, int | float) and not isinstance(rate, bool) and math.isfinite(rate) and 0 <= rate < 1
    if not ok:
        raise AstrosnnError(f"dropout must be a number in [0, 1), got {rate!r}")
