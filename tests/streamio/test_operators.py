"""Every DStream operator against a plain-Python reference (tests/streamio/reference.py).

Time is driven by a ManualClock: each test feeds a list of batches through queue
streams and reads back what each output received, batch by batch. Property tests
are synchronous and run the pipeline with ``streamio.run`` on asyncio's loop; the
``async def`` tests run on both event loops (tests/conftest.py).
"""

from __future__ import annotations

import copy
import math
import operator
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import reference as ref
from faults import POISON, Boom
from hypothesis import given, settings
from hypothesis import strategies as st

import streamio
from streamio import (
    ConfigurationError,
    DStream,
    LazyChunk,
    ManualClock,
    OperatorError,
    StreamingContext,
)
from streamio.batch import split_chunks
from streamio.testing import ListSink, collect_batches

SETTINGS = settings(max_examples=25, deadline=None)

VALUES = st.integers(-6, 12)
KEYS = st.sampled_from([0, 1, 2, "a", "b", None, (1, "x")])
PAIRS = st.tuples(KEYS, VALUES)

INT_BATCHES = st.lists(st.lists(VALUES, max_size=10), min_size=1, max_size=4)
PAIR_BATCHES = st.lists(st.lists(PAIRS, max_size=10), min_size=1, max_size=4)
# batches that always hold at least one empty batch
WITH_EMPTY = st.builds(
    lambda batches, where: [*batches[:where], [], *batches[where:]],
    INT_BATCHES,
    st.integers(0, 4),
)

PARTITION_SIZES = st.sampled_from([1, 2, 3, 10_000])
NUM_PARTITIONS = st.one_of(st.none(), st.integers(1, 4))


# -- driving a graph ------------------------------------------------------------------


async def run_graph(build, *inputs, partition_size=10_000):
    """Feed each of ``inputs`` (a list of batches) through a queue stream, apply
    ``build(*streams)`` and return the records each returned stream produced, per batch.

    ``build`` returns one DStream (the result is then one list of batches) or a
    tuple of them (one list of batches per stream). Every output must have seen one
    batch per tick, at times 1.0, 2.0, ...
    """
    ticks = max(len(batches) for batches in inputs)
    clock = ManualClock()
    sinks: list[ListSink[Any]] = []
    async with StreamingContext(
        batch_interval=1.0, clock=clock, partition_size=partition_size
    ) as ssc:
        streams = [ssc.queue_stream([list(batch) for batch in batches]) for batches in inputs]
        outputs = build(*streams)
        single = isinstance(outputs, DStream)
        for stream in [outputs] if single else outputs:
            sink: ListSink[Any] = ListSink()
            stream.foreach_batch(sink)
            sinks.append(sink)
        ssc.start()
        await clock.advance(float(ticks))
    times = [float(index) for index in range(1, ticks + 1)]
    for sink in sinks:
        assert sink.times == times
    results = [[records for _, records in sink.batches] for sink in sinks]
    return results[0] if single else results


def drive(build, *inputs, partition_size=10_000, use_uvloop=False):
    """:func:`run_graph` from synchronous code (hypothesis tests)."""
    return streamio.run(
        run_graph(build, *inputs, partition_size=partition_size), use_uvloop=use_uvloop
    )


def each_batch(results, expected, normalise):
    assert len(results) == len(expected)
    for got, want in zip(results, expected, strict=True):
        assert normalise(got) == normalise(want)


# -- narrow operators --------------------------------------------------------------------


@SETTINGS
@given(batches=INT_BATCHES, a=st.integers(-3, 3), b=st.integers(-5, 5), size=PARTITION_SIZES)
def test_map(batches, a, b, size):
    def f(x):
        return (x * a + b, x)

    got = drive(lambda s: s.map(f), batches, partition_size=size)
    assert got == [ref.map_(f, batch) for batch in batches]


@SETTINGS
@given(batches=INT_BATCHES, k=st.integers(1, 4), size=PARTITION_SIZES)
def test_flat_map(batches, k, size):
    def f(x):
        return [x + i for i in range(x % k)] + [str(x)] * (x % 2)

    got = drive(lambda s: s.flat_map(f), batches, partition_size=size)
    assert got == [ref.flat_map(f, batch) for batch in batches]


@SETTINGS
@given(batches=INT_BATCHES, m=st.integers(1, 4), r=st.integers(0, 3), size=PARTITION_SIZES)
def test_filter(batches, m, r, size):
    def keep(x):
        return x % m == r % m

    got = drive(lambda s: s.filter(keep), batches, partition_size=size)
    assert got == [ref.filter_(keep, batch) for batch in batches]


@SETTINGS
@given(batches=INT_BATCHES, size=PARTITION_SIZES)
def test_map_partitions_per_record_function_is_a_map(batches, size):
    got = drive(
        lambda s: s.map_partitions(lambda it: (3 * x - 1 for x in it)),
        batches,
        partition_size=size,
    )
    assert got == [ref.map_(lambda x: 3 * x - 1, batch) for batch in batches]


@SETTINGS
@given(batches=WITH_EMPTY, size=PARTITION_SIZES)
def test_glom_and_map_partitions_see_the_partitions(batches, size):
    def seen(it):
        assert isinstance(it, Iterator)
        return [list(it)]

    gloms, sums, lists = drive(
        lambda s: (s.glom(), s.map_partitions(lambda it: [sum(it)]), s.map_partitions(seen)),
        batches,
        partition_size=size,
    )
    for batch, glom, sums_, lists_ in zip(batches, gloms, sums, lists, strict=True):
        assert all(isinstance(part, list) for part in glom)
        assert ref.union(*glom) == batch
        assert lists_ == glom
        assert sums_ == [sum(part) for part in glom]
        if batch:
            # partitions of at most partition_size records, as few as that allows
            assert all(1 <= len(part) <= size for part in glom)
            assert len(glom) == math.ceil(len(batch) / size)


async def test_glom_examples():
    got = await run_graph(
        lambda s: (s.glom(), s.map(lambda x: x * 10).glom()),
        [[1, 2, 3, 4, 5], [], [6]],
        partition_size=2,
    )
    assert got == [
        [[[1, 2], [3, 4], [5]], [[]], [[6]]],
        [[[10, 20], [30, 40], [50]], [[]], [[60]]],
    ]
    single = await run_graph(lambda s: s.glom(), [[1, 2, 3], [4]])
    assert single == [[[1, 2, 3]], [[4]]]


@SETTINGS
@given(batches=WITH_EMPTY, n=st.integers(1, 5), size=PARTITION_SIZES)
def test_repartition(batches, n, size):
    gloms, doubled = drive(
        lambda s: (s.repartition(n).glom(), s.repartition(n).map(lambda x: 2 * x)),
        batches,
        partition_size=size,
    )
    for batch, glom, twice in zip(batches, gloms, doubled, strict=True):
        assert len(glom) == n
        sizes = [len(part) for part in glom]
        assert max(sizes) - min(sizes) <= 1
        assert ref.multiset(ref.union(*glom)) == ref.multiset(batch)
        assert ref.multiset(twice) == ref.multiset(2 * x for x in batch)


@SETTINGS
@given(a=INT_BATCHES, b=INT_BATCHES, c=INT_BATCHES, size=PARTITION_SIZES)
def test_union(a, b, c, size):
    def build(s1, s2, s3):
        ssc = s1.context
        return (
            s1.union(s2),
            s1.union(s2, s3.map(lambda x: -x)),
            ssc.union(s3, s1, s2),
            ssc.union(s2),
            s1.union(s1),
        )

    two, three, ctx, one, self_union = drive(build, a, b, c, partition_size=size)
    rows = ref.per_batch(lambda x, y, z: (x, y, z), a, b, c)
    # Spark's union keeps the partitions of each stream in order, stream after stream
    assert two == [ref.union(x, y) for x, y, _ in rows]
    assert three == [ref.union(x, y, [-v for v in z]) for x, y, z in rows]
    assert ctx == [ref.union(z, x, y) for x, y, z in rows]
    assert one == [y for _, y, _ in rows]
    assert self_union == [ref.union(x, x) for x, _, _ in rows]


# -- counting and reducing --------------------------------------------------------------


@SETTINGS
@given(batches=WITH_EMPTY, size=PARTITION_SIZES)
def test_count(batches, size):
    got = drive(
        lambda s: (s.count(), s.filter(lambda x: x > 0).count(), s.flat_map(range).count()),
        batches,
        partition_size=size,
    )
    assert got[0] == [ref.count(batch) for batch in batches]
    assert got[1] == [ref.count(ref.filter_(lambda x: x > 0, batch)) for batch in batches]
    assert got[2] == [ref.count(ref.flat_map(range, batch)) for batch in batches]


async def test_count_emits_zero_for_an_empty_batch():
    got = await run_graph(lambda s: s.count(), [[], ["a"], []])
    assert got == [[0], [1], [0]]
    # a batch that is empty only after a filter counts 0 too
    got = await run_graph(lambda s: s.filter(lambda x: x > 5).count(), [[1, 2], [9]])
    assert got == [[0], [1]]


@SETTINGS
@given(batches=WITH_EMPTY, size=PARTITION_SIZES)
def test_reduce(batches, size):
    got = drive(
        lambda s: (
            s.reduce(operator.add),
            s.reduce(max),
            s.map(lambda x: (x % 4, x)).reduce(min),
            s.repartition(3).reduce(operator.add),
        ),
        batches,
        partition_size=size,
    )
    assert got[0] == [ref.reduce_(operator.add, batch) for batch in batches]
    assert got[1] == [ref.reduce_(max, batch) for batch in batches]
    assert got[2] == [ref.reduce_(min, [(x % 4, x) for x in batch]) for batch in batches]
    assert got[3] == got[0]


async def test_reduce_emits_nothing_for_an_empty_batch():
    got = await run_graph(lambda s: s.reduce(operator.add), [[], [1, 2, 3], [], [4]])
    assert got == [[], [6], [], [4]]


@SETTINGS
@given(
    batches=st.lists(st.lists(st.integers(-3, 3), max_size=12), min_size=1, max_size=4),
    size=PARTITION_SIZES,
    n=NUM_PARTITIONS,
)
def test_count_by_value(batches, size, n):
    got = drive(lambda s: s.count_by_value(n), batches, partition_size=size)
    each_batch(got, [ref.count_by_value(batch) for batch in batches], ref.multiset)
    for records in got:
        values = [value for value, _ in records]
        assert len(values) == len(set(values))


# -- key operators -------------------------------------------------------------------------


@SETTINGS
@given(batches=PAIR_BATCHES, size=PARTITION_SIZES, n=NUM_PARTITIONS)
def test_reduce_by_key(batches, size, n):
    added, largest = drive(
        lambda s: (s.reduce_by_key(operator.add, n), s.reduce_by_key(max, num_partitions=n)),
        batches,
        partition_size=size,
    )
    each_batch(added, [ref.reduce_by_key(operator.add, b) for b in batches], ref.multiset)
    each_batch(largest, [ref.reduce_by_key(max, b) for b in batches], ref.multiset)
    for records in added:
        keys = [key for key, _ in records]
        assert len(keys) == len(set(keys))


@SETTINGS
@given(batches=PAIR_BATCHES, size=PARTITION_SIZES, n=NUM_PARTITIONS)
def test_group_by_key(batches, size, n):
    got = drive(lambda s: s.group_by_key(n), batches, partition_size=size)
    each_batch(got, [ref.group_by_key(batch) for batch in batches], ref.unordered)
    for records in got:
        assert all(isinstance(values, list) for _, values in records)


@SETTINGS
@given(batches=PAIR_BATCHES, size=PARTITION_SIZES, n=NUM_PARTITIONS)
def test_combine_by_key(batches, size, n):
    def create(v):
        return (v, 1)

    def merge_value(c, v):
        return (c[0] + v, c[1] + 1)

    def merge_combiners(c1, c2):
        return (c1[0] + c2[0], c1[1] + c2[1])

    sums, lists = drive(
        lambda s: (
            s.combine_by_key(create, merge_value, merge_combiners, n),
            s.combine_by_key(lambda v: [v], lambda c, v: [*c, v], operator.add, n),
        ),
        batches,
        partition_size=size,
    )
    each_batch(sums, [ref.combine_by_key(create, merge_value, b) for b in batches], ref.multiset)
    # partitions are combined, then merged, in record order: each key's list is in order
    each_batch(lists, [ref.group_by_key(b) for b in batches], ref.multiset)


@SETTINGS
@given(batches=PAIR_BATCHES, size=PARTITION_SIZES)
def test_map_values_and_flat_map_values(batches, size):
    def f(v):
        return (v * 2, str(v))

    def g(v):
        return range(v % 3)

    mapped, flat = drive(
        lambda s: (s.map_values(f), s.flat_map_values(g)), batches, partition_size=size
    )
    assert mapped == [ref.map_values(f, batch) for batch in batches]
    assert flat == [ref.flat_map_values(g, batch) for batch in batches]


@SETTINGS
@given(left=PAIR_BATCHES, right=PAIR_BATCHES, size=PARTITION_SIZES, n=NUM_PARTITIONS)
def test_joins_and_cogroup(left, right, size, n):
    def build(a, b):
        return (
            a.join(b, n),
            a.left_outer_join(b, n),
            a.right_outer_join(b, n),
            a.full_outer_join(b, num_partitions=n),
            a.cogroup(b, n),
        )

    inner, left_outer, right_outer, full, grouped = drive(build, left, right, partition_size=size)
    each_batch(inner, ref.per_batch(ref.join, left, right), ref.multiset)
    each_batch(left_outer, ref.per_batch(ref.left_outer_join, left, right), ref.multiset)
    each_batch(right_outer, ref.per_batch(ref.right_outer_join, left, right), ref.multiset)
    each_batch(full, ref.per_batch(ref.full_outer_join, left, right), ref.multiset)
    each_batch(grouped, ref.per_batch(ref.cogroup, left, right), ref.unordered)
    for records in grouped:
        for _, groups in records:
            assert isinstance(groups, tuple)
            assert len(groups) == 2
            assert all(isinstance(values, list) for values in groups)
    for records in inner + left_outer + right_outer + full:
        for record in records:
            assert isinstance(record, tuple)
            assert len(record) == 2
            assert isinstance(record[1], tuple)
            assert len(record[1]) == 2


async def test_join_examples():
    left = [[("a", 1), ("a", 2), ("b", 3)], [("c", 4)], []]
    right = [[("a", "x"), ("a", "y"), ("c", "z")], [], [("d", "w")]]

    def build(a, b):
        return (
            a.join(b),
            a.left_outer_join(b),
            a.right_outer_join(b),
            a.full_outer_join(b),
            a.cogroup(b),
        )

    inner, left_outer, right_outer, full, grouped = await run_graph(build, left, right)
    assert [sorted(batch, key=repr) for batch in inner] == [
        [("a", (1, "x")), ("a", (1, "y")), ("a", (2, "x")), ("a", (2, "y"))],
        [],
        [],
    ]
    assert [sorted(batch, key=repr) for batch in left_outer] == [
        [("a", (1, "x")), ("a", (1, "y")), ("a", (2, "x")), ("a", (2, "y")), ("b", (3, None))],
        [("c", (4, None))],
        [],
    ]
    assert [sorted(batch, key=repr) for batch in right_outer] == [
        [("a", (1, "x")), ("a", (1, "y")), ("a", (2, "x")), ("a", (2, "y")), ("c", (None, "z"))],
        [],
        [("d", (None, "w"))],
    ]
    assert [sorted(batch, key=repr) for batch in full] == [
        [
            ("a", (1, "x")),
            ("a", (1, "y")),
            ("a", (2, "x")),
            ("a", (2, "y")),
            ("b", (3, None)),
            ("c", (None, "z")),
        ],
        [("c", (4, None))],
        [("d", (None, "w"))],
    ]
    assert [sorted(batch, key=repr) for batch in grouped] == [
        [("a", ([1, 2], ["x", "y"])), ("b", ([3], [])), ("c", ([], ["z"]))],
        [("c", ([4], []))],
        [("d", ([], ["w"]))],
    ]


async def test_self_join():
    batches = [[("a", 1), ("a", 2), ("b", 3)]]
    inner, grouped = await run_graph(lambda s: (s.join(s), s.cogroup(s)), batches)
    assert ref.multiset(inner[0]) == ref.multiset(ref.join(batches[0], batches[0]))
    assert ref.unordered(grouped[0]) == ref.unordered(ref.cogroup(batches[0], batches[0]))


# -- whole-batch operators ------------------------------------------------------------------


@SETTINGS
@given(batches=WITH_EMPTY, size=PARTITION_SIZES)
def test_transform(batches, size):
    def newest_first(records):
        return sorted(records, reverse=True)

    def stamp(time, records):
        return [(time, len(records), sum(records))]

    async def total(records):
        await anyio.lowlevel.checkpoint()
        return [sum(records)]

    async def stamp_async(time, records):
        await anyio.lowlevel.checkpoint()
        return ((time, x) for x in records)

    got = drive(
        lambda s: (
            s.transform(newest_first),
            s.transform(stamp),
            s.transform(total),
            s.transform(stamp_async),
            s.transform(lambda rs: [x for x in rs if x % 2]).count(),
        ),
        batches,
        partition_size=size,
    )
    times = [float(t) for t in range(1, len(batches) + 1)]
    assert got[0] == [newest_first(batch) for batch in batches]
    assert got[1] == [
        [(t, len(batch), sum(batch))] for t, batch in zip(times, batches, strict=True)
    ]
    assert got[2] == [[sum(batch)] for batch in batches]
    assert got[3] == [[(t, x) for x in batch] for t, batch in zip(times, batches, strict=True)]
    assert got[4] == [[sum(1 for x in batch if x % 2)] for batch in batches]


@SETTINGS
@given(a=INT_BATCHES, b=INT_BATCHES, size=PARTITION_SIZES)
def test_transform_with(a, b, size):
    def combine(first, second):
        return first + [-x for x in second]

    def stamp(time, first, second):
        return [(time, len(first), len(second))]

    async def combine_async(first, second):
        await anyio.lowlevel.checkpoint()
        return [(x, y) for x in first for y in second]

    def build(s1, s2):
        return (
            s1.transform_with(combine, s2),  # PySpark's order: (func, other)
            s1.transform_with(s2, combine),  # (other, func)
            s1.transform_with(stamp, s2),
            s1.transform_with(s2, stamp),
            s1.transform_with(combine_async, s2),
            s2.transform_with(s1, combine_async),
        )

    got = drive(build, a, b, partition_size=size)
    ticks = max(len(a), len(b))
    times = [float(t) for t in range(1, ticks + 1)]
    combined = ref.per_batch(combine, a, b)
    assert got[0] == combined
    assert got[1] == combined
    stamped = ref.per_batch(lambda x, y: [(len(x), len(y))], a, b)
    expected_stamps = [[(t, *s[0])] for t, s in zip(times, stamped, strict=True)]
    assert got[2] == expected_stamps
    assert got[3] == expected_stamps
    assert got[4] == ref.per_batch(lambda x, y: [(i, j) for i in x for j in y], a, b)
    assert got[5] == ref.per_batch(lambda x, y: [(i, j) for i in x for j in y], b, a)


async def test_transform_time_argument_is_the_batch_time():
    got = await run_graph(lambda s: s.transform(lambda t, rs: [(t, len(rs))]), [[3, 1], [], [5]])
    assert got == [[(1.0, 2)], [(2.0, 0)], [(3.0, 1)]]


# -- map_async ----------------------------------------------------------------------------


class InFlight:
    """Counts the calls of an async function that are running at the same time."""

    def __init__(self):
        self.now = 0
        self.most = 0
        self.calls = 0

    async def __call__(self, x):
        self.calls += 1
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            # stay in flight for a while, longer for some records than for others,
            # so that calls finish out of order
            for _ in range(1 + x % 4):
                await anyio.lowlevel.checkpoint()
            return (x, x * x)
        finally:
            self.now -= 1


@SETTINGS
@given(
    batches=st.lists(st.lists(st.integers(0, 20), max_size=12), min_size=1, max_size=3),
    concurrency=st.integers(1, 6),
    size=PARTITION_SIZES,
    use_uvloop=st.booleans(),
)
def test_map_async_keeps_order_and_bounds_concurrency(batches, concurrency, size, use_uvloop):
    in_flight = InFlight()
    got = drive(
        lambda s: s.map_async(in_flight, concurrency=concurrency),
        batches,
        partition_size=size,
        use_uvloop=use_uvloop,
    )
    assert got == [[(x, x * x) for x in batch] for batch in batches]
    assert in_flight.calls == sum(map(len, batches))
    assert in_flight.most <= concurrency
    # the calls do overlap, up to the bound (or the size of the largest batch)
    assert in_flight.most == min(concurrency, max(map(len, batches)))


async def test_map_async_default_concurrency_and_order():
    in_flight = InFlight()
    batch = list(range(25, 0, -1))
    got = await run_graph(lambda s: s.map_async(in_flight), [batch, []], partition_size=4)
    assert got == [[(x, x * x) for x in batch], []]
    assert in_flight.most == 10


async def test_map_async_concurrency_given_positionally():
    in_flight = InFlight()
    batch = [4, 8, 1, 6, 3, 7, 2]
    got = await run_graph(lambda s: s.map_async(in_flight, 3), [batch])
    assert got == [[(x, x * x) for x in batch]]
    assert in_flight.most == 3


# -- then ----------------------------------------------------------------------------------


def scale(stream, factor, *, offset=0):
    return stream.map(lambda x: x * factor + offset)


def evens(stream):
    return stream.filter(lambda x: x % 2 == 0)


@SETTINGS
@given(batches=INT_BATCHES, factor=st.integers(-3, 3))
def test_then(batches, factor):
    got = drive(
        lambda s: (s.then(evens), s.then(scale, factor), s.then(evens).then(scale, factor)),
        batches,
    )
    assert got[0] == [[x for x in batch if x % 2 == 0] for batch in batches]
    assert got[1] == [[x * factor for x in batch] for batch in batches]
    assert got[2] == [[x * factor for x in batch if x % 2 == 0] for batch in batches]


async def test_then_passes_keyword_arguments():
    got = await run_graph(lambda s: s.then(scale, 3, offset=1), [[1, 2]])
    assert got == [[4, 7]]


def test_then_accepts_a_required_argument_given_by_keyword():
    ssc = StreamingContext(batch_interval=1.0, clock=ManualClock())
    stream = ssc.queue_stream([[1, 2]])
    assert isinstance(stream.then(scale, factor=2), DStream)
    got = drive(lambda s: (s.then(scale, factor=2), s.then(scale, factor=-1, offset=5)), [[1, 2]])
    assert got == [[[2, 4]], [[4, 3]]]


def test_then_needs_an_operator_returning_a_dstream():
    ssc = StreamingContext(batch_interval=1.0, clock=ManualClock())
    stream = ssc.queue_stream([[1]])
    with pytest.raises(ConfigurationError, match=r"then\(\)"):
        stream.then(lambda s: [1, 2])


# -- several partitions ------------------------------------------------------------------


def everything(s, other, n):
    """A bit of every partition-sensitive operator."""
    pairs = s.map(lambda x: (x % 4, x))
    return (
        s.count(),
        s.reduce(operator.add),
        s.count_by_value(n),
        pairs.reduce_by_key(operator.add, n),
        pairs.group_by_key(n),
        pairs.combine_by_key(lambda v: [v], lambda c, v: [*c, v], operator.add, n),
        pairs.join(other, n),
        pairs.left_outer_join(other, n),
        pairs.right_outer_join(other, n),
        pairs.full_outer_join(other, n),
        pairs.cogroup(other, n),
        s.union(other.map(lambda kv: kv[1])).repartition(3).map(lambda x: x + 1),
        s.repartition(2).map(lambda x: (x % 2, 1)).reduce_by_key(operator.add),
        s.transform(sorted),
        s.map(lambda x: x * 2).filter(lambda x: x % 3),
    )


@SETTINGS
@given(
    batches=INT_BATCHES,
    other=PAIR_BATCHES,
    size=st.integers(1, 4),
    n=st.integers(1, 5),
)
def test_several_partitions_give_the_same_results(batches, other, size, n):
    many = drive(lambda s, o: everything(s, o, n), batches, other, partition_size=size)
    one = drive(lambda s, o: everything(s, o, None), batches, other)
    assert len(many) == len(one)
    for got, want in zip(many, one, strict=True):
        each_batch(got, want, ref.unordered)
    pairs = ref.per_batch(lambda batch, _: [(x % 4, x) for x in batch], batches, other)
    each_batch(many[3], [ref.reduce_by_key(operator.add, p) for p in pairs], ref.multiset)
    each_batch(many[6], ref.per_batch(ref.join, pairs, other), ref.multiset)


class Numbers(LazyChunk[int]):
    """The numbers of ``range(start, stop)``, built on each read."""

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def slice(self, start: int, stop: int) -> Numbers:
        return Numbers(self.start + start, self.start + stop)


@st.composite
def chunk_lists(draw):
    """Chunks as a buffer hands them to a batch: lists, other sequences, lazy chunks."""
    chunks, start = [], 0
    for kind, size in draw(
        st.lists(st.tuples(st.sampled_from(["list", "tuple", "lazy"]), st.integers(0, 12)))
    ):
        numbers = range(start, start + size)
        start += size
        chunks.append(
            Numbers(numbers.start, numbers.stop)
            if kind == "lazy"
            else (list(numbers) if kind == "list" else tuple(numbers))
        )
    return chunks


@SETTINGS
@given(chunks=chunk_lists(), size=st.integers(1, 7))
def test_chunks_are_cut_into_full_partitions_in_order(chunks, size):
    expected = [record for chunk in chunks for record in chunk]
    runs = []  # the records of each run of plain chunks, between lazy ones
    for chunk in chunks:
        if isinstance(chunk, LazyChunk):
            runs.append(("lazy", list(chunk)))
        elif runs and runs[-1][0] == "plain":
            runs[-1][1].extend(chunk)
        else:
            runs.append(("plain", list(chunk)))
    parts = split_chunks(chunks, size)
    assert [record for part in parts for record in part] == expected
    # each run is cut into full partitions but its last; lazy chunks stay lazy
    want = []
    for kind, records in runs:
        cut = [records[i : i + size] for i in range(0, len(records), size)]
        want += [(kind == "lazy", piece) for piece in cut]
    assert [(isinstance(part, LazyChunk), list(part)) for part in parts] == (want or [(False, [])])


# -- fusion and memoisation ------------------------------------------------------------------


def extend(a, b):
    """PySpark's idiom for a reduce that builds its result in its first argument."""
    return a.extend(b) or a


@pytest.mark.parametrize("size", [1, 2, 10_000])
async def test_functions_that_extend_their_first_argument_leave_what_is_kept_alone(size):
    """The batches of a stream with several consumers, and the application's own
    records, come out unchanged when reduce functions extend their first argument."""
    inputs = [[[1], [2], [3]], [[4], [5]]]
    originals = copy.deepcopy(inputs)

    def build(s):
        pairs = s.map(lambda values: ("k", values))
        return (
            s,
            s.reduce(extend),
            pairs.reduce_by_key(extend),
            pairs.combine_by_key(lambda v: v, extend, extend),
            pairs.reduce_by_key(extend, 2),
            pairs,
        )

    got = await run_graph(build, inputs, partition_size=size)
    records, reduced, by_key, combined, by_key_2, pairs = got
    assert records == originals
    assert reduced == [[[1, 2, 3]], [[4, 5]]]
    assert by_key == combined == by_key_2 == [[("k", [1, 2, 3])], [("k", [4, 5])]]
    assert pairs == [[("k", [1]), ("k", [2]), ("k", [3])], [("k", [4]), ("k", [5])]]
    assert inputs == originals


class Calls(Counter):
    """Counts calls by label: ``calls.wrap("f", f)`` is ``f`` with its calls counted."""

    def wrap(self, label, fn):
        def counted(*args):
            self[label] += 1
            return fn(*args)

        return counted


@SETTINGS
@given(batches=INT_BATCHES, size=PARTITION_SIZES, n=NUM_PARTITIONS)
def test_fused_chain(batches, size, n):
    calls = Calls()

    def double(x):
        return 2 * x

    def keep(x):
        return x % 3 != 0

    def words(x):
        return [(x % 5, 1), (x % 2, x)]

    def chain(s):
        return (
            s.map(calls.wrap("map", double))
            .filter(calls.wrap("filter", keep))
            .flat_map(calls.wrap("flat_map", words))
            .reduce_by_key(calls.wrap("reduce", operator.add), n)
        )

    got = drive(chain, batches, partition_size=size)
    expected = []
    total = kept = pairs_total = keys_total = 0
    for batch in batches:
        pairs = ref.flat_map(words, ref.filter_(keep, ref.map_(double, batch)))
        expected.append(ref.reduce_by_key(operator.add, pairs))
        total += len(batch)
        kept += len(ref.filter_(keep, ref.map_(double, batch)))
        pairs_total += len(pairs)
        keys_total += len({key for key, _ in pairs})
    each_batch(got, expected, ref.multiset)
    # every function runs once per record that reaches it; reducing n values to k
    # keys takes n - k calls however the values are partitioned
    assert calls == Counter(
        {"map": total, "filter": total, "flat_map": kept, "reduce": pairs_total - keys_total}
    )


def negate(v):
    return -v


# Each topology consumes a shared stream m of (key, value) pairs in several ways; with
# it, what its outputs hold for a batch p of m (a list of pairs).
SHARED_TOPOLOGIES = {
    "two_narrow_children": (
        lambda m: (m.filter(lambda kv: kv[1] % 2 == 0), m.map(lambda kv: kv[1])),
        lambda p: (ref.filter_(lambda kv: kv[1] % 2 == 0, p), [v for _, v in p]),
    ),
    "two_outputs": (lambda m: (m, m), lambda p: (p, p)),
    "self_union": (lambda m: (m.union(m),), lambda p: (ref.union(p, p),)),
    "self_join": (lambda m: (m.join(m),), lambda p: (ref.join(p, p),)),
    "cogroup_with_child": (
        lambda m: (m.cogroup(m.map_values(negate)),),
        lambda p: (ref.cogroup(p, ref.map_values(negate, p)),),
    ),
    "transform_with": (
        lambda m: (m.transform_with(lambda a, b: [*a, *b], m.count()),),
        lambda p: ([*p, len(p)],),
    ),
    "key_operators": (
        lambda m: (m.reduce_by_key(operator.add), m.group_by_key(), m.count(), m.reduce(max)),
        lambda p: (
            ref.reduce_by_key(operator.add, p),
            ref.group_by_key(p),
            ref.count(p),
            ref.reduce_(max, p),
        ),
    ),
    "context_union": (
        lambda m: (m.context.union(m.map_values(str), m.filter(lambda kv: kv[0] == 0)),),
        lambda p: (ref.map_values(str, p) + [kv for kv in p if kv[0] == 0],),
    ),
    "map_async": (
        lambda m: (m.map_async(an_async_function, concurrency=2), m.count()),
        lambda p: (p, ref.count(p)),
    ),
}


@pytest.mark.parametrize("topology", SHARED_TOPOLOGIES)
@pytest.mark.parametrize("partition_size", [2, 10_000])
async def test_a_shared_parent_runs_once_per_batch(topology, partition_size):
    consume, expect = SHARED_TOPOLOGIES[topology]
    calls = Calls()
    batches = [[1, 2, 3, 4, 5], [], [6, 7, 8, 9]]

    def pair(x):
        return (x % 3, x)

    got = await run_graph(
        lambda s: consume(s.map(calls.wrap("pair", pair))), batches, partition_size=partition_size
    )
    assert calls["pair"] == sum(map(len, batches))
    expected = [expect(ref.map_(pair, batch)) for batch in batches]
    assert len(got) == len(expected[0])
    for index, output in enumerate(got):
        each_batch(output, [outputs[index] for outputs in expected], ref.unordered)


async def test_a_shared_fused_chain_runs_once_per_batch():
    calls = Calls()
    batches = [[1, 2, 3, 4], [5, 6]]

    def build(s):
        m = s.map(calls.wrap("f", lambda x: x + 1))
        n = m.filter(calls.wrap("g", lambda x: x % 2 == 0))  # n alone consumes m
        return n.map(lambda x: x * 10), n.count(), n

    tens, counts, evens_ = await run_graph(build, batches, partition_size=3)
    assert tens == [[20, 40], [60]]
    assert counts == [[2], [1]]
    assert evens_ == [[2, 4], [6]]
    assert calls == {"f": 6, "g": 6}


async def test_shared_reduce_by_key_runs_once_per_batch():
    calls = Calls()
    batches = [[("a", 1), ("b", 2), ("a", 3), ("a", 4)], [("b", 5), ("b", 6)]]

    def build(s):
        totals = s.reduce_by_key(calls.wrap("add", operator.add))
        return totals, totals.map_values(str), totals.count()

    totals, strings, counts = await run_graph(build, batches, partition_size=2)
    each_batch(totals, [[("a", 8), ("b", 2)], [("b", 11)]], ref.multiset)
    each_batch(strings, [[("a", "8"), ("b", "2")], [("b", "11")]], ref.multiset)
    assert counts == [[2], [1]]
    assert calls["add"] == (4 - 2) + (2 - 1)


# -- configuration errors -------------------------------------------------------------------


async def an_async_function(x):
    return x


async def an_async_pair_function(x, y):
    return x


def a_sync_function(x):
    return x


BAD_FUNCTIONS = [
    # (operator the message must name, how to call it with a bad function)
    ("map", lambda s, o: s.map(42)),
    ("map", lambda s, o: s.map(lambda a, b: a)),
    ("flat_map", lambda s, o: s.flat_map("x")),
    ("flat_map", lambda s, o: s.flat_map(lambda: [])),
    ("filter", lambda s, o: s.filter(None)),
    ("filter", lambda s, o: s.filter(operator.add)),
    ("map_partitions", lambda s, o: s.map_partitions([1])),
    ("map_partitions", lambda s, o: s.map_partitions(lambda a, b: a)),
    ("map_values", lambda s, o: s.map_values(1.5)),
    ("map_values", lambda s, o: s.map_values(lambda k, v: v)),
    ("flat_map_values", lambda s, o: s.flat_map_values(b"x")),
    ("flat_map_values", lambda s, o: s.flat_map_values(lambda: [])),
    ("reduce", lambda s, o: s.reduce(0)),
    ("reduce", lambda s, o: s.reduce(lambda a: a)),
    ("reduce_by_key", lambda s, o: s.reduce_by_key("add")),
    ("reduce_by_key", lambda s, o: s.reduce_by_key(lambda a, b, c: a)),
    ("combine_by_key", lambda s, o: s.combine_by_key(1, operator.add, operator.add)),
    ("combine_by_key", lambda s, o: s.combine_by_key(list, 2, operator.add)),
    ("combine_by_key", lambda s, o: s.combine_by_key(list, operator.add, 3)),
    ("combine_by_key", lambda s, o: s.combine_by_key(lambda a, b: a, operator.add, operator.add)),
    ("combine_by_key", lambda s, o: s.combine_by_key(list, lambda c: c, operator.add)),
    ("combine_by_key", lambda s, o: s.combine_by_key(list, operator.add, lambda a: a)),
    ("transform", lambda s, o: s.transform(7)),
    ("transform", lambda s, o: s.transform(lambda a, b, c: a)),
    ("transform", lambda s, o: s.transform(lambda: [])),
    ("transform_with", lambda s, o: s.transform_with(7, o)),
    ("transform_with", lambda s, o: s.transform_with(o, 7)),
    ("transform_with", lambda s, o: s.transform_with(lambda a: a, o)),
    ("transform_with", lambda s, o: s.transform_with(o, lambda a: a)),
    ("transform_with", lambda s, o: s.transform_with(lambda a, b, c, d: a, o)),
    ("map_async", lambda s, o: s.map_async(5)),
    ("map_async", lambda s, o: s.map_async(an_async_pair_function)),
    ("map_async", lambda s, o: s.map_async(a_sync_function)),
    ("then", lambda s, o: s.then(5)),
    ("then", lambda s, o: s.then(lambda: o)),
    ("then", lambda s, o: s.then(lambda stream: stream, 1, 2)),
    ("foreach_batch", lambda s, o: s.foreach_batch("print")),
    ("foreach_batch", lambda s, o: s.foreach_batch(lambda a, b, c: None)),
    ("union", lambda s, o: s.union([1])),
    ("join", lambda s, o: s.join([("a", 1)])),
    ("left_outer_join", lambda s, o: s.left_outer_join(None)),
    ("right_outer_join", lambda s, o: s.right_outer_join(1)),
    ("full_outer_join", lambda s, o: s.full_outer_join("o")),
    ("cogroup", lambda s, o: s.cogroup({})),
]


@pytest.mark.parametrize(
    ("operator_name", "call"),
    BAD_FUNCTIONS,
    ids=[f"{name}-{index}" for index, (name, _) in enumerate(BAD_FUNCTIONS)],
)
def test_a_bad_function_is_refused_at_build_time(operator_name, call):
    ssc = StreamingContext(batch_interval=1.0, clock=ManualClock())
    stream, other = ssc.queue_stream([[1]]), ssc.queue_stream([[2]])
    with pytest.raises(ConfigurationError) as info:
        call(stream, other)
    assert re.search(rf"(?<![\w.]){operator_name}\(", str(info.value)), str(info.value)


async def test_a_bad_function_is_refused_before_start_inside_the_context():
    clock = ManualClock()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        stream = ssc.queue_stream([[1]])
        with pytest.raises(ConfigurationError, match=r"map\(\)"):
            stream.map(lambda a, b: a)
        sink = ListSink()
        stream.map(lambda x: x + 1).foreach_batch(sink)
        ssc.start()
        await clock.advance(1.0)
    assert sink.batches == [(1.0, [2])]


@pytest.mark.parametrize(
    "call",
    [
        lambda s, o: s.reduce_by_key(operator.add, 0),
        lambda s, o: s.group_by_key(-1),
        lambda s, o: s.count_by_value(num_partitions=1.5),
        lambda s, o: s.combine_by_key(list, operator.add, operator.add, True),
        lambda s, o: s.join(o, 0),
        lambda s, o: s.cogroup(o, num_partitions="2"),
        lambda s, o: s.repartition(0),
        lambda s, o: s.map_async(an_async_function, concurrency=0),
        lambda s, o: s.union(),
        lambda s, o: s.context.union(),
    ],
)
def test_bad_arguments_are_refused_at_build_time(call):
    ssc = StreamingContext(batch_interval=1.0, clock=ManualClock())
    stream, other = ssc.queue_stream([[1]]), ssc.queue_stream([[2]])
    with pytest.raises(ConfigurationError):
        call(stream, other)


def test_streams_of_another_context_are_refused():
    first = StreamingContext(batch_interval=1.0, clock=ManualClock())
    second = StreamingContext(batch_interval=1.0, clock=ManualClock())
    a, b = first.queue_stream([[1]]), second.queue_stream([[2]])
    for call in (a.union, a.join, a.cogroup, first.union):
        with pytest.raises(ConfigurationError):
            call(b)
    with pytest.raises(ConfigurationError):
        a.transform_with(lambda x, y: x, b)


def test_duplicate_names_are_refused():
    ssc = StreamingContext(batch_interval=1.0, clock=ManualClock())
    stream = ssc.queue_stream([[1]], name="source")
    doubled = stream.map(lambda x: 2 * x, name="doubled")
    assert doubled.name == "doubled"
    with pytest.raises(ConfigurationError, match="doubled"):
        stream.filter(bool, name="doubled")
    with pytest.raises(ConfigurationError, match="source"):
        stream.count(name="source")
    with pytest.raises(ConfigurationError, match="doubled"):
        doubled.map(lambda kv: (kv, 1)).reduce_by_key(operator.add, name="doubled")
    with pytest.raises(ConfigurationError, match="doubled"):
        stream.join(stream, name="doubled")
    with pytest.raises(ConfigurationError, match="source"):
        ssc.queue_stream([[2]], name="source")
    doubled.foreach_batch(print, name="out")
    with pytest.raises(ConfigurationError, match="out"):
        stream.foreach_batch(print, name="out")
    with pytest.raises(ConfigurationError, match="out"):
        stream.map(str, name="out")
    # the context is still usable after a refused name
    assert stream.filter(bool, name="kept").name == "kept"


def test_default_names_are_unique():
    ssc = StreamingContext(batch_interval=1.0, clock=ManualClock())
    stream = ssc.queue_stream([[1]])
    mapped = stream.map(str, name="map_3")
    streams = [stream, mapped] + [stream.map(str) for _ in range(5)]
    streams += [stream.count(), stream.join(stream), stream.union(stream)]
    names = [s.name for s in streams]
    assert len(names) == len(set(names))


# -- errors in user functions ------------------------------------------------------------------


def keyed(stream):
    return stream.map(lambda x: ("k", x))


def fail_map(s, boom):
    return s.map(lambda x: -boom(x), name="target")


def fail_filter(s, boom):
    return s.filter(lambda x: boom(x) is not None, name="target")


def fail_flat_map(s, boom):
    return s.flat_map(lambda x: [boom(x)], name="target")


def fail_map_partitions(s, boom):
    return s.map_partitions(lambda it: [boom(x) for x in it], name="target")


def fail_map_values(s, boom):
    return keyed(s).map_values(lambda v: -boom(v), name="target")


def fail_flat_map_values(s, boom):
    return keyed(s).flat_map_values(lambda v: (boom(v),), name="target")


def fail_reduce(s, boom):
    return s.reduce(lambda a, b: boom(a) + boom(b), name="target")


def fail_reduce_by_key(s, boom):
    return keyed(s).reduce_by_key(lambda a, b: boom(a) + boom(b), name="target")


def fail_combine_by_key(s, boom):
    return keyed(s).combine_by_key(
        lambda v: [boom(v)], lambda c, v: [*c, boom(v)], operator.add, name="target"
    )


def fail_transform(s, boom):
    return s.transform(lambda rs: [boom(x) for x in rs], name="target")


def fail_transform_with(s, boom):
    return s.transform_with(lambda a, b: [boom(x) for x in a + b], s.count(), name="target")


def fail_map_async(s, boom):
    async def call(x):
        await anyio.lowlevel.checkpoint()
        return boom(x)

    return s.map_async(call, concurrency=2, name="target")


FAILING_OPERATORS = [
    fail_map,
    fail_filter,
    fail_flat_map,
    fail_map_partitions,
    fail_map_values,
    fail_flat_map_values,
    fail_reduce,
    fail_reduce_by_key,
    fail_combine_by_key,
    fail_transform,
    fail_transform_with,
    fail_map_async,
]


@pytest.mark.parametrize("failing", FAILING_OPERATORS, ids=lambda f: f.__name__[5:])
@pytest.mark.parametrize("in_a_chain", [False, True], ids=["alone", "chained"])
async def test_an_error_in_a_user_function_is_an_operator_error(failing, in_a_chain):
    boom = Boom()
    clock = ManualClock()
    sink = ListSink()
    with pytest.raises(OperatorError) as info:
        async with StreamingContext(batch_interval=1.0, clock=clock, partition_size=3) as ssc:
            stream = ssc.queue_stream([[1, 2], [1, POISON, 4], [5]])
            if in_a_chain:  # narrow operators on both sides, fused with it when they can be
                stream = stream.map(lambda x: x, name="before")
            stream = failing(stream, boom)
            if in_a_chain:
                stream = stream.map(lambda x: x, name="after")
            stream.foreach_batch(sink)
            ssc.start()
            await clock.advance(3.0)
    error = info.value
    assert error.operator == "target"
    assert error.batch_time == 2.0
    assert "target" in str(error)
    assert len(boom.raised) == 1
    assert error.__cause__ is boom.raised[0]
    assert sink.times == [1.0]  # the first batch went through, nothing after the failure


@pytest.mark.parametrize("stage", ["m", "f", "fm", "r"])
async def test_the_failing_stage_of_a_fused_chain_is_named(stage):
    boom = Boom()
    clock = ManualClock()

    def check(name, value):
        return boom(value) if name == stage else value

    with pytest.raises(OperatorError) as info:
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            (
                ssc.queue_stream([[1, 2, 3], [6, 7, POISON - 1]])
                .map(lambda x: check("m", x + 1), name="m")
                .filter(lambda x: check("f", x), name="f")
                .flat_map(lambda x: [check("fm", x)], name="fm")
                .map(lambda x: (x % 2, x), name="pairs")
                .reduce_by_key(lambda a, b: check("r", b), name="r")
                .foreach_batch(lambda records: None)
            )
            ssc.start()
            await clock.advance(2.0)
    assert info.value.operator == stage
    assert info.value.batch_time == 2.0
    assert len(boom.raised) == 1
    assert info.value.__cause__ is boom.raised[0]


async def test_an_error_in_a_shared_narrow_operator_names_it():
    boom = Boom()
    clock = ManualClock()
    with pytest.raises(OperatorError) as info:
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            first = ssc.queue_stream([[1], [POISON]]).map(lambda x: x, name="first")
            second = first.map(lambda x: -boom(x), name="second")
            second.foreach_batch(lambda records: None)
            second.count().foreach_batch(lambda records: None)  # second has two consumers
            ssc.start()
            await clock.advance(2.0)
    assert info.value.operator == "second"
    assert info.value.batch_time == 2.0
    assert info.value.__cause__ is boom.raised[0]


async def test_an_error_in_an_output_function_names_the_output():
    boom = Boom()
    clock = ManualClock()
    with pytest.raises(OperatorError) as info:
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            stream = ssc.queue_stream([[1], [2], [POISON]])
            stream.foreach_batch(lambda t, records: [boom(x) for x in records], name="out")
            ssc.start()
            await clock.advance(3.0)
    assert info.value.operator == "out"
    assert info.value.batch_time == 3.0
    assert info.value.__cause__ is boom.raised[0]


async def test_records_that_are_not_pairs_fail_the_join_by_its_name():
    clock = ManualClock()
    with pytest.raises(OperatorError) as info:
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            stream = ssc.queue_stream([[("a", 1)], [5]])
            stream.join(stream, name="myjoin").foreach_batch(lambda records: None)
            ssc.start()
            await clock.advance(2.0)
    assert info.value.operator == "myjoin"
    assert info.value.batch_time == 2.0
    assert isinstance(info.value.__cause__, TypeError)


# -- the collect_batches helper -------------------------------------------------------------


async def test_collect_batches():
    got = await collect_batches(
        lambda s: s.flat_map(str.split).map(lambda w: (w, 1)).reduce_by_key(operator.add),
        [["a b", "b c"], [], ["c c"]],
    )
    each_batch(got, [[("a", 1), ("b", 2), ("c", 1)], [], [("c", 2)]], ref.multiset)
