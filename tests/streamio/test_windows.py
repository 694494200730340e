"""Window operators against brute-force references (tests/streamio/window_reference.py).

Every window is recomputed from the raw input batches and compared with what the
operator emitted. A ManualClock drives time one batch at a time, so each test also
sees *when* a window was emitted (only on the slide grid, counted from Spark's zero
time: one batch interval before the first batch) and what each node of the graph
still remembers after every batch.
"""

from __future__ import annotations

import math
import operator
import re
from typing import Any

import pytest
import reference as ref
import window_reference as wref
from hypothesis import given, settings
from hypothesis import strategies as st

import streamio
from streamio import ConfigurationError, DStream, ManualClock, OperatorError, StreamingContext
from streamio.testing import ListSink, step

SETTINGS = settings(max_examples=30, deadline=None)

VALUES = st.integers(-6, 12)
KEYS = st.sampled_from([0, 1, 2, "a", "b", None, (1, "x")])
PAIRS = st.tuples(KEYS, VALUES)
INTERVALS = st.sampled_from([1.0, 0.5, 0.25, 2.0])
PARTITION_SIZES = st.sampled_from([1, 2, 3, 10_000])
NUM_PARTITIONS = st.one_of(st.none(), st.integers(1, 4))


@st.composite
def lengths(draw, max_length=5):
    """A window length and a slide no longer than it, in batch intervals."""
    length = draw(st.integers(1, max_length))
    return length, draw(st.integers(1, length))


def batches_of(records, max_batches=9):
    """Input batches, then enough empty ones for every window to drain."""
    return st.builds(
        lambda batches, tail: batches + [[]] * tail,
        st.lists(st.lists(records, max_size=6), min_size=1, max_size=max_batches),
        st.integers(0, 6),
    )


def seconds(units, interval):
    """``units`` batch intervals in seconds, as a user would write it."""
    return round(units * interval, 9)


# -- driving a graph one batch at a time --------------------------------------------------------


class Run:
    """What a stepped run saw: each output's ``(time, records)`` and, after each batch,
    how many batches each output had received and what every node remembered."""

    def __init__(self):
        self.outputs: list[list[tuple[float, list[Any]]]] = []
        self.progress: list[tuple[int, ...]] = []
        self.remembered: list[dict[str, list[float]]] = []
        self.watched: list[dict[str, list[float]]] = []


async def run_stepped(build, batches, *, interval=1.0, partition_size=10_000, watch=()):
    """Feed ``batches`` (one per tick) through a queue stream, apply ``build`` (which
    returns a DStream or a tuple of them) and step the manual clock one batch at a time.

    ``watch`` names streams (returned by ``build`` in a dict under ``"watch"``) whose
    remembered batch times are recorded after every batch.
    """
    run = Run()
    clock = ManualClock()
    async with StreamingContext(
        batch_interval=interval, clock=clock, partition_size=partition_size
    ) as ssc:
        source = ssc.queue_stream([list(batch) for batch in batches])
        built = build(source)
        watched: dict[str, DStream[Any]] = {"source": source}
        if isinstance(built, dict):
            watched.update(built.get("watch", {}))
            built = built["out"]
        outputs = [built] if isinstance(built, DStream) else list(built)
        sinks: list[ListSink[Any]] = []
        for stream in outputs:
            sink: ListSink[Any] = ListSink()
            stream.foreach_batch(sink)
            sinks.append(sink)
        ssc.start()
        for _ in batches:
            await step(ssc)
            run.progress.append(tuple(len(sink.batches) for sink in sinks))
            run.remembered.append({node.name: sorted(node._generated) for node in ssc._graph.nodes})
            run.watched.append(
                {name: sorted(stream._node._generated) for name, stream in watched.items()}
            )
    run.outputs = [list(sink.batches) for sink in sinks]
    return run


def drive(build, batches, **kwargs):
    return streamio.run(run_stepped(build, batches, **kwargs), use_uvloop=False)


def check_emissions(run, expected_per_output, interval, normalise=list):
    """Each output emitted exactly the expected windows, at their times, each during
    the step of its own batch (never late, never early)."""
    assert len(run.outputs) == len(expected_per_output)
    for index, (got, expected) in enumerate(zip(run.outputs, expected_per_output, strict=True)):
        assert [time for time, _ in got] == [seconds(k, interval) for k, _ in expected]
        for (time, records), (_, want) in zip(got, expected, strict=True):
            assert normalise(records) == normalise(want), f"output {index} at {time}"
        # after batch i, the output had received the windows emitted at batches <= i
        counts = [progress[index] for progress in run.progress]
        assert counts == [sum(1 for k, _ in expected if k <= i) for i in range(1, len(counts) + 1)]


# -- window ---------------------------------------------------------------------------------------


@SETTINGS
@given(
    batches=batches_of(VALUES),
    shape=lengths(),
    interval=INTERVALS,
    default_slide=st.booleans(),
    size=PARTITION_SIZES,
)
def test_window(batches, shape, interval, default_slide, size):
    length, slide = shape
    if default_slide:
        slide = 1

    def build(s):
        if default_slide:
            return s.window(seconds(length, interval))
        return s.window(seconds(length, interval), seconds(slide, interval))

    run = drive(build, batches, interval=interval, partition_size=size)
    # Spark's window is the union of the covered batches in time order: order is kept
    check_emissions(run, [wref.window(batches, length, slide)], interval)


@SETTINGS
@given(batches=batches_of(VALUES), shape=lengths(max_length=3), outer=st.integers(1, 3))
def test_windows_of_windows_and_derived_streams_keep_the_slide(batches, shape, outer):
    length, slide = shape
    tumbling = slide  # a tumbling window whose slide the derived streams inherit

    def build(s):
        tumbled = s.window(float(tumbling), float(tumbling))
        return (
            tumbled,
            tumbled.map(lambda x: 2 * x),
            tumbled.count(),
            tumbled.window(float(outer * tumbling)),
            tumbled.map(lambda x: x).window(float(outer * tumbling), float(outer * tumbling)),
            s.window(float(length), float(slide)).filter(lambda x: x % 2 == 0),
        )

    run = drive(build, batches)
    tumbled = wref.window(batches, tumbling, tumbling)
    check_emissions(
        run,
        [
            tumbled,
            [(k, [2 * x for x in records]) for k, records in tumbled],
            [(k, [len(records)]) for k, records in tumbled],
            wref.window(batches, outer * tumbling, tumbling),
            wref.window(batches, outer * tumbling, outer * tumbling),
            [(k, [x for x in rs if x % 2 == 0]) for k, rs in wref.window(batches, length, slide)],
        ],
        1.0,
    )


async def test_window_alignment_on_the_slide_grid():
    """ManualClock at 0, interval 1: first batch at 1.0, zero time 0.0, so a slide of
    2.0 emits at 2.0, 4.0, 6.0 and a window of 3.0 at 2.0 covers batches 1.0 and 2.0."""
    run = await run_stepped(
        lambda s: (s.window(3.0, 2.0), s.window(1.0, 3.0), s.window(2.0)),
        [[1], [2], [3], [4], [5], [6], [7]],
    )
    assert run.outputs[0] == [(2.0, [1, 2]), (4.0, [2, 3, 4]), (6.0, [4, 5, 6])]
    assert run.outputs[1] == [(3.0, [3]), (6.0, [6])]
    assert run.outputs[2] == [(1.0, [1]), (2.0, [1, 2]), (3.0, [2, 3]), (4.0, [3, 4]),
                              (5.0, [4, 5]), (6.0, [5, 6]), (7.0, [6, 7])]  # fmt: skip
    # nothing at the odd times: the output is called only on the slide grid
    assert run.progress[:4] == [(0, 0, 1), (1, 0, 2), (1, 1, 3), (2, 1, 4)]


async def test_window_slide_longer_than_the_window_skips_batches():
    """Spark allows a slide longer than the window: the batches between are in no window."""
    run = await run_stepped(lambda s: s.window(1.0, 2.0), [[1], [2], [3], [4], [5]])
    assert run.outputs[0] == [(2.0, [2]), (4.0, [4])]
    run = await run_stepped(lambda s: s.window(2.0, 3.0), [[1], [2], [3], [4], [5], [6]])
    assert run.outputs[0] == [(3.0, [2, 3]), (6.0, [5, 6])]


async def test_window_zero_time_follows_the_first_batch():
    """Spark's zero time is one interval before the first batch, wherever the clock
    starts: from 1.0 the first batch is at 2.0 and a slide of 2.0 emits at 3.0, 5.0."""
    clock = ManualClock(start=1.0)
    sink = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.queue_stream([[1], [2], [3], [4]]).window(2.0, 2.0).foreach_batch(sink)
        ssc.start()
        await clock.advance(4.0)
    assert sink.batches == [(3.0, [1, 2]), (5.0, [3, 4])]


async def test_window_with_a_decimal_batch_interval():
    """0.3 / 0.1 is not exactly 3 in floating point: still a valid window."""
    clock = ManualClock()
    sink, counts = ListSink(), ListSink()
    async with StreamingContext(batch_interval=0.1, clock=clock) as ssc:
        source = ssc.queue_stream([[1], [2], [3], [4], [5], [6], [7]])
        source.window(0.3, 0.2).foreach_batch(sink)
        source.count_by_window(0.6, 0.3).foreach_batch(counts)
        ssc.start()
        for _ in range(7):
            await step(ssc)
    assert sink.batches == [(0.2, [1, 2]), (0.4, [2, 3, 4]), (0.6, [4, 5, 6])]
    assert counts.batches == [(0.3, [3]), (0.6, [6])]


# -- reduce_by_key_and_window ----------------------------------------------------------------------


RECOMPUTE_FUNCS = [operator.add, max, min, lambda a, b: (a * b) % 101]


@SETTINGS
@given(
    batches=batches_of(PAIRS),
    shape=lengths(),
    which=st.integers(0, len(RECOMPUTE_FUNCS) - 1),
    size=PARTITION_SIZES,
    n=NUM_PARTITIONS,
)
def test_reduce_by_key_and_window_without_inverse(batches, shape, which, size, n):
    length, slide = shape
    func = RECOMPUTE_FUNCS[which]
    run = drive(
        lambda s: (
            s.reduce_by_key_and_window(func, None, float(length), float(slide), n),
            s.reduce_by_key_and_window(func, None, float(length), num_partitions=n),
        ),
        batches,
        partition_size=size,
    )
    check_emissions(
        run,
        [
            wref.reduce_by_key_and_window_recompute(func, batches, length, slide),
            wref.reduce_by_key_and_window_recompute(func, batches, length, 1),
        ],
        1.0,
        ref.multiset,
    )


def mul_mod_7(a, b):
    return (a * b) % 7


def div_mod_7(a, b):
    return (a * pow(b, -1, 7)) % 7


# (func, inv_func, the group's identity, values)
GROUPS = {
    "add": (operator.add, operator.sub, 0, VALUES),
    "xor": (operator.xor, operator.xor, 0, st.integers(0, 15)),
    "mul_mod_7": (mul_mod_7, div_mod_7, 1, st.integers(1, 6)),
}


@SETTINGS
@given(
    data=st.data(),
    group=st.sampled_from(sorted(GROUPS)),
    shape=lengths(),
    size=PARTITION_SIZES,
    n=NUM_PARTITIONS,
)
def test_reduce_by_key_and_window_with_inverse(data, group, shape, size, n):
    """Incremental: previous window + entering batches - leaving batches; a key whose
    values all left the window stays, with the group's identity."""
    func, inv_func, zero, values = GROUPS[group]
    batches = data.draw(batches_of(st.tuples(KEYS, values)), label="batches")
    length, slide = shape
    expected = wref.reduce_by_key_and_window_spark(func, inv_func, batches, length, slide)
    # the replay of Spark's algorithm is the plain group fold (checks the reference)
    assert [(k, ref.multiset(r)) for k, r in expected] == [
        (k, ref.multiset(r))
        for k, r in wref.reduce_by_key_and_window_group(func, zero, batches, length, slide)
    ]
    run = drive(
        lambda s: s.reduce_by_key_and_window(func, inv_func, float(length), float(slide), n),
        batches,
        partition_size=size,
    )
    check_emissions(run, [expected], 1.0, ref.multiset)


def add_then_scale(a, b):
    return a + b


def scaled_sub(a, b):
    """An "inverse" that leaves a trace of every call: each one multiplies by 10."""
    return (a - b) * 10


@SETTINGS
@given(
    batches=batches_of(st.tuples(st.sampled_from("abc"), st.integers(1, 4))),
    shape=lengths(max_length=4),
    size=PARTITION_SIZES,
)
def test_reduce_by_key_and_window_applies_the_inverse_as_spark_does(batches, shape, size):
    """Exactly Spark's ReducedWindowedDStream: per key and window, at most one
    ``inv_func(previous, reduced leaving values)``, then one ``func(.., reduced
    entering values)`` - visible with an inverse that is not a true inverse."""
    length, slide = shape
    run = drive(
        lambda s: s.reduce_by_key_and_window(
            add_then_scale, scaled_sub, float(length), float(slide)
        ),
        batches,
        partition_size=size,
    )
    expected = wref.reduce_by_key_and_window_spark(
        add_then_scale, scaled_sub, batches, length, slide
    )
    check_emissions(run, [expected], 1.0, ref.multiset)


async def test_reduce_by_key_and_window_inverse_example():
    batches = [[("a", 1), ("b", 5)], [("a", 2)], [("a", 4)], [], [], [("b", 1)]]
    run = await run_stepped(
        lambda s: (
            s.reduce_by_key_and_window(operator.add, operator.sub, 2.0, 1.0),
            s.reduce_by_key_and_window(operator.add, None, 2.0, 1.0),
            s.reduce_by_key_and_window(operator.add, scaled_sub, 2.0),
        ),
        batches,
    )
    incremental, recomputed, traced = (
        [(t, sorted(records, key=repr)) for t, records in out] for out in run.outputs
    )
    assert incremental == [
        (1.0, [("a", 1), ("b", 5)]),
        (2.0, [("a", 3), ("b", 5)]),
        (3.0, [("a", 6), ("b", 0)]),  # b left the window: it stays with 0
        (4.0, [("a", 4), ("b", 0)]),
        (5.0, [("a", 0), ("b", 0)]),
        (6.0, [("a", 0), ("b", 1)]),
    ]
    assert recomputed == [
        (1.0, [("a", 1), ("b", 5)]),
        (2.0, [("a", 3), ("b", 5)]),
        (3.0, [("a", 6)]),
        (4.0, [("a", 4)]),
        (5.0, []),
        (6.0, [("b", 1)]),
    ]
    # at 3.0: a = (3 - 1) * 10 + 4 = 24, b = (5 - 5) * 10 = 0; at 4.0: a = (24 - 2) * 10
    assert traced[2] == (3.0, [("a", 24), ("b", 0)])
    assert traced[3] == (4.0, [("a", 220), ("b", 0)])


@SETTINGS
@given(
    batches=batches_of(st.tuples(KEYS, st.integers(1, 9))),
    shape=lengths(),
    size=PARTITION_SIZES,
    n=NUM_PARTITIONS,
)
def test_reduce_by_key_and_window_filter_func(batches, shape, size, n):
    """filter_func gets each (key, value) pair; False drops the key from the window's
    result (and from the next window's previous value)."""
    length, slide = shape

    def non_zero(pair):
        return pair[1] != 0

    def keep_a(pair):
        return pair[1] != 0 or pair[0] == "a"

    run = drive(
        lambda s: (
            s.reduce_by_key_and_window(
                operator.add, operator.sub, float(length), float(slide), n, non_zero
            ),
            s.reduce_by_key_and_window(
                operator.add, operator.sub, float(length), float(slide), filter_func=keep_a
            ),
        ),
        batches,
        partition_size=size,
    )
    recomputed = wref.reduce_by_key_and_window_recompute(operator.add, batches, length, slide)
    spark = [
        wref.reduce_by_key_and_window_spark(
            operator.add, operator.sub, batches, length, slide, filter_func
        )
        for filter_func in (non_zero, keep_a)
    ]
    # with positive values, dropping zeros gives the keys present in the window
    assert [(k, ref.multiset(r)) for k, r in spark[0]] == [
        (k, ref.multiset(r)) for k, r in recomputed
    ]
    check_emissions(run, spark, 1.0, ref.multiset)


# -- reduce_by_window, count_by_window, count_by_value_and_window ---------------------------------


@SETTINGS
@given(batches=batches_of(VALUES), shape=lengths(), size=PARTITION_SIZES)
def test_reduce_by_window(batches, shape, size):
    length, slide = shape
    run = drive(
        lambda s: (
            s.reduce_by_window(operator.add, operator.sub, float(length), float(slide)),
            s.reduce_by_window(operator.add, None, float(length), float(slide)),
            s.reduce_by_window(max, None, float(length), float(slide)),
        ),
        batches,
        partition_size=size,
    )
    check_emissions(
        run,
        [
            wref.reduce_by_window(operator.add, operator.sub, batches, length, slide),
            wref.reduce_by_window(operator.add, None, batches, length, slide),
            wref.reduce_by_window(max, None, batches, length, slide),
        ],
        1.0,
    )


async def test_reduce_by_window_example():
    batches = [[], [5, 1], [], [], [2]]
    run = await run_stepped(
        lambda s: (
            s.reduce_by_window(operator.add, operator.sub, 2.0, 1.0),
            s.reduce_by_window(operator.add, None, 2.0, 1.0),
        ),
        batches,
    )
    incremental, recomputed = run.outputs
    # nothing before any data; with the inverse, the emptied window gives the zero
    assert incremental == [(1.0, []), (2.0, [6]), (3.0, [6]), (4.0, [0]), (5.0, [2])]
    assert recomputed == [(1.0, []), (2.0, [6]), (3.0, [6]), (4.0, []), (5.0, [2])]


@SETTINGS
@given(batches=batches_of(VALUES), shape=lengths(), size=PARTITION_SIZES)
def test_count_by_window(batches, shape, size):
    length, slide = shape
    run = drive(
        lambda s: s.count_by_window(float(length), float(slide)), batches, partition_size=size
    )
    check_emissions(run, [wref.count_by_window(batches, length, slide)], 1.0)


async def test_count_by_window_example():
    run = await run_stepped(
        lambda s: (s.count_by_window(2.0, 1.0), s.count_by_window(3.0, 2.0)),
        [[], [], ["a"], [], [], ["b", "c"], [], [], []],
    )
    by_one, by_two = run.outputs
    assert by_one == [
        (1.0, []),
        (2.0, []),
        (3.0, [1]),
        (4.0, [1]),
        (5.0, [0]),
        (6.0, [2]),
        (7.0, [2]),
        (8.0, [0]),
        (9.0, [0]),
    ]
    assert by_two == [(2.0, []), (4.0, [1]), (6.0, [2]), (8.0, [2])]


@SETTINGS
@given(
    batches=batches_of(st.sampled_from(["a", "b", "c", 1, 2, None])),
    shape=lengths(),
    size=PARTITION_SIZES,
    n=NUM_PARTITIONS,
)
def test_count_by_value_and_window(batches, shape, size, n):
    length, slide = shape
    run = drive(
        lambda s: s.count_by_value_and_window(float(length), float(slide), n),
        batches,
        partition_size=size,
    )
    check_emissions(
        run, [wref.count_by_value_and_window(batches, length, slide)], 1.0, ref.multiset
    )


async def test_count_by_value_and_window_drops_values_that_left():
    run = await run_stepped(
        lambda s: s.count_by_value_and_window(2.0, 1.0), [["a", "b", "a"], ["b"], [], ["a"]]
    )
    got = [(t, sorted(records)) for t, records in run.outputs[0]]
    assert got == [
        (1.0, [("a", 2), ("b", 1)]),
        (2.0, [("a", 2), ("b", 2)]),
        (3.0, [("b", 1)]),
        (4.0, [("a", 1)]),
    ]


# -- validation ------------------------------------------------------------------------------------

ONE = r"1(\.0)?(?![\d.])"

BAD_WINDOWS = [
    # (call, patterns the message must contain: the values at fault)
    (lambda s: s.window(2.5), [r"2\.5", ONE]),
    (lambda s: s.window(4.0, 1.5), [r"1\.5", ONE]),
    (lambda s: s.window(0.5), [r"0\.5", ONE]),
    (lambda s: s.window(2.0, 2.0).window(3.0), [r"3(\.0)?(?![\d.])", r"2(\.0)?(?![\d.])"]),
    (lambda s: s.window(2.0, 2.0).map(str).window(4.0, 1.0), [ONE, r"2(\.0)?(?![\d.])"]),
    (lambda s: s.window(2.0, 2.0).count().window(6.0, 3.0), [r"3(\.0)?(?![\d.])"]),
    (lambda s: s.reduce_by_key_and_window(operator.add, operator.sub, 2.5, 1.0), [r"2\.5"]),
    (lambda s: s.reduce_by_key_and_window(operator.add, None, 2.0, 0.75), [r"0\.75"]),
    (lambda s: s.reduce_by_window(operator.add, None, 1.5, 1.0), [r"1\.5"]),
    (lambda s: s.count_by_window(3.0, 1.25), [r"1\.25"]),
    (lambda s: s.count_by_value_and_window(3.5, 1.0), [r"3\.5"]),
]


@pytest.mark.parametrize(("call", "patterns"), BAD_WINDOWS)
def test_a_window_that_is_not_a_multiple_of_the_slide_is_refused(call, patterns):
    ssc = StreamingContext(batch_interval=1.0, clock=ManualClock())
    stream = ssc.queue_stream([[1]])
    with pytest.raises(ConfigurationError) as info:
        call(stream)
    for pattern in patterns:
        assert re.search(pattern, str(info.value)), (pattern, str(info.value))


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.window(0),
        lambda s: s.window(-2.0),
        lambda s: s.window(2.0, 0),
        lambda s: s.window(2.0, -1.0),
        lambda s: s.window(math.inf),
        lambda s: s.window(math.nan),
        lambda s: s.window("2"),
        lambda s: s.window(None),
        lambda s: s.count_by_window(0, 1.0),
        lambda s: s.reduce_by_window(operator.add, None, 2.0, -1.0),
        lambda s: s.count_by_value_and_window(-1.0, 1.0),
        lambda s: s.reduce_by_key_and_window(operator.add, None, 0),
    ],
)
def test_bad_window_durations_are_refused(call):
    ssc = StreamingContext(batch_interval=1.0, clock=ManualClock())
    with pytest.raises(ConfigurationError):
        call(ssc.queue_stream([[1]]))


@pytest.mark.parametrize(
    ("operator_name", "call"),
    [
        ("reduce_by_key_and_window", lambda s: s.reduce_by_key_and_window("add", None, 2.0)),
        ("reduce_by_key_and_window", lambda s: s.reduce_by_key_and_window(lambda a: a, None, 2.0)),
        ("reduce_by_key_and_window", lambda s: s.reduce_by_key_and_window(operator.add, 3, 2.0)),
        (
            "reduce_by_key_and_window",
            lambda s: s.reduce_by_key_and_window(operator.add, lambda a, b, c: a, 2.0),
        ),
        (
            "reduce_by_key_and_window",
            lambda s: s.reduce_by_key_and_window(operator.add, None, 2.0, 1.0, None, "keep"),
        ),
        (
            "reduce_by_key_and_window",
            lambda s: s.reduce_by_key_and_window(operator.add, operator.sub, 2.0, 1.0, 0),
        ),
        ("reduce_by_window", lambda s: s.reduce_by_window(None, None, 2.0, 1.0)),
        ("reduce_by_window", lambda s: s.reduce_by_window(operator.add, "sub", 2.0, 1.0)),
        ("count_by_value_and_window", lambda s: s.count_by_value_and_window(2.0, 1.0, -1)),
    ],
)
def test_bad_window_arguments_are_refused_by_name(operator_name, call):
    ssc = StreamingContext(batch_interval=1.0, clock=ManualClock())
    with pytest.raises(ConfigurationError) as info:
        call(ssc.queue_stream([[1]]))
    assert re.search(rf"(?<![\w.]){operator_name}\(", str(info.value)), str(info.value)


def test_valid_windows_are_accepted_and_named():
    ssc = StreamingContext(batch_interval=0.2, clock=ManualClock())
    stream = ssc.queue_stream([[1]])
    pairs = stream.map(lambda x: (x, 1))
    built = [
        stream.window(0.6, 0.4, name="w"),
        stream.window(0.6).window(1.2, 0.4),
        pairs.reduce_by_key_and_window(operator.add, operator.sub, 1.0, 0.2, name="rbkw"),
        stream.reduce_by_window(operator.add, None, 0.4, 0.4, name="rbw"),
        stream.count_by_window(0.6, 0.6, name="cbw"),
        stream.count_by_value_and_window(1.4, 0.2, name="cbvw"),
    ]
    assert all(isinstance(s, DStream) for s in built)
    assert [s.name for s in built if s is not built[1]] == ["w", "rbkw", "rbw", "cbw", "cbvw"]


# -- memory ---------------------------------------------------------------------------------------


def numbered(ticks):
    return [[i, -i] for i in range(1, ticks + 1)]


async def test_the_parent_of_a_window_keeps_only_the_window():
    """Window 3.0 over interval 1.0: after batch i the parent keeps exactly the
    batches the next window re-reads (i - 1 and i), however many batches ran."""
    ticks = 40
    run = await run_stepped(
        lambda s: {"out": s.window(3.0), "watch": {}}, numbered(ticks), watch=("source",)
    )
    for i, watched in enumerate(run.watched, start=1):
        assert watched["source"] == [float(t) for t in range(max(1, i - 1), i + 1)], i
    assert run.outputs[0][-1] == (40.0, [38, -38, 39, -39, 40, -40])


WINDOWED = [
    ("window", lambda s, w, sl: s.window(w, sl)),
    ("window_of_map", lambda s, w, sl: s.map(lambda x: x + 1).window(w, sl)),
    (
        "rbkw_inverse",
        lambda s, w, sl: s.map(lambda x: (x % 3, x)).reduce_by_key_and_window(
            operator.add, operator.sub, w, sl
        ),
    ),
    (
        "rbkw_recompute",
        lambda s, w, sl: s.map(lambda x: (x % 3, x)).reduce_by_key_and_window(
            operator.add, None, w, sl
        ),
    ),
    ("reduce_by_window", lambda s, w, sl: s.reduce_by_window(operator.add, operator.sub, w, sl)),
    ("count_by_window", lambda s, w, sl: s.count_by_window(w, sl)),
    ("count_by_value_and_window", lambda s, w, sl: s.count_by_value_and_window(w, sl)),
]


SHAPES = [(3, 1), (4, 2), (6, 3), (2, 2), (1, 1)]


@pytest.mark.parametrize(("length", "slide"), SHAPES)
@pytest.mark.parametrize("build", [b for _, b in WINDOWED], ids=[n for n, _ in WINDOWED])
async def test_memory_does_not_grow_with_the_number_of_batches(build, length, slide):
    """However many batches ran, every node remembers batches of a bounded span of
    time before the last batch (twice the window plus the slide, generously)."""
    ticks = 40
    run = await run_stepped(lambda s: build(s, float(length), float(slide)), numbered(ticks))
    for i, remembered in enumerate(run.remembered, start=1):
        for name, times in remembered.items():
            assert all(i - 2 * (length + slide) < t <= i for t in times), (i, name, times)
    # steady state: as much is remembered at the end as one whole period earlier
    period = length * slide
    totals = [sum(map(len, remembered.values())) for remembered in run.remembered]
    assert totals[-1] == totals[-1 - period], totals


@pytest.mark.parametrize(("length", "slide"), SHAPES)
@pytest.mark.parametrize("build", [b for _, b in WINDOWED], ids=[n for n, _ in WINDOWED])
async def test_memory_holds_only_what_the_next_window_needs(build, length, slide):
    """After batch ``t``, the next window (at ``t + slide`` at the latest) needs the
    batches after ``t - length`` (those entering it, and those leaving it for an
    incremental reduce) and the previous window's result: nothing older than
    ``t - length - slide`` is remembered anywhere, and the input itself keeps at
    most the batches after ``t - length``."""
    ticks = 30
    run = await run_stepped(
        lambda s: build(s, float(length), float(slide)), numbered(ticks), watch=("source",)
    )
    for i, remembered in enumerate(run.remembered, start=1):
        for name, times in remembered.items():
            assert all(i - length - slide < t <= i for t in times), (i, name, times)
    for i, watched in enumerate(run.watched, start=1):
        assert all(i - length < t <= i for t in watched["source"]), (i, watched)


async def test_a_plain_stream_without_windows_keeps_nothing():
    run = await run_stepped(lambda s: s.map(lambda x: x + 1), numbered(10))
    for remembered in run.remembered:
        assert all(times == [] for times in remembered.values()), remembered


# -- slice ----------------------------------------------------------------------------------------


async def test_slice_gives_the_remembered_batches():
    clock = ManualClock()
    slices: dict[str, Any] = {}
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.remember(10.0)
        source = ssc.queue_stream([[1], [2, 3], [], [4], [5], [6]])
        windowed = source.window(2.0, 2.0)
        windowed.foreach_batch(lambda records: None)
        ssc.start()
        await step(ssc, 6)
        slices["middle"] = source.slice(2.0, 4.0)
        slices["all"] = source.slice(1.0, 6.0)
        slices["one"] = source.slice(5.0, 5.0)
        slices["unaligned_end"] = source.slice(2.0, 3.5)
        slices["windowed"] = windowed.slice(2.0, 6.0)
        slices["windowed_unaligned_end"] = windowed.slice(4.0, 5.0)
    norm = {key: [(t, list(r)) for t, r in value] for key, value in slices.items()}
    assert norm["middle"] == [(2.0, [2, 3]), (3.0, []), (4.0, [4])]
    assert norm["all"] == [(1.0, [1]), (2.0, [2, 3]), (3.0, []), (4.0, [4]), (5.0, [5]), (6.0, [6])]
    assert norm["one"] == [(5.0, [5])]
    assert norm["unaligned_end"] == [(2.0, [2, 3]), (3.0, [])]
    assert norm["windowed"] == [(2.0, [1, 2, 3]), (4.0, [4]), (6.0, [5, 6])]
    assert norm["windowed_unaligned_end"] == [(4.0, [4])]


async def test_slice_of_forgotten_batches_says_to_call_remember():
    clock = ManualClock()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        source = ssc.queue_stream([[1], [2], [3], [4], [5]])
        source.foreach_batch(lambda records: None)
        ssc.start()
        await step(ssc, 5)
        forgotten = r"the batch at 1.0 of '\w+' is not remembered; call ssc.remember"
        with pytest.raises(ConfigurationError, match=forgotten):
            source.slice(1.0, 1.0)
        with pytest.raises(ConfigurationError, match=forgotten):
            source.slice(1.0, 5.0)


async def test_slice_of_batches_that_have_not_run_says_so():
    clock = ManualClock()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.remember(10.0)
        source = ssc.queue_stream([[1], [2], [3]])
        source.foreach_batch(lambda records: None)
        windowed = source.window(2.0, 2.0)
        windowed.foreach_batch(lambda records: None)
        ssc.start()
        with pytest.raises(
            streamio.ContextStateError,
            match=r"the batch at 1.0 of '\w+' has not run yet \(no batch has run\)",
        ):
            source.slice(1.0, 1.0)
        await step(ssc, 3)
        assert [(t, list(r)) for t, r in source.slice(2.0, 3.0)] == [(2.0, [2]), (3.0, [3])]
        with pytest.raises(
            streamio.ContextStateError,
            match=r"the batch at 4.0 of '\w+' has not run yet \(the last one ran at 3.0\)",
        ):
            source.slice(2.0, 4.0)
        with pytest.raises(streamio.ContextStateError, match=r"at 4\.0 .* has not run yet"):
            windowed.slice(1.0, 5.0)


async def test_slice_with_a_short_remember_duration():
    clock = ManualClock()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.remember(3.0)
        source = ssc.queue_stream([[1], [2], [3], [4], [5], [6]])
        source.foreach_batch(lambda records: None)
        ssc.start()
        await step(ssc, 6)
        got = [(t, list(r)) for t, r in source.slice(4.0, 6.0)]
        with pytest.raises(streamio.StreamioError, match=r"remember"):
            source.slice(1.0, 6.0)
    assert got == [(4.0, [4]), (5.0, [5]), (6.0, [6])]


# -- several partitions and errors --------------------------------------------------------------


def everything_windowed(s, n):
    pairs = s.map(lambda x: (x % 3, x))
    return (
        s.window(3.0, 1.0),
        pairs.reduce_by_key_and_window(operator.add, operator.sub, 3.0, 1.0, n),
        pairs.reduce_by_key_and_window(operator.add, None, 4.0, 2.0, n),
        s.count_by_value_and_window(2.0, 2.0, n),
        s.count_by_window(3.0, 1.0),
        s.reduce_by_window(operator.add, operator.sub, 2.0, 1.0),
        s.repartition(3).window(2.0).map(lambda x: (x % 2, 1)).reduce_by_key(operator.add),
    )


@SETTINGS
@given(batches=batches_of(VALUES), size=st.integers(1, 3), n=st.integers(1, 4))
def test_several_partitions_give_the_same_windows(batches, size, n):
    many = drive(lambda s: everything_windowed(s, n), batches, partition_size=size)
    one = drive(lambda s: everything_windowed(s, None), batches)
    assert len(many.outputs) == len(one.outputs)
    for got, want in zip(many.outputs, one.outputs, strict=True):
        assert [t for t, _ in got] == [t for t, _ in want]
        for (_, a), (_, b) in zip(got, want, strict=True):
            assert ref.multiset(a) == ref.multiset(b)


class Boom:
    def __init__(self, poison):
        self.poison = poison
        self.raised = []

    def check(self, *values):
        if self.poison in values:
            exc = ValueError(f"poisoned by {self.poison}")
            self.raised.append(exc)
            raise exc


@pytest.mark.parametrize(
    ("where", "poison", "batch_time"),
    [
        ("func", 13, 2.0),  # j's 13 and 1 are combined at 2.0
        ("inv_func", 14, 4.0),  # j's 14 leaves the window at 4.0
        ("filter_func", 12, 2.0),  # k is 10 + 2 at 2.0
    ],
)
async def test_an_error_in_a_window_function_names_the_operator(where, poison, batch_time):
    boom = Boom(poison)

    def func(a, b):
        if where == "func":
            boom.check(a, b)
        return a + b

    def inv_func(a, b):
        if where == "inv_func":
            boom.check(a, b)
        return a - b

    def filter_func(pair):
        if where == "filter_func":
            boom.check(pair[1])
        return True

    clock = ManualClock()
    batches = [[("k", 10)], [("k", 2), ("j", 13), ("j", 1)], [], [], []]
    with pytest.raises(OperatorError) as info:
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            ssc.queue_stream(batches).reduce_by_key_and_window(
                func, inv_func, 2.0, 1.0, None, filter_func, name="target"
            ).foreach_batch(lambda records: None)
            ssc.start()
            await step(ssc, len(batches))
    assert info.value.operator == "target"
    assert info.value.batch_time == batch_time
    assert len(boom.raised) == 1
    assert info.value.__cause__ is boom.raised[0]


# -- PySpark's windowed tests (pyspark/streaming/tests/test_dstream.py) ----------------------------


def pyspark_outputs(build, batches, count):
    """What PySpark's ``_test_func`` collects: batches of 0.5 s fed one per tick
    through a queue stream, the first ``count`` non-empty outputs."""
    ticks = len(batches) + 10  # enough empty batches for the windows to drain
    run = drive(build, [list(b) for b in batches] + [[]] * (ticks - len(batches)), interval=0.5)
    return [records for _, records in run.outputs[0] if records][:count]


def by_key(outputs):
    return [sorted(records, key=repr) for records in outputs]


PYSPARK_INPUT = [range(1), range(2), range(3), range(4), range(5)]
PYSPARK_GROUP_INPUT = [[("a", i)] for i in range(5)]
PYSPARK_GROUPED = [
    [("a", [0])],
    [("a", [0, 1])],
    [("a", [0, 1, 2])],
    [("a", [1, 2, 3])],
    [("a", [2, 3, 4])],
    [("a", [3, 4])],
    [("a", [4])],
]


def extend(a, b):
    """PySpark's groupByKeyAndWindow reduces with ``a.extend(b) or a``."""
    return a.extend(b) or a


def drop_leaving(a, b):
    """... and removes the values leaving the window with ``a[len(b):]``."""
    return a[len(b) :]


def test_pyspark_window():
    expected = [[1], [3], [6], [9], [12], [9], [5]]
    assert pyspark_outputs(lambda s: s.window(1.5, 0.5).count(), PYSPARK_INPUT, 7) == expected


def test_pyspark_count_by_window():
    expected = [[1], [3], [6], [9], [12], [9], [5]]
    assert pyspark_outputs(lambda s: s.count_by_window(1.5, 0.5), PYSPARK_INPUT, 7) == expected


def test_pyspark_count_by_window_large():
    batches = [*PYSPARK_INPUT, range(6)]
    expected = [[1], [3], [6], [10], [15], [20], [18], [15], [11], [6]]
    assert pyspark_outputs(lambda s: s.count_by_window(2.5, 0.5), batches, 10) == expected


def test_pyspark_count_by_value_and_window():
    batches = [*PYSPARK_INPUT, range(6)]
    expected = [
        [(0, 1)],
        [(0, 2), (1, 1)],
        [(0, 3), (1, 2), (2, 1)],
        [(0, 4), (1, 3), (2, 2), (3, 1)],
        [(0, 5), (1, 4), (2, 3), (3, 2), (4, 1)],
        [(0, 5), (1, 5), (2, 4), (3, 3), (4, 2), (5, 1)],
        [(0, 4), (1, 4), (2, 4), (3, 3), (4, 2), (5, 1)],
        [(0, 3), (1, 3), (2, 3), (3, 3), (4, 2), (5, 1)],
        [(0, 2), (1, 2), (2, 2), (3, 2), (4, 2), (5, 1)],
        [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 1)],
    ]
    got = pyspark_outputs(lambda s: s.count_by_value_and_window(2.5, 0.5), batches, 10)
    assert by_key(got) == expected


def test_pyspark_group_by_key_and_window():
    got = pyspark_outputs(
        lambda s: s.group_by_key_and_window(1.5, 0.5).map_values(list), PYSPARK_GROUP_INPUT, 8
    )
    assert got == PYSPARK_GROUPED  # and nothing after: keys without values are dropped


@pytest.mark.parametrize("inverse", [drop_leaving, None], ids=["incremental", "recomputed"])
def test_pyspark_group_by_key_and_window_as_pyspark_builds_it(inverse):
    """PySpark's own groupByKeyAndWindow: a reduce_by_key_and_window whose function
    extends its first list in place. The values kept for later windows (the batches
    of the window, the previous window) must come out unchanged."""

    def build(s):
        lists = s.map_values(lambda x: [x])
        return lists.reduce_by_key_and_window(extend, inverse, 1.5, 0.5)

    assert pyspark_outputs(build, PYSPARK_GROUP_INPUT, 7) == PYSPARK_GROUPED


def test_pyspark_reduce_by_key_and_window_with_none_inv_func():
    batches = [*PYSPARK_INPUT, range(6)]

    def build(s):
        windowed = s.map(lambda x: (x, 1)).reduce_by_key_and_window(operator.add, None, 5, 1)
        return windowed.filter(lambda kv: kv[1] > 0).count()

    assert pyspark_outputs(build, batches, 6) == [[2], [4], [6], [6], [6], [6]]


async def test_pyspark_reduce_by_invalid_window():
    async with StreamingContext(batch_interval=0.5, clock=ManualClock()) as ssc:
        stream = ssc.queue_stream([[("a", 1)]])
        with pytest.raises(ConfigurationError, match=r"window_length 0\.1 must be a positive"):
            stream.reduce_by_key_and_window(operator.add, None, 0.1, 0.1)
        with pytest.raises(ConfigurationError, match=r"slide_interval 0\.1 must be a positive"):
            stream.reduce_by_key_and_window(operator.add, None, 1, 0.1)


# -- functions that change their first argument --------------------------------------------------


@SETTINGS
@given(
    batches=batches_of(PAIRS),
    shape=lengths(),
    size=PARTITION_SIZES,
    n=NUM_PARTITIONS,
)
def test_windows_of_lists_extended_in_place(batches, shape, size, n):
    """Every windowed path gives the values of the window, in order, when the function
    builds its result in its first argument: nothing it was given is kept anywhere."""
    length, slide = shape
    w, sl = float(length), float(slide)

    def build(s):
        lists = s.map_values(lambda v: [v])
        return (
            lists.reduce_by_key_and_window(extend, None, w, sl, n),
            lists.reduce_by_key_and_window(extend, drop_leaving, w, sl, n, lambda kv: kv[1]),
            s.group_by_key_and_window(w, sl, n),
            s.map(lambda pair: [pair[1]]).reduce_by_window(extend, None, w, sl),
            s.map(lambda pair: [pair[1]]).reduce_by_window(extend, drop_leaving, w, sl),
            lists,  # the parent shared by the windows, unchanged
        )

    run = drive(build, batches, partition_size=size)
    windows = wref.window(batches, length, slide)
    grouped = [(float(k), ref.multiset(ref.group_by_key(records))) for k, records in windows]
    for output in run.outputs[:3]:
        assert [(t, ref.multiset(records)) for t, records in output] == grouped
    # one list per window; with the inverse, an emptied window gives the "zero", []
    values = [(k, [value for _, value in records]) for k, records in windows]
    assert run.outputs[3] == [(float(k), [v] if v else []) for k, v in values]
    assert run.outputs[4] == [
        (float(k), [v] if v or any(batches[:k]) else []) for k, v in values
    ]
    assert [records for _, records in run.outputs[5]] == [
        [(key, [value]) for key, value in batch] for batch in batches
    ]
