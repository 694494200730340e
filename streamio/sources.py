"""In-process sources that belong to the core (``queue_stream`` is a graph node)."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, Iterable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

import anyio

from .columnar import as_chunk
from .dstream import DStream
from .errors import ContextStateError
from .receiver import Receiver, ReceiverOutput

if TYPE_CHECKING:
    from .context import StreamingContext
    from .graph import Node

__all__ = ["AsyncIterableReceiver", "PushReceiver", "PushStream"]

T = TypeVar("T")

# The most records an AsyncIterableReceiver takes from its iterator before it waits
# for them to be stored: one buffer operation per few thousand records, and a bound on
# what is in hand.
_MAX_CHUNK = 4096


class AsyncIterableReceiver(Receiver[T]):
    """Stores every item of an async iterable, in order, as one record.

    Items are stored in chunks of what the iterator has ready. The iterating task
    only collects them; a helper task stores what was collected whenever it gets
    to run, which is when the iterating task waits: when the iterator waits for its
    next item, or when 4096 records are in hand (then the iterating task waits for
    them to be taken, and a full buffer holds it back). So no record is held back
    while the iterator blocks, no timer is involved, and the cost per record stays
    close to that of the iteration itself.

    An iterator that raised cannot be resumed, so this receiver is not restarted:
    its error stops the context, once the records it gave are stored. When the
    context stops, an async generator is closed (its ``finally`` blocks run).
    """

    restartable = False

    def __init__(self, iterable: AsyncIterable[T]) -> None:
        self._iterator = aiter(iterable)

    async def run(self, output: ReceiverOutput[T]) -> None:
        handover = _Handover(output)
        taken = handover.taken
        error: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(handover.run)
            try:
                async for item in self._iterator:
                    taken.append(item)
                    if len(taken) >= handover.limit:
                        await handover.collected()
            except Exception as exc:  # raised outside the task group, as it is
                error = exc
            await handover.finish()
        if error is not None:
            raise error

    async def aclose(self) -> None:
        close = getattr(self._iterator, "aclose", None)
        if close is not None:
            await close()


class _Handover(Generic[T]):
    """The helper task of :class:`AsyncIterableReceiver`: stores the records its
    iterating task collects in ``taken``, in order, a chunk at a time.

    ``limit`` is how many records in ``taken`` make the iterating task call
    :meth:`collected`: 1 while the helper is idle (the first record wakes it),
    ``_MAX_CHUNK`` while it is awake (a full chunk waits to be taken).
    """

    def __init__(self, output: ReceiverOutput[T]) -> None:
        self._output = output
        self.taken: list[T] = []
        self.limit = 1
        self._wake = anyio.Event()
        self._room = anyio.Event()
        self._finished = False
        self._drained = anyio.Event()

    async def collected(self) -> None:
        """Called by the iterating task when ``taken`` reaches ``limit``."""
        if self.limit == 1:  # the helper stores this chunk once the iterator waits
            self.limit = _MAX_CHUNK
            self._wake.set()
        else:  # a full chunk: wait until the helper takes it
            self._room = anyio.Event()
            await self._room.wait()

    async def finish(self) -> None:
        """The iterator ended: return once every record collected is stored."""
        self._finished = True
        self._wake.set()
        await self._drained.wait()

    async def run(self) -> None:
        taken = self.taken
        try:
            while True:
                if not taken:
                    if self._finished:
                        self._drained.set()
                        return
                    self._wake = anyio.Event()
                    self.limit = 1
                    await self._wake.wait()
                    continue
                chunk = taken.copy()
                taken.clear()
                self._room.set()
                await self._output.put_many(chunk)
        finally:
            if taken:  # cancelled: put_many stores the rest even then, in order
                chunk = taken.copy()
                taken.clear()
                await self._output.put_many(chunk)


class _Delivery(Generic[T]):
    """One chunk on its way from a sender to the receiver task."""

    __slots__ = ("done", "records", "stored", "taken", "withdrawn")

    def __init__(self, records: Sequence[T]) -> None:
        self.records = records
        self.done = anyio.Event()  # set once stored, or once refused (stored stays False)
        self.taken = False  # the receiver task holds it: it will be stored in full
        self.stored = False
        self.withdrawn = False  # its sender was cancelled before the receiver took it


class PushReceiver(Receiver[T]):
    """Stores the chunks that the application hands over with :meth:`send`.

    Senders queue their chunks (first come, first stored); the receiver task
    stores them one at a time, so each chunk stays whole and in order in the
    buffer, and a full buffer makes the senders wait. Only the receiver task
    writes to the buffer: when a graceful stop cancels it, the chunk it holds is
    stored in full before the final batches are cut, and the chunks still queued
    are refused (their senders get :class:`~streamio.ContextStateError`), so no
    accepted record is left behind.

    Its position is the number of records stored so far (``sent``).
    """

    def __init__(self) -> None:
        self._queue: deque[_Delivery[T]] = deque()
        self._arrived: anyio.Event | None = None
        self._ended = False
        self._stream = ""
        self.sent = 0

    async def send(self, records: Iterable[T]) -> None:
        """Store ``records`` as one chunk in the stream's buffer; return once stored.

        Before the receiver runs (the context not started yet), the chunk waits
        for it. A :class:`~streamio.LazyChunk` is stored as it is, and so is a
        ``pyarrow.RecordBatch`` or ``Table`` (as Arrow data); anything else is
        copied into a list first.

        Cancelling a ``send`` that waits withdraws its chunk if the receiver has
        not taken it yet (nothing of it is stored); once taken, the chunk is
        stored in full all the same.

        Raises:
            ContextStateError: when the stream has stopped receiving (its context
                is stopping or stopped); the records were not stored.
        """
        if self._ended:
            raise _refused(self._stream)
        chunk = as_chunk(records)
        delivery = _Delivery(chunk)
        self._queue.append(delivery)
        if self._arrived is not None:
            self._arrived.set()
        try:
            await delivery.done.wait()
        finally:
            delivery.withdrawn = not delivery.taken
        if not delivery.stored:
            raise _refused(self._stream)

    async def run(self, output: ReceiverOutput[T]) -> None:
        self._stream = output.stream
        queue = self._queue
        try:
            while True:
                while not queue:
                    self._arrived = anyio.Event()
                    await self._arrived.wait()
                delivery = queue.popleft()
                if delivery.withdrawn:
                    continue
                delivery.taken = True
                self.sent += len(delivery.records)
                try:
                    # cancelled while the buffer is full, put_many still stores the rest
                    await output.put_many(delivery.records, position=self.sent)
                finally:
                    delivery.stored = True
                    delivery.done.set()
        finally:
            self._end()

    async def aclose(self) -> None:
        self._end()

    def _end(self) -> None:
        """Accept nothing more, and refuse what is queued."""
        self._ended = True
        while self._queue:
            self._queue.popleft().done.set()


def _refused(stream: str) -> ContextStateError:
    """The error of a send that came after the stream stopped receiving."""
    name = f"push stream {stream!r}" if stream else "this push source"
    return ContextStateError(
        f"{name} no longer takes records: its context is stopping or has stopped "
        "(these records were not stored)"
    )


class PushStream(DStream[T]):
    """A stream that the application feeds itself: ``await stream.send(records)``.

    Made by :meth:`StreamingContext.push_stream`. It is a DStream (every operator
    works on it) with a buffer like any receiver stream: a full buffer makes
    ``send`` wait, which is the backpressure (a web handler then answers later).

    >>> async def main():
    ...     clock = ManualClock()
    ...     async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
    ...         events = ssc.push_stream(name="events")
    ...         events.count().pprint()
    ...         await ssc.start()
    ...         await events.send(["login", "click"])  # in the buffer when it returns
    ...         await clock.advance(1.0)
    >>> run(main(), use_uvloop=False)
    -------------------------------------------
    Time: 1970-01-01 00:00:01
    -------------------------------------------
    2
    <BLANKLINE>
    """

    __slots__ = ("_receiver",)

    def __init__(
        self, context: StreamingContext, node: Node, receiver: PushReceiver[T]
    ) -> None:
        super().__init__(context, node)
        self._receiver = receiver

    async def send(self, records: Iterable[T]) -> None:
        """Store ``records`` (in order, as one chunk) in the stream's buffer.

        Returns once they are in the buffer, so the next batch holds them; waits
        while the buffer is full. Concurrent senders are served in the order they
        called. Cancelling a waiting ``send`` withdraws the records if they were
        not handed over yet; records handed over are stored in full (what was
        stored stays stored).

        Raises:
            ContextStateError: before ``ssc.start()``, and once the context is
                stopping, stopped or failed (a graceful stop takes no new
                records); the records were then not stored.
        """
        from .context import ContextState  # context.py imports this module

        state = self.context.state
        if state is ContextState.INITIALIZED:
            msg = (
                f"push stream {self.name!r} takes records once its context has started: "
                "call ssc.start() before send()"
            )
            raise ContextStateError(msg)
        if state is ContextState.STOPPED:
            raise _refused(self.name)
        await self._receiver.send(records)

    async def send_one(self, record: T) -> None:
        """Store one record; see :meth:`send`. Prefer ``send`` for several."""
        await self.send((record,))
