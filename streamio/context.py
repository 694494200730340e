"""StreamingContext: the entry point that builds the graph and owns its lifecycle.

Use it as an async context manager inside your own asyncio program::

    async with StreamingContext(batch_interval=1.0) as ssc:
        lines = ssc.queue_stream([["a b", "b c"]])
        lines.flat_map(str.split).count_by_value().pprint()
        ssc.start()
        await ssc.await_termination(timeout=5)

Leaving the block stops the context gracefully (receivers stop receiving, what
they buffered is processed and committed, then they close). An error in a
receiver or a job stops the context and is raised out of the block, and out of
``await_termination()`` when something is waiting there.

Once started, the graph runs in a :class:`~streamio.runtime.Runtime` (receivers,
scheduler, executors); this module is the user-facing facade.
"""

from __future__ import annotations

import enum
import os
import weakref
from collections.abc import AsyncIterable, Callable, Generator, Iterable
from types import TracebackType
from typing import Any, ClassVar, TypeVar

import anyio
from anyio.abc import TaskGroup

from .buffer import DEFAULT_BUFFER_BYTES, ChunkBuffer
from .bus import ListenerStatistics, check_inline
from .checkpoint.recovery import has_checkpoint
from .checkpoint.serializers import Serializer
from .checkpoint.settings import (
    CheckpointSettings,
    check_checkpointable,
    checkpoint_settings,
    same_directory,
)
from .checks import check_number, check_whole_number
from .clock import Clock, SystemClock
from .dashboard import load as load_dashboard
from .dashboard.monitor import Monitor
from .dstream import DStream
from .errors import ConfigurationError, ContextStateError
from .executors import check_executor_setting
from .graph import Graph
from .inputs import QueueInputNode, ReceiverInputNode, check_queue_item
from .listener import BatchInfo, StreamingListener
from .nodes import UnionNode
from .rate import check_backpressure
from .receiver import Receiver
from .runtime import Runtime, single_error
from .signals import STOP_ON_SIGNALS, watch_signals
from .sources import AsyncIterableReceiver, PushReceiver, PushStream
from .timeouts import move_on_after

__all__ = ["ContextState", "StreamingContext"]

T = TypeVar("T")


class ContextState(enum.Enum):
    """Where a context is in its life (Spark's ``StreamingContextState``)."""

    INITIALIZED = "initialized"
    ACTIVE = "active"
    STOPPED = "stopped"


def _check_port(port: Any) -> int | None:
    """``dashboard``: None, or a TCP port (0 for a free one)."""
    if port is None:
        return None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        msg = f"dashboard= must be a TCP port from 0 (a free one) to 65535, or None, not {port!r}"
        raise ConfigurationError(msg)
    return port


def _check_restarts(max_restarts: Any, backoff: float) -> int | None:
    """``max_receiver_restarts``: a whole number >= 0, or None (with a backoff > 0)."""
    if max_restarts is None:
        if backoff == 0:
            msg = (
                "max_receiver_restarts=None restarts a failing receiver forever: give it "
                "a receiver_restart_backoff > 0, or a finite max_receiver_restarts"
            )
            raise ConfigurationError(msg)
        return None
    try:
        return check_whole_number(max_restarts, "max_receiver_restarts", minimum=0)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc} (or None to restart forever)") from None


class _Completion:
    """What ``start()`` and ``stop()`` return: already acted on, awaitable to wait.

    ``ssc.stop()`` requests the stop at once; ``await ssc.stop()`` also waits
    until the context has terminated.
    """

    def __init__(self, wait: Any) -> None:
        self._wait = wait

    def __await__(self) -> Generator[Any, None, None]:
        return self._wait().__await__()


class StreamingContext:
    """The entry point of streamio: builds the DStream graph and runs it.

    Args:
        batch_interval: seconds between batches (float > 0).
        clock: where time comes from; the system clock by default,
            :class:`~streamio.ManualClock` in tests.
        buffer_capacity: default limit, in records, of each receiver's buffer
            besides ``buffer_bytes``; None (the default): no limit in records.
        buffer_bytes: default memory budget of each receiver's buffer, in bytes of
            the records it holds (estimated per chunk from a sample): when it is
            full the receiver waits. A batch takes at most this much of each
            receiver, so a stream faster than about half of it per batch interval
            is held back: raise it for long intervals at high rates; 128 MiB by
            default.
        partition_size: most records per partition of an input batch.
        max_receiver_restarts: how many failures in a row a receiver may have
            (each followed by a restart) before its error stops the context; an
            attempt that stored records, or stayed up longer than the backoff's
            cap, starts the count over. None: restart it forever (each failure
            still reaches the listeners' ``on_receiver_error``).
        receiver_restart_backoff: seconds before the first restart of a run of
            failures, doubling up to ``streamio.receiver.MAX_RESTART_BACKOFF``
            (30 s), on the context's clock.
        stop_timeout: seconds (of ``clock``) a graceful stop may take before it
            turns hard; records it leaves are reported by StopTimeoutError.
        executor: where fused stages run unless an operator chose
            (``map(f, executor="process")``): "inline" on the event loop (the
            default), "process" in a process pool the context creates at start and
            shuts down at stop, any ``concurrent.futures.Executor``, or a Dask
            ``distributed.Client``. Stages marked "process" use that executor (or
            the context's own pool when the default is "inline").
        max_workers: the size of the context's own process pool (default: CPUs).
        dashboard: a port to serve the live dashboard (and Prometheus' ``/metrics``)
            on 127.0.0.1 from ``start()`` until the context stops; 0 for a free
            port (see :attr:`dashboard_url`). Needs ``streamio[dashboard]``. None
            (the default): no server; ``dashboard_app()`` still gives the app to
            mount in an application's own server.
        retained_batches: how many completed batches the dashboard keeps (Spark's
            ``spark.streaming.ui.retainedBatches``), which bounds its memory.
        on_batch_error: what a batch whose outputs raise does to the context.
            ``"stop"`` (the default): the context stops, and the error is raised out
            of ``await_termination()`` and the block. ``"continue"`` (Spark's
            behaviour): the batch is reported (listeners' ``on_batch_completed``
            with ``info.error`` set, and a log line), its source positions are not
            committed on their own (the next successful batch's commit covers
            them), the next batches run, and the next ``await_termination()``
            raises the error once (the block's exit raises it if nothing did).
        backpressure: adapt each receiver stream's rate to what the pipeline
            processes (Spark's ``spark.streaming.backpressure.enabled``): after
            every batch a PID controller (:mod:`streamio.rate`) sets the records
            per second the next batches may take, as ``max_rate`` does (which
            still bounds it). Off by default.
        initial_rate: with ``backpressure``, the cap (records per second) of each
            receiver stream until the controller's first estimate, so the first
            batches do not pull a whole backlog; None: no cap until then.
        min_rate: with ``backpressure``, the lowest rate the controller sets
            (records per second, > 0): a stream is never shut off.

    Raises:
        ConfigurationError: for any invalid argument.
    """

    # The context started last in this process, for get_active(): weakly, so a
    # finished context (and all it references) is not kept alive by it.
    _last_started: ClassVar[weakref.ref[StreamingContext] | None] = None

    def __init__(
        self,
        batch_interval: float,
        *,
        clock: Clock | None = None,
        buffer_capacity: int | None = None,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        partition_size: int = 10_000,
        max_receiver_restarts: int | None = 3,
        receiver_restart_backoff: float = 0.1,
        stop_timeout: float = 30.0,
        executor: Any = "inline",
        max_workers: int | None = None,
        dashboard: int | None = None,
        retained_batches: int = 1000,
        on_batch_error: str = "stop",
        backpressure: bool = False,
        initial_rate: float | None = None,
        min_rate: float = 100,
    ) -> None:
        self._interval = check_number(batch_interval, "batch_interval")
        if on_batch_error not in ("stop", "continue"):
            msg = (
                'on_batch_error must be "stop" (stop the context at the first failed '
                'batch) or "continue" (report it and run the next batches), not '
                f"{on_batch_error!r}"
            )
            raise ConfigurationError(msg)
        self._on_batch_error = on_batch_error
        on, initial, floor = check_backpressure(backpressure, initial_rate, min_rate)
        self._backpressure = (initial, floor) if on else None
        if clock is not None and not isinstance(clock, Clock):
            msg = f"clock must have now() and timer() (see streamio.clock.Clock), not {clock!r}"
            raise ConfigurationError(msg)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._buffer_capacity = (
            None
            if buffer_capacity is None
            else check_whole_number(buffer_capacity, "buffer_capacity")
        )
        self._buffer_bytes = check_whole_number(buffer_bytes, "buffer_bytes")
        partition_size = check_whole_number(partition_size, "partition_size")
        self._backoff = check_number(
            receiver_restart_backoff, "receiver_restart_backoff", allow_zero=True
        )
        self._max_restarts = _check_restarts(max_receiver_restarts, self._backoff)
        self._stop_timeout = check_number(stop_timeout, "stop_timeout")
        if max_workers is not None:
            check_whole_number(max_workers, "max_workers")
        check_executor_setting(executor)
        self._executor_setting = executor
        self._max_workers = max_workers
        self._graph = Graph(self._interval, partition_size)
        self._listeners: list[tuple[StreamingListener, bool]] = []  # (listener, inline)
        self._state = ContextState.INITIALIZED
        self._task_group: TaskGroup | None = None
        self._runtime: Runtime | None = None
        self._never_started = anyio.Event()  # set when stopped before start()
        self._checkpoint: CheckpointSettings | None = None
        self._restore = False  # get_or_create() found a checkpoint to resume
        self._retained_batches = check_whole_number(retained_batches, "retained_batches")
        self._dashboard_port = _check_port(dashboard)
        if dashboard is not None:
            for module in ("app", "server"):
                load_dashboard(module)  # a missing extra fails here, not at start()
        self._monitor: Monitor | None = None
        self._dashboard_url: str | None = None
        # set by start(), or by leaving the block (or stop()) before it: the signal
        # watcher then waits for the runtime's end, or ends
        self._started_or_left = anyio.Event()
        self._signals_watched: anyio.Event | None = None

    # -- properties -------------------------------------------------------

    @property
    def batch_interval(self) -> float:
        return self._interval

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def state(self) -> ContextState:
        if self._runtime is not None and self._runtime.terminated.is_set():
            return ContextState.STOPPED
        return self._state

    @property
    def error(self) -> BaseException | None:
        """The error that stopped the context, or None while it has not failed.

        For the health check of an application that embeds a stream (a web app
        answers 503 while it is set). A failed batch sets it at once, before the
        context has wound down (under a manual clock: when ``advance()``
        returns). Reading it does not consume the error: it is still raised out
        of the ``async with`` block and out of ``await_termination()``.
        """
        return None if self._runtime is None else self._runtime.error

    @property
    def dashboard_url(self) -> str | None:
        """Where the dashboard is served (``http://127.0.0.1:PORT/``) once started with
        ``dashboard=PORT``; None otherwise."""
        return self._dashboard_url

    @property
    def last_batch(self) -> BatchInfo | None:
        """Metrics of the last completed batch, None before the first."""
        return None if self._runtime is None else self._runtime.scheduler.last_batch

    # -- building the graph --------------------------------------------------

    def queue_stream(
        self,
        queue: Any,
        one_at_a_time: bool = True,
        default: Iterable[Any] | None = None,
        *,
        name: str | None = None,
    ) -> DStream[Any]:
        """A stream whose batches come from a queue of record collections (Spark's
        ``queueStream``).

        Each tick takes the next item of ``queue`` (a list, ``collections.deque``
        or ``asyncio.Queue`` of lists of records) as that batch's records; with
        ``one_at_a_time=False`` it takes every queued item. Items may be added
        after start. When the queue is empty the batch holds ``default``'s
        records, or nothing. Queued items are not "received" data: a graceful
        stop leaves unconsumed items in the queue.

        >>> import operator
        >>> async def main():
        ...     clock = ManualClock()
        ...     async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ...         ssc.queue_stream([[1, 2], [3]]).reduce(operator.add).pprint()
        ...         ssc.start()
        ...         await clock.advance(2.0)
        >>> run(main(), use_uvloop=False)
        -------------------------------------------
        Time: 1970-01-01 00:00:01
        -------------------------------------------
        3
        <BLANKLINE>
        -------------------------------------------
        Time: 1970-01-01 00:00:02
        -------------------------------------------
        3
        <BLANKLINE>
        """
        if not any(hasattr(queue, attr) for attr in ("popleft", "get_nowait", "pop")):
            msg = (
                "queue_stream() needs a list, collections.deque or asyncio.Queue of "
                f"record collections, not {type(queue).__name__}"
            )
            raise ConfigurationError(msg)
        if isinstance(queue, (list, tuple)) or hasattr(queue, "popleft"):
            for item in queue:
                check_queue_item(item, name or "queue_stream")
        if default is not None:
            default = list(check_queue_item(default, name or "queue_stream"))
        node = QueueInputNode(self._graph, queue, bool(one_at_a_time), default, name)
        self._check_checkpointable(node)
        return DStream(self, node)

    def receiver_stream(
        self,
        receiver: Receiver[T],
        *,
        name: str | None = None,
        buffer_capacity: int | None = None,
        max_rate: float | None = None,
        default_name: str | None = None,
        buffer_bytes: int | None = None,
    ) -> DStream[T]:
        """A stream fed by ``receiver`` (Spark's ``receiverStream``).

        Args:
            receiver: any :class:`~streamio.Receiver`.
            name: the stream's name (in metrics and errors).
            buffer_capacity: records its buffer holds before the receiver waits
                (None: the context's ``buffer_capacity``).
            max_rate: most records per second a batch takes from the buffer; the
                rest waits for later batches (and the receiver waits).
            default_name: the name when ``name`` is None, numbered when taken
                (``"kafka lines 2"``): connectors name a stream after what it
                reads. Without either, ``receiver_stream_<n>``.
            buffer_bytes: estimated bytes of records its buffer holds before the
                receiver waits (None: the context's ``buffer_bytes``).

        Raises:
            ConfigurationError: for an invalid argument.
        """
        if not isinstance(receiver, Receiver):
            msg = (
                f"receiver_stream() needs a streamio.Receiver, not {type(receiver).__name__}; "
                "subclass Receiver or use from_async_iterable()"
            )
            raise ConfigurationError(msg)
        capacity = self._buffer_capacity if buffer_capacity is None else buffer_capacity
        max_bytes = self._buffer_bytes if buffer_bytes is None else buffer_bytes
        buffer: ChunkBuffer[T] = ChunkBuffer(capacity, max_bytes)
        if max_rate is not None:
            max_rate = check_number(max_rate, "max_rate", unit="records per second")
        if name is None and default_name is not None:
            name = self._graph.free_name(default_name)
        node = ReceiverInputNode(self._graph, receiver, buffer, max_rate, name)
        self._check_checkpointable(node)
        return DStream(self, node)

    def from_async_iterable(
        self,
        iterable: AsyncIterable[T],
        *,
        name: str | None = None,
        buffer_capacity: int | None = None,
        max_rate: float | None = None,
        buffer_bytes: int | None = None,
    ) -> DStream[T]:
        """A stream of the items of an async iterable (an async generator, a channel).

        Each item is one record. The iterable is read by a receiver task as fast
        as the buffer allows. ``name``, ``buffer_capacity``, ``max_rate`` and
        ``buffer_bytes`` are :meth:`receiver_stream`'s.
        """
        if not isinstance(iterable, AsyncIterable):
            msg = f"from_async_iterable() needs an async iterable, not {type(iterable).__name__}"
            raise ConfigurationError(msg)
        return self.receiver_stream(
            AsyncIterableReceiver(iterable),
            name=name,
            buffer_capacity=buffer_capacity,
            max_rate=max_rate,
            buffer_bytes=buffer_bytes,
        )

    def push_stream(
        self,
        *,
        name: str | None = None,
        buffer_capacity: int | None = None,
        max_rate: float | None = None,
        buffer_bytes: int | None = None,
    ) -> PushStream[Any]:
        """A stream that the application feeds with ``await stream.send(records)``
        (from web handlers, callbacks, other tasks); see :class:`~streamio.PushStream`.

        Args:
            name: the stream's name (in metrics and errors).
            buffer_capacity: records its buffer holds before ``send`` waits.
            max_rate: most records per second a batch takes from the buffer.
            buffer_bytes: estimated bytes of records its buffer holds before
                ``send`` waits.
        """
        receiver: PushReceiver[Any] = PushReceiver()
        stream = self.receiver_stream(
            receiver,
            name=name,
            buffer_capacity=buffer_capacity,
            max_rate=max_rate,
            buffer_bytes=buffer_bytes,
        )
        return PushStream(self, stream._node, receiver)

    def union(self, *streams: DStream[Any], name: str | None = None) -> DStream[Any]:
        """The records of several streams of this context in one stream."""
        if not streams:
            raise ConfigurationError("union() needs at least one stream")
        nodes = tuple(self._own(stream, "union") for stream in streams)
        return DStream(self, UnionNode(self._graph, nodes, name))

    def sql(self, query: str, **streams: DStream[Any]) -> DStream[Any]:
        """A DuckDB query over the batches of several streams of the same batch
        time, each the table of its keyword's name:
        ``ssc.sql("SELECT ... FROM clicks c JOIN users u USING (user)",
        clicks=clicks, users=users)``. The streams must slide alike. The result
        is a columnar stream, as :meth:`DStream.sql`'s (parsed now, DuckDB's
        message in an OperatorError when it fails on a batch).
        """
        from .sql import SqlNode, check_query

        checked = check_query(query, "ssc.sql")
        if not streams:
            msg = "ssc.sql() needs the streams it queries as keywords: ssc.sql(query, name=stream)"
            raise ConfigurationError(msg)
        nodes = {table: self._own(stream, "ssc.sql") for table, stream in streams.items()}
        return DStream(self, SqlNode(nodes, checked, None))

    def _own(self, stream: Any, operator: str) -> Any:
        if not isinstance(stream, DStream):
            raise ConfigurationError(f"{operator}() takes DStreams, not {type(stream).__name__}")
        if stream.context is not self:
            raise ConfigurationError(f"{operator}(): the stream belongs to another context")
        return stream._node

    def add_listener(self, listener: StreamingListener, *, inline: bool = False) -> None:
        """Register a listener for batch and receiver events.

        Any object works; the callbacks it lacks are skipped. Its events come in
        order from a task of its own through a bounded queue (a listener that
        falls behind by more than :data:`streamio.bus.DEFAULT_QUEUE_SIZE`
        events loses the newest, counted in :meth:`listener_statistics` and
        warned about); what it raises is logged and counted, never fatal.
        Under a :class:`~streamio.ManualClock`, ``advance()`` returns once the
        listeners have had the events of the batches it ran.

        Args:
            listener: the listener.
            inline: call it on the task that posts the event (the scheduler's,
                a receiver's), at that moment: for a connector that must act
                on a batch cut before anything else runs (the Kafka source's
                ``max_rate_per_partition``). Its callbacks must be plain
                functions, and quick: the batch waits for them.

        Raises:
            ConfigurationError: an inline listener with an ``async`` callback.
        """
        if inline:
            check_inline(listener)
        self._listeners.append((listener, bool(inline)))

    def listener_statistics(self) -> list[ListenerStatistics]:
        """Per listener, in registration order: events delivered, dropped (its
        queue was full), failed (the callback raised) and queued now. Empty
        before :meth:`start`."""
        return [] if self._runtime is None else self._runtime.bus.statistics()

    def dashboard_app(self) -> Any:
        """The live dashboard of this context as an ASGI app, for an application to
        mount in its own server: ``app.mount("/streamio", ssc.dashboard_app())``
        (Starlette, FastAPI). It serves the page, its live event stream and
        ``/metrics``, and only reads: nothing it serves changes the job. Call it
        before ``start()``, so that it sees the job from its first batch.

        Raises:
            ConfigurationError: when ``streamio[dashboard]`` is not installed.
            ContextStateError: once the context has started.
        """
        return load_dashboard("app").dashboard_app(self._monitoring())

    def metrics_app(self) -> Any:
        """The Prometheus exporter of this context alone, as an ASGI app
        (``app.mount("/metrics", ssc.metrics_app())``). Call it before ``start()``.

        Raises:
            ConfigurationError: when ``streamio[metrics]`` is not installed.
            ContextStateError: once the context has started.
        """
        return load_dashboard("exporter").metrics_app(self._monitoring())

    def _monitoring(self) -> Monitor:
        """The dashboard's monitor, created (and listening) on first use."""
        if self._monitor is None:
            if self._runtime is not None:
                msg = (
                    "the dashboard, metrics and to_dashboard() must be set up before "
                    "start(), so that they see the job from its first batch"
                )
                raise ContextStateError(msg)
            self._monitor = Monitor(self._graph, self._clock, self._retained_batches)
            # delivered by the bus: a slow page or scrape never holds a batch
            self._listeners.extend(((self._monitor.registry, False), (self._monitor, False)))
        return self._monitor

    def remember(self, duration: float) -> None:
        """Keep each stream's computed batches for ``duration`` seconds.

        By default a batch is dropped once its outputs have run.
        """
        self._graph.remember = max(
            self._graph.remember, check_number(duration, "remember duration")
        )

    # -- checkpoints -------------------------------------------------------------

    def checkpoint(
        self,
        directory: str | os.PathLike[str],
        interval: float | None = None,
        *,
        write_ahead_log: bool = False,
        serializer: Serializer | None = None,
    ) -> None:
        """Checkpoint the job into ``directory`` (Spark's ``ssc.checkpoint``).

        Every ``interval`` seconds of batches (a multiple of the batch interval;
        by default the larger of 10 s and the batch interval, as Spark's), after
        every output of the batch has finished, the job's state is saved: the
        batch time, each input's source position, the state of
        ``update_state_by_key``, ``map_with_state``, windows and event-time
        windows. Positions are committed to the sources (Kafka group offsets,
        the directory source's ledger) only once a checkpoint covering them is
        written, and a graceful stop writes a final one. Resume with
        :meth:`get_or_create`. See ``streamio.checkpoint`` for the store.

        Args:
            directory: where the checkpoint lives (created when missing). Local
                and trusted: state is pickled, and loading a pickle runs code.
            interval: seconds between checkpoints (a multiple of the batch
                interval).
            write_ahead_log: log what receivers that cannot replay (socket,
                ``from_async_iterable``, push streams, receivers that are not
                ``replayable``) store, before it counts as received, so that a
                crash loses none of it.
            serializer: how keyed state is turned into bytes (default pickle;
                :class:`~streamio.checkpoint.JsonSerializer`, or any object with
                ``dumps`` and ``loads``).

        Raises:
            ConfigurationError: for a wrong argument, or an input that cannot be
                checkpointed (a queue stream; ``from_async_iterable`` and push
                streams without the write-ahead log).
        """
        if self._task_group is not None and self._runtime is not None:
            raise ContextStateError("checkpoint() must be called before start()")
        self._checkpoint = checkpoint_settings(
            directory, interval, self._interval, write_ahead_log, serializer
        )
        for node in self._graph.nodes:
            check_checkpointable(node, write_ahead_log)

    def _check_checkpointable(self, node: Any) -> None:
        if self._checkpoint is not None:
            check_checkpointable(node, self._checkpoint.write_ahead_log)

    @classmethod
    def get_or_create(
        cls, directory: str | os.PathLike[str], setup: Callable[[], StreamingContext]
    ) -> StreamingContext:
        """The context of ``setup()``, resumed from the checkpoint in ``directory``
        when there is one (Spark's ``StreamingContext.getOrCreate``).

        ``setup`` builds the whole job (streams and outputs) and returns its
        context; it is called in either case, so it must build the same graph
        each time (give streams ``name=`` to keep them recognisable). When the
        directory holds a checkpoint, the job resumes from it at ``start()``:
        state, positions and the batch grid as they were after the checkpoint's
        batch; the batches of the time the job was down run first. A graph that
        changed since the checkpoint fails at start with
        :class:`~streamio.CheckpointError` naming what changed.

        Args:
            directory: the checkpoint directory; ``setup`` may call
                ``ssc.checkpoint(directory, ...)`` itself (to choose an interval),
                otherwise it is called with the defaults.
            setup: builds and returns a new, unstarted context.
        """
        ssc = setup()
        if not isinstance(ssc, StreamingContext):
            msg = f"get_or_create(): setup() must return a StreamingContext, not {ssc!r}"
            raise ConfigurationError(msg)
        if ssc._checkpoint is None:
            ssc.checkpoint(directory)
        elif not same_directory(ssc._checkpoint.directory, directory):
            msg = (
                f"get_or_create({str(directory)!r}): setup() checkpoints into "
                f"{str(ssc._checkpoint.directory)!r}; use the same directory in both"
            )
            raise ConfigurationError(msg)
        ssc._restore = has_checkpoint(directory)
        return ssc

    @staticmethod
    def has_checkpoint(directory: str | os.PathLike[str]) -> bool:
        """Whether ``directory`` holds a checkpoint (or a write-ahead log with
        records) that :meth:`get_or_create` would resume."""
        return has_checkpoint(directory)

    @property
    def resumed(self) -> bool:
        """Whether this context resumes a checkpoint (see :meth:`get_or_create`)."""
        return self._restore

    @classmethod
    def get_active(cls) -> StreamingContext | None:
        """The context started in this process and not yet stopped, or None
        (PySpark's ``StreamingContext.getActive``)."""
        reference = StreamingContext._last_started
        active = reference() if reference is not None else None
        if active is not None and active.state is ContextState.ACTIVE:
            return active
        return None

    @classmethod
    def get_active_or_create(
        cls,
        directory: str | os.PathLike[str] | None,
        setup: Callable[[], StreamingContext],
    ) -> StreamingContext:
        """The active context, else :meth:`get_or_create` with ``directory`` (or
        ``setup()`` when ``directory`` is None), as PySpark's ``getActiveOrCreate``."""
        active = cls.get_active()
        if active is not None:
            return active
        if directory is None:
            ssc = setup()
            if not isinstance(ssc, StreamingContext):
                msg = f"setup() must return a StreamingContext, not {ssc!r}"
                raise ConfigurationError(msg)
            return ssc
        return cls.get_or_create(directory, setup)

    # -- lifecycle --------------------------------------------------------------

    async def __aenter__(self) -> StreamingContext:
        if self._task_group is not None:
            raise ContextStateError("a StreamingContext can be entered only once")
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        if STOP_ON_SIGNALS.get():
            self.stop_on_signals()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._task_group is not None
        self._started_or_left.set()
        if self.state is ContextState.ACTIVE:
            self._request_stop(graceful=exc_type is None)
        try:
            suppressed = await self._task_group.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The task group wraps the body's own exception: give it back unwrapped.
            single = single_error(group)
            if single is group:
                raise
            if single is exc:
                return False
            raise single from single.__cause__
        finally:
            self._state = ContextState.STOPPED
        runtime = self._runtime
        error = None if runtime is None else runtime.take_error() or runtime.take_batch_error()
        if error is not None:
            raise error
        return suppressed

    def start(self) -> _Completion:
        """Start receiving and processing.

        Returns at once; ``await ssc.start()`` also waits until every receiver has
        opened (the first batch is the first grid time after that), and raises
        the error that stopped the context if it failed first, so an application
        does not go on without its stream. Cancelling that wait leaves the
        context starting.

        Raises:
            ConfigurationError: when no output operation is registered.
            ContextStateError: when started twice, or outside ``async with``.
            ReceiverError: (awaited) when a receiver failed to open, after its
                restarts; the block's exit does not raise it again.
        """
        if self.state is not ContextState.INITIALIZED:
            raise ContextStateError(
                f"start() on a context that is {self.state.value}; "
                "a context can be started only once"
            )
        if self._task_group is None:
            msg = "start() needs a running context: use `async with StreamingContext(...) as ssc`"
            raise ContextStateError(msg)
        if not self._graph.outputs:
            msg = (
                "no output operation registered: add one (foreach_batch, pprint, ...) to "
                "a stream before start(), otherwise nothing would be computed"
            )
            raise ConfigurationError(msg)
        for node in self._graph.nodes:
            self._check_checkpointable(node)
        sock = None
        if self._dashboard_port is not None:
            self._monitoring()
            sock = load_dashboard("server").bind(self._dashboard_port)
            self._dashboard_url = "http://{}:{}/".format(*sock.getsockname())
        self._graph.frozen = True
        self._runtime = Runtime(
            self._graph,
            self._clock,
            self._listeners,
            max_restarts=self._max_restarts,
            backoff=self._backoff,
            stop_timeout=self._stop_timeout,
            executor_setting=self._executor_setting,
            max_workers=self._max_workers,
            backpressure=self._backpressure,
            checkpoint=self._checkpoint,
            restore=self._restore,
            on_batch_error=self._on_batch_error,
        )
        self._runtime.start(self._task_group)
        if self._monitor is not None:
            self._task_group.start_soon(self._run_monitor, self._monitor, self._runtime, sock)
        self._state = ContextState.ACTIVE
        StreamingContext._last_started = weakref.ref(self)
        self._started_or_left.set()
        return _Completion(self._runtime.wait_started)

    async def _run_monitor(self, monitor: Monitor, runtime: Runtime, sock: Any) -> None:
        """Until the job has terminated: serve the dashboard on ``sock`` (when
        ``dashboard=`` was given), then tell the monitor's pages that it ended."""

        async def job_ended() -> None:
            await runtime.terminated.wait()
            monitor.stop()  # before the server stops: it waits for open streams

        try:
            if sock is None:
                await job_ended()
            else:
                app = load_dashboard("app").dashboard_app(monitor)
                await load_dashboard("server").serve_app(app, sock, job_ended)
        finally:
            monitor.stop()  # also when cancelled: the pages' event streams end

    def stop(self, graceful: bool = True) -> _Completion:
        """Stop the context.

        Graceful (the default): the batch in progress finishes, receivers stop,
        and the records they buffered are processed in final batches (cut at once,
        at the next grid times), all within ``stop_timeout`` seconds of the
        context's clock; past it the stop turns hard and the block's exit raises
        :class:`~streamio.StopTimeoutError` naming the records left (not
        committed). Otherwise (``graceful=False``) the runtime is cancelled now,
        buffered records are dropped, and work still running in the context's
        process pool is abandoned (its workers killed).

        Returns at once; ``await ssc.stop()`` also waits until the context has
        terminated. Awaited from a task of the context's own job (an output
        function, a ``map_async`` function, a task they started such as a sink's
        delivery, a listener callback, a receiver) it returns once the stop is
        requested, without waiting: that task is part of what the stop waits
        for. Cancelling the wait does not undo the stop.
        """
        if self.state is ContextState.ACTIVE:
            self._request_stop(graceful)
        elif self._state is ContextState.INITIALIZED:
            self._state = ContextState.STOPPED
            self._never_started.set()
            self._started_or_left.set()
        return _Completion(self._wait_stopped)

    def stop_on_signals(self) -> _Completion:
        """Stop gracefully on SIGTERM or SIGINT, and at once on a second one.

        For an application that owns its process (a service under systemd or
        Kubernetes, a command run in a terminal): the first signal stops the
        context as :meth:`stop` does (receivers stop receiving, the buffered
        batches are processed and committed, within ``stop_timeout``), so
        ``await_termination()`` returns and the block exits normally; a second
        one stops it at once (``stop(graceful=False)``). The signals are watched
        by a task of the context's task group until the context has terminated;
        their previous handlers are back then. ``streamio.run(main,
        stop_on_signals=True)`` does this for every context ``main`` enters.

        Returns at once; ``await ssc.stop_on_signals()`` also waits until the
        signals are watched. A second call does nothing more.

        Raises:
            ContextStateError: outside ``async with``, or once the context stopped.
        """
        if self._task_group is None:
            msg = "stop_on_signals() needs a running context: call it inside `async with`"
            raise ContextStateError(msg)
        if self.state is ContextState.STOPPED:
            raise ContextStateError("stop_on_signals() on a context that has stopped")
        if self._signals_watched is None:
            self._signals_watched = anyio.Event()
            self._task_group.start_soon(
                watch_signals, self._signal_stop, self._terminated, self._signals_watched
            )
        return _Completion(self._signals_watched.wait)

    def _signal_stop(self, graceful: bool) -> None:
        if self.state is ContextState.ACTIVE:
            self._request_stop(graceful)

    async def _terminated(self) -> None:
        """Return once the context has terminated, or was left without starting."""
        await self._started_or_left.wait()
        if self._runtime is not None:
            await self._runtime.terminated.wait()

    async def _wait_stopped(self) -> None:
        if self._runtime is None:
            await self._never_started.wait()
        else:
            await self._runtime.wait_stopped()

    def _request_stop(self, graceful: bool) -> None:
        assert self._runtime is not None
        self._runtime.request_stop(graceful)

    async def await_termination(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until the context stops; True if it did, False after ``timeout``
        seconds of the context's clock (a :class:`~streamio.ManualClock` must be
        advanced for it to pass).

        Cancelling the wait leaves the context running.

        Raises:
            the error that stopped the context (OperatorError, ReceiverError,
                StopTimeoutError, ...); with ``on_batch_error="continue"``, the
                error of a batch that failed since the last call (at once, even
                if the batch failed before this call; the context keeps running).
            ContextStateError: if the context was never started, or when awaited
                from a task of the context's own job, which would wait for itself.
        """
        if self._runtime is None:
            if self._state is ContextState.INITIALIZED:
                msg = "await_termination() before start(): call ssc.start() first"
                raise ContextStateError(msg)
            return True
        runtime = self._runtime
        if runtime.inside() and not runtime.terminated.is_set():
            msg = (
                "await_termination() inside the context's own job (an output, a "
                "map_async function, a listener, a receiver) would wait for itself; "
                "call ssc.stop() there, and await the termination outside the job"
            )
            raise ContextStateError(msg)
        runtime.waiters += 1
        try:
            async with move_on_after(self._clock, timeout):
                await runtime.wait_terminated_or_failed()
        finally:
            runtime.waiters -= 1
        batch_error = runtime.take_batch_error()
        if batch_error is not None:
            raise batch_error
        if not runtime.terminated.is_set():
            return False
        error = runtime.take_error()
        if error is not None:
            raise error
        return True
