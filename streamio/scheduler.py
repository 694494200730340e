"""The scheduler: one coroutine that cuts a batch on each tick and runs its jobs.

Ticks sit on the grid ``k * batch_interval`` (never drifting); a tick that comes
late, because the previous batch ran long, keeps its grid time and its lateness
shows as scheduling delay. Batches never overlap. After every output of a batch
has finished, the receivers are told which position the batch covered.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from .clock import Clock, Timer
from .graph import Graph
from .inputs import InputNode
from .listener import BatchInfo, StreamingListener

__all__: list[str] = []

logger = logging.getLogger(__name__)


async def notify(listeners: Sequence[StreamingListener], event: str, info: Any) -> None:
    """Call ``event`` on every listener, awaiting the ones that are async."""
    for listener in listeners:
        callback = getattr(listener, event, None)
        if callback is not None and inspect.isawaitable(result := callback(info)):
            await result


class Scheduler:
    """Generates and runs the batches of one context."""

    def __init__(self, graph: Graph, clock: Clock, listeners: Sequence[StreamingListener]) -> None:
        self.graph = graph
        self.clock = clock
        self.listeners = listeners
        self.interval = graph.batch_interval
        self.inputs = [node for node in graph.nodes if isinstance(node, InputNode)]
        self.last_batch: BatchInfo | None = None
        self._stop_requested = anyio.Event()
        self._timer: Timer | None = None

    def first_index(self) -> int:
        """The grid index of the first batch: the first grid time after now."""
        return math.floor(self.clock.now() / self.interval + 1e-9) + 1

    def batch_time(self, index: int) -> float:
        return round(index * self.interval, 9)

    def request_stop(self) -> None:
        """Stop generating batches after the one in progress (if any)."""
        self._stop_requested.set()
        if self._timer is not None:
            self._timer.interrupt()

    async def run(
        self,
        timer: Timer,
        first_index: int,
        graceful: Callable[[], bool],
        stop_receivers: Callable[[], Awaitable[None]],
        close_receivers: Callable[[], Awaitable[None]],
        stop_timeout: float,
    ) -> None:
        """Tick until a stop is requested; then, if graceful, drain the buffers.

        A graceful stop stops the receivers receiving, then cuts batches at the
        next grid times at once (without waiting for the clock) until no input
        holds records, within ``stop_timeout`` seconds, and only then lets the
        receivers close (their last positions are committed by then).
        Cancellation stops at once.
        """
        index = first_index
        self._timer = timer
        if self._stop_requested.is_set():
            timer.interrupt()
        try:
            while not self._stop_requested.is_set():
                time = self.batch_time(index)
                await timer.sleep_until(time)
                if self._stop_requested.is_set():
                    break
                await self.run_batch(time)
                index += 1
            if graceful():
                with anyio.move_on_after(stop_timeout) as scope:
                    await stop_receivers()
                    while any(node.pending() for node in self.inputs):
                        await self.run_batch(self.batch_time(index))
                        index += 1
                if scope.cancelled_caught:
                    pending = sum(node.pending() for node in self.inputs)
                    logger.warning(
                        "graceful stop took over %ss and was cut short; %d buffered records "
                        "were not processed",
                        stop_timeout,
                        pending,
                    )
                await close_receivers()
        finally:
            timer.close()

    async def run_batch(self, time: float) -> None:
        """Cut one batch from every input, run the output jobs, then commit."""
        clock, listeners = self.clock, self.listeners
        counts = {node.name: len(node.cut(time)) for node in self.inputs}
        info = BatchInfo(time, counts, submission_time=clock.now())
        if listeners:
            await notify(listeners, "on_batch_submitted", info)
        info.processing_start_time = clock.now()
        if listeners:
            await notify(listeners, "on_batch_started", info)
        for output in self.graph.outputs:
            await output.run(time)
        for node in self.inputs:
            await node.commit(time)
        info.processing_end_time = clock.now()
        self.graph.forget(time)
        self.last_batch = info
        if listeners:
            await notify(listeners, "on_batch_completed", info)
        delay = info.scheduling_delay
        if delay is not None and delay > self.interval:
            logger.debug("batch %s started %.3fs late", time, delay)
