"""Checks of configuration values, shared by the runtime and the connectors.

Each check returns the value when it is acceptable and otherwise raises
:class:`~streamio.ConfigurationError` naming the setting, what it must be and
the value given, so that wrong configuration fails where it is written.

A public module: a connector (ours or a third party's) checks its settings with
these, so that its errors read like the runtime's. Its names are those of
``__all__``.
"""

from __future__ import annotations

import importlib
import math
from typing import Any, Literal, cast

from .errors import ConfigurationError

__all__ = ["OnError", "check_installed", "check_number", "check_on_error", "check_whole_number"]

#: What a record that a function (or a deserializer) refuses does.
OnError = Literal["fail", "skip", "dead_letter"]


def check_number(
    value: Any, what: str, *, unit: str = "seconds", allow_zero: bool = False
) -> float:
    """``value`` as a finite number of ``unit``, > 0 (or >= 0 with ``allow_zero``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and math.isfinite(value) and (value > 0 or (allow_zero and value == 0)):
        return float(value)
    bound = ">= 0" if allow_zero else "> 0"
    raise ConfigurationError(f"{what} must be a finite number of {unit} {bound}, not {value!r}")


def check_whole_number(value: Any, what: str, *, minimum: int = 1) -> int:
    """``value`` as an ``int`` (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{what} must be a whole number >= {minimum}, not {value!r}")
    return value


def check_installed(module: str, what: str, extra: str | None = None) -> Any:
    """The module ``module``, imported for ``what`` (an optional dependency, loaded
    only when a feature needs it), or a ConfigurationError saying what to install:
    ``pip install 'streamio[extra]'``, or the module itself without an extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        install = f"'streamio[{extra}]'" if extra else module
        raise ConfigurationError(f"{what} needs {module}: pip install {install}") from None
def check_on_error(value: Any, what: str) -> OnError:
    """``value`` when it is a record error policy: ``"fail"``, ``"skip"`` or
    ``"dead_letter"``; ``what`` names the setting (``"map(): on_error"``)."""
    if value not in ("fail", "skip", "dead_letter"):
        msg = (
            f'{what} must be "fail" (the batch fails), "skip" (the record is left '
            'out and counted) or "dead_letter" (left out, counted and sent to the '
            f"stream's dead_letters()), not {value!r}"
        )
        raise ConfigurationError(msg)
    return cast(OnError, value)
