"""What :class:`~streamio.connectors.database.TransactionalSink` needs of a
database: a connection, transactions retried after a lost connection, and the
statements of the offsets table. One subclass per database (SQLite, PostgreSQL).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from streamio.errors import ConfigurationError

from ..sql import quote_table

__all__ = ["Backend", "OffsetRange"]

# (topic, partition, from offset or None when unknown, until offset)
OffsetRange = tuple[str, int, int | None, int]


class Backend(abc.ABC):
    """One database and its offsets table.

    Args:
        offsets_table: the table of stored offsets (``"name"`` or ``"schema.name"``),
            created by :meth:`open` when missing.

    Attributes:
        name: the database's name, for messages ("SQLite", "PostgreSQL").
        table: the offsets table's name as given.
    """

    name: str

    def __init__(self, offsets_table: str) -> None:
        if not isinstance(offsets_table, str):
            raise ConfigurationError(f"offsets_table must be a table name, not {offsets_table!r}")
        self.table = offsets_table
        self.quoted_table = quote_table(offsets_table)

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, and create the offsets table if it is missing."""

    @abc.abstractmethod
    async def stored(self, job: str) -> dict[tuple[str, int], int]:
        """The offsets stored for ``job``: ``(topic, partition) -> next offset``."""

    @abc.abstractmethod
    async def transaction(self, work: Callable[[Any, int], Awaitable[None]], what: str) -> None:
        """Run ``await work(connection, attempt)`` in one transaction and commit it;
        roll it back if ``work`` raises. A lost connection is retried on a new one
        (``attempt`` counts from 1); ``what`` names the sink in errors.

        Raises:
            ConnectorError: the database stayed unreachable (retriable) or refused
                a statement (not retriable). Errors of ``work`` pass as they are.
        """

    @abc.abstractmethod
    async def advance(
        self, connection: Any, job: str, batch_time: float, ranges: Sequence[OffsetRange]
    ) -> int:
        """Move each range's row to its until offset where it is stored at the
        range's from offset, and insert the rows of those that have none; the
        number of rows moved or inserted (``len(ranges)`` when all continue)."""

    @abc.abstractmethod
    async def stored_in(self, connection: Any, job: str) -> dict[tuple[str, int], int]:
        """:meth:`stored`, read in the transaction of ``connection``."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close the connection; idempotent."""
