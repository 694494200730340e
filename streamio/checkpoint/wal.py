"""The write-ahead log: what receivers that cannot replay have received.

With ``ssc.checkpoint(directory, write_ahead_log=True)`` (Spark's
``spark.streaming.receiver.writeAheadLog.enable``), a chunk stored by a receiver
whose source cannot give it again (a socket, ``from_async_iterable``, a push
stream, a user's receiver that is not ``replayable``) counts as received only
once it is appended to this log and fsynced. Its position in the stream's buffer
is then its sequence number in the log: a checkpoint saves the last one its
batches covered, the log is truncated behind it, and after a crash the entries
after it are stored in the buffer again before the receivers start.

The log is a SQLite database of its own (``wal.sqlite`` beside the checkpoint),
so appends never wait for a checkpoint's transaction. Appends are committed in
groups (:class:`StreamLog`): while one commit (and its fsync) runs in a worker
thread, the receiver goes on reading and its chunks queue, and the next commit
writes them all: one fsync per group of chunks, never one per record.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from ..errors import CheckpointError
from .serializers import PickleSerializer

__all__ = ["StreamLog", "WriteAheadLog"]

FILE_NAME = "wal.sqlite"
_INSERT = "INSERT INTO log VALUES (?, ?, ?)"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    input TEXT NOT NULL, seq INTEGER NOT NULL, chunk BLOB NOT NULL,
    PRIMARY KEY (input, seq)) WITHOUT ROWID;
"""


class WriteAheadLog:
    """The log of one checkpoint directory (see the module's docstring)."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / FILE_NAME
        self._serializer = PickleSerializer()
        self._connection: sqlite3.Connection | None = None
        self._next_seq: dict[str, int] = {}
        self._lock = anyio.Lock()  # one transaction at a time on the connection

    def open(self, after: dict[str, int]) -> None:
        """Open the log (blocking); sequence numbers continue after the log's
        and after ``after`` (the checkpoint's, per input)."""
        try:
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.executescript(_SCHEMA)
            last = dict(connection.execute("SELECT input, max(seq) FROM log GROUP BY input"))
        except sqlite3.DatabaseError as exc:
            msg = (
                f"the write-ahead log {str(self.path)!r} is damaged ({exc}); restore the "
                "checkpoint directory from a backup or start from a new one"
            )
            raise CheckpointError(msg) from exc
        self._connection = connection
        for name in set(last) | set(after):
            self._next_seq[name] = max(last.get(name, 0), after.get(name, 0)) + 1

    def has_entries(self) -> bool:
        """Whether the log holds chunks (blocking; opened by :meth:`open`)."""
        assert self._connection is not None
        return self._connection.execute("SELECT 1 FROM log LIMIT 1").fetchone() is not None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def entries_after(self, input_name: str, seq: int) -> list[tuple[int, Any]]:
        """(sequence number, chunk) of the entries of ``input_name`` after ``seq`` (blocking)."""
        assert self._connection is not None
        rows = self._connection.execute(
            "SELECT seq, chunk FROM log WHERE input = ? AND seq > ? ORDER BY seq",
            (input_name, seq),
        ).fetchall()
        return [(number, self._serializer.loads(chunk)) for number, chunk in rows]

    async def truncate(self, through: dict[str, int]) -> None:
        """Drop the entries a checkpoint covers, per input (between two appends'
        commits: the connection serves one transaction at a time)."""
        async with self._lock:
            await anyio.to_thread.run_sync(
                self._in_transaction,
                "DELETE FROM log WHERE input = ? AND seq <= ?",
                list(through.items()),
            )

    def _in_transaction(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        assert self._connection is not None
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            self._connection.executemany(statement, rows)
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    async def append(self, input_name: str, chunks: Sequence[Sequence[Any]]) -> list[int]:
        """Append chunks in one transaction; their sequence numbers once on disk."""
        first = self._next_seq.get(input_name, 1)
        self._next_seq[input_name] = first + len(chunks)
        numbers = list(range(first, first + len(chunks)))
        dumps = self._serializer.dumps
        rows = [(input_name, seq, dumps(chunk)) for seq, chunk in zip(numbers, chunks, strict=True)]
        async with self._lock:
            try:
                await anyio.to_thread.run_sync(self._in_transaction, _INSERT, rows)
            except sqlite3.Error as exc:
                msg = f"appending to the write-ahead log {str(self.path)!r} failed: {exc}"
                raise CheckpointError(msg) from exc
        return numbers


class StreamLog:
    """The write-ahead log of one input stream, between its receiver and its buffer.

    The receiver's chunks queue here (at most ``max_pending``: a receiver ahead of
    the disk waits); a task of their own commits all that queued in one
    transaction (one fsync), then stores them in the buffer, in order, each with
    its sequence number as its position. The receiver goes on reading while a
    commit runs, so the fsyncs overlap the reading instead of adding to it.
    """

    def __init__(self, log: WriteAheadLog, stream: str, buffer: Any, max_pending: int = 16) -> None:
        self._log = log
        self._stream = stream
        self._buffer = buffer
        self._max_pending = max_pending
        self._queued: deque[Sequence[Any]] = deque()
        self._in_flight = 0  # chunks taken by the commit running now
        self._changed = anyio.Event()

    def pending(self) -> int:
        """Chunks received and not yet in the buffer."""
        return len(self._queued) + self._in_flight

    async def put(self, records: Sequence[Any]) -> None:
        """Queue a chunk; waits while ``max_pending`` chunks are waiting for the disk."""
        while len(self._queued) >= self._max_pending:
            await self._changed.wait()
        self._queued.append(records)
        self._notify()

    async def flushed(self) -> None:
        """Return once every chunk queued so far is in the buffer."""
        while self.pending():
            await self._changed.wait()

    async def run(self) -> None:
        """Commit what queued, then store it; until cancelled."""
        while True:
            while not self._queued:
                await self._changed.wait()
            chunks = list(self._queued)
            self._queued.clear()
            self._in_flight = len(chunks)
            self._notify()  # room for the receiver while the commit runs
            numbers = await self._log.append(self._stream, chunks)
            for chunk, seq in zip(chunks, numbers, strict=True):
                await self._buffer.put_many(chunk, seq)
                self._in_flight -= 1
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
