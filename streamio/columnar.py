"""Arrow record batches as chunks of a stream, and a batch's partitions as one table.

A receiver may store a ``pyarrow.RecordBatch`` (or ``Table``) where it would store
a list of records: the buffer wraps it in an :class:`ArrowChunk`, a
:class:`~streamio.chunk.LazyChunk` whose length is the number of rows and whose
slices are Arrow slices (views of the same buffers, nothing copied). So the batch
cut, windows, ``union`` and ``count`` handle Arrow data without ever building a
Python object per row, and columnar operators (``sql``, ``map_batches``,
``foreach_batch(format=...)``) get the receiver's own Arrow buffers as one table.

Row-wise operators (``map``, ``filter``, ``pprint``...) iterate over a chunk as over
a list: records are built as they are read, a slice of rows at a time. A
one-column batch gives that column's values (a line source gives ``str``), a wider
one gives one dict per row. Key operators (``reduce_by_key``, ``join``...) read a
row as a tuple instead (a two-column batch as ``(key, value)`` pairs), the form
they need.

Row-wise partitions that reach a columnar operator are converted once: dicts by
their keys, named tuples by their fields, other tuples as columns ``_1``, ``_2``...
(as Spark's ``toDF`` names them), any other value as the column ``value``; types
are inferred by Arrow unless a schema is given (``to_arrow(schema)``).

pyarrow is imported only when Arrow data is met or a columnar operator is built,
so the core install and row-wise streams never load it.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .batch import Batch
from .checks import check_installed
from .chunk import LazyChunk
from .errors import ConfigurationError
from .functions import operator_failures
from .graph import Node

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "ArrowChunk",
    "TableReader",
    "ToArrowNode",
    "arrow_chunk",
    "as_chunk",
    "check_schema",
    "declared_schema",
    "is_columnar",
    "key_rows",
    "require",
    "split_evenly",
    "split_table",
    "to_table",
]

# Rows built per step when a row-wise operator iterates over a chunk: enough for
# Arrow's conversion to run in C most of the time, few enough to stay in cache.
_ROWS_PER_STEP = 4096

# The extra that brings each optional module (polars and pandas: none, used if installed).
_EXTRAS = {"pyarrow": "arrow", "duckdb": "sql"}


def require(module: str, what: str) -> Any:
    """Import ``module`` (pyarrow, duckdb, polars, pandas) for ``what``, or fail
    with a ConfigurationError saying what to install."""
    return check_installed(module, what, _EXTRAS.get(module))


def arrow_chunk(records: Any) -> ArrowChunk | None:
    """``records`` as an :class:`ArrowChunk` when it is a pyarrow record batch or
    table (or a chunk already), else None. Never imports pyarrow: data cannot be
    Arrow unless pyarrow was imported by whoever made it."""
    if isinstance(records, ArrowChunk):
        return records
    pa = sys.modules.get("pyarrow")
    if pa is not None and isinstance(records, (pa.RecordBatch, pa.Table)):
        return ArrowChunk(records)
    return None


def as_chunk(records: Iterable[Any]) -> Sequence[Any]:
    """``records`` as a receiver's chunk is stored: Arrow data as an
    :class:`ArrowChunk`, a :class:`~streamio.chunk.LazyChunk` as it is, anything
    else copied into a list."""
    arrow = arrow_chunk(records)
    if arrow is not None:
        return arrow
    return records if isinstance(records, LazyChunk) else list(records)


def is_columnar(partition: Any) -> bool:
    """Whether a partition is Arrow data (an :class:`ArrowChunk`)."""
    return isinstance(partition, ArrowChunk)


class ArrowChunk(LazyChunk[Any]):
    """Rows of a ``pyarrow.RecordBatch`` or ``Table``, read as records on demand.

    ``data`` is the Arrow object itself; slices are Arrow slices of it, sharing
    its buffers. Iterating gives a one-column chunk's values, or a dict per row.
    """

    __slots__ = ("data",)

    def __init__(self, data: pa.RecordBatch | pa.Table) -> None:
        self.data = data

    @property
    def nbytes(self) -> int:
        """The bytes of the rows this chunk covers (a slice counts its part)."""
        return int(self.data.nbytes)

    def __len__(self) -> int:
        return int(self.data.num_rows)

    def __iter__(self) -> Iterator[Any]:
        data = self.data
        steps = range(0, data.num_rows, _ROWS_PER_STEP)
        if data.num_columns == 1:
            column = data.column(0)
            pieces = (column.slice(start, _ROWS_PER_STEP).to_pylist() for start in steps)
        else:
            pieces = (data.slice(start, _ROWS_PER_STEP).to_pylist() for start in steps)
        return itertools.chain.from_iterable(pieces)

    def slice(self, start: int, stop: int) -> ArrowChunk:
        return ArrowChunk(self.data.slice(start, stop - start))

    def tuples(self) -> Iterator[Any]:
        """The rows as tuples (a one-column chunk: its values), for key operators."""
        data = self.data
        if data.num_columns == 1:
            return iter(self)
        steps = range(0, data.num_rows, _ROWS_PER_STEP)
        pieces = (data.slice(start, _ROWS_PER_STEP).columns for start in steps)
        return itertools.chain.from_iterable(
            zip(*(column.to_pylist() for column in columns), strict=True) for columns in pieces
        )

    def table(self) -> pa.Table:
        """The chunk as a table (the same buffers)."""
        data = self.data
        if isinstance(data, sys.modules["pyarrow"].Table):
            return data
        return sys.modules["pyarrow"].Table.from_batches([data])


def key_rows(records: Any) -> Any:
    """What a key operator iterates over: an Arrow chunk's rows as tuples, any
    other partition as it is."""
    return records.tuples() if isinstance(records, ArrowChunk) else records


# -- a batch as one table, and back ----------------------------------------------------


def to_table(
    partitions: Sequence[Sequence[Any]], schema: pa.Schema | None = None
) -> pa.Table | None:
    """A batch's partitions as one Arrow table, in record order.

    Arrow chunks are taken as they are (no copy); runs of row-wise records are
    converted (see the module). Tables of different schemas are unified
    (Arrow's permissive promotion). None when there is no row and no schema to
    give an empty table.

    Raises:
        TypeError, pyarrow.ArrowException: records Arrow cannot convert.
    """
    pa = require("pyarrow", "a columnar operator")
    tables: list[Any] = []
    rows: list[Any] = []
    for part in partitions:
        if isinstance(part, ArrowChunk):
            if rows:
                tables.append(_rows_table(pa, rows, schema))
                rows = []
            tables.append(part.table())
        else:
            rows.extend(part)
    if rows:
        tables.append(_rows_table(pa, rows, schema))
    if not tables:
        return None if schema is None else schema.empty_table()
    if len(tables) == 1:
        return tables[0]
    first = tables[0].schema
    if all(table.schema.equals(first) for table in tables):
        return pa.concat_tables(tables)
    return pa.concat_tables(tables, promote_options="permissive")


def _rows_table(pa: Any, rows: list[Any], schema: pa.Schema | None) -> pa.Table:
    """Row-wise records as a table (dicts, tuples or single values)."""
    first = rows[0]
    if isinstance(first, dict):
        return pa.Table.from_pylist(rows, schema=schema)
    if isinstance(first, tuple):
        names = getattr(first, "_fields", None) or [f"_{i + 1}" for i in range(len(first))]
        columns = [list(column) for column in zip(*rows, strict=True)]
        if schema is not None:
            return pa.Table.from_arrays(
                [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)],
                schema=schema,
            )
        return pa.Table.from_arrays([pa.array(c) for c in columns], names=list(names))
    if schema is not None:
        return pa.Table.from_arrays([pa.array(rows, type=schema[0].type)], schema=schema)
    return pa.Table.from_arrays([pa.array(rows)], names=["value"])


def split_table(table: pa.Table, partition_size: int) -> list[Sequence[Any]]:
    """A table as a batch's partitions: Arrow chunks of at most ``partition_size``
    rows (slices, no copy). An empty table stays one empty chunk, so its schema
    travels on to the next columnar operator."""
    rows = table.num_rows
    if rows <= partition_size:
        return [ArrowChunk(table)]
    return [
        ArrowChunk(table.slice(start, partition_size)) for start in range(0, rows, partition_size)
    ]


def split_evenly(partitions: Sequence[ArrowChunk], count: int) -> list[Sequence[Any]]:
    """Arrow partitions spread over ``count`` partitions whose sizes differ by at
    most one row (slices of one table, no copy)."""
    table = to_table(partitions)
    assert table is not None  # there is at least one chunk
    size, extra = divmod(table.num_rows, count)
    parts: list[Sequence[Any]] = []
    start = 0
    for index in range(count):
        length = size + (1 if index < extra else 0)
        parts.append(ArrowChunk(table.slice(start, length)))
        start += length
    return parts


# -- schemas ------------------------------------------------------------------------


def declared_schema(node: Node) -> pa.Schema | None:
    """The schema ``node``'s Arrow batches are known to have before any is seen:
    given to ``to_arrow``, or declared by a columnar source (``Receiver.schema``),
    looked up through the operators that keep records as they are (windows,
    ``union``, ``repartition``)."""
    while True:
        schema = getattr(node, "arrow_schema", None)
        if schema is None:
            schema = getattr(getattr(node, "receiver", None), "schema", None)
        if schema is not None or node.kind not in ("window", "union", "repartition"):
            return schema
        node = node.parents[0]


class TableReader:
    """Reads the batches of one node as tables, for a columnar operator.

    Rows are converted with the schema the node declares (``to_arrow``, the
    receiver's), or inferred. An empty batch is an empty table of that schema, or
    else of the last table read, so that a query over a quiet stream still runs:
    ``count(*)`` gives 0.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self._schema: pa.Schema | None = None

    async def read(self, time: float, operator: str) -> tuple[bool, pa.Table | None]:
        """Whether ``node`` has a batch at ``time``, and that batch as a table
        (None: empty, its schema unknown). A conversion that fails is an
        OperatorError naming ``operator``."""
        parts = await self.node.partitions(time)
        if parts is None:
            return False, None
        with operator_failures(operator, time):
            table = to_table(parts, declared_schema(self.node))
        if table is None:
            if self._schema is not None:  # only for an empty batch: rows are never forced
                table = self._schema.empty_table()
        else:
            self._schema = table.schema
        return True, table


class ToArrowNode(Node):
    """``to_arrow``: a batch as Arrow chunks, row-wise records converted once."""

    kind = "to_arrow"

    def __init__(self, parent: Node, schema: pa.Schema | None, name: str | None) -> None:
        super().__init__(parent.graph, (parent,), name)
        self.arrow_schema = schema

    async def compute(self, time: float) -> Batch[Any] | None:
        parts = await self.parents[0].partitions(time)
        if parts is None:
            return None
        with operator_failures(self.label, time):
            table = to_table(parts, self.arrow_schema)
            if table is not None and self.arrow_schema is not None:
                table = table.cast(self.arrow_schema)
        if table is None:
            return Batch(time, [[]])
        return Batch(time, split_table(table, self.graph.partition_size))


def check_schema(schema: Any, operator: str) -> pa.Schema | None:
    """A ``schema=`` argument: None, or a ``pyarrow.Schema``."""
    if schema is None:
        return None
    pa = require("pyarrow", f"{operator}()")
    if not isinstance(schema, pa.Schema):
        msg = f"{operator}(): schema= must be a pyarrow.Schema or None, not {schema!r}"
        raise ConfigurationError(msg)
    return schema
