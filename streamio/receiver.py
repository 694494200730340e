"""The receiver contract and the supervision of receiver tasks.

A receiver brings records from outside (a socket, a broker, a directory) into
its stream's bounded buffer. Implement :class:`Receiver` and attach it with
``ssc.receiver_stream(receiver)``. The runtime opens it before the first batch,
runs it in the context's task group, restarts it with backoff when it raises and,
once every output of a batch has finished, tells it which position that batch
covered so it can commit (Kafka offsets, file names).
"""

from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

import anyio
from anyio.abc import TaskStatus

from .buffer import BufferStatistics, ChunkBuffer
from .errors import ConnectorError, ReceiverError
from .listener import ReceiverInfo

__all__ = ["Receiver", "ReceiverOutput"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# How long a receiver's aclose() may take while the context stops.
_CLOSE_TIMEOUT = 10.0


Notify = Callable[[str, ReceiverInfo], Awaitable[None]]


class ReceiverOutput(Generic[T]):
    """Where a receiver stores what it receives: its stream's bounded buffer.

    Attributes:
        stream: the input stream's name.
        attempt: how many times the receiver has been started (1 the first time).
    """

    def __init__(
        self, buffer: ChunkBuffer[T], *, stream: str = "", notify: Notify | None = None
    ) -> None:
        self._buffer = buffer
        self._notify = notify
        self.stream = stream
        self.attempt = 0

    async def put_many(self, records: Iterable[T], position: Any = None) -> None:
        """Store a chunk of records; waits while the buffer is full (backpressure).

        Args:
            records: the chunk, in order: any iterable (copied into a list), or a
                :class:`~streamio.LazyChunk`, stored as it is and built into
                records only when a stage reads them.
            position: how far the source has been read once this chunk is stored
                (an offset, a file name); given back to :meth:`Receiver.commit`
                once a batch holding this chunk has been fully output.
        """
        await self._buffer.put_many(records, position)

    def put_many_nowait(self, records: Iterable[T], position: Any = None) -> None:
        """Store a chunk whole if the buffer has room for it now; never wait.

        For a receiver that acts before it waits for space (the Kafka source
        pauses its partitions, then waits in :meth:`put_many`).

        Raises:
            anyio.WouldBlock: the chunk does not fit whole; nothing was stored.
        """
        self._buffer.put_many_nowait(records, position)

    async def put(self, record: T, position: Any = None) -> None:
        """Store one record. Prefer :meth:`put_many` when records come in chunks."""
        await self._buffer.put(record, position)

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
    ``aclose`` and starts over with ``open`` after a backoff, up to the context's
    ``max_receiver_restarts``; then the error stops the context. A
    :class:`~streamio.ConnectorError` with ``retriable=False`` (refused
    credentials, a wrong option) stops it at once.

    A graceful stop cancels ``run`` first, processes what the receivers buffered
    in final batches and commits their positions (:meth:`commit` is called after
    ``run`` ended), and only then calls ``aclose``: a source that commits to its
    origin (Kafka offsets) is still connected for those last commits.

    Receivers are async context managers too, for use outside a context.

    Attributes:
        restartable: False for a receiver that cannot resume after an error
            (its first error stops the context).
    """

    restartable: bool = True

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
        """Every output of the batches up to ``position`` has finished: commit it."""

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
    max_restarts: int,
    backoff: float,
    notify: Notify,
    stop: GracefulStop,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run a receiver until its source ends, restarting it when it fails.

    ``task_status.started()`` is called once the receiver has opened for the
    first time. Raises ReceiverError (with the last failure chained) when the
    receiver failed more than ``max_restarts`` times. When ``stop`` stops the
    receivers, ``aclose`` waits until ``stop`` allows it (final batches committed).
    """
    attempt = 0
    started = False
    delay = backoff
    try:
        while True:
            attempt += 1
            output.attempt = attempt
            try:
                try:
                    with stop.receiving() as receiving:
                        await receiver.open()
                        if not started:
                            started = True
                            task_status.started()
                        await notify("started", ReceiverInfo(stream, attempt))
                        await receiver.run(output)
                    if receiving.cancel_called:  # stopped by a graceful stop
                        await stop.wait_close_allowed()
                finally:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT):
                        await receiver.aclose()
            except Exception as exc:
                logger.warning("receiver of %r failed (attempt %d): %r", stream, attempt, exc)
                await notify("error", ReceiverInfo(stream, attempt, error=exc))
                if attempt > max_restarts or not _may_restart(receiver, exc):
                    raise ReceiverError(stream, attempt, f"{type(exc).__name__}: {exc}") from exc
                with stop.receiving() as backing_off:
                    await anyio.sleep(delay)
                if backing_off.cancel_called:
                    return
                delay = min(delay * 2, 30.0)
            else:
                return
    finally:
        with anyio.CancelScope(shield=True):
            await notify("stopped", ReceiverInfo(stream, attempt))


def _may_restart(receiver: Receiver[Any], error: Exception) -> bool:
    """Whether starting ``receiver`` again after ``error`` can help."""
    if isinstance(error, ConnectorError) and not error.retriable:
        return False
    return receiver.restartable
