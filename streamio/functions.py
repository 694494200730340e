"""Checks of user functions when the graph is built, and how errors name them.

One rule turns a failure inside an operator's work into the error the user sees
(:func:`operator_failures`), for every kind of operator alike.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from types import CodeType
from typing import Any

from .errors import ConfigurationError, ContextStateError, OperatorError

__all__: list[str] = []

# Named user functions: (operator name, function), as a fused stage carries them.
Ops = tuple[tuple[str, Callable[..., Any]], ...]


def describe(fn: Callable[..., Any]) -> str:
    """A name for ``fn`` that a user can find: qualified name, module and line."""
    target = inspect.unwrap(fn) if callable(fn) else fn
    name = getattr(target, "__qualname__", None)
    if name is None and callable(target):  # an object: its class's __call__ runs
        name = f"{type(target).__qualname__} object"
    name = name or repr(target)
    code = _code_of(target)
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


def _code_of(fn: Any) -> CodeType | None:
    """The code object that runs when ``fn`` is called, when Python code runs."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    target = inspect.unwrap(fn) if callable(fn) else fn
    code = getattr(target, "__code__", None)
    if code is None and not inspect.isroutine(target) and not isinstance(target, type):
        call = getattr(type(target), "__call__", None)  # noqa: B004 - an object's own method
        code = getattr(call, "__code__", None)
    return code if isinstance(code, CodeType) else None


def function_at_fault(ops: Ops, exc: BaseException) -> tuple[str, Callable[..., Any]] | None:
    """The operator and function of ``ops`` whose code raised ``exc``.

    The traceback's innermost frame that runs one of them names it; None when none
    does (a builtin, or streamio's own code between the functions, raised).
    """
    codes = {}
    for name, fn in ops:
        code = _code_of(fn)
        if code is not None:
            codes[code] = (name, fn)
    found = None
    tb = exc.__traceback__
    while tb is not None:
        found = codes.get(tb.tb_frame.f_code, found)
        tb = tb.tb_next
    return found


def find_failing(ops: Ops, exc: BaseException) -> str:
    """Name the operator of a fused stage whose function raised ``exc``.

    The traceback's innermost frame that runs one of the stage's user functions
    names it; when none does (a builtin raised), the whole stage is named.
    """
    found = function_at_fault(ops, exc)
    return found[0] if found is not None else _stage_name(ops)


def _stage_name(ops: Ops) -> str:
    return " -> ".join(dict.fromkeys(name for name, _ in ops))


def _operator_error(exc: Exception, operator: str, time: float, ops: Ops) -> OperatorError:
    failure = f"{type(exc).__name__}: {exc}"
    named = getattr(exc, "streamio_operator", None)  # named in a worker process
    if named is not None:
        found = next(((name, fn) for name, fn in ops if name == named), None)
        operator = named
    else:
        found = function_at_fault(ops, exc)
    if found is not None:
        operator, fn = found
        function = describe(fn)
        return OperatorError(operator, time, f"{function} raised {failure}", function=function)
    if ops:
        if named is None:
            operator = _stage_name(ops)
        running = ", ".join(describe(fn) for _, fn in ops)
        failure = f"{failure} (running {running})"
    return OperatorError(operator, time, failure)


# The errors that pass through operator_failures as they are: an OperatorError
# names its operator already, and these two say what to change in the setup.
_KEPT = (OperatorError, ConfigurationError, ContextStateError)


@contextlib.contextmanager
def operator_failures(operator: str, time: float, ops: Ops = ()) -> Iterator[None]:
    """The one rule for failures in an operator's work (user functions included).

    An exception raised in the block becomes an :class:`~streamio.OperatorError`
    naming the operator, the user function that raised (its file and line, found
    in the traceback or named by the worker process that ran it; ``ops`` lists the
    candidates) and the batch time, with the exception as ``__cause__``: a
    ``StateError`` or ``ConnectorError`` a user function lets through included.
    An OperatorError passes as it is (it names its operator already, as the
    parent's failure that a node met); so do the errors streamio raises for a
    wrong setup found while running (:class:`~streamio.ConfigurationError`,
    :class:`~streamio.ContextStateError`: ``slice()`` of a batch not kept, a
    context started from its own job), which keep their type and get a note
    naming the operator and batch.

    Args:
        operator: the operator's name, used when ``ops`` names none.
        time: the batch time being computed or output.
        ops: the user functions run in the block, with their operators' names.
    """
    try:
        yield
    except _KEPT as exc:
        note = f"(raised in operator {operator!r}, batch {time})"
        if not isinstance(exc, OperatorError) and note not in getattr(exc, "__notes__", ()):
            exc.add_note(note)
        raise
    except Exception as exc:
        raise _operator_error(exc, operator, time, ops) from exc
