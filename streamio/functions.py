"""Checks of user functions when the graph is built, and how errors name them."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from .errors import ConfigurationError

__all__: list[str] = []


def describe(fn: Callable[..., Any]) -> str:
    """A name for ``fn`` that a user can find: qualified name, module and line."""
    target = inspect.unwrap(fn) if callable(fn) else fn
    name = getattr(target, "__qualname__", None) or repr(target)
    code = getattr(target, "__code__", None)
    if code is not None:
        return f"{name} ({code.co_filename}:{code.co_firstlineno})"
    module = getattr(target, "__module__", None)
    return f"{module}.{name}" if module else name


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature, some C types
        return None


def accepts(fn: Callable[..., Any], arity: int, keywords: Iterable[str] = ()) -> bool | None:
    """Whether ``fn`` can be called with ``arity`` positional arguments and the
    given keyword arguments (None: unknown)."""
    signature = _signature(fn)
    if signature is None:
        return None
    try:
        signature.bind(*range(arity), **dict.fromkeys(keywords))
    except TypeError:
        return False
    return True


def check_function(fn: Any, operator: str, arity: int, keywords: Iterable[str] = ()) -> None:
    """Fail at build time when ``fn`` is not callable with ``arity`` positional
    arguments (and the given keyword arguments)."""
    if not callable(fn):
        msg = f"{operator}() needs a function, but got {fn!r} ({type(fn).__name__})"
        raise ConfigurationError(msg)
    if accepts(fn, arity, keywords) is False:
        msg = (
            f"{operator}() calls its function with {arity} argument(s), but "
            f"{describe(fn)} has the signature {_signature(fn)}"
        )
        raise ConfigurationError(msg)


def check_async_function(fn: Any, operator: str, arity: int) -> None:
    """Like :func:`check_function`, and ``fn`` must be an ``async def`` function."""
    check_function(fn, operator, arity)
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects with async __call__
    if not (inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)):
        msg = (
            f"{operator}() needs an async function (async def), but {describe(fn)} is "
            "synchronous; use map() for plain functions"
        )
        raise ConfigurationError(msg)


def find_failing(ops: tuple[tuple[str, Callable[..., Any]], ...], exc: BaseException) -> str:
    """Name the operator of a fused stage whose function raised ``exc``.

    The traceback's innermost frame that runs one of the stage's user functions
    names it; when none does (a builtin raised), the whole stage is named.
    """
    codes = {}
    for name, fn in ops:
        code = getattr(inspect.unwrap(fn), "__code__", None)
        if code is not None:
            codes[code] = name
    found = None
    tb = exc.__traceback__
    while tb is not None:
        found = codes.get(tb.tb_frame.f_code, found)
        tb = tb.tb_next
    return found or " -> ".join(name for name, _ in ops)
