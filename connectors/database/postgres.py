"""The PostgreSQL backend of the transactional sink, through asyncpg.

The connection handling is the PostgreSQL sink's
(:class:`~streamio.connectors.postgres.PostgresConnection`): made when first
needed, and a lost server retried with capped backoff, the whole transaction
again. The fence is one statement whatever the number of partitions, an
``UPDATE ... FROM unnest(...)`` of the partitions with a known start, counted;
only when it moved fewer rows than the batch has partitions, an ``INSERT ... ON
CONFLICT DO NOTHING`` of them all adds the rows missing (those that exist do
not continue, and are left as they are).

Under PostgreSQL's default isolation (read committed), an instance whose
``UPDATE`` meets rows another transaction is moving waits for it, then checks
its condition again on the rows as committed: it finds them moved, and fails.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..postgres import PostgresConnection
from .backend import Backend, OffsetRange

__all__ = ["PostgresBackend"]


class PostgresBackend(Backend):
    """A PostgreSQL database and its offsets table.

    Args:
        dsn: the server, ``postgresql://user@host:port/database``.
        offsets_table: the offsets table's name (``"name"`` or ``"schema.name"``).
        max_attempts, retry_backoff, max_backoff, command_timeout, connect_options:
            as for :class:`~streamio.connectors.postgres.PostgresConnection`.
    """

    name = "PostgreSQL"

    def __init__(
        self,
        dsn: str,
        offsets_table: str,
        *,
        max_attempts: int,
        retry_backoff: float,
        max_backoff: float,
        command_timeout: float,
        connect_options: dict[str, Any],
    ) -> None:
        super().__init__(offsets_table)
        self._db = PostgresConnection(
            dsn,
            max_attempts=max_attempts,
            retry_backoff=retry_backoff,
            max_backoff=max_backoff,
            command_timeout=command_timeout,
            connect_options=connect_options,
        )
        t = self.quoted_table
        self._create = (
            f"CREATE TABLE IF NOT EXISTS {t} ("
            'job text NOT NULL, topic text NOT NULL, "partition" integer NOT NULL, '
            "next_offset bigint NOT NULL, batch_time double precision NOT NULL, "
            'PRIMARY KEY (job, topic, "partition"))'
        )
        self._update = (
            f"UPDATE {t} AS o SET next_offset = v.until_offset, batch_time = $2 "
            "FROM unnest($3::text[], $4::integer[], $5::bigint[], $6::bigint[]) "
            "AS v(topic, part, from_offset, until_offset) "
            'WHERE o.job = $1 AND o.topic = v.topic AND o."partition" = v.part '
            "AND o.next_offset = v.from_offset"
        )
        self._insert = (
            f'INSERT INTO {t} (job, topic, "partition", next_offset, batch_time) '
            "SELECT $1, v.topic, v.part, v.until_offset, $2 "
            "FROM unnest($3::text[], $4::integer[], $5::bigint[]) AS v(topic, part, until_offset) "
            'ON CONFLICT (job, topic, "partition") DO NOTHING'
        )
        self._select = f'SELECT topic, "partition", next_offset FROM {t} WHERE job = $1'

    def _what(self) -> str:
        return f"the offsets table {self.table!r}"

    async def open(self) -> None:
        async def create(connection: Any, _: int) -> None:
            await connection.execute(self._create)

        await self._db.run(create, self._what())

    async def stored(self, job: str) -> dict[tuple[str, int], int]:
        async def read(connection: Any, _: int) -> dict[tuple[str, int], int]:
            return await self.stored_in(connection, job)

        return await self._db.run(read, self._what())

    async def stored_in(self, connection: Any, job: str) -> dict[tuple[str, int], int]:
        rows = await connection.fetch(self._select, job)
        return {(row[0], row[1]): row[2] for row in rows}

    async def transaction(self, work: Callable[[Any, int], Awaitable[None]], what: str) -> None:
        async def in_transaction(connection: Any, attempt: int) -> None:
            async with connection.transaction():
                await work(connection, attempt)

        await self._db.run(in_transaction, what)

    async def advance(
        self, connection: Any, job: str, batch_time: float, ranges: Sequence[OffsetRange]
    ) -> int:
        known = [r for r in ranges if r[2] is not None]
        moved = 0
        if known:
            status = await connection.execute(
                self._update,
                job,
                batch_time,
                [r[0] for r in known],
                [r[1] for r in known],
                [r[2] for r in known],
                [r[3] for r in known],
            )
            moved = _count(status)
        if moved < len(ranges):  # rows missing or not continuing: insert those missing
            status = await connection.execute(
                self._insert,
                job,
                batch_time,
                [r[0] for r in ranges],
                [r[1] for r in ranges],
                [r[3] for r in ranges],
            )
            moved += _count(status)
        return moved

    async def aclose(self) -> None:
        await self._db.drop()


def _count(status: str) -> int:
    """The row count of a command status (``"UPDATE 3"``, ``"INSERT 0 2"``)."""
    return int(status.rsplit(" ", 1)[-1])
