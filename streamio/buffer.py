"""The bounded buffer between a receiver and the scheduler.

Receivers put *chunks* of records; at each tick the scheduler takes what is there
(up to a cap) without waiting. The buffer is bounded by an estimate of the memory
its records hold, in bytes (128 MiB by default), and optionally by a number of
records too: when either limit is reached, ``put_many`` waits until a tick frees
space. That wait is the backpressure which travels back to the socket or the
Kafka fetch. Nothing is dropped.

The limit is in bytes rather than records because a buffer emptied once per
batch caps a stream at ``limit / batch_interval``: a count of records small
enough to be safe for large records starves a fast stream of small ones, while a
byte budget lets a batch take as many records as fit in the memory allowed.
Each chunk's size is estimated once, when it is stored, from a sample of its
records (:func:`~streamio.chunk.estimate_nbytes`; a lazy chunk by its
:attr:`~streamio.chunk.LazyChunk.nbytes`): the cost does not grow with the records.

A chunk is a list of records, a :class:`~streamio.chunk.LazyChunk` kept as it
is until a stage reads it, or a ``pyarrow.RecordBatch`` (or ``Table``), kept as
Arrow data (:class:`~streamio.columnar.ArrowChunk`) and sliced without copying.
Each chunk may carry a *position* (an offset, a file name): the position of the
last chunk a batch took is what that batch covered, and what the receiver is
told to commit once the batch's outputs have finished.
It may carry *metadata* too (a dict: the file it came from, the offsets it
spans), merged over the chunks a batch takes by :func:`merge_metadata` and shown
to listeners as the batch's ``input_metadata``. Like the position, a chunk's
metadata goes with its last record: a batch that takes only the first part of a
chunk does not report it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel

from .chunk import LazyChunk, estimate_nbytes
from .columnar import as_chunk
from .errors import ConfigurationError

__all__ = ["DEFAULT_BUFFER_BYTES", "BufferStatistics", "ChunkBuffer", "merge_metadata"]

T = TypeVar("T")

# The default memory budget of one receiver's buffer: about a million lines of 60
# characters, or 450,000 Kafka records of that size. Measured with
# benchmarks/socket_wordcount.py, a windowed word count at 470,000 lines/s is not
# held back by it at 0.5 s batches (64 MiB held it to 0.89 of its speed).
DEFAULT_BUFFER_BYTES = 128 * 2**20

# put() yields to the event loop once per this many records, so a receiver that
# always has data cannot starve the loop.
_PUT_CHECKPOINT_EVERY = 512
# put() measures one record in this many (the first one always) and charges the
# others the running estimate: measuring each would cost more than the put.
_PUT_MEASURE_EVERY = 32


@dataclass(frozen=True)
class BufferStatistics:
    """A snapshot of a buffer, for metrics and tests.

    Attributes:
        used: records held now.
        capacity: the most records the buffer holds before senders wait (None:
            no limit in records, only in bytes).
        waiting_senders: receivers blocked because the buffer is full.
        used_bytes: the estimated bytes of memory of the records held now.
        max_bytes: the most estimated bytes the buffer holds before senders wait.
    """

    used: int
    capacity: int | None
    waiting_senders: int
    used_bytes: int
    max_bytes: int

    def would_wait(self, records: int) -> bool:
        """Whether storing ``records`` more would make the sender wait: over the
        limit in records, or the byte budget already spent. Sources that can stop
        reading at their origin ask this before they store a chunk."""
        over_records = self.capacity is not None and self.used + records > self.capacity
        return over_records or self.used_bytes >= self.max_bytes


def merge_metadata(into: dict[str, Any], more: Mapping[str, Any]) -> None:
    """Merge the metadata of a later chunk into ``into`` (a batch's so far).

    Per key: dicts merge key by key (by these rules), lists concatenate, ranges
    span from the first's start to the last's stop (offsets 40..49 then 50..59
    are ``range(40, 60)``), and any other value is replaced by the later one.
    Dicts and lists taken from a chunk are copied, never changed in place.
    """
    for key, value in more.items():
        if key not in into:
            if isinstance(value, dict):
                into[key] = {}
                merge_metadata(into[key], value)
            else:
                into[key] = list(value) if isinstance(value, list) else value
            continue
        old = into[key]
        if isinstance(old, dict) and isinstance(value, Mapping):
            merge_metadata(old, value)
        elif isinstance(old, list) and isinstance(value, list):
            old.extend(value)
        elif isinstance(old, range) and isinstance(value, range):
            into[key] = range(old.start, value.stop)
        else:
            into[key] = value


class _Stored:
    """One stored chunk: its records, position, estimated bytes and metadata."""

    __slots__ = ("metadata", "nbytes", "position", "records")

    def __init__(
        self,
        records: Sequence[Any],
        position: Any,
        nbytes: int,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.records = records
        self.position = position
        self.nbytes = nbytes
        self.metadata = metadata


class ChunkBuffer(Generic[T]):
    """A bounded FIFO of record chunks, each with an optional position.

    Args:
        capacity: the most records it holds (None: no limit in records).
        max_bytes: the most bytes of memory its records hold, estimated per chunk.

    The limits are checked before a chunk is stored, so the buffer holds at most
    ``max_bytes`` (estimated) but for two exceptions, both bounded: a record
    larger than the whole budget is stored alone in an empty buffer (or it could
    never be stored), and a sender whose wait is cancelled stores the rest of its
    chunk so that no record in hand is lost.

    Raises:
        ConfigurationError: when a limit is not a positive whole number.
    """

    def __init__(self, capacity: int | None = None, max_bytes: int = DEFAULT_BUFFER_BYTES) -> None:
        if capacity is not None and (
            isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1
        ):
            msg = (
                "buffer_capacity must be a positive whole number of records or None "
                f"(no limit in records), not {capacity!r}"
            )
            raise ConfigurationError(msg)
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            msg = f"buffer_bytes must be a positive whole number of bytes, not {max_bytes!r}"
            raise ConfigurationError(msg)
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._chunks: deque[_Stored] = deque()
        self._used = 0
        self._used_bytes = 0
        self._waiting_senders = 0
        self._tail_open = False  # the last chunk is ours to append single records to
        self._puts_since_checkpoint = 0
        self._puts_since_measure = 0
        self._put_record_bytes = 0  # put()'s running estimate of one record
        self._space: anyio.Event | None = None
        self._change: anyio.Event | None = None

    def statistics(self) -> BufferStatistics:
        return BufferStatistics(
            self._used, self._capacity, self._waiting_senders, self._used_bytes, self._max_bytes
        )

    def __len__(self) -> int:
        return self._used

    def _notify_change(self) -> None:
        if self._change is not None:
            self._change.set()
            self._change = None

    def _append(
        self,
        records: Sequence[T],
        position: Any,
        nbytes: int,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self._chunks.append(_Stored(records, position, nbytes, metadata))
        self._used += len(records)
        self._used_bytes += nbytes
        self._tail_open = False
        self._notify_change()

    def _room(self, count: int, nbytes: int) -> int:
        """How many of ``count`` records weighing ``nbytes`` in all fit now."""
        fit = count if self._capacity is None else min(count, self._capacity - self._used)
        free_bytes = self._max_bytes - self._used_bytes
        if nbytes > free_bytes:
            fit = min(fit, max(0, free_bytes) * count // nbytes)
        if fit <= 0 and self._used == 0:
            return 1  # a record larger than the budget: stored alone, or never
        return max(fit, 0)

    async def _wait_for_space(self) -> None:
        self._waiting_senders += 1
        self._notify_change()
        try:
            if self._space is None:
                self._space = anyio.Event()
            await self._space.wait()
        finally:
            self._waiting_senders -= 1

    @staticmethod
    def _chunk(records: Iterable[T]) -> tuple[Sequence[T], int]:
        """``records`` as they are stored (a list unless lazy or Arrow) and their
        estimated bytes."""
        chunk = as_chunk(records)
        if isinstance(chunk, LazyChunk):  # Arrow chunks too
            return chunk, max(0, int(chunk.nbytes))
        return chunk, estimate_nbytes(chunk)

    async def put_many(
        self,
        records: Iterable[T],
        position: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Store a chunk of records, waiting while the buffer is full.

        A chunk larger than the free space (in records or bytes) is stored in
        pieces as space frees; the position and the metadata go with the last
        piece. If the wait
        is cancelled (the context is stopping), the rest of the chunk is stored
        anyway, over the limits, so that no record already in hand is lost. A
        :class:`~streamio.chunk.LazyChunk` is stored as it is, a
        ``pyarrow.RecordBatch`` or ``Table`` as an Arrow chunk of its rows (see
        :mod:`streamio.columnar`); anything else is copied into a list. The
        chunk's bytes are estimated once, from a sample.
        """
        chunk, nbytes = self._chunk(records)
        total = len(chunk)
        if total == 0:
            if position is not None or metadata:
                self._append(chunk, position, 0, metadata)
            await anyio.lowlevel.checkpoint()
            return
        stored = stored_bytes = 0
        try:
            while stored < total:
                take = self._room(total - stored, nbytes - stored_bytes)
                if take == 0:
                    await self._wait_for_space()
                    continue
                end = stored + take
                piece = chunk if take == total else chunk[stored:end]
                piece_bytes = nbytes * end // total - stored_bytes  # the pieces add up
                stored, stored_bytes = end, stored_bytes + piece_bytes
                last = stored == total
                self._append(
                    piece, position if last else None, piece_bytes, metadata if last else None
                )
        finally:
            if stored < total:
                self._append(chunk[stored:], position, nbytes - stored_bytes, metadata)
        await anyio.lowlevel.checkpoint()

    def put_many_nowait(
        self,
        records: Iterable[T],
        position: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Store a chunk of records whole if it fits now; never wait.

        For receivers that do something else while the buffer is full (the Kafka
        source pauses its partitions before it waits in :meth:`put_many`).

        Raises:
            anyio.WouldBlock: the chunk does not fit whole; nothing was stored.
        """
        chunk, nbytes = self._chunk(records)
        count = len(chunk)
        fits = (self._capacity is None or self._used + count <= self._capacity) and (
            self._used_bytes + nbytes <= self._max_bytes
        )
        if count and not fits:
            raise anyio.WouldBlock
        if count or position is not None or metadata:
            self._append(chunk, position, nbytes, metadata)

    async def put(self, record: T, position: Any = None) -> None:
        """Store one record (appended to the open tail chunk when possible).

        One record in 32 is measured; the others are charged the running estimate.
        """
        if self._puts_since_measure == 0:
            measured = estimate_nbytes((record,))
            estimate = self._put_record_bytes
            self._put_record_bytes = measured if estimate == 0 else (3 * estimate + measured) // 4
        self._puts_since_measure = (self._puts_since_measure + 1) % _PUT_MEASURE_EVERY
        nbytes = self._put_record_bytes
        if self._room(1, nbytes) == 0:
            await self.put_many((record,), position)
            return
        if self._tail_open and position is None:
            tail = self._chunks[-1]
            tail.records.append(record)  # type: ignore[attr-defined]
            tail.nbytes += nbytes
            self._used += 1
            self._used_bytes += nbytes
            self._notify_change()
        else:
            self._append([record], position, nbytes)
            self._tail_open = position is None
        self._puts_since_checkpoint += 1
        if self._puts_since_checkpoint >= _PUT_CHECKPOINT_EVERY:
            self._puts_since_checkpoint = 0
            await anyio.lowlevel.checkpoint()

    def take(
        self, limit: int | None = None, metadata: dict[str, Any] | None = None
    ) -> tuple[list[Sequence[T]], Any]:
        """Remove and return up to ``limit`` records (all when None), never waiting.

        Returns the chunks taken, in order (the first and last may be parts of
        stored chunks), and the position of the last positioned chunk taken whole
        (None when no such chunk was taken). The metadata of the chunks taken
        whole is merged into ``metadata``, when given.
        """
        remaining = self._used if limit is None else limit
        out: list[Sequence[T]] = []
        taken = taken_bytes = 0
        position = None
        while self._chunks:
            stored = self._chunks[0]
            chunk = stored.records
            if len(chunk) > remaining:
                if remaining > 0:
                    out.append(chunk[:remaining])
                    piece_bytes = stored.nbytes * remaining // len(chunk)
                    stored.records = chunk[remaining:]
                    stored.nbytes -= piece_bytes
                    taken += remaining
                    taken_bytes += piece_bytes
                break
            self._chunks.popleft()
            if chunk:
                out.append(chunk)
            taken += len(chunk)
            taken_bytes += stored.nbytes
            remaining -= len(chunk)
            if stored.position is not None:
                position = stored.position
            if stored.metadata and metadata is not None:
                merge_metadata(metadata, stored.metadata)
        if not self._chunks:
            self._tail_open = False
        if taken or position is not None:
            self._used -= taken
            self._used_bytes -= taken_bytes
            if self._space is not None:
                self._space.set()
                self._space = None
            self._notify_change()
        return out, position

    async def wait_until(self, predicate: Callable[[BufferStatistics], bool]) -> None:
        """Return once ``predicate(self.statistics())`` is true.

        Woken by every change of the buffer, never by a timer: tests use it to
        synchronise on the buffer's state (for example "the receiver is blocked").
        """
        while not predicate(self.statistics()):
            if self._change is None:
                self._change = anyio.Event()
            await self._change.wait()
