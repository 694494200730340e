"""Where per-partition work runs: on the event loop, or in a pool of processes.

Each partition of a batch is one task. The inline executor runs tasks on the event
loop, yielding between partitions so receivers and other tasks keep flowing. The
pool executor ships a stage's fused function (serialised once per batch with
cloudpickle, so lambdas and closures work, and unpickled once per worker process)
and each partition (one pickled chunk, never record by record) to a
``concurrent.futures.Executor``: a process pool that the context owns, any
executor the user passes, or a Dask ``distributed.Client`` (through its
``get_executor()``). Only the stage's result travels back: for a key
aggregation that is the map-side combined partition, not the records.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import multiprocessing
import multiprocessing.queues
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar

import anyio.lowlevel
import anyio.to_thread
import cloudpickle

from .errors import ConfigurationError

__all__ = ["InlineExecutor", "PartitionExecutor", "PoolExecutor"]

logger = logging.getLogger(__name__)

P = TypeVar("P")
R = TypeVar("R")

# Seconds a killed worker process, and the pool's own threads, get to be gone.
_REAP_TIMEOUT = 5.0

# Named stages: (operator name, user function), for naming the one that failed.
Ops = tuple[tuple[str, Callable[..., Any]], ...]


class PartitionExecutor(Protocol):
    """Runs one function over every partition of a batch."""

    async def map_partitions(
        self, fn: Callable[[P], R], partitions: Sequence[P], ops: Ops = ()
    ) -> list[R]:
        """``[fn(p) for p in partitions]``, in order. Cancellation abandons the rest."""

    async def aclose(self) -> None:
        """Release the workers this executor owns (idempotent)."""


class InlineExecutor:
    """Runs partition tasks on the event loop, one after the other."""

    async def map_partitions(
        self, fn: Callable[[P], R], partitions: Sequence[P], ops: Ops = ()
    ) -> list[R]:
        results: list[Any] = []
        for index, partition in enumerate(partitions):
            if index:
                await anyio.lowlevel.checkpoint()
            results.append(fn(partition))
        return results

    async def aclose(self) -> None:
        pass


# How many stages a worker process keeps unpickled: a graph has a handful of stages
# that run in the pool, each sent again with every batch.
_STAGES_KEPT = 32


@functools.lru_cache(maxsize=_STAGES_KEPT)
def load_stage(payload: bytes) -> tuple[Callable[[Any], Any], Ops]:
    """Worker side: a stage's function and named operators, unpickled once per worker
    process and kept by payload, so a batch's partitions (and the next batches, which
    send the same bytes) reuse them. Like the inline executor's, that one function
    object then runs every partition the worker gets."""
    return cloudpickle.loads(payload)


def run_partition(payload: bytes, partition: Any) -> Any:
    """Worker side: run a stage's function on one partition.

    A failure keeps its type and the worker's traceback (the executor chains it);
    the name of the operator whose function raised rides along as an attribute.
    """
    from .functions import find_failing

    fn, ops = load_stage(payload)
    try:
        return fn(partition)
    except Exception as exc:
        exc.streamio_operator = find_failing(ops, exc)  # type: ignore[attr-defined]
        raise


def _report_pid(pids: multiprocessing.queues.SimpleQueue[int]) -> None:
    """Worker side, at its start: tell the pool which process this is."""
    pids.put(os.getpid())


class WorkerPool(concurrent.futures.ProcessPoolExecutor):
    """A process pool that knows its worker processes, so it can kill them.

    Each worker reports its process id when it starts, before it takes any task;
    :meth:`kill_running_workers` kills those of them that are still alive.
    """

    def __init__(self, max_workers: int | None) -> None:
        context = multiprocessing.get_context()
        self._worker_pids: multiprocessing.queues.SimpleQueue[int] = context.SimpleQueue()
        super().__init__(
            max_workers, mp_context=context, initializer=_report_pid, initargs=(self._worker_pids,)
        )

    def kill_running_workers(self) -> None:
        """Kill every worker still running (a task it runs is abandoned).

        The pool then sees them die: it terminates and reaps all its workers, and
        ``shutdown()`` returns.
        """
        pids = set()
        while not self._worker_pids.empty():
            pids.add(self._worker_pids.get())
        for child in multiprocessing.active_children():
            if child.pid in pids:
                child.kill()


def process_pool(max_workers: int | None) -> WorkerPool:
    """A process pool with the platform's start method (fork on Linux up to Python
    3.13, so scripts need no ``if __name__ == "__main__"`` guard there)."""
    return WorkerPool(max_workers)


class PoolExecutor:
    """Runs partition tasks in a ``concurrent.futures.Executor``.

    Args:
        executor: where tasks run; None for a process pool owned (created and
            shut down) by this object.
        max_workers: the owned pool's size (None: one per CPU).
        max_retries: how often a stage is run again when a worker of the owned
            pool died (``BrokenProcessPool``); stages are deterministic, so a
            retry gives the same result.
    """

    def __init__(
        self,
        executor: concurrent.futures.Executor | None = None,
        *,
        max_workers: int | None = None,
        max_retries: int = 2,
    ) -> None:
        self._owned = executor is None
        self._max_workers = max_workers or os.cpu_count() or 1
        self._executor = executor if executor is not None else process_pool(self._max_workers)
        self._max_retries = max_retries

    @property
    def executor(self) -> concurrent.futures.Executor:
        return self._executor

    async def map_partitions(
        self, fn: Callable[[P], R], partitions: Sequence[P], ops: Ops = ()
    ) -> list[R]:
        payload = cloudpickle.dumps((fn, ops))
        attempt = 0
        while True:
            futures = [self._executor.submit(run_partition, payload, p) for p in partitions]
            try:
                return list(await asyncio.gather(*map(asyncio.wrap_future, futures)))
            except BrokenProcessPool:
                attempt += 1
                if not self._owned or attempt > self._max_retries:
                    raise
                logger.warning("a worker process died; replacing the pool (retry %d)", attempt)
                await self._replace_pool()
            finally:
                for future in futures:
                    future.cancel()

    async def _replace_pool(self) -> None:
        broken = self._executor
        self._executor = process_pool(self._max_workers)
        await anyio.to_thread.run_sync(broken.shutdown)

    async def aclose(self) -> None:
        """Shut down the pool this object owns; a pool or client given to it is its
        owner's to shut down.

        Partitions not started yet are cancelled. The workers finish what they run
        and exit, until the caller's deadline (its cancel scopes'): cancellation
        kills the workers still running, abandoning their tasks, and waits (at most
        a few seconds, shielded) until they are gone, so no process is left behind.
        """
        if not self._owned:
            return
        pool = self._executor
        # shutdown() blocks until the workers are gone: in a thread of its own, which
        # killing the workers ends when the deadline comes first
        closing = threading.Thread(
            target=pool.shutdown, kwargs={"cancel_futures": True}, name="streamio-pool-shutdown"
        )
        closing.start()
        try:
            await anyio.to_thread.run_sync(closing.join, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            if isinstance(pool, WorkerPool):
                pool.kill_running_workers()
            with anyio.CancelScope(shield=True), anyio.move_on_after(_REAP_TIMEOUT):
                await anyio.to_thread.run_sync(closing.join, abandon_on_cancel=True)
            raise


def check_executor_setting(executor: Any) -> None:
    """Fail at build time on an ``executor=`` that is none of the known kinds."""
    if isinstance(executor, str) and executor in ("inline", "process"):
        return
    if isinstance(executor, concurrent.futures.Executor):
        return
    if callable(getattr(executor, "get_executor", None)):  # a distributed.Client
        return
    msg = (
        'executor= must be "inline", "process", a concurrent.futures.Executor or a '
        f"distributed.Client, not {executor!r}"
    )
    raise ConfigurationError(msg)


def pool_for(executor: Any, max_workers: int | None) -> PoolExecutor:
    """The pool executor for a context's ``executor=`` setting (checked already)."""
    if isinstance(executor, str):  # "inline" or "process": a pool of our own
        return PoolExecutor(max_workers=max_workers)
    get_executor = getattr(executor, "get_executor", None)
    if callable(get_executor):
        # pure=False: no hashing of every partition's records for a task key, and
        # two partitions that happen to be equal are still two tasks
        return PoolExecutor(get_executor(pure=False))
    return PoolExecutor(executor)
