"""Input streams: the nodes whose batches the scheduler cuts at each tick.

A queue stream takes items of a user's queue; a receiver stream takes what its
receiver stored in its bounded buffer, and remembers the source position each
batch reached so it can be committed once the batch's outputs have finished.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from .batch import Batch, split_chunks
from .errors import ConfigurationError, ContextStateError
from .graph import Graph, Node
from .record_errors import DeadLetter, DeadLetterOwner, RejectedRecords

if TYPE_CHECKING:
    from .buffer import ChunkBuffer
    from .receiver import Receiver

__all__ = [
    "InputNode",
    "QueueInputNode",
    "ReceiverInputNode",
    "SourceRange",
    "check_queue_item",
    "source_ranges",
]


@dataclass(frozen=True, slots=True)
class SourceRange:
    """The source positions one batch of one input stream covers: Spark's
    ``OffsetRange``, for any receiver's positions.

    An output learns them with ``stream.source_ranges(batch_time)`` to store them
    with its results (in one transaction, as
    :class:`~streamio.connectors.database.TransactionalSink` does).

    Attributes:
        stream: the input stream's name.
        batch_time: the batch.
        start: the position the stream had reached before this batch (the end of
            its previous batch that had one), or None when none had yet in this
            run.
        end: the position this batch reaches (the last one its receiver stored
            with the batch's records); ``start`` itself when the batch took no
            new position (no records, or a receiver that stores none).
    """

    stream: str
    batch_time: float
    start: Any
    end: Any

    @property
    def advanced(self) -> bool:
        """Whether the batch moved the stream's position."""
        return self.end is not self.start

logger = logging.getLogger(__name__)


class InputNode(Node):
    """A stream whose batches are cut by the scheduler at each tick."""

    kind = "input"

    def __init__(self, graph: Graph, name: str | None) -> None:
        super().__init__(graph, (), name)
        self.positions: dict[float, Any] = {}
        self.reached: Any = None  # the position of the last batch cut that had one
        self.last_range: SourceRange | None = None  # that of the last batch cut

    def cut(self, time: float, metadata: dict[str, Any] | None = None) -> Batch[Any]:
        """Take this tick's records (called by the scheduler); what the source said
        of them (see :meth:`ChunkBuffer.take`) is merged into ``metadata``."""
        chunks, position = self.take(metadata)
        start = self.reached
        if position is not None:
            self.positions[time] = position
            self.reached = position
        self.last_range = SourceRange(self.name, time, start, self.reached)
        batch = Batch(time, split_chunks(chunks, self.graph.partition_size))
        self._generated[time] = batch
        return batch

    def take(self, metadata: dict[str, Any] | None) -> tuple[list[Sequence[Any]], Any]:
        """This tick's records, in chunks, and the source position they reach (or None)."""
        raise NotImplementedError

    @property
    def rate_limit(self) -> float | None:
        """The records per second a batch may take now (None: no cap)."""
        return None

    def pending(self) -> int:
        """Records waiting to be cut (a graceful stop drains them)."""
        return 0

    async def commit(self, time: float) -> None:
        """Every output of batch ``time`` finished: pass its position to the source."""

    def skip_commit(self, time: float) -> None:
        """Batch ``time`` failed (``on_batch_error="continue"``): its position is
        not committed on its own; the next successful batch's commit covers it."""
        self.positions.pop(time, None)

    async def compute(self, time: float) -> Batch[Any] | None:
        return Batch(time, [[]])


class QueueInputNode(InputNode):
    """Spark's ``queueStream``: each batch takes one item (or all) of a user's queue."""

    kind = "queue_stream"

    def __init__(
        self, graph: Graph, queue: Any, one_at_a_time: bool, default: Any, name: str | None
    ) -> None:
        super().__init__(graph, name)
        self._queue = queue
        self._one_at_a_time = one_at_a_time
        self._default = default

    def _pop(self) -> tuple[bool, Any]:
        queue = self._queue
        if hasattr(queue, "popleft"):
            return (True, queue.popleft()) if queue else (False, None)
        if hasattr(queue, "get_nowait"):
            if queue.empty():
                return False, None
            return True, queue.get_nowait()
        return (True, queue.pop(0)) if queue else (False, None)

    def take(self, metadata: dict[str, Any] | None) -> tuple[list[Sequence[Any]], Any]:
        records: list[Any] = []
        found, item = self._pop()
        if not found:
            return [list(self._default) if self._default is not None else records], None
        while found:
            records.extend(check_queue_item(item, self.name))
            if self._one_at_a_time:
                break
            found, item = self._pop()
        return [records], None


def check_queue_item(item: Any, stream: str) -> Iterable[Any]:
    """A queue item must be a collection of records (a list), not a string or scalar."""
    if isinstance(item, (str, bytes)) or not isinstance(item, Iterable):
        msg = (
            f"queue_stream {stream!r}: each queue item is one batch and must be a "
            f"collection of records such as a list, not {type(item).__name__} {item!r}"
        )
        raise ConfigurationError(msg)
    return item


class ReceiverInputNode(InputNode, DeadLetterOwner):
    """A stream fed by a receiver task through a bounded buffer.

    It tells the receiver's supervisor when a position has been committed, so
    that a receiver whose source ended is closed only after its last commit.
    The records the receiver refused since the last cut are counted in the
    batch it cuts, and dead letters become that batch's ``dead_letters()``.

    A batch takes at most ``rate * batch_interval`` records, the rate being the
    lower of ``max_rate`` and ``controlled_rate`` (set by the backpressure
    controller); the rest waits in the buffer, and the receiver waits once the
    buffer is full.
    """

    kind = "receiver_stream"

    def __init__(
        self,
        graph: Graph,
        receiver: Receiver[Any],
        buffer: ChunkBuffer[Any],
        max_rate: float | None,
        name: str | None,
    ) -> None:
        super().__init__(graph, name)
        self.receiver = receiver
        self.buffer = buffer
        self.max_rate = max_rate
        self.controlled_rate: float | None = None
        self._last_committed: Any = None
        self._committing: anyio.Event | None = None  # set at the next commit
        # The position of a failed batch (on_batch_error="continue"), committed by
        # the next successful one when that one brings no position of its own.
        self._uncommitted: Any = None
        self.rejected = RejectedRecords()  # filled through the receiver's output
        self.init_dead_letters()

    def sends_dead_letters(self) -> bool:
        return self.receiver.sends_dead_letters

    def check_prepared(self) -> None:
        self.check_dead_letters_read(self.name)

    def cut(self, time: float, metadata: dict[str, Any] | None = None) -> Batch[Any]:
        batch = super().cut(time, metadata)
        skipped, dead = self.rejected.take()
        drops = self.graph.drops
        if skipped:
            drops.skipped[self.label] += skipped
            logger.warning("%r skipped %d record(s) it could not decode", self.name, skipped)
        if dead:
            drops.dead_lettered[self.label] += len(dead)
            self.add_dead_letters(
                [DeadLetter(record, error, self.label, time) for record, error in dead]
            )
        return batch

    def forget(self, before: float) -> None:
        super().forget(before)
        self.forget_dead_letters(before)

    @property
    def rate_limit(self) -> float | None:
        rates = [rate for rate in (self.max_rate, self.controlled_rate) if rate is not None]
        return min(rates) if rates else None

    def take(self, metadata: dict[str, Any] | None) -> tuple[list[Sequence[Any]], Any]:
        rate = self.rate_limit
        limit = None if rate is None else max(1, int(rate * self.graph.batch_interval))
        return self.buffer.take(limit, metadata)

    def pending(self) -> int:
        return len(self.buffer)

    async def commit(self, time: float) -> None:
        position = self.positions.pop(time, None)
        if position is None:  # a batch without records: a failed one's position, if any
            position = self._uncommitted
        self._uncommitted = None
        if position is not None:
            await self.commit_position(position)

    def position_through(self, time: float) -> Any:
        """The position reached by the batches up to ``time`` (None when none of them
        moved it), forgetting theirs: what a checkpoint at ``time`` saves."""
        latest = None
        for batch_time in sorted(t for t in self.positions if t <= time):
            latest = self.positions.pop(batch_time)
        return latest

    async def commit_position(self, position: Any) -> None:
        """Pass ``position`` to the receiver: its batches are output (and, with
        checkpointing on, checkpointed)."""
        await self.receiver.commit(position)
        self._last_committed = position
        if self._committing is not None:
            self._committing.set()
            self._committing = None

    def skip_commit(self, time: float) -> None:
        position = self.positions.pop(time, None)
        if position is not None:
            self._uncommitted = position

    async def wait_committed(self, position: Any) -> None:
        """Return once ``position`` (the object the receiver stored) has been committed.

        Positions are told apart by identity, so a source storing the same object
        twice is taken as committed at the first. Returns at once if it was the
        last position committed.
        """
        while self._last_committed is not position:
            if self._committing is None:
                self._committing = anyio.Event()
            await self._committing.wait()




def source_ranges(node: Node, time: float) -> dict[str, SourceRange]:
    """The source range of batch ``time`` of every input stream upstream of ``node``.

    Raises:
        ContextStateError: when ``time`` is not the batch being output now.
    """
    ranges: dict[str, SourceRange] = {}
    pending, seen = [node], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, InputNode):
            found = current.last_range
            if found is None or found.batch_time != time:
                msg = (
                    f"the source ranges of batch {time} of {current.name!r} are not known: "
                    "ask for them while that batch is output (in its foreach_batch call)"
                )
                raise ContextStateError(msg)
            ranges[current.name] = found
        pending.extend(current.parents)
    return ranges
