"""Input streams: the nodes whose batches the scheduler cuts at each tick.

A queue stream takes items of a user's queue; a receiver stream takes what its
receiver stored in its bounded buffer, and remembers the source position each
batch reached so it can be committed once the batch's outputs have finished.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from .batch import Batch, split_chunks
from .errors import ConfigurationError
from .graph import Graph, Node

if TYPE_CHECKING:
    from .buffer import ChunkBuffer
    from .receiver import Receiver

__all__ = ["InputNode", "QueueInputNode", "ReceiverInputNode", "check_queue_item"]


class InputNode(Node):
    """A stream whose batches are cut by the scheduler at each tick."""

    kind = "input"

    def __init__(self, graph: Graph, name: str | None) -> None:
        super().__init__(graph, (), name)
        self.positions: dict[float, Any] = {}

    def cut(self, time: float, metadata: dict[str, Any] | None = None) -> Batch[Any]:
        """Take this tick's records (called by the scheduler); what the source said
        of them (see :meth:`ChunkBuffer.take`) is merged into ``metadata``."""
        chunks, position = self.take(metadata)
        if position is not None:
            self.positions[time] = position
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


class ReceiverInputNode(InputNode):
    """A stream fed by a receiver task through a bounded buffer.

    It tells the receiver's supervisor when a position has been committed, so
    that a receiver whose source ended is closed only after its last commit.

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


