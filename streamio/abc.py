"""The contracts a connector implements or uses, in one public module.

As ``anyio.abc`` does for anyio, this module gathers what a source or a sink of
outside data is written against, so that a connector (those of
``streamio.connectors`` and third-party ones) needs nothing from streamio's
internal modules:

- a source implements :class:`Receiver` and stores what it receives through its
  :class:`ReceiverOutput`, as lists or as :class:`LazyChunk` objects (records
  built only when a stage reads them); the output's fill level is a
  :class:`BufferStatistics`;
- an output to an outside system implements :class:`Sink`; one that stores
  where its batches came from asks its stream for their :class:`SourceRange`;
- time comes from a :class:`Clock`, and each sleeper waits on its own
  :class:`Timer`;
- a connector that follows the batches (the Kafka source learns which offsets
  each batch covers) is a :class:`StreamingListener`, given :class:`BatchInfo`
  (with its :class:`OutputOperationInfo` list), :class:`ReceiverInfo` and
  :class:`StreamingStartedInfo`.

With :mod:`streamio`, :mod:`streamio.errors` and :mod:`streamio.checks`, this is
all a connector imports.
"""

from __future__ import annotations

import abc
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from .buffer import BufferStatistics
from .chunk import LazyChunk
from .clock import Clock, Timer
from .inputs import SourceRange
from .listener import (
    BatchInfo,
    CheckpointInfo,
    OutputOperationInfo,
    ReceiverInfo,
    StreamingListener,
    StreamingStartedInfo,
)
from .receiver import Receiver, ReceiverOutput

if TYPE_CHECKING:
    from .dstream import DStream

__all__ = [
    "BatchInfo",
    "BufferStatistics",
    "CheckpointInfo",
    "Clock",
    "LazyChunk",
    "OutputOperationInfo",
    "Receiver",
    "ReceiverInfo",
    "ReceiverOutput",
    "Sink",
    "SourceRange",
    "StreamingListener",
    "StreamingStartedInfo",
    "Timer",
]

T_contra = TypeVar("T_contra", contravariant=True)


class Sink(abc.ABC, Generic[T_contra]):
    """The contract of an output that writes each batch to an outside system.

    Attach a sink with ``stream.foreach_batch(sink)``: the runtime awaits
    ``sink(batch_time, records)`` once per batch, and commits the batch's source
    positions only after that call (and every other output of the batch)
    returned. Return only once the records are safely written (acknowledged,
    fsynced), and raise when they could not be: the batch then fails, the context
    stops with :class:`~streamio.OperatorError` and the positions stay
    uncommitted, so a source that can replay gives the records again (delivery is
    at least once: make writes idempotent).

    A sink is an async context manager: entering it returns the sink (a sink that
    connects may do it there), leaving it calls :meth:`aclose`. Enter it *before*
    the StreamingContext, so it outlives the context's last batches.

    Example, a sink keeping what it was given:

    >>> from streamio.abc import Sink
    >>> class Collect(Sink[int]):
    ...     def __init__(self):
    ...         self.written = []
    ...     async def __call__(self, batch_time, records):
    ...         self.written.append((batch_time, records))
    >>> async def main():
    ...     async with Collect() as sink, StreamingContext(1.0, clock=ManualClock()) as ssc:
    ...         ssc.queue_stream([[1, 2], [3]]).foreach_batch(sink)
    ...         ssc.start()
    ...         await ssc.clock.advance(2.0)
    ...     return sink.written
    >>> run(main(), use_uvloop=False)
    [(1.0, [1, 2]), (2.0, [3])]
    """

    @abc.abstractmethod
    async def __call__(self, batch_time: float, records: list[T_contra]) -> None:
        """Write the records of the batch at ``batch_time``; return once they are
        written. Cancellation (a hard stop) interrupts it."""

    def attach(self, stream: DStream[Any]) -> None:
        """Called by ``stream.foreach_batch(sink)``, while the graph is built, with
        the stream the sink will write. A sink that stores its batches' source
        positions keeps it, to ask ``stream.source_ranges(batch_time)``; one that
        cannot write that stream raises :class:`~streamio.ConfigurationError`
        here. This one does nothing.
        """

    async def aclose(self) -> None:
        """Release what the sink holds (flush, close its connections).

        Idempotent: a second call does nothing. This one does nothing.
        """

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
