"""Columnar batches: Arrow chunks through the buffer and the batch cut, row-wise and
key operators reading them, SQL (checked against plain-Python results on random
batches), map_batches and foreach_batch in each format, and their errors."""

from __future__ import annotations

import collections
import operator
import subprocess
import sys
from functools import partial
from typing import Any

import anyio
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamio import ConfigurationError, OperatorError, StreamingContext
from streamio.checks import check_installed
from streamio.testing import ListSink, ManualClock, MemorySource, collect_batches, step

HANG_GUARD = 10


def context(**options: Any) -> StreamingContext:
    return StreamingContext(batch_interval=1.0, clock=ManualClock(), **options)


def lines_batch(lines: list[str]) -> pa.RecordBatch:
    return pa.record_batch([pa.array(lines, pa.string())], names=["line"])


def buffer_range(array: pa.Array) -> tuple[int, int]:
    """Where the bytes of a string array's values live."""
    data = array.buffers()[2]
    return data.address, data.address + data.size


# -- Arrow chunks through the buffer and the cut ----------------------------------------------


async def test_the_buffer_counts_rows_and_the_cut_slices_without_copying():
    stored = lines_batch([f"line {i}" for i in range(10)])
    low, high = buffer_range(stored.column(0))
    tables: list[pa.Table] = []
    partitions: ListSink[int] = ListSink()
    async with context(partition_size=4) as ssc:
        source: MemorySource[Any] = MemorySource()
        stream = ssc.receiver_stream(source, max_rate=7)  # the second batch takes the rest
        stream.foreach_batch(tables.append, format="arrow")
        stream.glom().map(len).foreach_batch(partitions)
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await source.send(stored)
        assert stream.buffer_statistics().used == 10  # rows, not one chunk
        await step(ssc, 2)
    assert partitions.batches == [(1.0, [4, 3]), (2.0, [3])]
    assert [t.column("line").to_pylist() for t in tables] == [
        [f"line {i}" for i in range(7)],
        [f"line {i}" for i in range(7, 10)],
    ]
    for table in tables:  # every piece of every batch views the receiver's own bytes
        for chunk in table.column("line").chunks:
            start, end = buffer_range(chunk)
            assert low <= start and end <= high
            assert chunk.buffers()[1].address >= stored.column(0).buffers()[1].address


async def test_row_wise_operators_read_values_of_one_column_and_dicts_of_more():
    values: ListSink[Any] = ListSink()
    rows: ListSink[Any] = ListSink()
    async with context() as ssc:
        source: MemorySource[Any] = MemorySource()
        stream = ssc.receiver_stream(source)
        stream.map(lambda r: r).foreach_batch(rows)
        wide = ssc.receiver_stream(MemorySource())
        wide.foreach_batch(rows)
        stream.filter(lambda line: "b" in line).map(str.upper).foreach_batch(values)
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await source.send(lines_batch(["a", "b", "ab"]))
        await step(ssc)
    assert values.batches == [(1.0, ["B", "AB"])]
    assert rows.batches[0] == (1.0, ["a", "b", "ab"])


async def test_a_wide_batch_gives_dicts_and_key_operators_read_tuples():
    batch = pa.record_batch({"word": ["a", "b", "a"], "n": [1, 2, 3]})
    dicts: ListSink[Any] = ListSink()
    sums: ListSink[Any] = ListSink()
    joined: ListSink[Any] = ListSink()
    async with context() as ssc:
        source: MemorySource[Any] = MemorySource()
        stream = ssc.receiver_stream(source)
        stream.foreach_batch(dicts)
        stream.reduce_by_key(operator.add).foreach_batch(sums)
        stream.join(stream.map(lambda row: (row["word"], -row["n"]))).foreach_batch(joined)
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await source.send(batch)
        await step(ssc)
    assert dicts.records == [{"word": "a", "n": 1}, {"word": "b", "n": 2}, {"word": "a", "n": 3}]
    assert sorted(sums.records) == [("a", 4), ("b", 2)]
    assert sorted(joined.records) == sorted(
        (w, (n, -m))
        for w, n in [("a", 1), ("b", 2), ("a", 3)]
        for v, m in [("a", 1), ("b", 2), ("a", 3)]
        if v == w
    )


async def test_window_union_repartition_and_count_keep_batches_columnar():
    counts: ListSink[int] = ListSink()
    windowed: ListSink[Any] = ListSink()
    sizes: ListSink[Any] = ListSink()
    tables: list[pa.Table] = []
    async with context() as ssc:
        source: MemorySource[Any] = MemorySource()
        lines = ssc.receiver_stream(source)
        both = lines.union(lines)
        both.count().foreach_batch(counts)
        lines.window(2.0).sql("SELECT count(*) AS n FROM batch").foreach_batch(windowed)
        spread = both.repartition(3)
        spread.glom().map(len).foreach_batch(sizes)
        spread.foreach_batch(tables.append, format="arrow")
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await source.send(lines_batch(["a", "b", "c", "d"]))
        await step(ssc)
        with anyio.fail_after(HANG_GUARD):
            await source.send(lines_batch(["e"]))
        await step(ssc, 2)
    assert counts.batches == [(1.0, [8]), (2.0, [2]), (3.0, [0])]
    assert windowed.batches == [(1.0, [4]), (2.0, [5]), (3.0, [1])]
    assert sizes.batches[0] == (1.0, [3, 3, 2])
    assert tables[0].schema == pa.schema([("line", pa.string())])
    assert tables[0].column(0).to_pylist() == ["a", "b", "c", "d"] * 2


# -- SQL against plain Python ------------------------------------------------------------------

WORD_COUNT = (
    "SELECT word, count(*) AS n FROM "
    "(SELECT unnest(string_split(line, ' ')) AS word FROM batch) GROUP BY word"
)

words = st.text(alphabet="abcé", min_size=1, max_size=3)
line = st.lists(words, min_size=1, max_size=4).map(" ".join)
batches = st.lists(st.lists(line, max_size=15), min_size=1, max_size=4)


async def run_batches(build: Any, sent: list[list[str]], *, columnar: bool) -> list[list[Any]]:
    sink: ListSink[Any] = ListSink()
    async with context(partition_size=5) as ssc:
        source: MemorySource[Any] = MemorySource()
        build(ssc.receiver_stream(source)).foreach_batch(sink)
        await ssc.start()
        for lines in sent:
            if lines:
                with anyio.fail_after(HANG_GUARD):
                    await source.send(lines_batch(lines) if columnar else lines)
            await step(ssc)
    return [records for _, records in sink.batches]


@settings(max_examples=25, deadline=None)
@given(batches)
def test_sql_word_counts_equal_the_row_wise_word_counts(sent):
    def sql(lines):
        return lines.sql(WORD_COUNT).map(lambda row: (row["word"], row["n"]))

    def rows(lines):
        return lines.flat_map(lambda text: text.split(" ")).count_by_value()

    got = anyio.run(partial(run_batches, sql, sent, columnar=True))
    expected = anyio.run(partial(run_batches, rows, sent, columnar=False))
    assert [sorted(b) for b in got] == [sorted(b) for b in expected]
    assert [sorted(b) for b in expected] == [
        sorted(collections.Counter(w for text in lines for w in text.split(" ")).items())
        for lines in sent
    ]


@settings(max_examples=25, deadline=None)
@given(batches)
def test_windowed_sql_equals_the_row_wise_window(sent):
    def sql(lines):
        return lines.window(2.0).sql("SELECT line, length(line) AS n FROM batch")

    def rows(lines):
        return lines.window(2.0).map(lambda text: {"line": text, "n": len(text)})

    got = anyio.run(partial(run_batches, sql, sent, columnar=True))
    expected = anyio.run(partial(run_batches, rows, sent, columnar=False))
    assert got == expected


@settings(max_examples=20, deadline=None)
@given(batches)
def test_row_wise_batches_reaching_sql_are_converted_once(sent):
    def sql(lines):
        return lines.sql("SELECT value AS line FROM batch WHERE value LIKE '%a%'")

    got = anyio.run(partial(run_batches, sql, sent, columnar=False))
    assert got == [[text for text in lines if "a" in text] for lines in sent]


async def test_ssc_sql_joins_streams_of_the_same_batch_time():
    sink: ListSink[Any] = ListSink()
    async with context() as ssc:
        clicks_source: MemorySource[Any] = MemorySource()
        clicks = ssc.receiver_stream(clicks_source)
        users = ssc.queue_stream(
            [[{"user": "ann", "country": "fr"}, {"user": "bo", "country": "se"}]]
        )
        joined = ssc.sql(
            'SELECT c.user, u.country, c.ms FROM clicks c JOIN users u USING ("user") ORDER BY ms',
            clicks=clicks,
            users=users,
        )
        joined.foreach_batch(sink)
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await clicks_source.send(
                pa.record_batch({"user": ["bo", "ann", "cy"], "ms": [5, 7, 9]})
            )
        await step(ssc)
    assert sink.batches == [
        (1.0, [{"user": "bo", "country": "se", "ms": 5}, {"user": "ann", "country": "fr", "ms": 7}])
    ]


async def test_an_empty_batch_is_an_empty_table_once_the_schema_is_known():
    sink: ListSink[Any] = ListSink()
    async with context() as ssc:
        source: MemorySource[Any] = MemorySource()
        ssc.receiver_stream(source).sql("SELECT count(*) AS n FROM batch").foreach_batch(sink)
        await ssc.start()
        await step(ssc)  # nothing seen yet and no schema declared: no query
        with anyio.fail_after(HANG_GUARD):
            await source.send(lines_batch(["a"]))
        await step(ssc, 2)
    assert sink.batches == [(1.0, []), (2.0, [1]), (3.0, [0])]


async def test_a_schema_declared_by_the_receiver_makes_the_first_empty_batch_a_table():
    class Lines(MemorySource[Any]):
        schema = pa.schema([("line", pa.string())])

    sink: ListSink[Any] = ListSink()
    async with context() as ssc:
        ssc.receiver_stream(Lines()).window(2.0).sql("SELECT count(*) FROM batch").foreach_batch(
            sink
        )
        await ssc.start()
        await step(ssc)
    assert sink.batches == [(1.0, [0])]


async def test_each_row_wise_batch_gets_its_own_inferred_schema():
    got = await collect_batches(
        lambda s: s.sql("SELECT * FROM batch"), [[{"a": 1}], [], [{"a": 2, "b": "x"}]]
    )
    assert got == [[1], [], [{"a": 2, "b": "x"}]]  # one column: its values


async def test_to_arrow_converts_with_a_schema_or_inferred_types():
    schema = pa.schema([("a", pa.int16()), ("b", pa.string())])
    got = await collect_batches(
        lambda s: s.to_arrow(schema).sql("SELECT typeof(a) AS t, b FROM batch"), [[(1, "x")]]
    )
    assert got == [[{"t": "SMALLINT", "b": "x"}]]
    named = collections.namedtuple("named", "k v")
    got = await collect_batches(
        lambda s: s.sql("SELECT k, v * 2 AS v FROM batch"), [[named("x", 2)]]
    )
    assert got == [[{"k": "x", "v": 4}]]
    got = await collect_batches(lambda s: s.sql("SELECT _1 || _2 AS s FROM batch"), [[("x", "y")]])
    assert got == [["xy"]]


# -- map_batches and foreach_batch in each format ---------------------------------------------


@pytest.mark.parametrize(
    ("format", "kind"), [("arrow", pa.Table), ("polars", pl.DataFrame), ("pandas", pd.DataFrame)]
)
async def test_map_batches_and_foreach_batch_hand_each_format(format, kind):
    seen: list[Any] = []
    out: ListSink[Any] = ListSink()
    frames: list[tuple[float, Any]] = []

    def slow_only(frame):
        seen.append(frame)
        if format == "arrow":
            return frame.filter(pa.compute.greater(frame["ms"], 100))
        return frame.filter(frame["ms"] > 100) if format == "polars" else frame[frame["ms"] > 100]

    async with context() as ssc:
        source: MemorySource[Any] = MemorySource()
        clicks = ssc.receiver_stream(source)
        slow = clicks.map_batches(slow_only, format=format)
        slow.foreach_batch(out)
        slow.foreach_batch(lambda time, frame: frames.append((time, frame)), format=format)
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await source.send(pa.record_batch({"user": ["a", "b", "c"], "ms": [50, 150, 300]}))
        await step(ssc)
    assert all(isinstance(frame, kind) for frame in seen)
    assert out.batches == [(1.0, [{"user": "b", "ms": 150}, {"user": "c", "ms": 300}])]
    [(time, frame)] = frames
    assert time == 1.0 and isinstance(frame, kind)
    users = frame["user"].to_pylist() if format == "arrow" else list(frame["user"])
    assert users == ["b", "c"]


async def test_an_async_map_batches_function_with_the_batch_time():
    async def stamp(time, table):
        return table.append_column("t", pa.array([time] * table.num_rows))

    got = await collect_batches(lambda s: s.map_batches(stamp), [[{"x": 1}], [{"x": 2}]])
    assert got == [[{"x": 1, "t": 1.0}], [{"x": 2, "t": 2.0}]]


# -- errors --------------------------------------------------------------------------------------


def test_a_query_that_does_not_parse_fails_when_the_graph_is_built():
    ssc = context()
    stream = ssc.queue_stream([])
    with pytest.raises(ConfigurationError, match=r"does not parse.*SELEC"):
        stream.sql("SELEC line FROM batch")
    with pytest.raises(ConfigurationError, match="one SELECT"):
        stream.sql("CREATE TABLE t (x INT)")
    with pytest.raises(ConfigurationError, match="one SELECT"):
        stream.sql("SELECT 1; SELECT 2")
    with pytest.raises(ConfigurationError, match="does not parse"):
        ssc.sql("SELECT FROM WHERE", a=stream)
    with pytest.raises(ConfigurationError, match="needs the streams"):
        ssc.sql("SELECT 1")
    with pytest.raises(ConfigurationError, match="different slide intervals"):
        ssc.sql("SELECT * FROM a, b", a=stream, b=stream.window(2.0, 2.0))
    with pytest.raises(ConfigurationError, match="query string"):
        stream.sql(42)  # type: ignore[arg-type]


def test_bad_formats_and_schemas_fail_when_the_graph_is_built():
    stream = context().queue_stream([])
    with pytest.raises(ConfigurationError, match='"arrow", "polars" or "pandas"'):
        stream.map_batches(lambda df: df, format="spark")
    with pytest.raises(ConfigurationError, match='"arrow", "polars" or "pandas"'):
        stream.foreach_batch(lambda df: None, format="csv")
    with pytest.raises(ConfigurationError, match=r"pyarrow\.Schema"):
        stream.to_arrow({"a": "int"})
    with pytest.raises(ConfigurationError, match="takes neither"):
        stream.map_batches(lambda a, b, c: a)


def test_a_missing_optional_module_says_what_to_install():
    with pytest.raises(ConfigurationError, match=r"needs no_such_mod: pip install 'streamio\[x\]'"):
        check_installed("no_such_mod", "a feature", "x")


async def run_failing(build: Any, sent: Any) -> OperatorError:
    with pytest.raises(OperatorError) as info:
        async with context() as ssc:
            source: MemorySource[Any] = MemorySource()
            build(ssc.receiver_stream(source)).foreach_batch(ListSink())
            await ssc.start()
            with anyio.fail_after(HANG_GUARD):
                await source.send(sent)
            await step(ssc)
    return info.value


async def test_a_query_failing_on_a_batch_names_the_operator_and_shows_duckdb_message():
    error = await run_failing(
        lambda s: s.sql("SELECT nope FROM batch", name="top words"), lines_batch(["a"])
    )
    assert error.operator == "top words" and error.batch_time == 1.0
    assert 'Referenced column "nope" not found' in str(error)
    error = await run_failing(
        lambda s: s.sql("SELECT CAST(line AS INTEGER) FROM batch"), lines_batch(["x"])
    )
    assert "Could not convert string 'x'" in str(error)


async def test_a_map_batches_function_returning_no_frame_is_an_operator_error():
    def wrong(table):
        return [1, 2]

    error = await run_failing(lambda s: s.map_batches(wrong, name="bad"), lines_batch(["a"]))
    assert error.operator == "bad"
    assert "must return a frame" in str(error) and "list" in str(error)


async def test_records_arrow_cannot_convert_are_an_operator_error():
    error = await run_failing(lambda s: s.sql("SELECT * FROM batch", name="q"), [object()])
    assert error.operator == "q"


# -- staying light --------------------------------------------------------------------------------


def test_row_wise_jobs_never_import_arrow_duckdb_polars_or_pandas():
    program = """
import sys
import streamio
from streamio.testing import collect_batches
got = streamio.run(collect_batches(lambda s: s.flat_map(str.split).count_by_value(),
                                   [["a b a"]]), use_uvloop=False)
assert got == [[("a", 2), ("b", 1)]], got
loaded = {"pyarrow", "duckdb", "polars", "pandas"} & set(sys.modules)
assert not loaded, loaded
"""
    subprocess.run([sys.executable, "-c", program], check=True)
