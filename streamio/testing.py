"""A test kit for users' own streaming tests.

Drive time with :class:`ManualClock` so batch times and contents are exact::

    from streamio import StreamingContext
    from streamio.testing import ListSink, ManualClock, MemorySource

    async def test_my_job():
        clock = ManualClock()
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            source = MemorySource()
            sink = ListSink()
            my_job(ssc.receiver_stream(source)).foreach_batch(sink)
            await ssc.start()
            await source.send(["a b", "b"])   # stored in the buffer when it returns
            await step(ssc, 1)                 # one batch: at time 1.0
        assert sink.batches == [(1.0, [...])]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from .chunk import LazyChunk
from .clock import ManualClock
from .context import StreamingContext
from .dstream import DStream
from .errors import ConfigurationError
from .sources import PushReceiver

__all__ = ["ListSink", "ManualClock", "MemorySource", "collect_batches", "step"]

T = TypeVar("T")


class ListSink(Generic[T]):
    """An output function that keeps every batch: use ``stream.foreach_batch(sink)``.

    Attributes:
        batches: ``(batch_time, records)`` for every batch, in order.
    """

    def __init__(self) -> None:
        self.batches: list[tuple[float, list[T]]] = []

    def __call__(self, batch_time: float, records: list[T]) -> None:
        self.batches.append((batch_time, list(records)))

    @property
    def records(self) -> list[T]:
        """Every record of every batch, in order."""
        return [record for _, records in self.batches for record in records]

    @property
    def times(self) -> list[float]:
        return [time for time, _ in self.batches]


class MemorySource(PushReceiver[T]):
    """A receiver fed from the test: ``await source.send(records)``.

    Its position is the number of records sent so far (``sent``); ``commits``
    lists the positions the runtime committed (after each batch's outputs
    finished).

    It can replay, as a log would, so tests can checkpoint it: a source
    restored from a checkpoint whose position is ``n`` skips the first ``n``
    records sent to it. A test of recovery sends the whole history again to
    the restarted job, which receives only what the checkpoint did not cover.

    ``send`` returns once the records are in the stream's buffer, so the next
    batch is certain to hold them (or, when the buffer is full, ``send`` waits:
    the backpressure is visible to the test). It is the receiver of
    ``ssc.push_stream()`` with ``commits`` added; attach it with
    ``ssc.receiver_stream(source)``.
    """

    replayable = True

    def __init__(self) -> None:
        super().__init__()
        self.commits: list[Any] = []
        self.restored: int | None = None  # the position a checkpoint restored
        self._skip = 0  # records still to skip after a restore

    async def commit(self, position: Any) -> None:
        self.commits.append(position)

    async def restore(self, position: Any) -> None:
        self.restored = self.sent = self._skip = int(position)

    async def send(self, records: Iterable[T]) -> None:
        chunk: Sequence[T] = records if isinstance(records, LazyChunk) else list(records)
        if self._skip:
            skipped = min(self._skip, len(chunk))
            self._skip -= skipped
            chunk = chunk[skipped:]
            if not chunk:
                return
        await super().send(chunk)


async def step(ssc: StreamingContext, batches: int = 1) -> None:
    """Advance the context's manual clock by ``batches`` intervals; returns once
    those batches have been processed."""
    clock = ssc.clock
    if not isinstance(clock, ManualClock):
        raise ConfigurationError("step() needs a context built with clock=ManualClock()")
    await clock.advance(batches * ssc.batch_interval)


async def collect_batches(
    build: Callable[[DStream[Any]], DStream[Any]],
    batches: list[list[Any]],
    *,
    batch_interval: float = 1.0,
) -> list[list[Any]]:
    """Feed ``batches`` through a queue stream, apply ``build``, return each batch's records.

    Runs one batch per item of ``batches`` on a manual clock.
    """
    sink: ListSink[Any] = ListSink()
    async with StreamingContext(batch_interval=batch_interval, clock=ManualClock()) as ssc:
        build(ssc.queue_stream(list(batches))).foreach_batch(sink)
        ssc.start()
        await step(ssc, len(batches))
    return [records for _, records in sink.batches]
