"""Batch times: the floats of the interval grid, and how people read them.

A batch time is ``k * batch_interval`` seconds. Computed in floating point, an
epoch-sized ``k`` times ``0.1`` lands an ulp away from the decimal grid point
(``1796150238.1000001``); :func:`grid_time` gives the float nearest the exact
product instead, so batch times print as the grid does and every part of the
runtime that derives one batch time from another (a window's previous slide, a
state's previous batch) finds the same float. :func:`format_time` shows a batch
time as PySpark's ``pprint`` does: a local date and time.
"""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from functools import lru_cache

__all__ = ["format_time", "grid_time", "snap"]


@lru_cache(maxsize=64)
def _exact(interval: float) -> Fraction:
    """The interval as the decimal people wrote (``0.1`` is 1/10, not its binary float)."""
    return Fraction(repr(interval))


def grid_time(index: int, interval: float) -> float:
    """``index * interval``: the float nearest the exact decimal product."""
    return float(index * _exact(interval))


def snap(time: float, interval: float) -> float:
    """The grid time nearest ``time`` (for times derived by float arithmetic)."""
    return grid_time(round(time / interval), interval)


def format_time(time: float, interval: float) -> str:
    """A batch time as a local date and time, ``2026-12-01 18:16:13``, with
    milliseconds (``18:16:13.250``) when ``interval`` is under a second."""
    shown = datetime.fromtimestamp(time)
    if interval < 1:
        return shown.isoformat(sep=" ", timespec="milliseconds")
    return shown.isoformat(sep=" ", timespec="seconds")
