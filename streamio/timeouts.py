"""Sleeps and timeouts on a context's clock.

Everything the runtime waits for (a restart backoff, a stop deadline, the timeout
of ``await_termination``) is measured on the context's clock, so that under a
:class:`~streamio.ManualClock` it moves only when the test advances time. On the
system clock these are anyio's own sleeps and cancel scopes.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator

import anyio

from .clock import Clock, SystemClock

__all__ = ["move_on_after", "sleep"]


async def sleep(clock: Clock, seconds: float) -> None:
    """Wait ``seconds`` of ``clock``'s time. Cancellation interrupts the wait."""
    if isinstance(clock, SystemClock):
        await anyio.sleep(seconds)
        return
    timer = clock.timer()
    try:
        await timer.sleep_until(clock.now() + seconds)
    finally:
        timer.close()


@contextlib.asynccontextmanager
async def move_on_after(clock: Clock, seconds: float | None) -> AsyncIterator[anyio.CancelScope]:
    """A cancel scope that is cancelled once ``clock`` has moved ``seconds`` on.

    Like :func:`anyio.move_on_after` (``None`` or infinity never expires; check
    ``scope.cancelled_caught`` afterwards), on the clock's time. The deadline is
    taken when the block is entered.
    """
    if seconds is None or math.isinf(seconds) or isinstance(clock, SystemClock):
        with anyio.move_on_after(seconds) as scope:
            yield scope
        return
    # The timer exists before the block runs, so a manual clock advanced right
    # after entering knows of this deadline.
    timer = clock.timer()
    deadline = clock.now() + seconds
    with anyio.CancelScope() as scope:

        async def expire() -> None:
            await timer.sleep_until(deadline)
            scope.cancel()

        try:
            async with anyio.create_task_group() as watcher:
                watcher.start_soon(expire)
                try:
                    yield scope
                finally:
                    watcher.cancel_scope.cancel()
        finally:
            timer.close()
