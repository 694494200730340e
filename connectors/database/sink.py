"""The transactional sink: a batch's results and its source offsets committed
together, fenced so that no other instance of the job can write the same records.

Per batch, in one transaction:

1. the *fence*: every partition the batch read moves, in the offsets table, from
   the offset the batch started at to the one it reached — only where the
   stored offset equals that start (a partition first seen is inserted, only
   where no row exists). Any row that did not move fails the batch with
   :class:`FenceError` and rolls everything back: another instance (a zombie)
   wrote past that start, or this one did not start from the stored offsets.
2. the user's ``write(connection, batch_time, records)``;
3. commit. A failure anywhere rolls back both the results and the offsets.

Taking the offsets rows first also makes a concurrent instance wait for this
transaction, then find the rows moved.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from streamio import SourceRange
from streamio.abc import Sink
from streamio.errors import ConfigurationError, ConnectorError

from .backend import Backend, OffsetRange

if TYPE_CHECKING:
    from streamio import DStream

__all__ = ["FenceError", "TransactionalSink", "Write"]

T = TypeVar("T")

#: ``async def write(connection, batch_time, records)``: writes a batch's results
#: with the connection of the open transaction (an ``aiosqlite.Connection`` or an
#: ``asyncpg.Connection``); commits nothing itself.
Write = Callable[[Any, float, list[Any]], Awaitable[None]]

_DEFAULT_TABLE = "streamio_offsets"


class FenceError(ConnectorError):
    """A batch's offsets do not continue the stored ones: nothing of it was written.

    Another instance writing the same ``job`` (a zombie, still running after it
    was replaced) moved them first, or this job's source did not start from the
    stored offsets. Not retriable: stop the other instance, then start the job
    again with ``start_offsets=await sink.stored_offsets()``.

    Attributes:
        job: the sink's job.
        batch_time: the batch refused.
        mismatches: ``(topic, partition) -> (stored offset or None, this batch's
            start or None)`` for each partition that did not continue.
    """

    def __init__(
        self,
        message: str,
        *,
        job: str,
        batch_time: float,
        mismatches: dict[tuple[str, int], tuple[int | None, int | None]],
    ) -> None:
        super().__init__(message, retriable=False)
        self.job = job
        self.batch_time = batch_time
        self.mismatches = mismatches

    def __reduce__(self) -> tuple[object, ...]:
        keywords = {"job": self.job, "batch_time": self.batch_time, "mismatches": self.mismatches}
        return (_rebuild_fence, (self.args[0], keywords), self.__dict__)


def _rebuild_fence(message: str, keywords: dict[str, Any]) -> FenceError:
    return FenceError(message, **keywords)


class TransactionalSink(Sink[T], Generic[T]):
    """Writes each batch's results and its source offsets in one transaction.

    Build it with :meth:`sqlite` or :meth:`postgres`, enter it before the
    StreamingContext, attach it with ``stream.foreach_batch(sink)`` and start
    the source from :meth:`stored_offsets`. Each batch then runs the fence,
    ``write`` and the commit in one transaction (see the module), so each record's
    results are in the database once, across restarts, crashes and zombies: a
    batch that failed or was interrupted before its commit left nothing, and is
    read again from the stored offsets by the next run.

    Positions: the Kafka source's (per partition offsets), or a receiver's integer
    position (a sequence number, stored as partition 0 of a "topic" named after
    the input stream). An empty batch that moved no offset opens no transaction.

    Args:
        backend: the database (see :meth:`sqlite`, :meth:`postgres`).
        write: ``async def write(connection, batch_time, records)``, called in the
            open transaction for every batch that has records or moved an offset.
            It must not commit or roll back; raising rolls everything back.
        job: names this job's rows in the offsets table: one job, one name (two
            instances writing the same job fence each other).

    Raises:
        ConfigurationError: for a wrong argument.
    """

    def __init__(self, backend: Backend, write: Write, *, job: str) -> None:
        if not isinstance(job, str) or not job:
            raise ConfigurationError(f"job must be a non-empty name, not {job!r}")
        call = getattr(write, "__call__", None)  # noqa: B004 - an async __call__ counts
        if not (inspect.iscoroutinefunction(write) or inspect.iscoroutinefunction(call)):
            msg = (
                f"write must be an async function, async def write(connection, batch_time, "
                f"records), not {write!r}"
            )
            raise ConfigurationError(msg)
        self.job = job
        self.backend = backend
        self._write = write
        self._stream: DStream[Any] | None = None
        self._opened = False
        self._closed = False
        #: batches written (committed) by this sink
        self.batches = 0

    @classmethod
    def sqlite(
        cls,
        path: str | Path,
        write: Write,
        *,
        job: str,
        offsets_table: str = _DEFAULT_TABLE,
        busy_timeout: float = 30.0,
    ) -> TransactionalSink[Any]:
        """A sink into the SQLite database at ``path`` (made if missing), through
        aiosqlite; ``write`` gets the ``aiosqlite.Connection``.

        Each transaction begins with ``BEGIN IMMEDIATE``, taking the database's
        write lock at once; another process holding it is waited for up to
        ``busy_timeout`` seconds, then the batch fails with a retriable
        ConnectorError.
        """
        from .sqlite import SQLiteBackend

        return cls(SQLiteBackend(path, offsets_table, busy_timeout), write, job=job)

    @classmethod
    def postgres(
        cls,
        dsn: str,
        write: Write,
        *,
        job: str,
        offsets_table: str = _DEFAULT_TABLE,
        max_attempts: int = 5,
        retry_backoff: float = 0.1,
        max_backoff: float = 5.0,
        command_timeout: float = 60.0,
        **connect_options: Any,
    ) -> TransactionalSink[Any]:
        """A sink into PostgreSQL (``postgresql://user@host:port/db``), through
        asyncpg; ``write`` gets the ``asyncpg.Connection``.

        A lost server is retried as by
        :class:`~streamio.connectors.postgres.PostgresSink`: the whole transaction
        again, on a new connection, up to ``max_attempts`` times; a retry that
        finds the batch's offsets already stored (the lost connection had
        committed) writes nothing more.
        """
        from .postgres import PostgresBackend

        backend = PostgresBackend(
            dsn,
            offsets_table,
            max_attempts=max_attempts,
            retry_backoff=retry_backoff,
            max_backoff=max_backoff,
            command_timeout=command_timeout,
            connect_options=connect_options,
        )
        return cls(backend, write, job=job)

    def __repr__(self) -> str:
        return f"TransactionalSink({self.backend.name}, job={self.job!r})"

    # -- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> TransactionalSink[T]:
        await self._open()
        return self

    async def _open(self) -> None:
        if self._closed:
            raise ConnectorError(f"{self!r} used after aclose()", retriable=False)
        if not self._opened:
            await self.backend.open()
            self._opened = True

    def attach(self, stream: DStream[Any]) -> None:
        """Keep the stream this sink writes, to learn its batches' source ranges.

        Raises:
            ConfigurationError: when it already writes another stream (one sink,
                with its own ``job``, per output).
        """
        if self._stream is not None and self._stream is not stream:
            msg = (
                f"{self!r} already writes {self._stream.name!r}: a TransactionalSink "
                f"writes one stream; make one sink, with its own job=, per output"
            )
            raise ConfigurationError(msg)
        self._stream = stream

    async def stored_offsets(self) -> dict[tuple[str, int], int]:
        """The offsets stored for this job: ``(topic, partition) -> next offset``
        to read. Give them to the source: ``kafka_stream(..., start_offsets=...)``.

        Empty on the first run. Connects if the sink was not entered yet.
        """
        await self._open()
        return await self.backend.stored(self.job)

    async def aclose(self) -> None:
        """Close the connection (idempotent)."""
        self._closed = True
        await self.backend.aclose()

    # -- batches ----------------------------------------------------------------------

    async def __call__(self, batch_time: float, records: list[T]) -> None:
        """Write the batch and move its offsets in one transaction.

        Raises:
            FenceError: the stored offsets do not continue where this batch starts;
                nothing was written.
            ConfigurationError: the records come from inputs without positions, or
                two inputs read the same partition.
            ConnectorError: the database stayed unreachable (retriable) or refused
                a statement of ``write`` (not retriable); nothing was written.
        """
        if self._stream is None:
            raise ConfigurationError(f"attach {self!r} with stream.foreach_batch(sink)")
        await self._open()
        ranges = self._offset_ranges(batch_time, self._stream.source_ranges(batch_time), records)
        if ranges is None:
            return

        async def work(connection: Any, attempt: int) -> None:
            if await self._fence(connection, batch_time, ranges, retry=attempt > 1):
                await self._write(connection, batch_time, records)

        await self.backend.transaction(work, repr(self))
        self.batches += 1

    def _offset_ranges(
        self, batch_time: float, sources: dict[str, SourceRange], records: list[T]
    ) -> list[OffsetRange] | None:
        """The batch's ranges per partition; None when there is nothing to do."""
        if not records and not any(source.advanced for source in sources.values()):
            return None
        ranges: dict[tuple[str, int], OffsetRange] = {}
        for source in sources.values():
            for found in _partition_ranges(source):
                key = (found[0], found[1])
                if key in ranges:
                    msg = (
                        f"{self!r}: two inputs of {self._stream!r} read {key[0]}[{key[1]}]; "
                        "the offsets table keeps one offset per partition and job"
                    )
                    raise ConfigurationError(msg)
                ranges[key] = found
        if records and not ranges:
            names = ", ".join(repr(name) for name in sources) or "none"
            msg = (
                f"{self!r}: the records of batch {batch_time} come from inputs that give no "
                f"source position (upstream inputs: {names}); a TransactionalSink needs a "
                "source that can replay from a stored position, such as kafka_stream"
            )
            raise ConfigurationError(msg)
        return list(ranges.values())

    async def _fence(
        self, connection: Any, batch_time: float, ranges: list[OffsetRange], *, retry: bool
    ) -> bool:
        """Move the offsets rows; raise FenceError if one does not continue. False
        when a retry finds them moved already (the lost attempt had committed)."""
        if not ranges:
            return True
        if await self.backend.advance(connection, self.job, batch_time, ranges) == len(ranges):
            return True
        stored = await self.backend.stored_in(connection, self.job)
        if retry and all(stored.get((t, p)) == until for t, p, _, until in ranges):
            return False
        mismatches = {
            (topic, partition): (stored.get((topic, partition)), start)
            for topic, partition, start, _ in ranges
            if stored.get((topic, partition)) != start
        }
        raise FenceError(
            self._fence_message(batch_time, mismatches),
            job=self.job,
            batch_time=batch_time,
            mismatches=mismatches,
        )

    def _fence_message(
        self, batch_time: float, mismatches: dict[tuple[str, int], tuple[int | None, int | None]]
    ) -> str:
        details = []
        for (topic, partition), (stored, start) in mismatches.items():
            begins = "is unknown" if start is None else f"is {start}"
            where = f"{topic}[{partition}]"
            details.append(f"{where}: stored up to {stored}, this batch's start {begins}")
        return (
            f"{self!r} refused batch {batch_time}: the offsets in {self.backend.table!r} do "
            f"not continue where it starts ({'; '.join(details)}), so nothing of it was "
            f"written. Another instance writing job {self.job!r} (a zombie) moved them, or "
            "this job's source did not start from them: stop the other instance, and start "
            "the source with start_offsets=await sink.stored_offsets()"
        )


def _partition_ranges(source: SourceRange) -> Iterable[OffsetRange]:
    """A source range per partition: a position's ``offset_ranges`` (Kafka's), or
    an integer position as partition 0 of a topic named after the stream."""
    end = source.end
    if end is None:
        return ()
    offset_ranges = getattr(end, "offset_ranges", None)
    if offset_ranges is not None:
        return [(r[0], r[1], r[2], r[3]) for r in offset_ranges(source.start)]
    if isinstance(end, int) and not isinstance(end, bool):
        start = source.start if isinstance(source.start, int) else None
        return [(source.stream, 0, start, end)]
    msg = (
        f"TransactionalSink stores offsets per partition; the position of input "
        f"{source.stream!r} is a {type(end).__name__} ({end!r}), which gives none"
    )
    raise ConfigurationError(msg)
