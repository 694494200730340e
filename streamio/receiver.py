"""The receiver contract and the supervision of receiver tasks.

A receiver brings records from outside (a socket, a broker, a directory) into
its stream's bounded buffer. Implement :class:`Receiver` and attach it with
``ssc.receiver_stream(receiver)``. The runtime opens it before the first batch,
runs it in the context's task group, restarts it with backoff when it raises and,
once every output of a batch has finished, tells it which position that batch
covered so it can commit (Kafka offsets, file names).

Restarts are budgeted per run of consecutive failures: an attempt that stored
records, or stayed up longer than :data:`MAX_RESTART_BACKOFF`, starts the count
and the backoff over. Every wait here (backoff, close timeout) is on the
context's clock.
"""

from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

import anyio
from anyio.abc import TaskStatus

from .buffer import BufferStatistics, ChunkBuffer
from .chunk import LazyChunk
from .clock import Clock
from .errors import ConnectorError, ReceiverError
from .listener import ReceiverInfo
from .record_errors import RejectedRecords
from .timeouts import move_on_after, sleep

__all__ = ["MAX_RESTART_BACKOFF", "Receiver", "ReceiverOutput"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds: the restart backoff doubles from ``receiver_restart_backoff`` up to
#: this. An attempt that stays up longer than this counts as a recovery, as one
#: that stored records does: the count of failures and the backoff start over.
MAX_RESTART_BACKOFF = 30.0

# Seconds (on the context's clock) that a receiver's aclose(), and then the
# listeners' on_receiver_stopped, may take once the receiver ends.
_CLEANUP_TIMEOUT = 10.0


Notify = Callable[[str, ReceiverInfo], Awaitable[None]]
# Queues a chunk for the write-ahead log, which stores it in the buffer once on disk.
ChunkLog = Callable[[Sequence[Any]], Awaitable[None]]


class ReceiverOutput(Generic[T]):
    """Where a receiver stores what it receives: its stream's bounded buffer.

    Attributes:
        stream: the input stream's name.
        attempt: how many times the receiver has been started (1 the first time).
    """

    def __init__(
        self,
        buffer: ChunkBuffer[T],
        *,
        stream: str = "",
        notify: Notify | None = None,
        log: ChunkLog | None = None,
        rejected: RejectedRecords | None = None,
    ) -> None:
        self._buffer = buffer
        self._notify = notify
        self._log = log  # the write-ahead log, when the stream's chunks go through it
        self._rejected = rejected if rejected is not None else RejectedRecords()
        self.stream = stream
        self.attempt = 0
        self._stored = False  # whether the current attempt stored anything
        self._last_position: Any = None  # the last position stored, by any attempt

    async def put_many(
        self,
        records: Iterable[T],
        position: Any = None,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Store a chunk of records; waits while the buffer is full (backpressure).

        Args:
            records: the chunk, in order: any iterable (copied into a list), or a
                :class:`~streamio.LazyChunk`, stored as it is and built into
                records only when a stage reads them.
            position: how far the source has been read once this chunk is stored
                (an offset, a file name); given back to :meth:`Receiver.commit`
                once a batch holding this chunk has been fully output.
            metadata: what to tell listeners about this chunk (its file, the
                offsets it spans). The batch that takes the chunk's last record
                merges it with its other chunks' into ``BatchInfo.input_metadata``
                for this stream: dicts merge key by key, lists concatenate,
                ranges span (``range(0, 10)`` then ``range(10, 20)`` make
                ``range(0, 20)``), other values are replaced by later ones. Free
                when not given; keep it small (it is kept with the chunk).

        With the checkpoint's write-ahead log on for this stream, the chunk goes
        to the log instead: it reaches the buffer, and counts as received, once
        it is appended and fsynced (its position is then its place in the log,
        and ``position`` and ``metadata`` are not used). The call returns once
        the chunk is queued for the log, so the receiver reads on while the disk
        works.
        """
        if self._log is not None:
            await self._log(records if isinstance(records, (list, LazyChunk)) else list(records))
            self._stored = True
            return
        await self._buffer.put_many(records, position, metadata)
        self._stored = True
        if position is not None:
            self._last_position = position

    def put_many_nowait(
        self,
        records: Iterable[T],
        position: Any = None,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Store a chunk whole if the buffer has room for it now; never wait.

        For a receiver that acts before it waits for space (the Kafka source
        pauses its partitions, then waits in :meth:`put_many`). ``metadata`` is
        :meth:`put_many`'s.

        Raises:
            anyio.WouldBlock: the chunk does not fit whole, or the stream's chunks
                go through the write-ahead log (which takes a wait): nothing was
                stored; store it with :meth:`put_many`.
        """
        if self._log is not None:
            raise anyio.WouldBlock
        self._buffer.put_many_nowait(records, position, metadata)
        self._stored = True
        if position is not None:
            self._last_position = position

    async def put(self, record: T, position: Any = None) -> None:
        """Store one record. Prefer :meth:`put_many` when records come in chunks."""
        if self._log is not None:
            await self.put_many([record], position)
            return
        await self._buffer.put(record, position)
        self._stored = True
        if position is not None:
            self._last_position = position

    def reject(self, records: Iterable[tuple[Any, BaseException]], *, dead_letter: bool) -> None:
        """Report records the receiver refused (could not decode), with the error
        of each, rather than dropping them unseen.

        They are counted in the next batch's ``BatchInfo.records_skipped``, or,
        with ``dead_letter=True``, ``records_dead_lettered``, and then go to the
        stream's ``dead_letters()`` as :class:`~streamio.DeadLetter` (give the raw
        record: bytes, topic, offset...). A receiver that dead-letters sets
        :attr:`Receiver.sends_dead_letters`. Their position is committed with the
        chunk stored after them: store one (empty if need be) that covers them.
        """
        if dead_letter:
            self._rejected.dead.extend(records)
        else:
            self._rejected.skipped += sum(1 for _ in records)

    def statistics(self) -> BufferStatistics:
        """The buffer's fill level (records and estimated bytes), its limits and how
        many senders wait."""
        return self._buffer.statistics()

    async def report_error(self, error: BaseException, **extra: Any) -> None:
        """Tell the listeners (``on_receiver_error``) of an error the receiver
        handles itself, such as a lost connection it is re-establishing.

        ``extra`` (for example ``address=...``) reaches them as ``info.extra``.
        """
        if self._notify is not None:
            info = ReceiverInfo(self.stream, self.attempt, error=error, extra=extra)
            await self._notify("error", info)


class Receiver(abc.ABC, Generic[T]):
    """The contract every source of outside data implements.

    Lifecycle, all on the event loop: :meth:`open` (connect), then :meth:`run`
    (receive until the source ends), then :meth:`aclose` (always, even after an
    error or cancellation). If ``open`` or ``run`` raises, the runtime calls
    ``aclose`` and starts over with ``open`` after a backoff (doubling from the
    context's ``receiver_restart_backoff`` up to :data:`MAX_RESTART_BACKOFF`).
    More than ``max_receiver_restarts`` failures in a row stop the context with
    a :class:`~streamio.ReceiverError`; an attempt that stored records, or stayed
    up longer than :data:`MAX_RESTART_BACKOFF`, starts the count (and the
    backoff) over, and ``max_receiver_restarts=None`` restarts it forever. A
    :class:`~streamio.ConnectorError` with ``retriable=False`` (refused
    credentials, a wrong option) stops it at once.

    ``aclose`` comes after the commits of what the receiver stored:

    - when ``run`` returns (its source ended), once the last position it stored
      has been committed, that is once every batch holding its records has been
      output;
    - on a graceful stop, which cancels ``run`` first, once the final batches
      (what the receivers buffered) have been output and committed.

    So a source that commits to its origin (Kafka offsets) is still connected for
    its last commits. A hard stop, or a failure of the context, closes it at
    once, without those commits.

    Receivers are async context managers too, for use outside a context.

    With checkpointing on (``ssc.checkpoint(directory)``), positions are
    committed only once a checkpoint covering them has been written, and a job
    that resumes from a checkpoint calls :meth:`restore` before the first
    :meth:`open`. Positions are then saved in the checkpoint, so they must be
    picklable (plain data: dicts, tuples, numbers, strings).

    Attributes:
        restartable: False for a receiver that cannot resume after an error
            (its first error stops the context).
        replayable: True for a receiver whose source gives its records again
            from a position (Kafka offsets, files by name, sequence numbers):
            with checkpointing on it resumes from the checkpoint's position.
            A receiver that is not replayable loses what it had received but not
            yet checkpointed when the process dies, unless the checkpoint has its
            write-ahead log on.
        schema: for a columnar receiver (one that stores ``pyarrow.RecordBatch``
            chunks), the ``pyarrow.Schema`` of those batches, so that columnar
            operators see an empty batch as an empty table of it; None otherwise.
        sends_dead_letters: True for a receiver that reports records it cannot
            decode with ``output.reject(..., dead_letter=True)``: its stream's
            ``dead_letters()`` then holds them, and must have an output.
    """

    restartable: bool = True
    replayable: bool = False
    schema: Any = None
    sends_dead_letters: bool = False

    async def open(self) -> None:
        """Connect to the source. The first batch waits until every receiver opened."""

    @abc.abstractmethod
    async def run(self, output: ReceiverOutput[T]) -> None:
        """Receive records and store them with ``await output.put_many(chunk)``.

        Return when the source has ended. Cancellation (the context stopping)
        interrupts it; do not swallow it.
        """

    async def aclose(self) -> None:
        """Release what :meth:`open` acquired. Must be idempotent."""

    async def commit(self, position: Any) -> None:
        """Every output of the batches up to ``position`` has finished: commit it.

        With checkpointing on, called only once a checkpoint covering
        ``position`` has been written.
        """

    async def restore(self, position: Any) -> None:
        """The job resumes from a checkpoint whose batches reached ``position`` (a
        position this receiver stored): continue right after it.

        Called once, before the first :meth:`open`. A replayable receiver seeks
        there (the Kafka source reads from the checkpoint's offsets, not the
        group's); this one does nothing.
        """

    async def __aenter__(self) -> Receiver[T]:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class GracefulStop:
    """The two steps of a graceful stop, shared by a context's receivers.

    :meth:`stop_receiving` cancels every receiver's ``open``/``run`` (and any
    restart backoff); once the final batches are committed, :meth:`allow_close`
    lets the receivers that were stopped this way call ``aclose``.
    """

    def __init__(self) -> None:
        self._requested = False
        self._scopes: set[anyio.CancelScope] = set()
        self._none_receiving = anyio.Event()
        self._may_close = anyio.Event()

    def stop_receiving(self) -> None:
        self._requested = True
        for scope in self._scopes:
            scope.cancel()
        if not self._scopes:
            self._none_receiving.set()

    async def wait_stopped(self) -> None:
        """Return once no receiver is receiving any more (after ``stop_receiving``)."""
        await self._none_receiving.wait()

    def allow_close(self) -> None:
        self._may_close.set()

    async def wait_close_allowed(self) -> None:
        await self._may_close.wait()

    @contextlib.contextmanager
    def receiving(self) -> Iterator[anyio.CancelScope]:
        """A scope that ``stop_receiving`` cancels (at once if it was called)."""
        scope = anyio.CancelScope()
        if self._requested:
            scope.cancel()
        self._scopes.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._scopes.discard(scope)
            if self._requested and not self._scopes:
                self._none_receiving.set()


async def supervise(
    receiver: Receiver[T],
    output: ReceiverOutput[T],
    *,
    stream: str,
    clock: Clock,
    max_restarts: int | None,
    backoff: float,
    notify: Notify,
    stop: GracefulStop,
    wait_committed: Callable[[Any], Awaitable[None]],
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run a receiver until its source ends, restarting it when it fails.

    ``task_status.started()`` is called once the receiver has opened for the
    first time, or when a graceful stop ends it before that. A failure is
    followed by a restart after a backoff on ``clock`` (``backoff`` seconds,
    doubling up to :data:`MAX_RESTART_BACKOFF`); an attempt that stored
    anything, or stayed up longer than that cap, resets the count of failures
    and the backoff. Raises ReceiverError (with the last failure chained) after
    more than ``max_restarts`` failures in a row (never when it is None), or at
    once when a restart cannot help.

    When ``run`` returns, ``aclose`` waits until ``wait_committed`` returns for
    the last position stored; when ``stop`` stops the receivers, until ``stop``
    allows it (final batches committed). ``aclose`` and the listeners'
    "stopped" notification each have :data:`_CLEANUP_TIMEOUT` seconds of
    ``clock``, even when the task is cancelled.
    """
    supervision = _Supervision(receiver, output, stream, clock, notify, stop, task_status)
    failures = 0  # in a row, since the last attempt that made progress
    delay = backoff
    try:
        while True:
            supervision.attempt += 1
            try:
                await supervision.run_attempt(wait_committed)
            except Exception as exc:
                if output._stored or supervision.up_for > MAX_RESTART_BACKOFF:
                    failures, delay = 0, backoff  # it recovered before this failure
                failures += 1
                await supervision.failed(exc, failures, max_restarts)
                with stop.receiving() as backing_off:
                    await sleep(clock, delay)
                if backing_off.cancel_called:
                    supervision.started()
                    return
                delay = min(delay * 2, MAX_RESTART_BACKOFF)
            else:
                return
    finally:
        await _cleanup(
            clock,
            notify("stopped", ReceiverInfo(stream, supervision.attempt)),
            f"the on_receiver_stopped listeners of {stream!r}",
        )


class _Supervision(Generic[T]):
    """One receiver's attempts, for :func:`supervise`."""

    def __init__(
        self,
        receiver: Receiver[T],
        output: ReceiverOutput[T],
        stream: str,
        clock: Clock,
        notify: Notify,
        stop: GracefulStop,
        task_status: TaskStatus[None],
    ) -> None:
        self.receiver = receiver
        self.output = output
        self.stream = stream
        self.clock = clock
        self.notify = notify
        self.stop = stop
        self.attempt = 0
        self.up_for = 0.0  # how long the last attempt was open
        self._task_status: TaskStatus[None] | None = task_status

    def started(self) -> None:
        """Let the context go on (the first time only): the receiver opened or stopped."""
        if self._task_status is not None:
            self._task_status.started()
            self._task_status = None

    async def run_attempt(self, wait_committed: Callable[[Any], Awaitable[None]]) -> None:
        """Open, run and close the receiver once; a failure is raised after ``aclose``."""
        receiver, output, clock = self.receiver, self.output, self.clock
        output.attempt = self.attempt
        output._stored = False
        up_since: float | None = None
        self.up_for = 0.0
        try:
            with self.stop.receiving() as receiving:
                await receiver.open()
                up_since = clock.now()
                self.started()
                await self.notify("started", ReceiverInfo(self.stream, self.attempt))
                await receiver.run(output)
                # The source ended by itself: close once what it stored is
                # committed (a graceful stop meanwhile cancels this wait).
                if output._last_position is not None:
                    await wait_committed(output._last_position)
            if receiving.cancel_called:  # stopped by a graceful stop
                self.started()  # (if it was still opening) the context goes on stopping
                await self.stop.wait_close_allowed()
        finally:
            if up_since is not None:
                self.up_for = clock.now() - up_since
            await _cleanup(clock, receiver.aclose(), f"aclose() of {self.stream!r}")

    async def failed(self, error: Exception, failures: int, max_restarts: int | None) -> None:
        """Report a failure; raise ReceiverError if the receiver is not to be restarted."""
        stream, attempt = self.stream, self.attempt
        logger.warning(
            "receiver of %r failed (attempt %d, %d in a row): %r", stream, attempt, failures, error
        )
        await self.notify("error", ReceiverInfo(stream, attempt, error=error))
        reason = _no_restart(self.receiver, error, failures, max_restarts)
        if reason is not None:
            message = f"{type(error).__name__}: {error} ({reason})"
            raise ReceiverError(stream, attempt, message) from error


async def _cleanup(clock: Clock, step: Awaitable[None], what: str) -> None:
    """Await a cleanup step, even while cancelled, for at most the cleanup timeout."""
    with anyio.CancelScope(shield=True):
        async with move_on_after(clock, _CLEANUP_TIMEOUT) as scope:
            await step
    if scope.cancelled_caught:
        logger.warning("%s took over %ss and was abandoned", what, _CLEANUP_TIMEOUT)


def _no_restart(
    receiver: Receiver[Any], error: Exception, failures: int, max_restarts: int | None
) -> str | None:
    """Why ``receiver`` is not restarted after ``error`` (None: it is), and what to change."""
    if isinstance(error, ConnectorError) and not error.retriable:
        return "the error is not retriable: fix what it names"
    if not receiver.restartable:
        return f"{type(receiver).__name__} cannot be restarted"
    if max_restarts is not None and failures > max_restarts:
        return (
            f"{failures} failures in a row, more than max_receiver_restarts={max_restarts}: "
            "raise max_receiver_restarts or set it to None to retry forever"
        )
    return None
