"""The listener bus: how events reach listeners without slowing a batch.

As Spark's listener bus does, the scheduler and the receivers only *post* an
event; each listener has a bounded queue and a task of its own (in the
context's task group) that delivers the events to it in order. So a slow
listener delays nobody but itself: once its queue is full, the events it falls
behind on are dropped, counted and warned about. An exception in a callback is
logged and counted, never fatal to the job.

Inline listeners (``ssc.add_listener(listener, inline=True)``) are called at
the moment of the event, on the task that posts it, before anything else runs:
for connectors that must act on a batch cut exactly (the Kafka source's
``max_rate_per_partition`` counts records between two cuts) and for the
backpressure controller, which sets the next batch's cap. They must be plain
functions, and quick.

Each event is delivered as a snapshot: a :class:`~streamio.BatchInfo` posted
when a batch is submitted still says so when a slow listener reads it after
the batch has completed.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from .clock import Clock
from .errors import ConfigurationError
from .listener import StreamingListener
from .timeouts import move_on_after

__all__ = ["DEFAULT_QUEUE_SIZE", "ListenerBus", "ListenerStatistics", "check_inline"]

logger = logging.getLogger(__name__)

#: Events each listener's queue holds (Spark's ``spark.scheduler.listenerbus.eventqueue.capacity``).
DEFAULT_QUEUE_SIZE = 10_000

# Seconds (of the context's clock) the listeners get, once the job has ended, to
# take the events still queued for them.
_CLOSE_TIMEOUT = 10.0

# A delivery task yields to the loop after this many plain callbacks in a row: the
# scheduler posts several events per turn, so yielding after each would fall behind.
_YIELD_EVERY = 100

_EVENTS = tuple(name for name in vars(StreamingListener) if name.startswith("on_"))


@dataclass(frozen=True)
class ListenerStatistics:
    """What the bus did for one listener, for monitoring and tests.

    Attributes:
        listener: the listener.
        inline: called on the posting task (``add_listener(..., inline=True)``).
        delivered: events its callbacks were called with (or that it lacks a
            callback for).
        dropped: events dropped because its queue was full (or the job had ended
            before they could be delivered).
        failed: callbacks that raised.
        queued: events waiting for it now.
    """

    listener: Any
    inline: bool
    delivered: int
    dropped: int
    failed: int
    queued: int


def check_inline(listener: Any) -> None:
    """An inline listener's callbacks must be plain functions: they run on the
    scheduler's task, which must not wait for them."""
    for event in _EVENTS:
        if inspect.iscoroutinefunction(getattr(listener, event, None)):
            msg = (
                f"{type(listener).__name__}.{event} is async: an inline listener runs on "
                "the scheduler's task and must not wait; make it a plain function, or "
                "add the listener without inline=True"
            )
            raise ConfigurationError(msg)


def snapshot(info: Any) -> Any:
    """A copy of an event's info whose lists and dicts are copies too, so that the
    scheduler filling in the batch later does not change what a listener reads."""
    if not dataclasses.is_dataclass(info) or isinstance(info, type):
        return info
    changes = {
        f.name: copy.copy(value)
        for f in dataclasses.fields(info)
        if f.init and isinstance(value := getattr(info, f.name), (list, dict))
    }
    return dataclasses.replace(info, **changes)


class _Listener:
    """One listener: its callbacks, its queue, its counts."""

    def __init__(self, listener: Any, inline: bool, capacity: int) -> None:
        self.listener = listener
        self.inline = inline
        self.capacity = capacity
        self.queue: deque[tuple[str, Any]] = deque()
        self.delivered = self.dropped = self.failed = 0
        self.closed = False
        self.ended = False  # its delivery task has returned
        self._dropping = False  # since the queue was last empty
        self._wakeup: anyio.Event | None = None

    def statistics(self) -> ListenerStatistics:
        return ListenerStatistics(
            self.listener, self.inline, self.delivered, self.dropped, self.failed, len(self.queue)
        )

    def call(self, event: str, info: Any) -> Any:
        """Call the callback; its awaitable if it returned one (None if it raised)."""
        callback = getattr(self.listener, event, None)
        if callback is None:
            self.delivered += 1
            return None
        try:
            result = callback(info)
        except Exception:
            self._failed(event)
            return None
        if inspect.isawaitable(result):
            return result
        self.delivered += 1
        return None

    def _failed(self, event: str) -> None:
        self.failed += 1
        logger.exception(
            "listener %r raised in %s (failure %d of this listener); the job goes on",
            self.listener,
            event,
            self.failed,
        )

    def offer(self, event: str, info: Any) -> None:
        if self.closed or len(self.queue) >= self.capacity:
            self.dropped += 1
            if not self._dropping:
                self._dropping = True
                logger.warning(
                    "listener %r falls behind: its queue of %d events is full, so events "
                    "are dropped (%d so far); make its callbacks quicker",
                    self.listener,
                    self.capacity,
                    self.dropped,
                )
            return
        self.queue.append((event, info))
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    async def deliver(self) -> None:
        """Deliver queued events in order until closed and empty."""
        queue = self.queue
        while True:
            while not queue:
                self._dropping = False
                if self.closed:
                    return
                self._wakeup = anyio.Event()
                await self._wakeup.wait()
            event, info = queue.popleft()
            pending = self.call(event, info)
            if pending is not None:
                try:
                    await pending
                except Exception:
                    self._failed(event)
                else:
                    self.delivered += 1
            elif self.delivered % _YIELD_EVERY == 0:
                await anyio.lowlevel.checkpoint()  # a long queue of plain callbacks

    def close(self) -> None:
        self.closed = True
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    def abandon(self) -> None:
        """The job has ended and its time to deliver is up: what is left is dropped."""
        self.dropped += len(self.queue)
        self.queue.clear()


class ListenerBus:
    """Posts a context's events to its listeners.

    Args:
        listeners: ``(listener, inline)`` pairs, in registration order.
        internal: inline listeners of the runtime itself (the rate controller),
            called first and left out of :meth:`statistics`.
        capacity: events each queued listener's queue holds.
    """

    def __init__(
        self,
        listeners: Iterable[tuple[Any, bool]],
        internal: Iterable[Any] = (),
        capacity: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        self._internal = [_Listener(listener, True, capacity) for listener in internal]
        self._listeners = [_Listener(listener, inline, capacity) for listener, inline in listeners]
        self._inline = self._internal + [entry for entry in self._listeners if entry.inline]
        self._queued = [entry for entry in self._listeners if not entry.inline]
        self._running = 0  # delivery tasks not ended
        self._ended: anyio.Event | None = None  # set when one ends

    def post(self, event: str, info: Any) -> None:
        """Call the inline listeners now, then queue the event for the others."""
        for entry in self._inline:
            entry.call(event, info)
        if self._queued:
            info = snapshot(info)
            for entry in self._queued:
                entry.offer(event, info)

    def start(
        self,
        task_group: TaskGroup,
        run: Callable[..., Coroutine[Any, Any, None]],
    ) -> None:
        """Start one delivery task per queued listener in ``task_group``, each as
        ``run(deliver, entry)`` (the runtime's wrapper, through which a manual
        clock sees the deliveries and waits for them)."""
        for entry in self._queued:
            self._running += 1
            task_group.start_soon(run, self._deliver, entry)

    async def _deliver(self, entry: _Listener) -> None:
        try:
            await entry.deliver()
        finally:
            entry.ended = True
            self._running -= 1
            if self._ended is not None:
                self._ended.set()

    def close(self) -> None:
        """No more events: each delivery task ends once its queue is empty."""
        for entry in self._queued:
            entry.close()

    async def drain(self, clock: Clock) -> None:
        """After :meth:`close`, wait until every delivery task has ended, for at most
        ``_CLOSE_TIMEOUT`` seconds of ``clock``; then drop what is left, with a
        warning (the caller cancels the delivery tasks still running)."""
        async with move_on_after(clock, _CLOSE_TIMEOUT):
            while self._running:
                self._ended = anyio.Event()
                await self._ended.wait()
        for entry in self._queued:
            if not entry.ended:
                logger.warning(
                    "listener %r was still busy %ss after the job ended: abandoned, "
                    "with its last %d events dropped",
                    entry.listener,
                    _CLOSE_TIMEOUT,
                    len(entry.queue),
                )
                entry.abandon()

    def statistics(self) -> list[ListenerStatistics]:
        """Per listener, in registration order."""
        return [entry.statistics() for entry in self._listeners]
