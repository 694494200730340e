"""The SQLite backend of the transactional sink, through aiosqlite.

One connection in autocommit mode; each batch is ``BEGIN IMMEDIATE`` (the
write lock taken at once, so two writers queue instead of deadlocking on an
upgrade), the fence, the user's write, ``COMMIT``. A local database is not
"lost" as a server is: a failure is not retried, except that a lock held by
another process is waited for up to ``busy_timeout`` seconds.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

try:
    import aiosqlite
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the SQLite transactional sink needs aiosqlite: pip install 'streamio[sqlite]'"
    ) from exc

import anyio

from streamio.checks import check_number
from streamio.errors import ConfigurationError, ConnectorError

from .backend import Backend, OffsetRange

__all__ = ["SQLiteBackend"]

# How long a rollback after a failure may take.
_ROLLBACK_TIMEOUT = 5.0


class SQLiteBackend(Backend):
    """A SQLite database file and its offsets table.

    Args:
        path: the database file (made if missing).
        offsets_table: the offsets table's name.
        busy_timeout: seconds to wait for another connection's write lock.
    """

    name = "SQLite"

    def __init__(self, path: str | Path, offsets_table: str, busy_timeout: float) -> None:
        super().__init__(offsets_table)
        if not isinstance(path, (str, Path)) or not str(path):
            raise ConfigurationError(f"path must be a file name, not {path!r}")
        self.path = os.fspath(path)
        self._timeout = check_number(busy_timeout, "busy_timeout")
        self._connection: aiosqlite.Connection | None = None
        t = self.quoted_table
        self._update = (
            f'UPDATE {t} SET next_offset = ?, batch_time = ? '
            f'WHERE job = ? AND topic = ? AND "partition" = ? AND next_offset = ?'
        )
        self._insert = (
            f'INSERT INTO {t} (job, topic, "partition", next_offset, batch_time) '
            f'VALUES (?, ?, ?, ?, ?) ON CONFLICT (job, topic, "partition") DO NOTHING'
        )
        self._select = f'SELECT topic, "partition", next_offset FROM {t} WHERE job = ?'

    async def open(self) -> None:
        if self._connection is not None:
            return
        try:
            connection = await aiosqlite.connect(
                self.path, isolation_level=None, timeout=self._timeout
            )
        except sqlite3.Error as exc:
            msg = f"cannot open the SQLite database {self.path!r}: {exc}"
            raise ConnectorError(msg, retriable=False) from exc
        try:
            await connection.execute(
                f"CREATE TABLE IF NOT EXISTS {self.quoted_table} ("
                "job TEXT NOT NULL, topic TEXT NOT NULL, \"partition\" INTEGER NOT NULL, "
                "next_offset INTEGER NOT NULL, batch_time REAL NOT NULL, "
                'PRIMARY KEY (job, topic, "partition"))'
            )
        except sqlite3.Error as exc:
            await connection.close()
            msg = f"cannot make the offsets table {self.table!r} in {self.path!r}: {exc}"
            raise ConnectorError(msg, retriable=False) from exc
        self._connection = connection

    def _connected(self) -> aiosqlite.Connection:
        if self._connection is None:
            raise ConnectorError("the SQLite sink is not open (enter it first)", retriable=False)
        return self._connection

    async def stored(self, job: str) -> dict[tuple[str, int], int]:
        return await self.stored_in(self._connected(), job)

    async def stored_in(self, connection: Any, job: str) -> dict[tuple[str, int], int]:
        async with connection.execute(self._select, (job,)) as cursor:
            return {(topic, partition): offset async for topic, partition, offset in cursor}

    async def transaction(self, work: Callable[[Any, int], Awaitable[None]], what: str) -> None:
        connection = self._connected()
        try:
            await connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            msg = f"{what}: {self.path!r} stayed locked by another writer ({exc})"
            raise ConnectorError(msg, retriable=True) from exc
        try:
            await work(connection, 1)
            await connection.execute("COMMIT")
        except BaseException as exc:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_ROLLBACK_TIMEOUT):
                if connection.in_transaction:
                    await connection.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                retriable = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
                msg = f"SQLite refused the batch for {what}: {exc}"
                raise ConnectorError(msg, retriable=retriable) from exc
            raise

    async def advance(
        self, connection: Any, job: str, batch_time: float, ranges: Sequence[OffsetRange]
    ) -> int:
        known = [
            (until, batch_time, job, topic, partition, start)
            for topic, partition, start, until in ranges
            if start is not None
        ]
        moved = 0
        if known:
            cursor = await connection.executemany(self._update, known)
            moved = cursor.rowcount
            await cursor.close()
        if moved < len(ranges):  # rows missing or not continuing: insert those missing
            rows = [(job, topic, part, until, batch_time) for topic, part, _, until in ranges]
            cursor = await connection.executemany(self._insert, rows)
            moved += cursor.rowcount
            await cursor.close()
        return moved

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()
