"""Checks of the models' numeric settings, failing where they are written.

Like :mod:`streamio.checks` (whose whole-number check the models use too), each
returns the value when it is acceptable and otherwise raises
:class:`~streamio.ConfigurationError` naming the setting, the range and the value.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigurationError

__all__ = ["check_in_range"]


def check_in_range(
    value: Any,
    what: str,
    low: float = 0.0,
    high: float = math.inf,
    *,
    include_low: bool = True,
) -> float:
    """``value`` as a float in ``[low, high]`` (``(low, high]`` without ``include_low``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (low <= value if include_low else low < value) and value <= high:
        return float(value)
    if high == math.inf:
        bound = f"{'>=' if include_low else '>'} {low:g}"
    else:
        bound = f"in {'[' if include_low else '('}{low:g}, {high:g}]"
    raise ConfigurationError(f"{what} must be a finite number {bound}, not {value!r}")
