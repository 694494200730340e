"""Graceful stop on SIGTERM and SIGINT, for applications that own their process.

``ssc.stop_on_signals()`` (or ``streamio.run(main, stop_on_signals=True)``, which
does it for every context entered in ``main``) watches the signals in a task of
the context's task group, through anyio's signal receiver: the first one stops
the context gracefully (receivers stop receiving, the buffered batches are
processed and committed), a second one stops it at once. The watcher ends with
the context; the signals' previous handlers are back once it has.
"""

from __future__ import annotations

import contextvars
import logging
import signal
from collections.abc import Awaitable, Callable

import anyio

__all__: list[str] = []

logger = logging.getLogger(__name__)

#: The signals a context stops on.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# Set by streamio.run(stop_on_signals=True): every context entered in its
# coroutine watches the signals.
STOP_ON_SIGNALS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "streamio_stop_on_signals", default=False
)


async def watch_signals(
    stop: Callable[[bool], object],
    finished: Callable[[], Awaitable[None]],
    watching: anyio.Event,
) -> None:
    """Call ``stop(True)`` at the first SIGTERM or SIGINT, ``stop(False)`` at the
    next, until ``finished()`` returns (the context has terminated).

    ``watching`` is set once the signals are watched.
    """
    with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
        watching.set()
        async with anyio.create_task_group() as watcher:

            async def forward() -> None:
                graceful = True
                async for signum in signals:
                    name = signal.Signals(signum).name
                    if graceful:
                        logger.warning(
                            "%s received: stopping gracefully (the buffered batches are "
                            "processed and committed); send it again to stop at once",
                            name,
                        )
                    else:
                        logger.warning("%s received again: stopping at once", name)
                    stop(graceful)
                    graceful = False

            watcher.start_soon(forward)
            await finished()
            watcher.cancel_scope.cancel()
