"""A PostgreSQL sink for streamio (asyncpg): each batch written in one transaction.

With ``key=`` (the columns that identify a row) every batch is an idempotent upsert,
``INSERT ... ON CONFLICT (key) DO UPDATE`` by ``executemany``: a batch written again
after a replay (the sources deliver at least once) leaves the table as one write
would, so the job's results are **exactly once** in the table. Without ``key``,
rows are appended with ``COPY`` (the fastest path), at least once.

    from streamio.connectors.postgres import PostgresSink

    async with PostgresSink("word_counts", dsn="postgresql://app@db/app",
                            columns=["word", "n"], key=["word"]) as sink, \\
            StreamingContext(batch_interval=1.0) as ssc:
        counts.foreach_batch(sink)

A record is a tuple (or list) of the columns' values in ``columns`` order, or a
mapping from column names. The table must exist (the sink creates nothing); an
upsert needs a unique index or primary key on ``key``. A lost server is retried
with capped backoff (the transaction that failed is written again whole); after
``max_attempts`` failed attempts the batch fails with a retriable
:class:`~streamio.ConnectorError`. A row the database refuses (a wrong type, a
violated constraint) fails the batch at once, and nothing of it is written.

Needs ``pip install 'streamio[postgres]'``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

try:
    import asyncpg
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the PostgreSQL sink needs asyncpg: pip install 'streamio[postgres]'"
    ) from exc

import anyio

from streamio.abc import Sink
from streamio.checks import check_number, check_whole_number
from streamio.errors import ConfigurationError, ConnectorError

from .messaging import ReconnectBackoff
from .sql import quote_identifier, quote_table

__all__ = ["PostgresConnection", "PostgresSink", "check_dsn"]

logger = logging.getLogger(__name__)

# Errors after which a new connection may succeed.
_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    OSError,
    TimeoutError,
)
# How long a close may take before the connection is abandoned.
_CLOSE_TIMEOUT = 5.0

R = TypeVar("R")


def check_dsn(dsn: Any) -> str:
    """``dsn`` if it is a ``postgresql://`` URL (never shown: it may hold a password)."""
    if not isinstance(dsn, str) or not dsn.startswith(("postgresql://", "postgres://")):
        raise ConfigurationError("dsn must be a postgresql:// URL")
    return dsn


class PostgresConnection:
    """One asyncpg connection of a sink: made when first needed, made again after
    it was lost, with each unit of work (a transaction) retried with capped
    backoff meanwhile.

    Args:
        dsn: the server (checked with :func:`check_dsn`).
        max_attempts: attempts of a unit of work before it fails.
        retry_backoff, max_backoff: seconds before the first retry, doubled up to
            ``max_backoff``.
        command_timeout: seconds one statement may take.
        connect_options: other ``asyncpg.connect`` options.
    """

    def __init__(
        self,
        dsn: str,
        *,
        max_attempts: int,
        retry_backoff: float,
        max_backoff: float,
        command_timeout: float,
        connect_options: dict[str, Any],
    ) -> None:
        self._dsn = check_dsn(dsn)
        self._attempts = check_whole_number(max_attempts, "max_attempts")
        self._retry = ReconnectBackoff(retry_backoff, max_backoff, None)
        self.timeout = check_number(command_timeout, "command_timeout")
        self._options = dict(connect_options)
        self._connection: Any = None

    async def run(self, work: Callable[[Any, int], Awaitable[R]], what: str) -> R:
        """``await work(connection, attempt)`` (``attempt`` counts from 1), again on
        a new connection after the server was lost, until it succeeds. ``what``
        names the target in errors and logs.

        Raises:
            ConnectorError: when the server stayed unreachable for ``max_attempts``
                attempts (retriable), or refused what ``work`` sent (not
                retriable). Any other error of ``work`` passes as it is.
        """
        backoff = ReconnectBackoff(self._retry.initial, self._retry.maximum, self._attempts - 1)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await work(await self._connected(), attempt)
            except asyncpg.PostgresError as exc:
                if isinstance(exc, _LOST):
                    failure: BaseException = exc
                else:
                    msg = f"PostgreSQL refused the batch for {what} (not retriable): {exc}"
                    raise ConnectorError(msg, retriable=False) from exc
            except _LOST as exc:
                failure = exc
            await self.drop()
            if not backoff.failed():
                msg = f"writing to {what} failed {backoff.failures} times: {failure!r}"
                raise ConnectorError(msg, retriable=True) from failure
            logger.info("%s: %r; retrying", what, failure)
            await anyio.sleep(backoff.next_delay())

    async def _connected(self) -> Any:
        if self._connection is None or self._connection.is_closed():
            try:
                self._connection = await asyncpg.connect(
                    self._dsn, command_timeout=self.timeout, **self._options
                )
            except (
                asyncpg.InvalidPasswordError,
                asyncpg.InvalidAuthorizationSpecificationError,
            ) as exc:
                msg = f"PostgreSQL refused the connection (not retriable): {exc}"
                raise ConnectorError(msg, retriable=False) from exc
        return self._connection

    async def drop(self) -> None:
        """Close the connection (abandoned if that takes too long); idempotent."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with anyio.move_on_after(_CLOSE_TIMEOUT) as scope:
                try:
                    await connection.close()
                except Exception:
                    connection.terminate()
            if scope.cancelled_caught:
                connection.terminate()

class PostgresSink(Sink[Any]):
    """Writes each batch to a PostgreSQL table in one transaction.

    Args:
        table: the table, ``"name"`` or ``"schema.name"``.
        dsn: the server, ``postgresql://user[:password]@host:port/database``
            (its password is never logged nor shown).
        columns: the columns a record's values go to, in order.
        key: the columns identifying a row: each batch is an upsert on them
            (idempotent). None: rows are appended with ``COPY``.
        chunk_size: most rows per ``executemany`` or ``COPY`` call within the
            batch's transaction.
        max_attempts: attempts of a batch's transaction before it fails.
        retry_backoff, max_backoff: seconds before the first retry, doubled up to
            ``max_backoff``.
        command_timeout: seconds one statement may take.
        **connect_options: other ``asyncpg.connect`` options (``ssl``,
            ``server_settings``...).

    Raises:
        ConfigurationError: for a wrong argument.
    """

    def __init__(
        self,
        table: str,
        *,
        dsn: str,
        columns: Sequence[str],
        key: Sequence[str] | None = None,
        chunk_size: int = 10_000,
        max_attempts: int = 5,
        retry_backoff: float = 0.1,
        max_backoff: float = 5.0,
        command_timeout: float = 60.0,
        **connect_options: Any,
    ) -> None:
        check_dsn(dsn)
        if isinstance(columns, str) or not columns:
            raise ConfigurationError(f"columns must be a list of column names, not {columns!r}")
        names = list(columns)
        if len(set(names)) != len(names):
            raise ConfigurationError(f"columns name a column twice: {names!r}")
        self._table = quote_table(table)
        if isinstance(table, str) and table.count(".") == 1:
            schema, _, name = table.partition(".")
            self._copy_target: tuple[str, str | None] = (name, schema)
        else:
            self._copy_target = (table, None)
        quoted = [quote_identifier(c, "a column") for c in names]
        self.table = table
        self.columns = tuple(names)
        self.key = None if key is None else tuple(key)
        if self.key is not None:
            if isinstance(key, str) or not self.key:
                raise ConfigurationError(f"key must be a list of column names, not {key!r}")
            missing = [k for k in self.key if k not in names]
            if missing:
                raise ConfigurationError(f"key columns {missing!r} are not among columns {names!r}")
            updates = [q for c, q in zip(names, quoted, strict=True) if c not in self.key]
            conflict = ", ".join(quote_identifier(k, "a key column") for k in self.key)
            action = (
                "DO UPDATE SET " + ", ".join(f"{q} = EXCLUDED.{q}" for q in updates)
                if updates
                else "DO NOTHING"
            )
            placeholders = ", ".join(f"${i}" for i in range(1, len(names) + 1))
            self._upsert: str | None = (
                f"INSERT INTO {self._table} ({', '.join(quoted)}) VALUES ({placeholders}) "
                f"ON CONFLICT ({conflict}) {action}"
            )
        else:
            self._upsert = None
        self._chunk = check_whole_number(chunk_size, "chunk_size (rows)")
        self._db = PostgresConnection(
            dsn,
            max_attempts=max_attempts,
            retry_backoff=retry_backoff,
            max_backoff=max_backoff,
            command_timeout=command_timeout,
            connect_options=connect_options,
        )
        self._closed = False
        self.written = 0

    def __repr__(self) -> str:
        return f"PostgresSink({self.table!r}, columns={list(self.columns)!r}, key={self.key!r})"

    @property
    def statement(self) -> str | None:
        """The upsert statement each row runs (None: rows are copied)."""
        return self._upsert

    async def __call__(self, batch_time: float, records: list[Any]) -> None:
        """Write ``records`` in one transaction; return once it committed.

        Raises:
            TypeError: for a record that is neither a tuple of ``len(columns)``
                values nor a mapping holding every column.
            ConnectorError: when the server stayed unreachable for ``max_attempts``
                attempts (retriable), or refused a row (not retriable; nothing of
                the batch is written).
        """
        if self._closed:
            raise ConnectorError("PostgresSink used after aclose()", retriable=False)
        rows = [self._row(record) for record in records]
        if not rows:
            return
        await self._db.run(lambda connection, _: self._write(connection, rows), repr(self.table))
        self.written += len(rows)

    def _row(self, record: Any) -> tuple[Any, ...]:
        if isinstance(record, Mapping):
            try:
                return tuple(record[c] for c in self.columns)
            except KeyError as exc:
                msg = f"{self!r}: a record has no value for column {exc.args[0]!r}: {record!r}"
                raise TypeError(msg) from None
        if isinstance(record, (tuple, list)) and len(record) == len(self.columns):
            return tuple(record)
        msg = (
            f"{self!r} needs tuples of {len(self.columns)} values (in columns order) or "
            f"mappings by column name, not {type(record).__name__} {record!r}"
        )
        raise TypeError(msg)

    async def _write(self, connection: Any, rows: list[tuple[Any, ...]]) -> None:
        async with connection.transaction():
            for start in range(0, len(rows), self._chunk):
                chunk = rows[start : start + self._chunk]
                if self._upsert is not None:
                    await connection.executemany(self._upsert, chunk, timeout=self._db.timeout)
                else:
                    name, schema = self._copy_target
                    await connection.copy_records_to_table(
                        name,
                        records=chunk,
                        columns=list(self.columns),
                        schema_name=schema,
                        timeout=self._db.timeout,
                    )

    async def aclose(self) -> None:
        """Close the connection (idempotent)."""
        self._closed = True
        await self._db.drop()
