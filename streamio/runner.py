"""``streamio.run``: run a coroutine on uvloop when available, else asyncio's loop."""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .errors import ConfigurationError
from .signals import STOP_ON_SIGNALS

__all__ = ["run"]

T = TypeVar("T")


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def loop_factory(use_uvloop: bool | None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop factory for ``use_uvloop`` (None: uvloop when installed)."""
    if use_uvloop is None:
        use_uvloop = uvloop_available()
    if not use_uvloop:
        return None
    if not uvloop_available():
        msg = "use_uvloop=True but uvloop is not installed: pip install 'streamio[uvloop]'"
        raise ConfigurationError(msg)
    import uvloop

    return uvloop.new_event_loop


def run(
    main: Awaitable[T] | Callable[[], Awaitable[T]],
    *,
    use_uvloop: bool | None = None,
    stop_on_signals: bool = False,
) -> T:
    """Run ``main`` (a coroutine, or an async function taking no arguments) to completion.

    Args:
        main: what to run.
        use_uvloop: True to require uvloop, False for asyncio's default loop,
            None (the default) for uvloop when it is installed.
        stop_on_signals: every StreamingContext entered in ``main`` stops
            gracefully on SIGTERM or SIGINT, and at once on a second one (see
            ``StreamingContext.stop_on_signals``), so that a service stopped by
            its supervisor, or a command stopped with Ctrl-C, finishes and
            commits its buffered batches and exits normally.

    The loop is created through a loop factory: no global event loop policy is
    read or changed. The runtime itself works on any asyncio loop, so inside an
    application that already runs a loop, use ``async with StreamingContext``
    directly instead.
    """
    factory = loop_factory(use_uvloop)
    context = contextvars.copy_context()
    if stop_on_signals:
        context.run(STOP_ON_SIGNALS.set, True)
    coroutine: Any = context.run(main) if callable(main) else main
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coroutine, context=context)
