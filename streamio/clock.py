"""Clocks: where the scheduler's time comes from.

The scheduler never reads time directly; it asks the context's clock. The system
clock follows wall time (batch times are epoch seconds on the interval grid). The
manual clock only moves when a test calls :meth:`ManualClock.advance`, so window and
state tests are exact and instant.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import anyio
import anyio.lowlevel

__all__ = ["Clock", "ManualClock", "SystemClock", "Timer", "watched"]

T = TypeVar("T")

# Batch times are sums of float intervals; a deadline this close to the target
# counts as reached, so advance(0.1) three times reaches the batch at 0.3.
_GRID_TOLERANCE = 1e-9


@runtime_checkable
class Timer(Protocol):
    """What one sleeper (the scheduler) uses to wait on a clock."""

    async def sleep_until(self, deadline: float) -> None:
        """Return once the clock reads ``deadline`` or later, or once interrupted.

        Cancellation interrupts the wait.
        """

    def interrupt(self) -> None:
        """End the current (or next) ``sleep_until`` now: a stop was requested."""

    def close(self) -> None:
        """Say that this sleeper will not sleep again."""


@runtime_checkable
class Clock(Protocol):
    """A source of time for the scheduler.

    ``timer()`` is called synchronously when the context starts, so a clock can
    know about its sleepers before they first sleep (the manual clock needs that
    to make ``advance`` wait for every due batch).
    """

    def now(self) -> float:
        """The current time in seconds."""

    def timer(self) -> Timer:
        """A new timer for one sleeper."""


class _SystemTimer:
    def __init__(self) -> None:
        self._interrupted = anyio.Event()

    async def sleep_until(self, deadline: float) -> None:
        # wall time and the loop's monotonic timer may disagree by a hair: re-check
        while (remaining := deadline - time.time()) > 0 and not self._interrupted.is_set():
            with anyio.move_on_after(remaining):
                await self._interrupted.wait()

    def interrupt(self) -> None:
        self._interrupted.set()

    def close(self) -> None:
        self._interrupted.set()


class SystemClock:
    """Wall-clock time (``time.time()``), the default clock."""

    def now(self) -> float:
        return time.time()

    def timer(self) -> Timer:
        return _SystemTimer()


class _ManualTimer:
    """A sleeper of a manual clock: asleep (with a deadline), awake, or closed."""

    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock
        self.deadline: float | None = None
        self.closed = False
        self._interrupted = False
        self._waiter: asyncio.Future[None] | None = None

    @property
    def awake(self) -> bool:
        """Not asleep: no deadline, or its wait already ended (woken or cancelled),
        so its sleeper is about to run."""
        if self.closed:
            return False
        return self.deadline is None or (self._waiter is not None and self._waiter.done())

    async def sleep_until(self, deadline: float) -> None:
        if self.closed:
            raise RuntimeError("sleep_until() on a closed timer")
        if self._interrupted or deadline <= self._clock.now() + _GRID_TOLERANCE:
            await anyio.lowlevel.checkpoint()
            return
        self.deadline = deadline
        self._waiter = asyncio.get_running_loop().create_future()
        self._clock._changed()
        try:
            await self._waiter
        finally:
            self.deadline = None
            self._waiter = None

    def wake(self) -> None:
        self.deadline = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def interrupt(self) -> None:
        self._interrupted = True
        self.wake()

    def close(self) -> None:
        self.closed = True
        self.wake()
        self._clock._changed()


# How many loop turns advance() gives the watched tasks before a deadline at most:
# bounds the wait when one never waits (it yields with sleep(0) forever).
_MAX_TURNS_BEFORE_TICK = 10_000


class _Watched(Generic[T]):
    """Runs a coroutine for its task while seeing what it hands that task.

    Each time a coroutine suspends, it hands its task either nothing (a bare
    ``yield``, as ``asyncio.sleep(0)`` does: "run me again at the next turn") or
    the future it waits for (the task runs it again once that future is done).
    Standing between the coroutine and its task, with nothing but the coroutine
    protocol (``send``, ``throw``, ``close``), this object knows which, so a manual
    clock can tell a receiver that can run from one waiting on something that has
    not happened yet, without reading the internals of asyncio's tasks.

    It passes every value and exception through unchanged, as ``yield from``
    does, so the task, its cancellation and anyio's cancel scopes see the
    coroutine as if it were awaited directly.
    """

    def __init__(self, clock: ManualClock, coroutine: Coroutine[Any, Any, T]) -> None:
        self._clock = clock
        self._coroutine = coroutine
        self._waiting_for: Any = None

    def ready(self) -> bool:
        """Whether the task can run now: it yielded bare, or its future is done."""
        waiting = self._waiting_for
        return not asyncio.isfuture(waiting) or waiting.done()

    def __await__(self) -> Generator[Any, Any, T]:
        clock = self._clock
        watched = clock._watched
        watched.add(self)
        clock._registered += 1
        coroutine = self._coroutine
        sent: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    if error is None:
                        handed = coroutine.send(sent)
                    else:
                        handed, error = coroutine.throw(error), None
                except StopIteration as stop:
                    return stop.value
                self._waiting_for = handed
                try:
                    sent = yield handed
                except GeneratorExit:
                    coroutine.close()
                    raise
                except BaseException as exc:  # cancellation included: passed on as is
                    error = exc
        finally:
            self._waiting_for = None
            watched.discard(self)


def watched(clock: Clock, coroutine: Coroutine[Any, Any, T]) -> Awaitable[T]:
    """``coroutine`` as an awaitable that ``clock`` can watch, if it is a manual clock.

    The runtime runs each of its tasks (the scheduler's, each receiver's) through
    this, so that :meth:`ManualClock.advance` can let every one that can run do
    so before each deadline. On any other clock it is ``coroutine`` itself.
    """
    if isinstance(clock, ManualClock):
        return _Watched(clock, coroutine)
    return coroutine


class ManualClock:
    """A clock that moves only when told to, for exact and instant tests.

    Example::

        clock = ManualClock()
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            ...
            ssc.start()
            await clock.advance(2.0)   # batches at 1.0 and 2.0 are done here

    What :meth:`advance` guarantees:

    - Every sleeper on this clock (a context's scheduler, a receiver's restart
      backoff, a timeout of :mod:`streamio.timeouts`) whose deadline is passed is
      woken at its deadline, in the order of deadlines, and the clock waits until
      it sleeps again or finishes before it moves on. So when ``advance`` returns,
      every batch due by the new time has been processed.
    - Before each deadline, and before it returns, ``advance`` lets the tasks of
      every context on this clock (its scheduler, its receivers, including
      those still opening, and the tasks that deliver its listeners' events)
      run until each one waits for something that has not
      happened yet. A task that yielded without waiting (``asyncio.sleep(0)``, an
      anyio checkpoint) or whose awaited future is done is given more loop turns;
      one that awaits a pending future (its source, space in a full buffer, its
      backoff, a task it started) is waiting, and once all wait, one more turn
      lets the tasks they have just started take their first step. So a batch
      holds everything the receivers could store before its time without waiting
      on the outside world. The clock knows each task's state because the runtime
      runs it through :func:`watched`, which sees what the task's coroutine hands
      the task; it reads no private attribute of asyncio or uvloop.
    - Other tasks (a test's own, or tasks a receiver starts itself) are not waited
      for. A sleeper is woken after every task that can run at that moment, so
      each of those takes at least one step before the batch is cut (a
      receiver's helper that stores what it was handed does so in time), but
      maybe no more. Synchronise with them explicitly (an event,
      ``DStream.wait_for_buffer``).
    - Tasks that never wait are given at most 10,000 loop turns per deadline.
      ``advance`` takes loop turns, never real time.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._timers: list[_ManualTimer] = []
        self._settled: asyncio.Future[None] | None = None
        self._watched: set[_Watched[Any]] = set()
        self._registered = 0  # how many watched coroutines have started, ever

    def now(self) -> float:
        return self._now

    def timer(self) -> Timer:
        timer = _ManualTimer(self)
        self._timers.append(timer)
        return timer

    def _changed(self) -> None:
        """A sleeper fell asleep or closed: wake ``advance`` if all are quiet now."""
        if any(t.closed for t in self._timers):
            self._timers = [t for t in self._timers if not t.closed]
        settled = self._settled
        if settled is not None and not settled.done() and not self._busy():
            settled.set_result(None)

    def _busy(self) -> bool:
        return any(t.awake for t in self._timers)

    async def _settle(self) -> None:
        """Wait until every sleeper is asleep again or closed."""
        while self._busy():
            self._settled = asyncio.get_running_loop().create_future()
            try:
                await self._settled
            finally:
                self._settled = None

    def elapse(self, seconds: float) -> None:
        """Move time forward by ``seconds`` without waking anything.

        Call it inside an output function to simulate a batch that takes that
        long: the batches due meanwhile then start late, with their grid times,
        and their lateness shows as scheduling delay.
        """
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"elapse() takes a finite duration >= 0, not {seconds!r}")
        self._now += seconds

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``.

        Returns once every batch due by the new time has been processed: each
        sleeper whose deadline passes is woken at its deadline, in order, and
        the clock waits for it to sleep again before moving on. Before each
        deadline, every receiver that can run (one with data in hand) runs until
        it waits, so a batch holds what was ready before its time (the class
        docstring says exactly what this covers). Cancellation leaves the clock
        at the last deadline reached.

        Raises:
            ValueError: if ``seconds`` is negative or not finite.
        """
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"advance() takes a finite duration >= 0, not {seconds!r}")
        target = self._now + seconds
        turns = 0
        seen: int | None = None  # watched coroutines started, at the last turn given
        while True:
            await self._settle()
            if turns < _MAX_TURNS_BEFORE_TICK and (
                seen != self._registered or any(w.ready() for w in self._watched)
            ):
                # Let the tasks run, then look again: one may start a sleep
                # meanwhile (a restart backoff) due before the next deadline. One
                # more turn once all wait: a task they started runs its first step.
                seen = self._registered
                turns += 1
                await asyncio.sleep(0)
                continue
            due = [t.deadline for t in self._timers if t.deadline is not None]
            due = [d for d in due if d <= target + _GRID_TOLERANCE]
            if not due:
                break
            turns, seen = 0, None
            self._now = max(self._now, min(due))
            for t in self._timers:
                if t.deadline is not None and t.deadline <= self._now + _GRID_TOLERANCE:
                    t.wake()
        self._now = max(self._now, target)
