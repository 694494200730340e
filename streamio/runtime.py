"""The running side of a StreamingContext: receivers, scheduler, executors, errors.

:class:`~streamio.StreamingContext` builds the graph and owns the user-facing
lifecycle; once it starts, a :class:`Runtime` runs the graph inside the context's
task group: it opens and supervises every receiver, runs the scheduler's tick
loop, shuts the executors down at the end, and keeps the error that stopped the
job for ``await_termination()`` and the block's exit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from .clock import Clock, Timer
from .executors import InlineExecutor, pool_for
from .graph import Graph
from .inputs import ReceiverInputNode
from .listener import ReceiverInfo, StreamingListener
from .receiver import GracefulStop, ReceiverOutput, supervise
from .scheduler import Scheduler, notify

__all__: list[str] = []


class Runtime:
    """Runs one context's graph, from ``start()`` until it has terminated."""

    def __init__(
        self,
        graph: Graph,
        clock: Clock,
        listeners: Sequence[StreamingListener],
        *,
        max_restarts: int,
        backoff: float,
        stop_timeout: float,
        executor_setting: Any,
        max_workers: int | None,
    ) -> None:
        self.graph = graph
        self.clock = clock
        self.listeners = listeners
        self.scheduler = Scheduler(graph, clock, listeners)
        self._max_restarts = max_restarts
        self._backoff = backoff
        self._stop_timeout = stop_timeout
        self._executor_setting = executor_setting
        self._max_workers = max_workers
        self._scope: anyio.CancelScope | None = None
        self._scheduler_task: int | None = None
        self._graceful_stop = GracefulStop()
        self._receivers_done = anyio.Event()
        self.started = anyio.Event()
        self.terminated = anyio.Event()
        self.graceful = True
        self.error: BaseException | None = None
        self.error_raised = False
        self.waiters = 0

    def start(self, task_group: TaskGroup) -> None:
        """Prepare the graph and the executors, then run in ``task_group``."""
        first_index = self.scheduler.first_index()
        self.graph.prepare(zero_time=self.scheduler.batch_time(first_index - 1))
        self.graph.executors = {"inline": InlineExecutor()}
        setting = self._executor_setting
        default_inline = isinstance(setting, str) and setting == "inline"
        if not default_inline or self.graph.wants_pool():
            self.graph.executors["process"] = pool_for(setting, self._max_workers)
        self.graph.default_executor = "inline" if default_inline else "process"
        timer = self.clock.timer()
        task_group.start_soon(self._run, task_group, timer, first_index)

    def request_stop(self, graceful: bool) -> None:
        """Graceful: stop after draining the buffers. Otherwise cancel now."""
        self.graceful = self.graceful and graceful
        if graceful or self._scope is None:
            self.scheduler.request_stop()
        else:
            self._scope.cancel()

    def take_error(self) -> BaseException | None:
        """The error that stopped the job, the first time it is asked for."""
        if self.error is None or self.error_raised:
            return None
        self.error_raised = True
        return self.error

    async def wait_stopped(self) -> None:
        """Wait until terminated; from inside the scheduler's own task, return at once."""
        if anyio.get_current_task().id == self._scheduler_task:
            return
        await self.terminated.wait()

    async def _run(self, task_group: TaskGroup, timer: Timer, first_index: int) -> None:
        """Receivers and scheduler, in a task group of their own.

        Never raises: an error is kept for ``await_termination()`` and the block's
        exit, and interrupts the ``async with`` body unless someone awaits it.
        """
        self._scheduler_task = anyio.get_current_task().id
        try:
            with anyio.CancelScope() as self._scope:
                async with anyio.create_task_group() as runtime:
                    await runtime.start(self._run_receivers)
                    self.started.set()
                    try:
                        await self.scheduler.run(
                            timer,
                            first_index,
                            lambda: self.graceful,
                            self._stop_receivers,
                            self._close_receivers,
                            self._stop_timeout,
                        )
                    except Exception as exc:
                        self.error = exc  # seen by ``ssc.error`` at once, not after the wind-down
                        raise
                    runtime.cancel_scope.cancel()
        except Exception as exc:
            self.error = single_error(exc)
        finally:
            timer.close()
            with anyio.CancelScope(shield=True):
                for executor in self.graph.executors.values():
                    await executor.aclose()
            self.started.set()
            self.terminated.set()
        if self.error is not None and self.waiters == 0:
            task_group.cancel_scope.cancel()

    async def _run_receivers(self, *, task_status: TaskStatus[None]) -> None:
        """Start every receiver (waiting until each has opened), then supervise them."""
        try:
            async with anyio.create_task_group() as receivers:
                for node in self.graph.nodes:
                    if isinstance(node, ReceiverInputNode):
                        await receivers.start(self._supervise, node)
                task_status.started()
        finally:
            self._receivers_done.set()

    async def _supervise(self, node: ReceiverInputNode, *, task_status: TaskStatus[None]) -> None:
        listeners = self.listeners

        async def on_event(event: str, info: ReceiverInfo) -> None:
            await notify(listeners, f"on_receiver_{event}", info)

        await supervise(
            node.receiver,
            ReceiverOutput(node.buffer, stream=node.name, notify=on_event),
            stream=node.name,
            max_restarts=self._max_restarts,
            backoff=self._backoff,
            notify=on_event,
            stop=self._graceful_stop,
            task_status=task_status,
        )

    async def _stop_receivers(self) -> None:
        """Graceful stop, first step: no receiver receives any more."""
        self._graceful_stop.stop_receiving()
        await self._graceful_stop.wait_stopped()

    async def _close_receivers(self) -> None:
        """Graceful stop, last step (final batches committed): receivers close."""
        self._graceful_stop.allow_close()
        await self._receivers_done.wait()


def single_error(exc: BaseException) -> BaseException:
    """The one error inside nested exception groups, or the group itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
