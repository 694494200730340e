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
groups: while one commit (and its fsync) runs in a worker thread, the chunks
appended meanwhile queue, and the next commit writes them all, so a source
costs one fsync per chunk at most, and fewer when several receivers store at once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from ..errors import CheckpointError
from .serializers import PickleSerializer

__all__ = ["WriteAheadLog"]

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
        self._pending: list[tuple[str, int, bytes]] = []
        self._appended = 0  # tickets handed out: one per append
        self._durable = 0  # tickets whose entries are committed
        self._lock = anyio.Lock()
        self._failure: CheckpointError | None = None

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

    def truncate(self, through: dict[str, int]) -> None:
        """Drop the entries a checkpoint covers, per input (blocking)."""
        assert self._connection is not None
        self._in_transaction(
            "DELETE FROM log WHERE input = ? AND seq <= ?", list(through.items())
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

    async def append(self, input_name: str, records: Sequence[Any]) -> int:
        """Append a chunk; return its sequence number once it is on disk."""
        data = self._serializer.dumps(records)
        seq = self._next_seq.get(input_name, 1)
        self._next_seq[input_name] = seq + 1
        self._pending.append((input_name, seq, data))
        self._appended += 1
        ticket = self._appended
        async with self._lock:
            if self._failure is None and self._durable < ticket:
                # not written yet by the commit of another append: commit all pending
                entries, self._pending = self._pending, []
                written = self._appended
                try:
                    await anyio.to_thread.run_sync(self._in_transaction, _INSERT, entries)
                except sqlite3.Error as exc:
                    self._failure = CheckpointError(
                        f"appending to the write-ahead log {str(self.path)!r} failed: {exc}"
                    )
                    raise self._failure from exc
                self._durable = written
        if self._failure is not None:  # the commit that held this chunk failed
            raise self._failure
        return seq
