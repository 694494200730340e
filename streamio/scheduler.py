"""The scheduler: one coroutine that cuts a batch on each tick and runs its jobs.

Ticks sit on the grid ``k * batch_interval`` (never drifting); a tick that comes
late, because the previous batch ran long, keeps its grid time and its lateness
shows as scheduling delay. The first tick is the first grid time after every
receiver has opened: ticks that pass while a receiver opens are skipped, not
caught up on in a burst of empty batches. Batches never overlap. After every
output of a batch has finished, the receivers are told which position the batch
covered. Listeners hear of it all through the context's :class:`~streamio.bus.ListenerBus`:
posting an event never waits for a listener.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel

from .bus import ListenerBus
from .checkpoint.checkpointer import Checkpointer, Resume
from .clock import Clock, Timer
from .errors import StopTimeoutError
from .graph import Graph
from .inputs import InputNode
from .listener import BatchInfo, OutputOperationInfo, StreamingStartedInfo
from .outputs import OutputOperation
from .times import grid_time

__all__: list[str] = []

logger = logging.getLogger(__name__)

# Clock readings this close to a deadline count as having reached it (batch times
# are sums of float intervals).
_TOLERANCE = 1e-9


class Scheduler:
    """Generates and runs the batches of one context.

    Args:
        graph: the graph whose outputs run on every batch.
        clock: where time, and the graceful stop's deadline, come from.
        bus: where the events of every batch go.
        stop_timeout: seconds of ``clock`` time a graceful stop may take.
        on_batch_error: None to fail on a batch whose outputs raise (the context
            stops: ``on_batch_error="stop"``); else called with the error of each
            failed batch, and the next batches run (``"continue"``).
    """

    def __init__(
        self,
        graph: Graph,
        clock: Clock,
        bus: ListenerBus,
        stop_timeout: float,
        on_batch_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.graph = graph
        self.on_batch_error = on_batch_error
        self.clock = clock
        self.bus = bus
        self.interval = graph.batch_interval
        self.stop_timeout = stop_timeout
        self.inputs = [node for node in graph.nodes if isinstance(node, InputNode)]
        self.last_batch: BatchInfo | None = None
        self._stop_requested = anyio.Event()
        self._timer: Timer | None = None
        # The graceful stop's deadline on the clock, and the timer that waits for it.
        self._stop_deadline = math.inf
        self._stop_timer: Timer | None = None
        self._finished = False
        self._out_of_time = False  # the deadline passed between two final batches
        self._running: BatchInfo | None = None  # the batch cut and not yet committed
        # Set by the runtime when checkpointing: positions are then committed by
        # the checkpoints, and ``resume`` is where a restored job goes on.
        self.checkpointer: Checkpointer | None = None
        self.resume: Resume | None = None

    def first_index(self) -> int:
        """The grid index of the next batch: the first grid time after now."""
        return math.floor(self.clock.now() / self.interval + _TOLERANCE) + 1

    def batch_time(self, index: int) -> float:
        return grid_time(index, self.interval)

    def request_stop(self) -> None:
        """Stop generating batches after the one in progress (if any), and end the
        stop within ``stop_timeout`` seconds of the clock from now."""
        if self._stop_requested.is_set() or self._finished:
            return
        self._stop_deadline = self.clock.now() + self.stop_timeout
        # made now, so that a manual clock advanced right after knows the deadline
        self._stop_timer = self.clock.timer()
        self._stop_requested.set()
        if self._timer is not None:
            self._timer.interrupt()

    async def run(
        self,
        timer: Timer,
        open_inputs: Callable[[], Awaitable[Any]],
        graceful: Callable[[], bool],
        stop_receivers: Callable[[], Awaitable[None]],
        close_receivers: Callable[[], Awaitable[None]],
    ) -> None:
        """Open the inputs, tick until a stop is requested, then (if graceful) drain.

        ``open_inputs`` returns once every receiver has opened; the ticks that pass
        meanwhile are skipped, and the grid's zero time is the tick before the
        first batch. A graceful stop stops the receivers receiving, then cuts
        batches at the next grid times at once (without waiting for the clock)
        until no input holds records, and only then lets the receivers close
        (their last positions are committed by then). Cancellation stops at once.

        Raises:
            StopTimeoutError: when the graceful stop ran past ``stop_timeout``
                (clock time since it was requested) with a batch unfinished or
                records left; it stops at that point, committing nothing more.
            OperatorError: when a batch fails (and whatever a listener raises).
        """
        self._timer = timer
        if self._stop_requested.is_set():
            timer.interrupt()
        try:
            async with anyio.create_task_group() as watchdog:
                with anyio.CancelScope() as work:
                    watchdog.start_soon(self._expire_stop, work)
                    index = await self._open(timer, open_inputs)
                    index = await self._tick(timer, index)
                    timer.close()  # no more sleeping: a manual clock need not wait for it
                    if graceful():
                        await stop_receivers()
                        await self._drain(index)
                        if not self._out_of_time:
                            await self._final_checkpoint()
                            await close_receivers()
                watchdog.cancel_scope.cancel()
        finally:
            self._finished = True
            timer.close()
            if self._stop_timer is not None:
                self._stop_timer.close()
        if work.cancelled_caught or self._out_of_time:
            unprocessed = self._unprocessed()
            interrupted = self._running.batch_time if self._running is not None else None
            if unprocessed or interrupted is not None:
                raise StopTimeoutError(unprocessed, interrupted, self.stop_timeout)
            logger.warning(
                "graceful stop took over %ss: the receivers were stopped before they closed",
                self.stop_timeout,
            )

    async def _open(self, timer: Timer, open_inputs: Callable[[], Awaitable[Any]]) -> int:
        """Wait for the receivers to open, skipping the ticks meanwhile; the index
        of the first batch (the first grid time after they are ready)."""
        async with anyio.create_task_group() as opening:
            opening.start_soon(self._skip_ticks, timer)
            await open_inputs()
            opening.cancel_scope.cancel()
        self.bus.post("on_streaming_started", StreamingStartedInfo(self.clock.now(), self.interval))
        if self.resume is not None:
            # the grid goes on after the checkpoint's batch: the batches of the time
            # the job was down run at once, one after the other (as Spark's do)
            self.graph.zero_time = self.resume.zero_time
            return round(self.resume.batch_time / self.interval) + 1
        index = self.first_index()
        self.graph.zero_time = self.batch_time(index - 1)
        return index

    async def _skip_ticks(self, timer: Timer) -> None:
        """Sleep from tick to tick while the receivers open (a manual clock then
        lets tasks run before each tick, so a receiver's open() may wait on it)."""
        while not self._stop_requested.is_set():
            await timer.sleep_until(self.batch_time(self.first_index()))
        await anyio.sleep_forever()  # until the receivers are ready

    async def _tick(self, timer: Timer, index: int) -> int:
        """Run a batch on each tick until a stop is requested; the next index."""
        while not self._stop_requested.is_set():
            time = self.batch_time(index)
            await timer.sleep_until(time)
            if self._stop_requested.is_set():
                break
            await self.run_batch(time)
            index += 1
        return index

    async def _drain(self, index: int) -> None:
        """The final batches of a graceful stop, while the deadline allows."""
        while any(node.pending() for node in self.inputs):
            if self.clock.now() >= self._stop_deadline - _TOLERANCE:
                self._out_of_time = True
                return
            await self.run_batch(self.batch_time(index))
            index += 1

    async def _final_checkpoint(self) -> None:
        """A graceful stop checkpoints the last batch (and so commits its positions)."""
        checkpointer, last = self.checkpointer, self.last_batch
        if checkpointer is None or last is None or checkpointer.last_time == last.batch_time:
            return
        await self._checkpoint(last)

    async def _checkpoint(self, info: BatchInfo) -> None:
        assert self.checkpointer is not None
        info.checkpoint = await self.checkpointer.write(info.batch_time)
        self.bus.post("on_checkpoint_written", info.checkpoint)

    async def _expire_stop(self, work: anyio.CancelScope) -> None:
        """Cancel ``work`` once the graceful stop's deadline has passed."""
        await self._stop_requested.wait()
        assert self._stop_timer is not None
        await self._stop_timer.sleep_until(self._stop_deadline)
        work.cancel()

    def _unprocessed(self) -> dict[str, int]:
        """Records of the batch in progress and still buffered, by input."""
        left = dict(self._running.records_per_input) if self._running is not None else {}
        for node in self.inputs:
            left[node.name] = left.get(node.name, 0) + node.pending()
        return {name: count for name, count in left.items() if count}

    async def _commit(self, info: BatchInfo) -> None:
        """Every output of the batch finished: commit its positions (or have the
        checkpoint, when due, do it)."""
        time = info.batch_time
        if self.checkpointer is None:
            for node in self.inputs:
                await node.commit(time)
            self.graph.forget(time)
        else:
            self.graph.forget(time)  # what is left is what later batches need
            if self.checkpointer.due(time):
                await self._checkpoint(info)

    def _failed(self, info: BatchInfo, error: Exception) -> None:
        """``on_batch_error="continue"``: the batch is reported and the next ones
        run; its positions are covered by the next successful batch's commit (or,
        with checkpointing, by the next checkpoint's)."""
        assert self.on_batch_error is not None
        info.error = error
        time = info.batch_time
        if self.checkpointer is None:
            for node in self.inputs:
                node.skip_commit(time)
        self.graph.forget(time)
        logger.error("batch %s failed, continuing with the next: %s", time, error)
        self.on_batch_error(error)

    async def run_batch(self, time: float) -> None:
        """Cut one batch from every input, run the output jobs, then commit.

        Yields to the event loop first, even when the batch is late: a stop, and
        the receivers, get their turn between any two batches.
        """
        await anyio.lowlevel.checkpoint()
        clock, bus = self.clock, self.bus
        counts: dict[str, int] = {}
        metadata: dict[str, dict[str, Any]] = {}
        limits: dict[str, float] = {}
        for node in self.inputs:
            rate = node.rate_limit
            if rate is not None:
                limits[node.name] = rate
            described: dict[str, Any] = {}
            counts[node.name] = len(node.cut(time, described))
            if described:
                metadata[node.name] = described
        info = BatchInfo(time, counts, clock.now(), input_metadata=metadata, rate_limits=limits)
        self._running = info
        bus.post("on_batch_submitted", info)
        info.processing_start_time = clock.now()
        bus.post("on_batch_started", info)
        try:
            for output in self.graph.outputs:
                await self._run_output(info, output, time)
        except Exception as exc:
            if self.on_batch_error is None:
                raise
            self._failed(info, exc)
        else:
            await self._commit(info)
        self._running = None
        info.records_skipped, info.records_dead_lettered = self.graph.drops.take()
        info.processing_end_time = clock.now()
        self.last_batch = info
        bus.post("on_batch_completed", info)
        delay = info.scheduling_delay
        if delay is not None and delay > self.interval:
            logger.debug("batch %s started %.3fs late", time, delay)

    async def _run_output(self, info: BatchInfo, output: OutputOperation, time: float) -> None:
        """Run one output for batch ``time``, keeping its times and error in ``info``."""
        operation = OutputOperationInfo(output.name, output.kind, self.clock.now())
        info.output_operations.append(operation)
        try:
            await output.run(time)
        except Exception as exc:
            operation.error = exc
            raise
        finally:
            operation.end_time = self.clock.now()
