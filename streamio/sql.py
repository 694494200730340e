"""SQL over every batch, with DuckDB: ``stream.sql(query)`` and ``ssc.sql(query, **streams)``.

Each batch is handed to DuckDB as an Arrow table (the receiver's own buffers when
the stream is columnar) registered under the table name of its stream (``batch``
for ``stream.sql``, the keyword's name for ``ssc.sql``); the query's Arrow result
is the batch of the new stream, a columnar one. The query is parsed when the
graph is built, so a typo fails at once; a query that parses but fails on a
batch (an unknown column, a bad cast) is an OperatorError naming the operator,
with DuckDB's message.

Each operator has its own in-memory DuckDB connection. The query runs in a
worker thread (DuckDB releases the GIL), so receivers keep reading while it
runs; batches never overlap, so the connection is never used by two threads at
once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread

from .batch import Batch
from .columnar import TableReader, require, split_table
from .errors import ConfigurationError, OperatorError
from .graph import Node

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["SqlNode", "check_query"]


def check_query(query: Any, operator: str) -> str:
    """Parse ``query`` with DuckDB: it must be one SELECT statement (``WITH``
    included).

    Raises:
        ConfigurationError: when it is not a string, does not parse, or is not
            one SELECT; also when duckdb or pyarrow is not installed.
    """
    duckdb = require("duckdb", f"{operator}()")
    require("pyarrow", f"{operator}()")
    if not isinstance(query, str) or not query.strip():
        raise ConfigurationError(f"{operator}() needs a SQL query string, not {query!r}")
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        msg = f"{operator}(): the query does not parse: {exc}"
        raise ConfigurationError(msg) from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        msg = (
            f"{operator}() runs one SELECT query per batch, but {query!r} holds "
            f"{len(statements)} statement(s) of type(s) "
            f"{', '.join(s.type.name for s in statements)}"
        )
        raise ConfigurationError(msg)
    return query


class SqlNode(Node):
    """A DuckDB query over the batches of one or several streams of the same slide."""

    kind = "sql"

    def __init__(
        self, parents: dict[str, Node], query: str, name: str | None, kind: str = "sql"
    ) -> None:
        self.kind = kind
        nodes = tuple(parents.values())
        super().__init__(nodes[0].graph, nodes, name)
        self._query = query
        self._readers = {table: TableReader(node) for table, node in parents.items()}
        self._connection: Any = None

    async def compute(self, time: float) -> Batch[Any] | None:
        tables: dict[str, pa.Table] = {}
        for name, reader in self._readers.items():
            found, table = await reader.read(time, self.label)
            if not found:
                return None
            if table is None:  # empty and no schema known yet: nothing to query
                return Batch(time, [[]])
            tables[name] = table
        if self._connection is None:
            self._connection = require("duckdb", "sql()").connect()
        result = await anyio.to_thread.run_sync(self._run, tables)
        if isinstance(result, BaseException):
            msg = f"the query failed in DuckDB: {result}"
            raise OperatorError(self.label, time, msg) from result
        return Batch(time, split_table(result, self.graph.partition_size))

    def _run(self, tables: dict[str, pa.Table]) -> pa.Table | BaseException:
        """Worker thread: the query's result, or DuckDB's error."""
        duckdb = require("duckdb", "sql()")
        connection = self._connection
        for name, table in tables.items():
            connection.register(name, table)
        try:
            return connection.sql(self._query).to_arrow_table()
        except duckdb.Error as exc:
            return exc
        finally:
            for name in tables:
                connection.unregister(name)
