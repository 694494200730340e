"""The bounded buffer between a receiver and the scheduler.

Receivers put *chunks* of records; at each tick the scheduler takes what is there
(up to a cap) without waiting. The capacity is counted in records: when it is
reached, ``put_many`` waits until a tick frees space. That wait is the
backpressure which travels back to the socket or the Kafka fetch. Nothing is
dropped.

A chunk is a list of records, or a :class:`~streamio.chunk.LazyChunk` kept as it
is until a stage reads it. Each chunk may carry a *position* (an offset, a file
name): the position of the last chunk a batch took is what that batch covered,
and what the receiver is told to commit once the batch's outputs have finished.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel

from .chunk import LazyChunk
from .errors import ConfigurationError

__all__ = ["BufferStatistics", "ChunkBuffer"]

T = TypeVar("T")

# put() yields to the event loop once per this many records, so a receiver that
# always has data cannot starve the loop.
_PUT_CHECKPOINT_EVERY = 512


@dataclass(frozen=True)
class BufferStatistics:
    """A snapshot of a buffer, for metrics and tests.

    Attributes:
        used: records held now.
        capacity: the most records the buffer holds before senders wait.
        waiting_senders: receivers blocked because the buffer is full.
    """

    used: int
    capacity: int
    waiting_senders: int


class ChunkBuffer(Generic[T]):
    """A bounded FIFO of record chunks, each with an optional position."""

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            msg = f"buffer capacity must be a positive whole number of records, not {capacity!r}"
            raise ConfigurationError(msg)
        self._capacity = capacity
        self._chunks: deque[tuple[Sequence[T], Any]] = deque()
        self._used = 0
        self._waiting_senders = 0
        self._tail_open = False  # the last chunk is ours to append single records to
        self._puts_since_checkpoint = 0
        self._space: anyio.Event | None = None
        self._change: anyio.Event | None = None

    def statistics(self) -> BufferStatistics:
        return BufferStatistics(self._used, self._capacity, self._waiting_senders)

    def __len__(self) -> int:
        return self._used

    def _notify_change(self) -> None:
        if self._change is not None:
            self._change.set()
            self._change = None

    def _append(self, records: Sequence[T], position: Any) -> None:
        self._chunks.append((records, position))
        self._used += len(records)
        self._tail_open = False
        self._notify_change()

    async def _wait_for_space(self) -> None:
        self._waiting_senders += 1
        self._notify_change()
        try:
            if self._space is None:
                self._space = anyio.Event()
            await self._space.wait()
        finally:
            self._waiting_senders -= 1

    async def put_many(self, records: Iterable[T], position: Any = None) -> None:
        """Store a chunk of records, waiting while the buffer is full.

        A chunk larger than the free space is stored in pieces as space frees;
        the position goes with the last piece. If the wait is cancelled (the
        context is stopping), the rest of the chunk is stored anyway, over
        capacity, so that no record already in hand is lost. A
        :class:`~streamio.chunk.LazyChunk` is stored as it is; anything else is
        copied into a list.
        """
        chunk = records if isinstance(records, LazyChunk) else list(records)
        total = len(chunk)
        if total == 0:
            if position is not None:
                self._append(chunk, position)
            await anyio.lowlevel.checkpoint()
            return
        stored = 0
        try:
            while stored < total:
                free = self._capacity - self._used
                if free <= 0:
                    await self._wait_for_space()
                    continue
                take = min(free, total - stored)
                piece = chunk if take == total else chunk[stored : stored + take]
                stored += take
                self._append(piece, position if stored == total else None)
        finally:
            if stored < total:
                self._append(chunk[stored:], position)
        await anyio.lowlevel.checkpoint()

    async def put(self, record: T, position: Any = None) -> None:
        """Store one record (appended to the open tail chunk when possible)."""
        if self._used >= self._capacity:
            await self.put_many((record,), position)
            return
        if self._tail_open and position is None:
            self._chunks[-1][0].append(record)  # type: ignore[attr-defined]
            self._used += 1
            self._notify_change()
        else:
            self._append([record], position)
            self._tail_open = position is None
        self._puts_since_checkpoint += 1
        if self._puts_since_checkpoint >= _PUT_CHECKPOINT_EVERY:
            self._puts_since_checkpoint = 0
            await anyio.lowlevel.checkpoint()

    def take(self, limit: int | None = None) -> tuple[list[Sequence[T]], Any]:
        """Remove and return up to ``limit`` records (all when None), never waiting.

        Returns the chunks taken, in order (the first and last may be parts of
        stored chunks), and the position of the last positioned chunk taken whole
        (None when no such chunk was taken).
        """
        remaining = self._used if limit is None else limit
        out: list[Sequence[T]] = []
        taken = 0
        position = None
        while self._chunks:
            chunk, chunk_position = self._chunks[0]
            if len(chunk) > remaining:
                if remaining > 0:
                    out.append(chunk[:remaining])
                    taken += remaining
                    self._chunks[0] = (chunk[remaining:], chunk_position)
                break
            self._chunks.popleft()
            if chunk:
                out.append(chunk)
            taken += len(chunk)
            remaining -= len(chunk)
            if chunk_position is not None:
                position = chunk_position
        if not self._chunks:
            self._tail_open = False
        if taken or position is not None:
            self._used -= taken
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
