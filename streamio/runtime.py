"""The running side of a StreamingContext: receivers, scheduler, executors, errors.

:class:`~streamio.StreamingContext` builds the graph and owns the user-facing
lifecycle; once it starts, a :class:`Runtime` runs the graph inside the context's
task group: it opens and supervises every receiver, runs the scheduler's tick
loop, shuts the executors down at the end, and keeps the error that stopped the
job for ``start()``, ``await_termination()`` and the block's exit.

Every task of a runtime (the scheduler's, the receivers', the listener bus's,
and any task they start: a ``map_async`` call, a sink's deliveries) runs with
:data:`_CURRENT` set to it, so that a stop awaited from inside the job it would
wait for returns at once instead of waiting for itself. The listener bus's
tasks outlive the scheduler and the receivers: once every event is posted, the
listeners get a bounded time to take what is queued for them.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from .bus import ListenerBus
from .checkpoint.checkpointer import Checkpointer, CheckpointSettings
from .clock import Clock, Timer, watched
from .executors import InlineExecutor, pool_for
from .graph import Graph
from .inputs import ReceiverInputNode
from .listener import ReceiverInfo
from .rate import RateController
from .receiver import ChunkLog, GracefulStop, ReceiverOutput, supervise
from .scheduler import Scheduler

__all__: list[str] = []

# The runtime whose job the current task is part of (None outside any).
_CURRENT: contextvars.ContextVar[Runtime | None] = contextvars.ContextVar(
    "streamio_runtime", default=None
)

# Seconds the executors get to let their workers exit after a run that finished
# (the workers are idle then); after a failed or cancelled run, work still
# running is abandoned at once. Either way within the caller's own deadline.
_EXECUTOR_CLOSE_TIMEOUT = 10.0


class Runtime:
    """Runs one context's graph, from ``start()`` until it has terminated."""

    def __init__(
        self,
        graph: Graph,
        clock: Clock,
        listeners: Sequence[tuple[Any, bool]],
        *,
        max_restarts: int | None,
        backoff: float,
        stop_timeout: float,
        executor_setting: Any,
        max_workers: int | None,
        backpressure: tuple[float | None, float] | None = None,
        checkpoint: CheckpointSettings | None = None,
        restore: bool = False,
        on_batch_error: str = "stop",
    ) -> None:
        self.graph = graph
        self.clock = clock
        internal = []
        if backpressure is not None:
            initial_rate, min_rate = backpressure
            receivers = [node for node in graph.nodes if isinstance(node, ReceiverInputNode)]
            internal.append(
                RateController(receivers, graph.batch_interval, initial_rate, min_rate)
            )
        self.bus = ListenerBus(listeners, internal)
        continuing = self._batch_failed if on_batch_error == "continue" else None
        self.scheduler = Scheduler(graph, clock, self.bus, stop_timeout, continuing)
        self.checkpointer = Checkpointer(checkpoint, graph) if checkpoint is not None else None
        self._restore = restore
        self._max_restarts = max_restarts
        self._backoff = backoff
        self._executor_setting = executor_setting
        self._max_workers = max_workers
        self._scope = anyio.CancelScope()  # cancelled by a hard stop
        self._graceful_stop = GracefulStop()
        self._receivers_done = anyio.Event()
        self._opened = False  # every receiver opened
        self.started = anyio.Event()  # set once opened, or once terminated
        self.terminated = anyio.Event()
        self.graceful = True
        self.error: BaseException | None = None
        self.error_raised = False
        self.waiters = 0
        # on_batch_error="continue": the first failed batch's error not raised yet,
        # and an event set when one comes (or the job terminates) for the waiters
        self.batch_error: BaseException | None = None
        self._attention = anyio.Event()

    def start(self, task_group: TaskGroup) -> None:
        """Prepare the graph and the executors, then run in ``task_group``."""
        self.graph.prepare()
        self.graph.executors = {"inline": InlineExecutor()}
        setting = self._executor_setting
        default_inline = isinstance(setting, str) and setting == "inline"
        if not default_inline or self.graph.wants_pool():
            self.graph.executors["process"] = pool_for(setting, self._max_workers)
        self.graph.default_executor = "inline" if default_inline else "process"
        timer = self.clock.timer()
        task_group.start_soon(self._watched, self._run, task_group, timer)

    def request_stop(self, graceful: bool) -> None:
        """Graceful: stop after draining the buffers. Otherwise cancel now."""
        self.graceful = self.graceful and graceful
        if graceful:
            self.scheduler.request_stop()
            if not self.started.is_set():
                # Receivers still opening (or backing off before their first open)
                # would hold the start, and so the stop, for as long as they fail.
                self._graceful_stop.stop_receiving()
        else:
            self._scope.cancel()

    def take_error(self) -> BaseException | None:
        """The error that stopped the job, the first time it is asked for."""
        if self.error is None or self.error_raised:
            return None
        self.error_raised = True
        return self.error

    def _batch_failed(self, error: BaseException) -> None:
        """A batch failed and the job goes on: keep its error for the next
        ``await_termination()`` (the first one, when several wait)."""
        if self.batch_error is None:
            self.batch_error = error
        self._attention.set()
        self._attention = anyio.Event()

    def take_batch_error(self) -> BaseException | None:
        """The error of a failed batch not raised yet, once."""
        error, self.batch_error = self.batch_error, None
        return error

    async def wait_terminated_or_failed(self) -> None:
        """Wait until terminated, or until a failed batch's error waits to be raised."""
        while self.batch_error is None and not self.terminated.is_set():
            await self._attention.wait()

    def inside(self) -> bool:
        """Whether the current task is part of this runtime's job."""
        return _CURRENT.get() is self

    async def wait_started(self) -> None:
        """Wait until every receiver has opened; raise the error if the job failed first."""
        self.waiters += 1
        try:
            await self.started.wait()
        finally:
            self.waiters -= 1
        if not self._opened:
            error = self.take_error()
            if error is not None:
                raise error

    async def wait_stopped(self) -> None:
        """Wait until terminated; from a task of the job itself, return at once
        (that task is part of what the stop waits for)."""
        if not self.inside():
            await self.terminated.wait()

    async def _run(self, task_group: TaskGroup, timer: Timer) -> None:
        """Receivers and scheduler, in a task group of their own, inside the one of
        the listener bus's delivery tasks.

        Never raises: an error is kept for ``start()``, ``await_termination()``
        and the block's exit, and interrupts the ``async with`` body unless
        someone awaits it.
        """
        _CURRENT.set(self)
        finished = False
        try:
            async with anyio.create_task_group() as delivery:
                self.bus.start(delivery, self._watched)
                try:
                    finished = await self._run_job(timer)
                finally:
                    # every event is posted: the listeners take the rest, within a deadline
                    self.bus.close()
                    with anyio.CancelScope(shield=True) as cleanup:
                        cleanup.deadline = anyio.current_effective_deadline()
                        await self.bus.drain(self.clock)
                    delivery.cancel_scope.cancel()
        finally:
            timer.close()
            await self._close_executors(finished)
            if self.checkpointer is not None:
                await self._close_checkpoint()
            self.started.set()
            self.terminated.set()
            self._attention.set()
        if self.error is not None and self.waiters == 0:
            task_group.cancel_scope.cancel()

    async def _run_job(self, timer: Timer) -> bool:
        """Receivers and scheduler; whether the job finished (not stopped hard).
        An error is kept in :attr:`error`, not raised."""
        try:
            with self._scope:
                async with anyio.create_task_group() as runtime:
                    try:
                        await self._open_checkpoint()
                        await self.scheduler.run(
                            timer,
                            lambda: runtime.start(self._watched, self._run_receivers),
                            lambda: self.graceful,
                            self._stop_receivers,
                            self._close_receivers,
                        )
                    except Exception as exc:
                        # seen by ``ssc.error`` at once, not after the wind-down
                        self.error = single_error(exc)
                        raise
                    runtime.cancel_scope.cancel()
        except Exception as exc:
            self.error = single_error(exc)
            return False
        return not self._scope.cancel_called

    async def _open_checkpoint(self) -> None:
        """Open the checkpoint store and, when resuming, restore the job from it
        (before any receiver opens: they are told their positions first)."""
        if self.checkpointer is not None:
            self.scheduler.checkpointer = self.checkpointer
            self.scheduler.resume = await self.checkpointer.open(self._restore)

    async def _close_checkpoint(self) -> None:
        """Close the store's files, shielded, within a deadline."""
        assert self.checkpointer is not None
        with anyio.CancelScope(shield=True) as cleanup:
            cleanup.deadline = anyio.current_time() + _EXECUTOR_CLOSE_TIMEOUT
            await self.checkpointer.close()

    async def _close_executors(self, finished: bool) -> None:
        """Shut the executors down, shielded, within a deadline: the caller's (an
        outer ``fail_after``), and none of ours for work a failed run left behind."""
        outer = anyio.current_effective_deadline()  # -inf once cancelled
        grace = _EXECUTOR_CLOSE_TIMEOUT if finished else -math.inf
        with anyio.CancelScope(shield=True) as cleanup:
            cleanup.deadline = min(outer, anyio.current_time() + grace)
            for executor in self.graph.executors.values():
                await executor.aclose()

    async def _watched(
        self, func: Callable[..., Coroutine[Any, Any, None]], *args: Any, **kwargs: Any
    ) -> None:
        """Run ``func(*args, **kwargs)`` as a task of the job that the clock watches:
        a manual clock lets the scheduler and the receivers run until they wait
        before it moves on (see :func:`streamio.clock.watched`)."""
        await watched(self.clock, func(*args, **kwargs))

    async def _run_receivers(self, *, task_status: TaskStatus[None]) -> None:
        """Start every receiver (waiting until each has opened), then supervise them."""
        logs = self.checkpointer.logs.values() if self.checkpointer is not None else ()
        try:
            async with anyio.create_task_group() as writers:
                for log in logs:  # the write-ahead logs' writers
                    writers.start_soon(self._watched, log.run)
                async with anyio.create_task_group() as receivers:
                    for node in self.graph.nodes:
                        if isinstance(node, ReceiverInputNode):
                            await receivers.start(self._watched, self._supervise, node)
                    self._opened = True
                    self.started.set()
                    task_status.started()
                for log in logs:  # what receivers whose source ended stored last
                    await log.flushed()
                writers.cancel_scope.cancel()
        finally:
            self._receivers_done.set()

    async def _supervise(self, node: ReceiverInputNode, *, task_status: TaskStatus[None]) -> None:
        post = self.bus.post

        async def on_event(event: str, info: ReceiverInfo) -> None:
            post(f"on_receiver_{event}", info)

        await supervise(
            node.receiver,
            ReceiverOutput(
                node.buffer,
                stream=node.name,
                notify=on_event,
                log=self._log_for(node),
                rejected=node.rejected,
            ),
            stream=node.name,
            clock=self.clock,
            max_restarts=self._max_restarts,
            backoff=self._backoff,
            notify=on_event,
            stop=self._graceful_stop,
            wait_committed=node.wait_committed,
            task_status=task_status,
        )

    def _log_for(self, node: ReceiverInputNode) -> ChunkLog | None:
        """Where the input's chunks are logged before they count as received."""
        if self.checkpointer is None or node.name not in self.checkpointer.logs:
            return None
        return self.checkpointer.logs[node.name].put

    async def _stop_receivers(self) -> None:
        """Graceful stop, first step: no receiver receives any more."""
        self._graceful_stop.stop_receiving()
        await self._graceful_stop.wait_stopped()
        if self.checkpointer is not None:  # what they stored reaches the buffers
            await self.checkpointer.flush_logs()

    async def _close_receivers(self) -> None:
        """Graceful stop, last step (final batches committed): receivers close."""
        self._graceful_stop.allow_close()
        await self._receivers_done.wait()


def single_error(exc: BaseException) -> BaseException:
    """The one error inside nested exception groups, or the group itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
