"""Event-time windows (``event_time_window``, ``session_window``) against a brute-force
reference (tests/streamio/event_time_reference.py).

Every test feeds batches through a queue stream and steps a ManualClock one batch at
a time, checking after each step what the window stream and its ``late_records()``
side stream produced for that batch. Records are ``(id, timestamp, key)`` tuples so
each one can be traced: every record must end up either in exactly the windows the
reference expects or in the late records of the batch it arrived in.

To see the windows still open after the last batch, the property tests feed one more
batch holding a single record far in the future: it moves the watermark past every
open window, which must then all be emitted, exactly as the reference left them.

Property tests are synchronous and run the pipeline with ``streamio.run`` on asyncio's
loop; the ``async def`` tests run on both event loops (tests/conftest.py).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from typing import Any

import event_time_reference as ref
import pytest
from faults import POISON, Boom
from hypothesis import example, given, settings
from hypothesis import strategies as st

import streamio
from streamio import (
    ConfigurationError,
    EventWindow,
    ManualClock,
    OperatorError,
    StreamingContext,
)
from streamio.testing import ListSink, collect_batches, step

SETTINGS = settings(max_examples=40, deadline=None)

FAR = 10_000.0  # the timestamp of the record that flushes every open window


def ts(record: tuple[int, float, Any]) -> float:
    return record[1]


def key_of(record: tuple[int, float, Any]) -> Any:
    return record[2]


def numbered(batches: list[list[tuple[float, Any]]]) -> list[list[tuple[int, float, Any]]]:
    """``(timestamp, key)`` batches as ``(id, timestamp, key)`` records with unique ids."""
    ids = iter(range(10**6))
    return [[(next(ids), time, k) for time, k in batch] for batch in batches]


@st.composite
def timed_batches(draw: st.DrawFn, scale: float = 0.5) -> list[list[tuple[int, float, Any]]]:
    """Up to 6 batches; the stream moves ``advance`` units a batch, and each record is
    up to 12 units before (out of order, often late) or 6 after that point."""
    advance = draw(st.integers(0, 8))
    offsets = draw(
        st.lists(
            st.lists(st.tuples(st.integers(-12, 6), st.sampled_from(["a", "b"])), max_size=6),
            min_size=1,
            max_size=6,
        )
    )
    return numbered(
        [
            [((index * advance + offset) * scale, k) for offset, k in batch]
            for index, batch in enumerate(offsets)
        ]
    )


LATENESS = st.sampled_from([0.0, 0.5, 1.0, 2.5, 4.0])
PARTITION_SIZES = st.sampled_from([1, 2, 10_000])


# -- driving a graph ------------------------------------------------------------------


async def replay(build, batches, *, partition_size=10_000, late=True):
    """Feed ``batches``, one batch per step of the clock; ``build(stream)`` returns the
    event-time stream. Returns ``(windows, late_records)``, one list per batch (the
    late records are None when ``late`` is False: ``late_records()`` not consumed)."""
    clock = ManualClock()
    windows: ListSink[Any] = ListSink()
    lates: ListSink[Any] = ListSink()
    async with StreamingContext(
        batch_interval=1.0, clock=clock, partition_size=partition_size
    ) as ssc:
        stream = build(ssc.queue_stream([list(batch) for batch in batches]))
        stream.foreach_batch(windows)
        if late:
            stream.late_records().foreach_batch(lates)
        ssc.start()
        for index in range(1, len(batches) + 1):
            await step(ssc)
            times = [float(i) for i in range(1, index + 1)]
            assert windows.times == times  # every batch is done when step() returns
            if late:
                assert lates.times == times
    got_windows = [records for _, records in windows.batches]
    got_late = [records for _, records in lates.batches] if late else None
    return got_windows, got_late


def drive(build, batches, *, partition_size=10_000):
    """:func:`replay` from synchronous code (hypothesis tests)."""
    return streamio.run(replay(build, batches, partition_size=partition_size), use_uvloop=False)


def shape(windows, *, unordered_records=False):
    """Windows as plain tuples, in a canonical order (ties between keys are unordered)."""
    out = [
        (w.key, w.start, w.end, sorted(w.records) if unordered_records else list(w.records))
        for w in windows
    ]
    return sorted(out, key=lambda w: (w[2], w[1], repr(w[0])))


def assert_ordered(windows):
    """Every item is an EventWindow, and the batch's windows are ordered by (end, start)."""
    assert all(isinstance(w, EventWindow) for w in windows), windows
    order = [(w.end, w.start) for w in windows]
    assert order == sorted(order), order


def assert_matches(batches, got_windows, got_late, expected, *, unordered_records=False):
    """``got_*`` hold one batch more than ``batches``: the flush batch, which must emit
    exactly the windows the reference left open (and no late record)."""
    assert len(got_windows) == len(got_late) == len(batches) + 1
    for index, (windows, late) in enumerate(zip(got_windows, got_late, strict=True)):
        assert_ordered(windows)
        if index < len(batches):
            want_windows, want_late = expected.emitted[index], expected.late[index]
        else:
            want_windows, want_late = expected.open, []
        assert shape(windows, unordered_records=unordered_records) == shape(
            want_windows, unordered_records=unordered_records
        ), f"windows of batch {index + 1}"
        assert late == want_late, f"late records of batch {index + 1}"
    assert_every_record_accounted(batches, got_windows, got_late, expected)


def assert_every_record_accounted(batches, got_windows, got_late, expected):
    """No record is lost or doubled: each is in exactly its expected windows, or late once."""
    found = defaultdict(list)
    for windows in got_windows:
        for w in windows:
            for record in w.records:
                found[record[0]].append((w.key, w.start, w.end))
    late = Counter(record[0] for records in got_late for record in records)
    for a, batch in enumerate(batches, start=1):
        for position, record in enumerate(batch):
            want = expected.placed[(a, position)]
            if want:
                assert late[record[0]] == 0, record
                assert sorted(found[record[0]]) == sorted(want), record
            else:
                assert late[record[0]] == 1, record
                assert found[record[0]] == [], record


def with_flush(batches):
    return [*batches, [(-1, FAR, "a")]]


# -- tumbling and sliding windows against the reference -----------------------------------


@SETTINGS
@given(
    batches=timed_batches(),
    length=st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0, 4.0]),
    lateness=LATENESS,
    keyed=st.booleans(),
    size=PARTITION_SIZES,
)
def test_tumbling_windows_match_the_reference(batches, length, lateness, keyed, size):
    key = key_of if keyed else None
    got_windows, got_late = drive(
        lambda s: s.event_time_window(ts, length, allowed_lateness=lateness, key=key),
        with_flush(batches),
        partition_size=size,
    )
    expected = ref.event_time_windows(batches, ts, length, lateness=lateness, key=key)
    assert_matches(batches, got_windows, got_late, expected)


SLIDING = st.tuples(
    st.sampled_from([1.0, 1.5, 2.0, 3.0, 4.0]), st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0])
).filter(lambda pair: pair[1] <= pair[0])


@SETTINGS
@given(
    batches=timed_batches(),
    length_slide=SLIDING,
    lateness=LATENESS,
    keyed=st.booleans(),
    size=PARTITION_SIZES,
)
def test_sliding_windows_match_the_reference(batches, length_slide, lateness, keyed, size):
    length, slide = length_slide
    key = key_of if keyed else None
    got_windows, got_late = drive(
        lambda s: s.event_time_window(ts, length, slide, allowed_lateness=lateness, key=key),
        with_flush(batches),
        partition_size=size,
    )
    expected = ref.event_time_windows(batches, ts, length, slide, lateness=lateness, key=key)
    assert_matches(batches, got_windows, got_late, expected)


DECIMAL_LENGTHS = st.tuples(
    st.sampled_from([0.1, 0.2, 0.3, 0.5, 0.7]), st.sampled_from([None, 0.1, 0.2, 0.3])
).filter(lambda pair: pair[1] is None or pair[1] <= pair[0])


@SETTINGS
@given(
    offsets=st.lists(st.lists(st.integers(0, 30), max_size=5), min_size=1, max_size=4),
    length_slide=DECIMAL_LENGTHS,
)
@example(offsets=[[3], [10]], length_slide=(0.1, None))  # 0.3 is in [0.3, 0.4)
@example(offsets=[[7], [50]], length_slide=(0.3, 0.1))  # 0.7 is in [0.5, 0.8) .. [0.7, 1.0)
def test_windows_of_decimal_seconds_match_the_reference(offsets, length_slide):
    """Timestamps and lengths in tenths of a second, as a user writes them."""
    length, slide = length_slide
    batches = numbered([[(offset / 10, None) for offset in batch] for batch in offsets])
    got_windows, got_late = drive(
        lambda s: s.event_time_window(ts, length, slide), with_flush(batches)
    )
    for windows in got_windows:
        for w in windows:
            for record in w.records:
                assert w.start <= ts(record) < w.end, (w, record)
    expected = ref.event_time_windows(batches, ts, length, slide)
    assert_matches(batches, got_windows, got_late, expected)


# -- session windows against the reference ---------------------------------------------------

GAPS = st.sampled_from([0.5, 1.0, 2.0, 3.5, 5.0])


@SETTINGS
@given(
    batches=timed_batches(), gap=GAPS, lateness=LATENESS, keyed=st.booleans(), size=PARTITION_SIZES
)
# within one batch, 46.5 is late on its own but is joined by 48.5 (less than gap apart)
@example(
    batches=[[(0, 50.0, "a")], [(1, 46.5, "a"), (2, 48.5, "a")]],
    gap=2.5,
    lateness=0.0,
    keyed=False,
    size=10_000,
)
def test_session_windows_match_the_reference(batches, gap, lateness, keyed, size):
    key = key_of if keyed else None
    got_windows, got_late = drive(
        lambda s: s.session_window(ts, gap, allowed_lateness=lateness, key=key),
        with_flush(batches),
        partition_size=size,
    )
    expected = ref.session_windows(batches, ts, gap, lateness=lateness, key=key)
    assert_matches(batches, got_windows, got_late, expected, unordered_records=True)


@SETTINGS
@given(
    batches=timed_batches(), gap=GAPS, lateness=LATENESS, keyed=st.booleans(), size=PARTITION_SIZES
)
def test_session_windows_match_the_reference_with_batches_in_descending_time(
    batches, gap, lateness, keyed, size
):
    """Each batch's records newest first: no record can be joined by one after it."""
    batches = [sorted(batch, key=lambda record: -ts(record)) for batch in batches]
    key = key_of if keyed else None
    got_windows, got_late = drive(
        lambda s: s.session_window(ts, gap, allowed_lateness=lateness, key=key),
        with_flush(batches),
        partition_size=size,
    )
    expected = ref.session_windows(batches, ts, gap, lateness=lateness, key=key)
    assert_matches(batches, got_windows, got_late, expected, unordered_records=True)


# -- the reference itself, on hand-computed cases -----------------------------------------------


def test_the_reference_on_hand_computed_cases():
    batches = numbered([[(1, None), (4, None), (12, None)], [(25, None), (3, None)]])
    replayed = ref.event_time_windows(batches, ts, 10.0)
    assert replayed.emitted == [
        [EventWindow(None, 0.0, 10.0, [(0, 1, None), (1, 4, None)])],
        [EventWindow(None, 10.0, 20.0, [(2, 12, None)])],
    ]
    assert replayed.late == [[], [(4, 3, None)]]
    assert replayed.open == [EventWindow(None, 20.0, 30.0, [(3, 25, None)])]
    assert ref.windows_of(ref.exact(0.7), ref.exact(0.3), ref.exact(0.1)) == [
        (ref.exact(0.5), ref.exact(0.8)),
        (ref.exact(0.6), ref.exact(0.9)),
        (ref.exact(0.7), ref.exact(1.0)),
    ]
    sessions = ref.session_windows(
        numbered([[(1, None), (10, None)], [(5.5, None)], [(100, None)]]), ts, 5.0, lateness=20
    )
    assert sessions.emitted == [
        [],
        [],
        [EventWindow(None, 1.0, 15.0, [(0, 1, None), (1, 10, None), (2, 5.5, None)])],
    ]
    assert sessions.open == [EventWindow(None, 100.0, 105.0, [(3, 100, None)])]


# -- hand-computed cases ------------------------------------------------------------------------


def plain(windows):
    return [(w.key, w.start, w.end, w.records) for w in windows]


async def run_plain(build, batches, **kwargs):
    got_windows, got_late = await replay(build, batches, **kwargs)
    return [plain(windows) for windows in got_windows], got_late


async def test_tumbling_windows_are_emitted_once_the_watermark_passes_their_end():
    got, late = await run_plain(
        lambda s: s.event_time_window(lambda r: r, 10.0), [[1, 4, 12], [25, 3], [], [31]]
    )
    assert got == [
        [(None, 0.0, 10.0, [1, 4])],
        [(None, 10.0, 20.0, [12])],
        [],
        [(None, 20.0, 30.0, [25])],
    ]
    assert late == [[], [3], [], []]


async def test_a_window_is_emitted_in_the_batch_its_end_is_reached_and_is_then_closed():
    got, late = await run_plain(
        lambda s: s.event_time_window(lambda r: r, 10.0), [[5], [10], [9], [10]]
    )
    assert got == [[], [(None, 0.0, 10.0, [5])], [], []]
    assert late == [[], [], [9], []]


async def test_records_out_of_order_within_one_batch_are_not_late_to_each_other():
    got, late = await run_plain(lambda s: s.event_time_window(lambda r: r, 10.0), [[25, 3, 12]])
    assert got == [[(None, 0.0, 10.0, [3]), (None, 10.0, 20.0, [12])]]
    assert late == [[]]


async def test_allowed_lateness_holds_the_window_open():
    got, late = await run_plain(
        lambda s: s.event_time_window(lambda r: r, 10.0, allowed_lateness=3.0),
        [[5], [10], [9], [13], [9.5]],
    )
    assert got == [[], [], [], [(None, 0.0, 10.0, [5, 9])], []]
    assert late == [[], [], [], [], [9.5]]


async def test_the_watermark_never_moves_back_and_empty_batches_keep_it():
    got, late = await run_plain(
        lambda s: s.event_time_window(lambda r: r, 10.0), [[15], [], [2], [12], [20]]
    )
    # the watermark stays 15 through the batches of 2 and 12: [10, 20) waits for 20
    assert got == [[], [], [], [], [(None, 10.0, 20.0, [15, 12])]]
    assert late == [[], [], [2], [], []]


async def test_sliding_windows_take_only_the_windows_still_open():
    got, late = await run_plain(
        lambda s: s.event_time_window(lambda r: r, 10.0, 5.0), [[7], [12], [8], [30]]
    )
    # 8 belongs to [0, 10), emitted already, and to [5, 15), still open: not late
    assert got == [
        [],
        [(None, 0.0, 10.0, [7])],
        [],
        [(None, 5.0, 15.0, [7, 12, 8]), (None, 10.0, 20.0, [12])],
    ]
    assert late == [[], [], [], []]


async def test_windows_are_ordered_by_end_then_start_across_keys():
    records = [("b", 14), ("a", 3), ("b", 1), ("a", 12), ("a", 21)]
    got_windows, _ = await replay(
        lambda s: s.event_time_window(lambda r: r[1], 10.0, 5.0, key=lambda r: r[0]),
        [records, [("a", 50)]],
    )
    for windows in got_windows:
        assert_ordered(windows)
    assert shape(got_windows[0]) == [
        ("a", -5.0, 5.0, [("a", 3)]),
        ("b", -5.0, 5.0, [("b", 1)]),
        ("a", 0.0, 10.0, [("a", 3)]),
        ("b", 0.0, 10.0, [("b", 1)]),
        ("a", 5.0, 15.0, [("a", 12)]),
        ("b", 5.0, 15.0, [("b", 14)]),
        ("a", 10.0, 20.0, [("a", 12)]),
        ("b", 10.0, 20.0, [("b", 14)]),
    ]
    assert plain(got_windows[1]) == [
        ("a", 15.0, 25.0, [("a", 21)]),
        ("a", 20.0, 30.0, [("a", 21)]),
    ]


async def test_a_key_splits_the_windows():
    got, late = await run_plain(
        lambda s: s.event_time_window(lambda r: r[1], 10.0, key=lambda r: r[0]),
        [[("x", 1), ("y", 2), ("x", 9)], [("y", 11)], [("x", 5)]],
    )
    assert got[0] == []
    assert sorted(got[1]) == [
        ("x", 0.0, 10.0, [("x", 1), ("x", 9)]),
        ("y", 0.0, 10.0, [("y", 2)]),
    ]
    assert got[2] == []
    assert late == [[], [], [("x", 5)]]


async def test_a_window_of_a_tenth_of_a_second_holds_the_records_of_its_tenth():
    got, late = await run_plain(lambda s: s.event_time_window(lambda r: r, 0.1), [[0.3], [1.0]])
    assert got == [[], [(None, 0.3, 0.4, [0.3])]]
    assert late == [[], []]


async def test_windows_still_open_when_the_context_stops_are_not_emitted():
    got, late = await run_plain(lambda s: s.event_time_window(lambda r: r, 10.0), [[1], [2, 9.5]])
    assert got == [[], []]
    assert late == [[], []]
    sessions, late = await run_plain(lambda s: s.session_window(lambda r: r, 5.0), [[1], [4]])
    assert sessions == [[], []]
    assert late == [[], []]


async def test_late_records_alone_and_the_windows_alone():
    batches = [[5, 15], [3], [25, 9]]
    clock = ManualClock()
    sink = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        windows = ssc.queue_stream(list(batches)).event_time_window(lambda r: r, 10.0)
        windows.late_records().foreach_batch(sink)  # the windows themselves go nowhere
        ssc.start()
        await step(ssc, 3)
    assert sink.batches == [(1.0, []), (2.0, [3]), (3.0, [9])]
    got, late = await run_plain(
        lambda s: s.event_time_window(lambda r: r, 10.0), batches, late=False
    )
    assert late is None
    assert got == [[(None, 0.0, 10.0, [5])], [], [(None, 10.0, 20.0, [15])]]


async def test_the_documented_examples():
    tumbling = await collect_batches(
        lambda s: s.event_time_window(lambda r: r, 10.0).map(lambda w: (w.start, w.end, w.records)),
        [[1, 4, 12], [25, 3]],
    )
    assert tumbling == [[(0.0, 10.0, [1, 4])], [(10.0, 20.0, [12])]]
    sessions = await collect_batches(
        lambda s: s.session_window(lambda r: r, 5.0).map(lambda w: (w.start, w.end, w.records)),
        [[1, 3, 20], [30]],
    )
    assert sessions == [[(1.0, 8.0, [1, 3])], [(20.0, 25.0, [20])]]


# -- sessions, by hand ---------------------------------------------------------------------------


def sessions_plain(windows):
    return [(w.key, w.start, w.end, sorted(w.records)) for w in windows]


async def run_sessions(build, batches):
    got_windows, got_late = await replay(build, batches)
    return [sessions_plain(windows) for windows in got_windows], got_late


async def test_events_closer_than_the_gap_form_one_session():
    got, late = await run_sessions(
        lambda s: s.session_window(lambda r: r, 5.0), [[1, 6, 3, 20], [30]]
    )
    # 1 and 3 are less than 5 apart; 6 is 3 after 3; 20 is alone
    assert got == [[(None, 1.0, 11.0, [1, 3, 6])], [(None, 20.0, 25.0, [20])]]
    assert late == [[], []]


async def test_events_exactly_a_gap_apart_are_separate_sessions():
    got, _ = await run_sessions(lambda s: s.session_window(lambda r: r, 5.0), [[1, 6], [100]])
    assert got == [[(None, 1.0, 6.0, [1])], [(None, 6.0, 11.0, [6])]]


async def test_a_record_between_two_sessions_merges_them():
    got, late = await run_sessions(
        lambda s: s.session_window(lambda r: r, 5.0, allowed_lateness=20.0),
        [[1, 10], [5.5], [100]],
    )
    assert got == [[], [], [(None, 1.0, 15.0, [1, 5.5, 10])]]
    assert late == [[], [], []]


async def test_a_record_touching_an_open_session_is_kept_even_behind_the_watermark():
    got, late = await run_sessions(
        lambda s: s.session_window(lambda r: r, 5.0), [[10], [14], [8], [100]]
    )
    assert got == [[], [], [], [(None, 8.0, 19.0, [8, 10, 14])]]
    assert late == [[], [], [], []]


async def test_a_session_record_touching_no_open_session_behind_the_watermark_is_late():
    got, late = await run_sessions(
        lambda s: s.session_window(lambda r: r, 5.0), [[1], [20], [2], [14], [16], [100]]
    )
    # the watermark is 20 from the second batch on. 2: 2 + 5 <= 20, and [1, 6) was
    # emitted; 14: 14 + 5 <= 20, and [14, 19) does not touch [20, 25); 16: 16 + 5 > 20
    assert got == [[], [(None, 1.0, 6.0, [1])], [], [], [], [(None, 16.0, 25.0, [16, 20])]]
    assert late == [[], [], [2], [14], [], []]


async def test_sessions_are_per_key():
    got, late = await run_sessions(
        lambda s: s.session_window(lambda r: r[1], 5.0, key=lambda r: r[0]),
        [[("x", 1), ("y", 3), ("x", 4)], [("y", 40)]],
    )
    assert got == [
        [],
        [("y", 3.0, 8.0, [("y", 3)]), ("x", 1.0, 9.0, [("x", 1), ("x", 4)])],
    ]
    assert late == [[], []]


@pytest.mark.parametrize("order", [[46.5, 48.5], [48.5, 46.5]], ids=["in-order", "reversed"])
async def test_the_order_of_records_within_a_batch_does_not_matter_to_sessions(order):
    """46.5 + 2.5 <= 50 (the watermark) and it touches no open session on its own, but
    48.5 of the same batch is less than the gap from it: they form one session, and
    records of one batch are never late to each other."""
    got, late = await run_sessions(
        lambda s: s.session_window(lambda r: r, 2.5), [[50], order, [100]]
    )
    assert late == [[], [], []]
    assert got == [[], [], [(None, 46.5, 52.5, [46.5, 48.5, 50])]]


# -- configuration errors ----------------------------------------------------------------------


def identity(record):
    return record


BAD_CONFIGURATIONS = [
    ("event_time_window", lambda s: s.event_time_window("ts", 10.0)),
    ("event_time_window", lambda s: s.event_time_window(None, 10.0)),
    ("event_time_window", lambda s: s.event_time_window(lambda a, b: a, 10.0)),
    ("event_time_window", lambda s: s.event_time_window(identity, 0)),
    ("event_time_window", lambda s: s.event_time_window(identity, -1.0)),
    ("event_time_window", lambda s: s.event_time_window(identity, math.nan)),
    ("event_time_window", lambda s: s.event_time_window(identity, math.inf)),
    ("event_time_window", lambda s: s.event_time_window(identity, "10")),
    ("event_time_window", lambda s: s.event_time_window(identity, True)),
    ("event_time_window", lambda s: s.event_time_window(identity, 10.0, 0.0)),
    ("event_time_window", lambda s: s.event_time_window(identity, 10.0, -5.0)),
    ("event_time_window", lambda s: s.event_time_window(identity, 10.0, math.nan)),
    ("event_time_window", lambda s: s.event_time_window(identity, 10.0, allowed_lateness=-1)),
    (
        "event_time_window",
        lambda s: s.event_time_window(identity, 10.0, allowed_lateness=math.nan),
    ),
    ("event_time_window", lambda s: s.event_time_window(identity, 10.0, key="k")),
    ("session_window", lambda s: s.session_window("ts", 5.0)),
    ("session_window", lambda s: s.session_window(lambda: 0, 5.0)),
    ("session_window", lambda s: s.session_window(identity, 0.0)),
    ("session_window", lambda s: s.session_window(identity, -5.0)),
    ("session_window", lambda s: s.session_window(identity, math.nan)),
    ("session_window", lambda s: s.session_window(identity, 5.0, allowed_lateness=-0.5)),
    ("session_window", lambda s: s.session_window(identity, 5.0, allowed_lateness=math.nan)),
    ("session_window", lambda s: s.session_window(identity, 5.0, key=3)),
]


@pytest.mark.parametrize(
    ("operator_name", "call"),
    BAD_CONFIGURATIONS,
    ids=[f"{name}-{index}" for index, (name, _) in enumerate(BAD_CONFIGURATIONS)],
)
def test_a_bad_configuration_is_refused_at_build_time(operator_name, call):
    ssc = StreamingContext(batch_interval=1.0, clock=ManualClock())
    stream = ssc.queue_stream([[1]])
    with pytest.raises(ConfigurationError) as info:
        call(stream)
    assert re.search(rf"(?<![\w.]){operator_name}\(", str(info.value)), str(info.value)


def test_zero_allowed_lateness_and_whole_numbers_are_accepted():
    ssc = StreamingContext(batch_interval=1.0, clock=ManualClock())
    stream = ssc.queue_stream([[1]])
    stream.event_time_window(identity, 10, 5, allowed_lateness=0)
    stream.session_window(identity, 3, allowed_lateness=0, key=identity)


# -- a failing timestamp or key function ---------------------------------------------------------


OPERATORS = {
    "tumbling": lambda s, f, k: s.event_time_window(f, 10.0, key=k, name="target"),
    "sliding": lambda s, f, k: s.event_time_window(f, 10.0, 5.0, key=k, name="target"),
    "session": lambda s, f, k: s.session_window(f, 5.0, key=k, name="target"),
}


@pytest.mark.parametrize("failing", ["timestamp", "key"])
@pytest.mark.parametrize("operator_name", list(OPERATORS))
async def test_a_failing_user_function_is_an_operator_error(operator_name, failing):
    boom = Boom()
    clock = ManualClock()
    windows, late = ListSink(), ListSink()
    timestamp, key = (boom, None) if failing == "timestamp" else (identity, boom)
    with pytest.raises(OperatorError) as info:
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            stream = OPERATORS[operator_name](
                ssc.queue_stream([[1, 2], [3, POISON, 4], [50]]), timestamp, key
            )
            stream.foreach_batch(windows)
            stream.late_records().foreach_batch(late)
            ssc.start()
            for _ in range(3):
                await step(ssc)
    error = info.value
    assert error.operator == "target"
    assert error.batch_time == 2.0
    assert "target" in str(error)
    assert len(boom.raised) == 1
    assert error.__cause__ is boom.raised[0]
    assert windows.times == [1.0]  # the first batch went through, nothing after the failure
    assert late.times == [1.0]


async def test_a_timestamp_that_is_not_a_number_is_an_operator_error():
    clock = ManualClock()
    with pytest.raises(OperatorError) as info:
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            ssc.queue_stream([[1], ["soon"]]).event_time_window(
                identity, 10.0, name="target"
            ).foreach_batch(lambda records: None)
            ssc.start()
            await step(ssc, 2)
    assert info.value.operator == "target"
    assert info.value.batch_time == 2.0
    assert isinstance(info.value.__cause__, (TypeError, ValueError))


@pytest.mark.parametrize("operator_name", ["event_time_window", "session_window"])
async def test_a_record_without_a_finite_timestamp_goes_to_the_late_records(operator_name):
    clock = ManualClock()
    windows, late = ListSink(), ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        stream = ssc.queue_stream([[1.0, math.nan, 2.0], [math.inf, 30.0]])
        build = getattr(stream, operator_name)
        windowed = build(lambda r: r, 10.0)
        windowed.foreach_batch(windows)
        windowed.late_records().foreach_batch(late)
        ssc.start()
        await clock.advance(2.0)
    assert [str(r) for r in late.records] == ["nan", "inf"]
    assert [w.records for w in windows.records] == [[1.0, 2.0]]
