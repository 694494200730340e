"""DStream: a continuous stream as a sequence of batches, and its operators.

Operators build a lazy graph (nothing runs until ``ssc.start()``); each returns a
new DStream. Narrow operators (map, flat_map, filter, map_partitions, glom,
map_values, flat_map_values) are fused into one function per partition; key
operators combine map-side per partition before merging by key hash. Names follow
PySpark's DStream API in snake_case (README has the table).

The examples run ``collect(build, batches)``: it feeds ``batches`` through a queue
stream, applies ``build`` and returns each batch's records (see
:func:`streamio.testing.collect_batches`).
"""

from __future__ import annotations

import itertools
import math
import operator as _operator
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from .abc import Sink
from .batch import combine_partition, concat_lists, group_partition, reduce_partition
from .buffer import BufferStatistics, ChunkBuffer
from .checks import OnError, check_number, check_on_error, check_whole_number
from .columnar import ToArrowNode, check_schema
from .errors import ConfigurationError, ContextStateError
from .event_time import EventTimeWindowNode, EventWindow, SessionWindowNode
from .frames import FrameOutput, MapBatchesNode, check_format
from .functions import accepts, check_async_function, check_function, describe
from .graph import Node
from .inputs import SourceRange, source_ranges
from .nodes import (
    AsyncMapNode,
    CogroupNode,
    CountNode,
    DeadLetterNode,
    NarrowNode,
    ReduceNode,
    RepartitionNode,
    ShuffleNode,
    TransformNode,
    UnionNode,
)
from .outputs import OutputOperation
from .record_errors import DeadLetter, DeadLetterOwner
from .sql import SqlNode, check_query
from .state import (
    MapWithStateNode,
    SideOutputNode,
    StatefulNode,
    StateSpec,
    UpdateStateNode,
    initial_pairs,
)
from .times import format_time
from .window import ReducedWindowNode, WindowNode, check_window, times_between

if TYPE_CHECKING:
    from .context import StreamingContext

__all__ = ["DStream"]

T = TypeVar("T")
U = TypeVar("U")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
W = TypeVar("W")
C = TypeVar("C")
S = TypeVar("S")


def _check_partitions(num_partitions: int | None, operator: str) -> int | None:
    if num_partitions is None:
        return None
    return check_whole_number(num_partitions, f"{operator}(num_partitions)")


def _join_pairs(
    kind: str,
) -> Callable[[tuple[list[Any], list[Any]]], Iterable[tuple[Any, Any]]]:
    def left(groups: tuple[list[Any], list[Any]]) -> Iterable[tuple[Any, Any]]:
        return [(v, w) for v in groups[0] for w in (groups[1] or [None])]

    def right(groups: tuple[list[Any], list[Any]]) -> Iterable[tuple[Any, Any]]:
        return [(v, w) for v in (groups[0] or [None]) for w in groups[1]]

    def inner(groups: tuple[list[Any], list[Any]]) -> Iterable[tuple[Any, Any]]:
        return [(v, w) for v in groups[0] for w in groups[1]]

    def full(groups: tuple[list[Any], list[Any]]) -> Iterable[tuple[Any, Any]]:
        return [(v, w) for v in (groups[0] or [None]) for w in (groups[1] or [None])]

    return {
        "join": inner,
        "left_outer_join": left,
        "right_outer_join": right,
        "full_outer_join": full,
    }[kind]


class DStream(Generic[T]):
    """A discretized stream: one batch of records of type ``T`` per batch time.

    DStreams are immutable nodes of a lazy graph: operators return new streams
    and start nothing. Every operator takes an optional ``name=`` (used in
    metrics and error messages); default names are generated and unique. Narrow
    operators also take ``executor="process"`` (or ``"inline"``): their fused
    stage, up to the next shuffle or output and including a key operator's
    map-side combine, then runs in the context's process pool, one task per
    partition.
    """

    __slots__ = ("_context", "_node")

    def __init__(self, context: StreamingContext, node: Node) -> None:
        self._context = context
        self._node = node

    @property
    def context(self) -> StreamingContext:
        """The StreamingContext this stream belongs to."""
        return self._context

    @property
    def name(self) -> str:
        """This stream's unique name."""
        return self._node.name

    def __repr__(self) -> str:
        return f"<DStream {self.name}>"

    def _buffer(self) -> ChunkBuffer[Any]:
        buffer = getattr(self._node, "buffer", None)
        if buffer is None:
            msg = f"{self.name!r} is not a receiver stream: only those have a buffer"
            raise ConfigurationError(msg)
        return buffer

    def buffer_statistics(self) -> BufferStatistics:
        """For a receiver stream: its buffer's fill level (records held, capacity,
        receivers waiting for space), for metrics and tests."""
        return self._buffer().statistics()

    async def wait_for_buffer(self, predicate: Callable[[BufferStatistics], bool]) -> None:
        """For a receiver stream: return once ``predicate(statistics)`` holds, woken
        by every change of the buffer (never by a timer). Cancellation stops the wait.

        Example: ``await lines.wait_for_buffer(lambda s: s.waiting_senders > 0)``
        returns once the receiver is held back by a full buffer.
        """
        await self._buffer().wait_until(predicate)

    def source_ranges(self, batch_time: float) -> dict[str, SourceRange]:
        """The source positions the batch at ``batch_time`` covers, for every input
        stream upstream of this one, by name: Spark's ``HasOffsetRanges``.

        Each :class:`~streamio.SourceRange` gives the position the input had
        reached before the batch and the one the batch reaches (Kafka offsets,
        a sequence number: whatever its receiver stores). Unlike Spark's, it works
        after any operator: a batch time is one cut of every input. A window's
        batch reads earlier batches too, but its ranges are those cut at
        ``batch_time``. An output stores them with its results, in the same
        transaction, to write each record exactly once.

        Ask while the batch is output (in its ``foreach_batch`` call).

        Raises:
            ContextStateError: for a batch that is not being output now.
        """
        return source_ranges(self._node, batch_time)

    def _wrap(self, node: Node) -> DStream[Any]:
        return DStream(self._context, node)

    def _narrow(
        self,
        kind: str,
        fn: Callable[[Iterable[Any]], Iterable[Any]],
        user_fn: Any,
        name: str | None,
        executor: str | None = None,
        on_error: OnError = "fail",
    ) -> DStream[Any]:
        if executor not in (None, "inline", "process"):
            msg = f'{kind}(): executor= must be "inline" or "process", not {executor!r}'
            raise ConfigurationError(msg)
        policy = check_on_error(on_error, f"{kind}(): on_error")
        return self._wrap(NarrowNode(self._node, kind, fn, user_fn, name, executor, policy))

    def _other(self, other: Any, operator: str) -> Node:
        return self._context._own(other, operator)

    # -- narrow operators ------------------------------------------------------

    def map(
        self,
        f: Callable[[T], U],
        *,
        name: str | None = None,
        executor: str | None = None,
        on_error: OnError = "fail",
    ) -> DStream[U]:
        """Apply ``f`` to every record.

        ``on_error``: what a record ``f`` raises on does. ``"fail"`` (the default)
        fails the batch; ``"skip"`` leaves it out (counted in
        ``BatchInfo.records_skipped``); ``"dead_letter"`` leaves it out and sends
        it to this stream's :meth:`dead_letters`. The other record-wise
        operators (``flat_map``, ``filter``, ``map_values``, ``flat_map_values``)
        take it too.

        >>> collect(lambda s: s.map(lambda x: x * 10), [[1, 2], [3]])
        [[10, 20], [30]]
        >>> collect(lambda s: s.map(int, on_error="skip"), [["1", "x", "3"]])
        [[1, 3]]
        """
        check_function(f, "map", 1)
        return self._narrow("map", partial(map, f), f, name, executor, on_error)

    def flat_map(
        self,
        f: Callable[[T], Iterable[U]],
        *,
        name: str | None = None,
        executor: str | None = None,
        on_error: OnError = "fail",
    ) -> DStream[U]:
        """Apply ``f`` to every record and flatten the iterables it returns.

        >>> collect(lambda s: s.flat_map(str.split), [["a b", "c"]])
        [['a', 'b', 'c']]
        """
        check_function(f, "flat_map", 1)

        def flat_map(records: Iterable[T]) -> Iterator[U]:
            return itertools.chain.from_iterable(map(f, records))

        return self._narrow("flat_map", flat_map, f, name, executor, on_error)

    def filter(
        self,
        f: Callable[[T], Any],
        *,
        name: str | None = None,
        executor: str | None = None,
        on_error: OnError = "fail",
    ) -> DStream[T]:
        """Keep the records for which ``f`` is true.

        >>> collect(lambda s: s.filter(lambda x: x % 2), [[1, 2, 3]])
        [[1, 3]]
        """
        check_function(f, "filter", 1)
        return self._narrow("filter", partial(filter, f), f, name, executor, on_error)

    def map_partitions(
        self,
        f: Callable[[Iterator[T]], Iterable[U]],
        *,
        name: str | None = None,
        executor: str | None = None,
    ) -> DStream[U]:
        """Apply ``f`` to an iterator over each partition; it returns the new records.

        >>> collect(lambda s: s.map_partitions(lambda it: [sum(it)]), [[1, 2, 3]])
        [[6]]
        """
        check_function(f, "map_partitions", 1)

        def map_partitions(records: Iterable[T]) -> Iterable[U]:
            return f(iter(records))

        return self._narrow("map_partitions", map_partitions, f, name, executor)

    def glom(self, *, name: str | None = None) -> DStream[list[T]]:
        """Turn each partition into one record: the list of its records.

        >>> collect(lambda s: s.glom(), [[1, 2]])
        [[[1, 2]]]
        """
        return self._narrow("glom", lambda records: [list(records)], None, name)

    def map_values(
        self: DStream[tuple[K, V]],
        f: Callable[[V], U],
        *,
        name: str | None = None,
        executor: str | None = None,
        on_error: OnError = "fail",
    ) -> DStream[tuple[K, U]]:
        """Apply ``f`` to the value of every (key, value) record, keeping the key.

        >>> collect(lambda s: s.map_values(len), [[("a", "xyz")]])
        [[('a', 3)]]
        """
        check_function(f, "map_values", 1)

        def map_values(pairs: Iterable[tuple[K, V]]) -> Iterator[tuple[K, U]]:
            return ((key, f(value)) for key, value in pairs)

        return self._narrow("map_values", map_values, f, name, executor, on_error)

    def flat_map_values(
        self: DStream[tuple[K, V]],
        f: Callable[[V], Iterable[U]],
        *,
        name: str | None = None,
        executor: str | None = None,
        on_error: OnError = "fail",
    ) -> DStream[tuple[K, U]]:
        """Like :meth:`map_values` with ``f`` returning several values per record.

        >>> collect(lambda s: s.flat_map_values(str.split), [[("a", "x y")]])
        [[('a', 'x'), ('a', 'y')]]
        """
        check_function(f, "flat_map_values", 1)

        def flat_map_values(pairs: Iterable[tuple[K, V]]) -> Iterator[tuple[K, U]]:
            return ((key, item) for key, value in pairs for item in f(value))

        return self._narrow("flat_map_values", flat_map_values, f, name, executor, on_error)

    def dead_letters(self, *, name: str | None = None) -> DStream[DeadLetter]:
        """The records this stream's operator refused, as :class:`~streamio.DeadLetter`
        ``(record, error, operator, batch_time)``, in the batch they were part of:
        for an operator built with ``on_error="dead_letter"``, or an input whose
        source sends what it cannot decode there (Kafka's
        ``on_deserialize_error="dead_letter"``). Send them wherever you like.

        The operator is then computed once per batch rather than fused into its
        consumer. A stream that dead-letters records must have an output on its
        ``dead_letters()``: the context fails at start otherwise.

        >>> collect(lambda s: s.map(int, on_error="dead_letter").dead_letters().map(
        ...     lambda d: (d.record, type(d.error).__name__, d.operator, d.batch_time)),
        ...     [["1", "x"]])
        [[('x', 'ValueError', 'map_2', 1.0)]]

        Raises:
            ConfigurationError: when this stream sends nothing to dead letters.
        """
        node = self._node
        if not (isinstance(node, DeadLetterOwner) and node.sends_dead_letters()):
            msg = (
                f"dead_letters() of {self.name!r}: it sends no records there; build its "
                'operator with on_error="dead_letter" (or its source with '
                'on_deserialize_error="dead_letter")'
            )
            raise ConfigurationError(msg)
        return self._wrap(DeadLetterNode(node, name))

    # -- whole-batch and structural operators ----------------------------------

    def repartition(self, num_partitions: int, *, name: str | None = None) -> DStream[T]:
        """Spread each batch's records evenly over ``num_partitions`` partitions.

        >>> collect(lambda s: s.repartition(2).glom(), [[1, 2, 3]])
        [[[1, 2], [3]]]
        """
        count = check_whole_number(num_partitions, "repartition(num_partitions)")
        return self._wrap(RepartitionNode(self._node, count, name))

    def union(self, *others: DStream[T], name: str | None = None) -> DStream[T]:
        """The records of this stream and of ``others``, in each batch.

        >>> collect(lambda s: s.union(s.map(str)), [[1]])
        [[1, '1']]
        """
        if not others:
            raise ConfigurationError("union() needs at least one other stream")
        nodes = (self._node, *(self._other(o, "union") for o in others))
        return self._wrap(UnionNode(self._node.graph, nodes, name))

    def count(self, *, name: str | None = None) -> DStream[int]:
        """One record per batch: the number of records in it (0 for an empty batch).

        >>> collect(lambda s: s.count(), [[1, 2], []])
        [[2], [0]]
        """
        return self._wrap(CountNode(self._node.graph, (self._node,), name))

    def reduce(self, func: Callable[[T, T], T], *, name: str | None = None) -> DStream[T]:
        """One record per non-empty batch: its records combined with ``func``.

        >>> import operator
        >>> collect(lambda s: s.reduce(operator.add), [[1, 2, 3], []])
        [[6], []]
        """
        check_function(func, "reduce", 2)
        return self._wrap(ReduceNode(self._node, func, name))

    def transform(self, func: Callable[..., Iterable[U]], *, name: str | None = None) -> DStream[U]:
        """Apply ``func`` to each batch's list of records: ``func(records)`` or
        ``func(batch_time, records)``; it returns the batch's new records (an
        iterable, or an awaitable of one).

        >>> collect(lambda s: s.transform(sorted), [[3, 1, 2]])
        [[1, 2, 3]]
        >>> collect(lambda s: s.transform(lambda t, rs: [(t, len(rs))]), [[3, 1]])
        [[(1.0, 2)]]
        """
        with_time = _with_time(func, "transform", 1)
        return self._wrap(TransformNode((self._node,), func, with_time, name))

    def transform_with(
        self,
        func: Callable[..., Iterable[U]],
        other: DStream[Any],
        *,
        name: str | None = None,
    ) -> DStream[U]:
        """Combine each batch of this stream and of ``other`` with
        ``func(records, other_records)`` or ``func(batch_time, records, other_records)``.

        The arguments may also be given as ``transform_with(other, func)``.

        >>> collect(lambda s: s.transform_with(lambda a, b: a + b, s.map(str)), [[1]])
        [[1, '1']]
        """
        if isinstance(func, DStream) and callable(other):
            func, other = other, func
        other_node = self._other(other, "transform_with")
        with_time = _with_time(func, "transform_with", 2)
        return self._wrap(TransformNode((self._node, other_node), func, with_time, name))

    # -- columnar operators (Arrow, DuckDB, frames; see streamio.columnar) ------------

    def to_arrow(self, schema: Any = None, *, name: str | None = None) -> DStream[Any]:
        """The same records as Arrow data: each batch converted once into Arrow
        chunks (dicts by their keys, tuples as columns ``_1``, ``_2``..., other
        values as the column ``value``), with ``schema`` (a ``pyarrow.Schema``) or
        inferred types. Columnar operators convert row-wise batches by themselves;
        use this to give the schema, or to convert once for several of them.

        >>> import pyarrow as pa
        >>> collect(lambda s: s.to_arrow(pa.schema([("n", pa.float64())])), [[1, 2]])
        [[1.0, 2.0]]
        """
        arrow_schema = check_schema(schema, "to_arrow")
        return self._wrap(ToArrowNode(self._node, arrow_schema, name))

    def sql(self, query: str, name: str | None = None) -> DStream[Any]:
        """Run a DuckDB SQL query over each batch, the table ``batch``; its result
        is the new stream's batch, as Arrow data (read row-wise: one column gives
        values, more give dicts). Needs ``streamio[sql]``.

        The query is parsed now: one that does not parse raises ConfigurationError.
        One that fails on a batch raises OperatorError naming this operator, with
        DuckDB's message.

        >>> collect(lambda s: s.sql("SELECT value * 10 AS v FROM batch WHERE value > 1"),
        ...         [[1, 2, 3]])
        [[20, 30]]
        >>> collect(lambda s: s.map(lambda w: {"word": w}).sql(
        ...     "SELECT word, count(*) AS n FROM batch GROUP BY word ORDER BY word"),
        ...     [["b", "a", "b"]])
        [[{'word': 'a', 'n': 1}, {'word': 'b', 'n': 2}]]
        """
        checked = check_query(query, "sql")
        return self._wrap(SqlNode({"batch": self._node}, checked, name))

    def map_batches(
        self, fn: Callable[..., Any], format: str = "arrow", *, name: str | None = None
    ) -> DStream[Any]:
        """Apply ``fn`` to each whole batch as one frame: ``fn(frame)`` or
        ``fn(batch_time, frame)``, returning a frame (may be ``async``). The frame
        is an Arrow table (``format="arrow"``), a polars DataFrame (``"polars"``)
        or a pandas DataFrame (``"pandas"``); what ``fn`` returns may be any of
        those. The new stream is columnar.

        >>> collect(lambda s: s.map_batches(lambda df: df[df["value"] > 1], format="pandas"),
        ...         [[1, 2, 3]])
        [[2, 3]]
        """
        check_format(format, "map_batches")
        with_time = _with_time(fn, "map_batches", 1)
        return self._wrap(MapBatchesNode(self._node, fn, format, with_time, name))

    def map_async(
        self,
        f: Callable[[T], Awaitable[U]],
        concurrency: int = 10,
        *,
        name: str | None = None,
    ) -> DStream[U]:
        """Apply an async function to every record (an HTTP call, a database lookup),
        with at most ``concurrency`` calls in flight; results keep the records' order.

        >>> async def double(x):
        ...     return 2 * x
        >>> collect(lambda s: s.map_async(double, concurrency=2), [[1, 2, 3]])
        [[2, 4, 6]]
        """
        check_async_function(f, "map_async", 1)
        count = check_whole_number(concurrency, "map_async(concurrency)")
        return self._wrap(AsyncMapNode(self._node, f, count, name))

    def then(self, operator: Callable[..., DStream[U]], *args: Any, **kwargs: Any) -> DStream[U]:
        """Apply a user-defined operator: ``operator(self, *args, **kwargs)``.

        The one way to plug in operators of your own while keeping the chain.

        >>> def evens(stream):
        ...     return stream.filter(lambda x: x % 2 == 0)
        >>> collect(lambda s: s.then(evens), [[1, 2, 3, 4]])
        [[2, 4]]
        """
        check_function(operator, "then", 1 + len(args), list(kwargs))
        result = operator(self, *args, **kwargs)
        if not isinstance(result, DStream):
            msg = f"then(): the operator must return a DStream, not {type(result).__name__}"
            raise ConfigurationError(msg)
        return result

    # -- key operators -------------------------------------------------------------

    def combine_by_key(
        self: DStream[tuple[K, V]],
        create_combiner: Callable[[V], C],
        merge_value: Callable[[C, V], C],
        merge_combiners: Callable[[C, C], C],
        num_partitions: int | None = None,
        *,
        name: str | None = None,
    ) -> DStream[tuple[K, C]]:
        """Per key, build a combiner from the first value, fold in the others, then
        merge the combiners of different partitions.

        >>> collect(lambda s: s.combine_by_key(lambda v: [v], lambda c, v: c + [v],
        ...                                    lambda a, b: a + b), [[("a", 1), ("a", 2)]])
        [[('a', [1, 2])]]
        """
        check_function(create_combiner, "combine_by_key", 1)
        check_function(merge_value, "combine_by_key", 2)
        check_function(merge_combiners, "combine_by_key", 2)
        return self._wrap(
            ShuffleNode(
                self._node,
                "combine_by_key",
                partial(combine_partition, create_combiner, merge_value),
                merge_combiners,
                (create_combiner, merge_value, merge_combiners),
                _check_partitions(num_partitions, "combine_by_key"),
                name,
            )
        )

    def reduce_by_key(
        self: DStream[tuple[K, V]],
        func: Callable[[V, V], V],
        num_partitions: int | None = None,
        *,
        name: str | None = None,
    ) -> DStream[tuple[K, V]]:
        """Combine the values of each key with ``func`` (map-side first).

        >>> import operator
        >>> collect(lambda s: s.reduce_by_key(operator.add), [[("a", 1), ("a", 2)]])
        [[('a', 3)]]
        """
        check_function(func, "reduce_by_key", 2)
        return self._wrap(
            ShuffleNode(
                self._node,
                "reduce_by_key",
                partial(reduce_partition, func),
                func,
                (func,),
                _check_partitions(num_partitions, "reduce_by_key"),
                name,
            )
        )

    def group_by_key(
        self: DStream[tuple[K, V]], num_partitions: int | None = None, *, name: str | None = None
    ) -> DStream[tuple[K, list[V]]]:
        """``(key, [values])`` for every key of the batch.

        >>> collect(lambda s: s.group_by_key(), [[("a", 1), ("a", 2)]])
        [[('a', [1, 2])]]
        """
        return self._wrap(
            ShuffleNode(
                self._node,
                "group_by_key",
                group_partition,
                concat_lists,
                (),
                _check_partitions(num_partitions, "group_by_key"),
                name,
            )
        )

    def count_by_value(
        self, num_partitions: int | None = None, *, name: str | None = None
    ) -> DStream[tuple[T, int]]:
        """``(value, count)`` for every distinct record of the batch.

        >>> collect(lambda s: s.count_by_value(), [["a", "b", "a"]])
        [[('a', 2), ('b', 1)]]
        """
        return self._wrap(
            ShuffleNode(
                self._node,
                "count_by_value",
                Counter,
                _operator.add,
                (),
                _check_partitions(num_partitions, "count_by_value"),
                name,
            )
        )

    def cogroup(
        self: DStream[tuple[K, V]],
        other: DStream[tuple[K, W]],
        num_partitions: int | None = None,
        *,
        name: str | None = None,
    ) -> DStream[tuple[K, tuple[list[V], list[W]]]]:
        """``(key, (values here, values in other))`` for every key of either stream.

        >>> collect(lambda s: s.cogroup(s.map_values(str)), [[("a", 1)]])
        [[('a', ([1], ['1']))]]
        """
        other_node = self._other(other, "cogroup")
        return self._wrap(
            CogroupNode(self._node, other_node, _check_partitions(num_partitions, "cogroup"), name)
        )

    def _join(
        self, operator: str, other: DStream[Any], num_partitions: int | None, name: str | None
    ) -> DStream[Any]:
        count = _check_partitions(num_partitions, operator)
        grouped = CogroupNode(self._node, self._other(other, operator), count, None)
        pairs = _join_pairs(operator)

        def join(records: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
            return ((key, pair) for key, groups in records for pair in pairs(groups))

        joined = NarrowNode(grouped, operator, join, None, name)
        grouped.label = joined.name  # errors name the join the user wrote
        return self._wrap(joined)

    def join(
        self: DStream[tuple[K, V]],
        other: DStream[tuple[K, W]],
        num_partitions: int | None = None,
        *,
        name: str | None = None,
    ) -> DStream[tuple[K, tuple[V, W]]]:
        """``(key, (v, w))`` for every pair of values of a key present in both streams.

        >>> collect(lambda s: s.join(s.map_values(str)), [[("a", 1)]])
        [[('a', (1, '1'))]]
        """
        return self._join("join", other, num_partitions, name)

    def left_outer_join(
        self: DStream[tuple[K, V]],
        other: DStream[tuple[K, W]],
        num_partitions: int | None = None,
        *,
        name: str | None = None,
    ) -> DStream[tuple[K, tuple[V, W | None]]]:
        """Like :meth:`join`, keeping keys missing from ``other`` with ``None``.

        >>> collect(lambda s: s.left_outer_join(s.filter(lambda kv: kv[1] > 1)),
        ...         [[("a", 1)]])
        [[('a', (1, None))]]
        """
        return self._join("left_outer_join", other, num_partitions, name)

    def right_outer_join(
        self: DStream[tuple[K, V]],
        other: DStream[tuple[K, W]],
        num_partitions: int | None = None,
        *,
        name: str | None = None,
    ) -> DStream[tuple[K, tuple[V | None, W]]]:
        """Like :meth:`join`, keeping keys missing from this stream with ``None``.

        >>> collect(lambda s: s.filter(lambda kv: kv[1] > 1).right_outer_join(s),
        ...         [[("a", 1)]])
        [[('a', (None, 1))]]
        """
        return self._join("right_outer_join", other, num_partitions, name)

    def full_outer_join(
        self: DStream[tuple[K, V]],
        other: DStream[tuple[K, W]],
        num_partitions: int | None = None,
        *,
        name: str | None = None,
    ) -> DStream[tuple[K, tuple[V | None, W | None]]]:
        """Like :meth:`join`, keeping keys of either side with ``None`` for the other.

        >>> collect(lambda s: s.full_outer_join(s.filter(lambda kv: kv[1] > 1)),
        ...         [[("a", 1)]])
        [[('a', (1, None))]]
        """
        return self._join("full_outer_join", other, num_partitions, name)

    # -- windows --------------------------------------------------------------------

    def _window(self, operator: str, length: float, slide: float | None) -> tuple[float, float]:
        return check_window(operator, self._node.slide, length, slide)

    def window(
        self, window_length: float, slide_interval: float | None = None, *, name: str | None = None
    ) -> DStream[T]:
        """Every ``slide_interval`` seconds, the records of the last ``window_length``
        seconds of batches. Both must be multiples of this stream's slide (the batch
        interval by default); the slide defaults to this stream's.

        >>> collect(lambda s: s.window(2.0), [[1], [2], [3]])
        [[1], [1, 2], [2, 3]]
        >>> collect(lambda s: s.window(3.0, 2.0), [[1], [2], [3], [4]])
        [[1, 2], [2, 3, 4]]
        """
        length, slide = self._window("window", window_length, slide_interval)
        return self._wrap(WindowNode(self._node, length, slide, name))

    def reduce_by_key_and_window(
        self: DStream[tuple[K, V]],
        func: Callable[[V, V], V],
        inv_func: Callable[[V, V], V] | None,
        window_length: float,
        slide_interval: float | None = None,
        num_partitions: int | None = None,
        filter_func: Callable[[tuple[K, V]], Any] | None = None,
        *,
        name: str | None = None,
    ) -> DStream[tuple[K, V]]:
        """``reduce_by_key`` over a sliding window.

        With ``inv_func`` (the inverse of ``func``, e.g. ``operator.sub`` for
        ``operator.add``) each window is computed from the previous one, adding the
        batches that enter and removing those that leave: its cost does not grow
        with the window's length. Keys whose value returns to the "zero" are kept,
        as in Spark, unless ``filter_func((key, value))`` returns false for them.
        Without ``inv_func`` every window is reduced anew (``filter_func`` is not
        used then, as in PySpark).

        >>> import operator
        >>> collect(lambda s: s.reduce_by_key_and_window(operator.add, operator.sub, 2.0),
        ...         [[("a", 1)], [("a", 2)], [("b", 1)]])
        [[('a', 1)], [('a', 3)], [('a', 2), ('b', 1)]]
        """
        check_function(func, "reduce_by_key_and_window", 2)
        if inv_func is not None:
            check_function(inv_func, "reduce_by_key_and_window", 2)
        if filter_func is not None:
            check_function(filter_func, "reduce_by_key_and_window", 1)
        length, slide = self._window("reduce_by_key_and_window", window_length, slide_interval)
        count = _check_partitions(num_partitions, "reduce_by_key_and_window")
        reduced = self.reduce_by_key(func, count)._node
        if inv_func is None:
            windowed: DStream[tuple[K, V]] = DStream(
                self._context, WindowNode(reduced, length, slide, None)
            )
            result: DStream[tuple[K, V]] = windowed.reduce_by_key(func, count, name=name)
        else:
            result = self._wrap(
                ReducedWindowNode(reduced, func, inv_func, length, slide, count, filter_func, name)
            )
        return _name_hidden_steps(result, self)

    def group_by_key_and_window(
        self: DStream[tuple[K, V]],
        window_length: float,
        slide_interval: float,
        num_partitions: int | None = None,
        *,
        name: str | None = None,
    ) -> DStream[tuple[K, list[V]]]:
        """``(key, [values])`` for every key with values in the window, the values in
        the order they arrived (PySpark's ``groupByKeyAndWindow``, as lists).

        As in Spark, each window groups the records of its batches anew, and keys
        whose values have all left the window are not emitted.

        >>> collect(lambda s: s.group_by_key_and_window(2.0, 1.0).transform(sorted),
        ...         [[("a", 1)], [("a", 2), ("b", 3)], [("b", 4)], []])
        [[('a', [1])], [('a', [1, 2]), ('b', [3])], [('a', [2]), ('b', [3, 4])], [('b', [4])]]
        """
        length, slide = self._window("group_by_key_and_window", window_length, slide_interval)
        count = _check_partitions(num_partitions, "group_by_key_and_window")
        windowed: DStream[tuple[K, V]] = DStream(
            self._context, WindowNode(self._node, length, slide, None)
        )
        return _name_hidden_steps(windowed.group_by_key(count, name=name), self)

    def reduce_by_window(
        self,
        func: Callable[[T, T], T],
        inv_func: Callable[[T, T], T] | None,
        window_length: float,
        slide_interval: float,
        *,
        name: str | None = None,
    ) -> DStream[T]:
        """One record per window: its records combined with ``func`` (incrementally
        when ``inv_func`` is given; then, as in Spark, a window that empties after
        holding records gives the "zero", e.g. 0).

        >>> import operator
        >>> collect(lambda s: s.reduce_by_window(operator.add, operator.sub, 2.0, 1.0),
        ...         [[1, 2], [3], []])
        [[3], [6], [3]]
        """
        check_function(func, "reduce_by_window", 2)
        if inv_func is not None:
            check_function(inv_func, "reduce_by_window", 2)
        self._window("reduce_by_window", window_length, slide_interval)
        keyed = self.map(_key_one)
        reduced = keyed.reduce_by_key_and_window(func, inv_func, window_length, slide_interval, 1)
        return _name_hidden_steps(reduced.map(_value, name=name), self)

    def count_by_window(
        self, window_length: float, slide_interval: float, *, name: str | None = None
    ) -> DStream[int]:
        """One record per window: how many records it holds (incremental).

        >>> collect(lambda s: s.count_by_window(2.0, 1.0), [[1, 2], [3], []])
        [[2], [3], [1]]
        """
        self._window("count_by_window", window_length, slide_interval)
        counted = self.map(_one).reduce_by_window(
            _operator.add, _operator.sub, window_length, slide_interval, name=name
        )
        return _name_hidden_steps(counted, self)

    def count_by_value_and_window(
        self,
        window_length: float,
        slide_interval: float,
        num_partitions: int | None = None,
        *,
        name: str | None = None,
    ) -> DStream[tuple[T, int]]:
        """``(value, count)`` for every distinct record of each window (incremental).

        >>> collect(lambda s: s.count_by_value_and_window(2.0, 1.0), [["a"], ["a", "b"], []])
        [[('a', 1)], [('a', 2), ('b', 1)], [('a', 1), ('b', 1)]]
        """
        self._window("count_by_value_and_window", window_length, slide_interval)
        count = _check_partitions(num_partitions, "count_by_value_and_window")
        counted = self.map(_pair_one).reduce_by_key_and_window(
            _operator.add, _operator.sub, window_length, slide_interval, count
        )
        return _name_hidden_steps(counted.filter(_positive_count, name=name), self)

    def slice(self, from_time: float, to_time: float) -> list[tuple[float, list[T]]]:
        """The remembered batches of this stream with times in ``[from_time, to_time]``
        (aligned down to the slide grid), as ``(batch_time, records)``.

        Batches are remembered as long as windows need them, or as
        ``ssc.remember(duration)`` asks.

        Raises:
            ContextStateError: if a batch in the range has not run yet.
            ConfigurationError: if a batch in the range ran but is no longer
                remembered.
        """
        node = self._node
        zero, slide = node.graph.zero_time, node.slide
        first = zero + math.floor((from_time - zero) / slide + 1e-9) * slide
        last = zero + math.floor((to_time - zero) / slide + 1e-9) * slide
        ran = self._context.last_batch
        found = []
        for time in times_between(node, first - slide, last):
            batch = node.remembered(time)
            if batch is None and (ran is None or time > ran.batch_time + 1e-6):
                done = f"the last one ran at {ran.batch_time}" if ran else "no batch has run"
                msg = f"slice(): the batch at {time} of {self.name!r} has not run yet ({done})"
                raise ContextStateError(msg)
            if batch is None:
                msg = (
                    f"slice(): the batch at {time} of {self.name!r} is not remembered; "
                    "call ssc.remember(duration) before start() to keep past batches"
                )
                raise ConfigurationError(msg)
            found.append((time, batch.records()))
        return found

    # -- state ----------------------------------------------------------------------

    def update_state_by_key(
        self: DStream[tuple[K, V]],
        update_fn: Callable[[list[V], S | None], S | None],
        initial_state: Iterable[tuple[K, S]] | None = None,
        num_partitions: int | None = None,
        *,
        name: str | None = None,
    ) -> DStream[tuple[K, S]]:
        """Keep a state per key across batches: every batch, ``update_fn(new_values,
        old_state)`` gives each key's new state (``old_state`` is None for a new key;
        keys without new values are called with ``[]``; returning None removes the
        key). The stream holds every ``(key, state)`` after each batch.

        >>> collect(lambda s: s.update_state_by_key(lambda vs, old: (old or 0) + sum(vs)),
        ...         [[("a", 1)], [("a", 2), ("b", 5)], []])
        [[('a', 1)], [('a', 3), ('b', 5)], [('a', 3), ('b', 5)]]
        """
        check_function(update_fn, "update_state_by_key", 2)
        initial = initial_pairs(initial_state, "update_state_by_key")
        count = _check_partitions(num_partitions, "update_state_by_key")
        return self._wrap(UpdateStateNode(self._node, update_fn, initial, count, name))

    def map_with_state(
        self: DStream[tuple[K, V]], spec: StateSpec, *, name: str | None = None
    ) -> MapWithStateDStream[Any]:
        """Map every ``(key, value)`` record with ``spec.function(batch_time, key, value,
        state)``, which reads and changes the key's :class:`~streamio.State`; what it
        returns is emitted (None emits nothing). Keys idle for ``spec.timeout`` seconds
        get a last call with value None while ``state.is_timing_out()``.

        The returned stream's ``state_snapshots()`` holds every ``(key, state)``.

        >>> def running_total(time, key, value, state):
        ...     total = state.get_option(0) + value
        ...     state.update(total)
        ...     return (key, total)
        >>> collect(lambda s: s.map_with_state(StateSpec(running_total)),
        ...         [[("a", 1), ("a", 2)], [("a", 3)]])
        [[('a', 1), ('a', 3)], [('a', 6)]]
        """
        if not isinstance(spec, StateSpec):
            msg = f"map_with_state() needs a streamio.StateSpec, not {type(spec).__name__}"
            raise ConfigurationError(msg)
        return MapWithStateDStream(self._context, MapWithStateNode(self._node, spec, name))

    # -- event time -------------------------------------------------------------------

    def event_time_window(
        self,
        timestamp: Callable[[T], float],
        window_length: float,
        slide_interval: float | None = None,
        *,
        allowed_lateness: float = 0.0,
        key: Callable[[T], Any] | None = None,
        name: str | None = None,
    ) -> EventTimeDStream[EventWindow]:
        """Windows over the time events happened: ``timestamp(record)`` seconds.

        Tumbling windows of ``window_length`` seconds (aligned to 0), or sliding
        ones every ``slide_interval`` seconds, per ``key(record)`` when given. The
        watermark is the largest timestamp seen minus ``allowed_lateness``; a window
        is emitted as an :class:`~streamio.EventWindow` once the watermark passes
        its end. Records too late for every window of theirs go to
        ``late_records()``.

        >>> collect(lambda s: s.event_time_window(lambda r: r, 10.0).map(
        ...     lambda w: (w.start, w.end, w.records)), [[1, 4, 12], [25, 3]])
        [[(0.0, 10.0, [1, 4])], [(10.0, 20.0, [12])]]
        """
        check_function(timestamp, "event_time_window", 1)
        if key is not None:
            check_function(key, "event_time_window", 1)
        length = check_number(window_length, "event_time_window(): window_length")
        slide = length if slide_interval is None else slide_interval
        slide = check_number(slide, "event_time_window(): slide_interval")
        lateness = check_number(
            allowed_lateness, "event_time_window(): allowed_lateness", allow_zero=True
        )
        node = EventTimeWindowNode(self._node, timestamp, key, length, slide, lateness, name)
        return EventTimeDStream(self._context, node)

    def session_window(
        self,
        timestamp: Callable[[T], float],
        gap: float,
        *,
        allowed_lateness: float = 0.0,
        key: Callable[[T], Any] | None = None,
        name: str | None = None,
    ) -> EventTimeDStream[EventWindow]:
        """Session windows over event time: a key's events less than ``gap`` seconds
        apart form one window ``[first, last + gap)``, emitted once the watermark
        (largest timestamp seen minus ``allowed_lateness``) passes its end.

        >>> collect(lambda s: s.session_window(lambda r: r, 5.0).map(
        ...     lambda w: (w.start, w.end, w.records)), [[1, 3, 20], [30]])
        [[(1.0, 8.0, [1, 3])], [(20.0, 25.0, [20])]]
        """
        check_function(timestamp, "session_window", 1)
        if key is not None:
            check_function(key, "session_window", 1)
        length = check_number(gap, "session_window(): gap")
        lateness = check_number(
            allowed_lateness, "session_window(): allowed_lateness", allow_zero=True
        )
        node = SessionWindowNode(self._node, timestamp, key, length, lateness, name)
        return EventTimeDStream(self._context, node)

    # -- online learning (River models; see streamio.ml) ----------------------------

    def learn(self, model: Any, *, name: str | None = None) -> None:
        """Train ``model`` (any object with River's ``learn_one(x, y)``) on every
        ``(x, y)`` record, in order: an output operation of its own. A record whose
        ``x`` is a data frame is learnt with ``learn_many(X, y)``.

        >>> class Mean:                     # any object with learn_one / predict_one
        ...     total, count = 0.0, 0
        ...     def learn_one(self, x, y):
        ...         self.total, self.count = self.total + y, self.count + 1
        ...     def predict_one(self, x):
        ...         return self.total / self.count if self.count else None
        >>> mean = Mean()
        >>> collect(lambda s: s.learn(mean) or s.map(lambda r: r[0]).predict(mean),
        ...         [[("a", 1.0), ("b", 3.0)], [("c", 8.0)]])
        [[('a', None), ('b', None)], [('c', 2.0)]]
        """
        from .ml.river import learn

        learn(self, model, name)

    def predict(self, model: Any, *, name: str | None = None) -> DStream[tuple[T, Any]]:
        """``(x, model.predict_one(x))`` for every record ``x`` (``predict_many`` for a
        data frame), with the model as it was before this batch's learning, whatever
        the order in which ``learn`` / ``evaluate`` and ``predict`` were called."""
        from .ml.river import predict

        return predict(self, model, name)

    def evaluate(self, model: Any, metric: Any, *, name: str | None = None) -> DStream[Any]:
        """Progressive validation (test-then-train) of ``model`` on the ``(x, y)``
        records, in order, as River's ``progressive_val_score``: each record is
        predicted, scored with ``metric.update(y, y_pred)``, then learnt. One record
        per batch: a copy of the metric after it. The model learns as this stream
        is computed: give it an output (``pprint``, ``foreach_batch``)."""
        from .ml.river import evaluate

        return evaluate(self, model, metric, name)

    # -- output operations ----------------------------------------------------------

    def foreach_batch(
        self, fn: Callable[..., Any], *, name: str | None = None, format: str | None = None
    ) -> None:
        """Call ``fn(batch_time, records)`` (or ``fn(records)``) for every batch.

        ``fn`` may be ``async def``; the batch counts as done when it returns.
        Output operations run in registration order, one batch after the other.
        A :class:`~streamio.abc.Sink` is first told which stream it writes
        (:meth:`~streamio.abc.Sink.attach`). With ``format="arrow"``, ``"polars"``
        or ``"pandas"``, ``fn`` gets the batch as one frame of that kind instead of
        a list of records (see :meth:`map_batches`).
        """
        with_time = _with_time(fn, "foreach_batch", 1)
        if format is not None:
            checked = check_format(format, "foreach_batch")
            FrameOutput(self._node, fn, checked, with_time, name)
            return
        call = fn if with_time else (lambda time, records: fn(records))
        if isinstance(fn, Sink):
            fn.attach(self)
        OutputOperation(self._node, call, "foreach_batch", name, user_fn=fn)

    def pprint(self, num: int = 10, *, name: str | None = None) -> None:
        """Print the first ``num`` records of every batch, in Spark's format.

        A ``Time: <batch time>`` header between dashed lines, one record per line,
        ``...`` when the batch holds more, then an empty line. The time is a local
        date and time as PySpark prints it (``2026-12-01 18:16:13``), with
        milliseconds when the batch interval is under a second.
        """
        limit = check_whole_number(num, "pprint(num)")
        interval = self._node.graph.batch_interval

        def print_batch(time: float, records: list[Any]) -> None:
            lines = [
                "-------------------------------------------",
                f"Time: {format_time(time, interval)}",
                "-------------------------------------------",
            ]
            lines.extend(str(record) for record in records[:limit])
            if len(records) > limit:
                lines.append("...")
            print("\n".join(lines) + "\n")

        OutputOperation(self._node, print_batch, "pprint", name)

    def to_dashboard(
        self, title: str, *, kind: str = "table", top: int = 10, name: str | None = None
    ) -> None:
        """Show every batch of this stream live on the context's dashboard.

        ``kind``: "table" (the records as rows), "bar" ((label, number) pairs as
        bars) or "line" (one point per batch: the sum of a stream of numbers
        such as ``count()``, or one line per label of (label, number) pairs).
        (label, number) pairs are ranked by their number, largest first, and
        ``top`` rows, bars or lines are shown; other records keep their order.
        An output operation, like ``pprint``: it only reads the batch. Its name
        (in metrics) is ``name``, or the title. Add it before ``start()``.

        Raises:
            ConfigurationError: for an empty title, an unknown kind, or a
                ``top`` that is not a whole number >= 1.
        """
        from .dashboard.panels import Panel

        panel = Panel(title, kind, top, self._context._retained_batches)
        monitor = self._context._monitoring()

        def show(time: float, records: list[Any]) -> None:
            panel.update(time, records)
            monitor.changed()

        if name is None:
            name = self._node.graph.free_name(title)  # the panel's name in metrics
        panel.name = OutputOperation(self._node, show, "to_dashboard", name).name
        monitor.add_panel(panel)


def _name_hidden_steps(result: DStream[Any], start: DStream[Any]) -> DStream[Any]:
    """Let the hidden steps of a composite operator (between ``start`` and
    ``result``) report their errors under the name of the operator the user wrote."""
    pending = list(result._node.parents)
    while pending:
        node = pending.pop()
        if node is not start._node:
            node.label = result._node.label
            pending.extend(node.parents)
    return result


class MapWithStateDStream(DStream[T]):
    """The stream ``map_with_state`` returns: mapped records, plus the state."""

    __slots__ = ()

    def state_snapshots(self, *, name: str | None = None) -> DStream[tuple[Any, Any]]:
        """Every ``(key, state)`` after each batch."""
        owner = cast(StatefulNode, self._node)
        return DStream(self._context, SideOutputNode(owner, "state_snapshots", name))


class EventTimeDStream(DStream[T]):
    """The stream of emitted event-time windows, plus the records too late for them."""

    __slots__ = ()

    def late_records(self, *, name: str | None = None) -> DStream[Any]:
        """The records that arrived after every window they belong to was emitted."""
        owner = cast(StatefulNode, self._node)
        return DStream(self._context, SideOutputNode(owner, "late_records", name))


def _key_one(record: Any) -> tuple[int, Any]:
    return (1, record)


def _value(pair: tuple[Any, Any]) -> Any:
    return pair[1]


def _one(record: Any) -> int:
    return 1


def _pair_one(record: Any) -> tuple[Any, int]:
    return (record, 1)


def _positive_count(pair: tuple[Any, int]) -> bool:
    return pair[1] > 0


def _with_time(fn: Any, operator: str, arity: int) -> bool:
    """Whether ``fn`` takes the batch time before its ``arity`` record lists."""
    if not callable(fn):
        check_function(fn, operator, arity)
    plain, timed = accepts(fn, arity), accepts(fn, arity + 1)
    if plain is False and timed is False:
        msg = (
            f"{operator}() calls its function with {arity} record list(s), optionally "
            f"preceded by the batch time, but {describe(fn)} takes neither"
        )
        raise ConfigurationError(msg)
    return timed is True and plain is not True
