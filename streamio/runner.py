"""``streamio.run``: run a coroutine on uvloop when available, else asyncio's loop."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .errors import ConfigurationError

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


def run(main: Awaitable[T] | Callable[[], Awaitable[T]], *, use_uvloop: bool | None = None) -> T:
    """Run ``main`` (a coroutine, or an async function taking no arguments) to completion.

    Args:
        main: what to run.
        use_uvloop: True to require uvloop, False for asyncio's default loop,
            None (the default) for uvloop when it is installed.

    The loop is created through a loop factory: no global event loop policy is
    read or changed. The runtime itself works on any asyncio loop, so inside an
    application that already runs a loop, use ``async with StreamingContext``
    directly instead.
    """
    factory = loop_factory(use_uvloop)
    coroutine: Any = main() if callable(main) else main
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coroutine)
