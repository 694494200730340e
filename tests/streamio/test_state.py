"""State operators against replays of the raw batches (tests/streamio/window_reference.py).

``update_state_by_key`` and ``map_with_state`` are driven one batch at a time on a
ManualClock; after every batch the emitted records, the state snapshot and the
calls of the user's function are compared with a plain-Python replay of the input.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import reference as ref
import window_reference as wref
from hypothesis import given, settings
from hypothesis import strategies as st

import streamio
from streamio import (
    ConfigurationError,
    DStream,
    ManualClock,
    OperatorError,
    State,
    StateError,
    StateSpec,
    StreamingContext,
)
from streamio.testing import ListSink, step

SETTINGS = settings(max_examples=30, deadline=None)

KEYS = st.sampled_from(["a", "b", "c", 1, None, (2, "x")])
PARTITION_SIZES = st.sampled_from([1, 2, 3, 10_000])
NUM_PARTITIONS = st.one_of(st.none(), st.integers(1, 4))


def batches_of(records, max_batches=8):
    """Input batches, then a few empty ones (idle keys, timeouts)."""
    return st.builds(
        lambda batches, tail: batches + [[]] * tail,
        st.lists(st.lists(records, max_size=6), min_size=1, max_size=max_batches),
        st.integers(0, 4),
    )


def as_dict(records):
    """A snapshot's records as a dict; every key appears once."""
    pairs = [tuple(record) for record in records]
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(map(ref.freeze, keys))), f"a key appears twice: {pairs}"
    return dict(pairs)


class Run:
    def __init__(self):
        self.outputs: list[list[tuple[float, list[Any]]]] = []
        self.per_step: list[Any] = []  # what ``after_step()`` returned after each batch
        self.progress: list[tuple[int, ...]] = []
        self.remembered: list[dict[str, int]] = []


async def run_stepped(
    build, batches, *, interval=1.0, partition_size=10_000, after_step=None, ticks=None
):
    """Feed ``batches`` through a queue stream, apply ``build`` (a DStream or a tuple
    of them), and step the manual clock one batch at a time (``ticks`` batches, by
    default one per input batch)."""
    run = Run()
    clock = ManualClock()
    async with StreamingContext(
        batch_interval=interval, clock=clock, partition_size=partition_size
    ) as ssc:
        built = build(ssc.queue_stream([list(batch) for batch in batches]))
        outputs = [built] if isinstance(built, DStream) else list(built)
        sinks: list[ListSink[Any]] = []
        for stream in outputs:
            sink: ListSink[Any] = ListSink()
            stream.foreach_batch(sink)
            sinks.append(sink)
        ssc.start()
        for _ in range(len(batches) if ticks is None else ticks):
            await step(ssc)
            run.progress.append(tuple(len(sink.batches) for sink in sinks))
            run.remembered.append({node.name: len(node._generated) for node in ssc._graph.nodes})
            if after_step is not None:
                run.per_step.append(after_step())
    run.outputs = [list(sink.batches) for sink in sinks]
    return run


def drive(build, batches, **kwargs):
    return streamio.run(run_stepped(build, batches, **kwargs), use_uvloop=False)


def check_every_batch(run, interval=1.0):
    """State streams emit at every batch, during that batch's step."""
    ticks = len(run.progress)
    times = [round(i * interval, 9) for i in range(1, ticks + 1)]
    for index, output in enumerate(run.outputs):
        assert [time for time, _ in output] == times
        assert [progress[index] for progress in run.progress] == list(range(1, ticks + 1))


# -- update_state_by_key ---------------------------------------------------------------------------


class Updater:
    """An update function whose state is ``(key, calls, total, idle batches)``.

    A value of 0 among the new values removes the key; so does being idle (no new
    values) for ``max_idle`` batches in a row. Values carry their key, so that a new
    state can name its key. Every call is logged (values as a bag, old state).
    """

    def __init__(self, max_idle):
        self.max_idle = max_idle
        self.log: list[tuple[Any, Any]] = []

    def __call__(self, values, state):
        self.log.append((tuple(sorted(map(ref.freeze, values), key=repr)), ref.freeze(state)))
        return self.pure(values, state, self.max_idle)

    @staticmethod
    def pure(values, state, max_idle):
        if state is None:
            key, calls, total, idle = values[0][0], 0, 0, 0
        else:
            key, calls, total, idle = state
        numbers = [v for _, v in values]
        if 0 in numbers:
            return None
        idle = 0 if numbers else idle + 1
        if idle >= max_idle:
            return None
        return (key, calls + 1, total + sum(numbers), idle)

    def take_log(self):
        log, self.log = self.log, []
        return log


def tag_with_key(stream):
    return stream.map(lambda kv: (kv[0], (kv[0], kv[1])))


@SETTINGS
@given(
    batches=batches_of(st.tuples(KEYS, st.integers(0, 9))),
    max_idle=st.integers(1, 3),
    initial=st.dictionaries(KEYS, st.integers(0, 5), max_size=3),
    with_initial=st.booleans(),
    size=PARTITION_SIZES,
    n=NUM_PARTITIONS,
)
def test_update_state_by_key(batches, max_idle, initial, with_initial, size, n):
    initial_state = [(key, (key, 0, total, 0)) for key, total in initial.items()]
    updater = Updater(max_idle)
    run = drive(
        lambda s: tag_with_key(s).update_state_by_key(
            updater, initial_state if with_initial else None, n
        ),
        batches,
        partition_size=size,
        after_step=updater.take_log,
    )
    tagged = [[(key, (key, value)) for key, value in batch] for batch in batches]
    snapshots, calls = wref.update_state_by_key(
        lambda values, state: Updater.pure(values, state, max_idle),
        tagged,
        initial_state if with_initial else (),
    )
    check_every_batch(run)
    assert [as_dict(records) for _, records in run.outputs[0]] == snapshots
    # every key with a state or new values is updated exactly once per batch
    assert [Counter(log) for log in run.per_step] == [Counter(c) for c in calls]


async def test_update_state_by_key_example():
    """Keys without new values are called with []; None removes the key."""
    calls = []

    def update(values, state):
        calls.append((sorted(values), state))
        if "stop" in values:
            return None
        return (state or 0) + len(values)

    run = await run_stepped(
        lambda s: s.update_state_by_key(update),
        [[("a", "x"), ("b", "y"), ("a", "z")], [], [("b", "stop")], [("b", "again")], []],
    )
    check_every_batch(run)
    snapshots = [sorted(records) for _, records in run.outputs[0]]
    assert snapshots == [
        [("a", 2), ("b", 1)],
        [("a", 2), ("b", 1)],
        [("a", 2)],
        [("a", 2), ("b", 1)],
        [("a", 2), ("b", 1)],
    ]
    assert sorted(map(str, calls)) == sorted(
        map(
            str,
            [
                (["x", "z"], None),
                (["y"], None),
                ([], 2),
                ([], 1),
                ([], 2),
                (["stop"], 1),
                ([], 2),
                (["again"], None),
                ([], 2),
                ([], 1),
            ],
        )
    )


async def test_update_state_by_key_initial_state():
    def update(values, state):
        return (state or 0) + sum(values)

    def initial():  # any iterable of (key, state) pairs: here a generator
        yield ("a", 10)
        yield ("z", 1)

    run = await run_stepped(
        lambda s: (
            s.update_state_by_key(update, initial()),
            s.update_state_by_key(update, {"a": 100}.items()),
            s.update_state_by_key(update, [("q", 5)], 2),
        ),
        [[("a", 1)], [], [("z", 2), ("n", 3)]],
    )
    check_every_batch(run)
    gen, items, listed = ([sorted(r) for _, r in output] for output in run.outputs)
    assert gen == [[("a", 11), ("z", 1)], [("a", 11), ("z", 1)], [("a", 11), ("n", 3), ("z", 3)]]
    assert items == [[("a", 101)], [("a", 101)], [("a", 101), ("n", 3), ("z", 2)]]
    assert listed == [
        [("a", 1), ("q", 5)],
        [("a", 1), ("q", 5)],
        [("a", 1), ("n", 3), ("q", 5), ("z", 2)],
    ]


def extend_state(values, state):
    """PySpark's test updater: it extends the state in place."""
    if not state:
        state = []
    state.extend(values)
    return state


async def test_pyspark_update_state_by_key():
    """pyspark/streaming/tests/test_dstream.py: each batch's state, as emitted then."""
    run = await run_stepped(
        lambda s: s.update_state_by_key(extend_state), [[("k", i)] for i in range(5)]
    )
    expected = [[0], [0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4]]
    assert [records for _, records in run.outputs[0]] == [[("k", v)] for v in expected]


async def test_pyspark_update_state_by_key_initial_rdd():
    initial = [0, 1]
    run = await run_stepped(
        lambda s: s.update_state_by_key(extend_state, [("k", initial)]),
        [[("k", i)] for i in range(2, 5)],
    )
    expected = [[0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4]]
    assert [records for _, records in run.outputs[0]] == [[("k", v)] for v in expected]
    assert initial == [0, 1]  # the application's own list is left as it was


async def test_update_state_by_key_downstream_of_a_fused_map_names_the_map():
    def pair(x):
        if x == 13:
            raise ValueError("poisoned")
        return (x % 2, x)

    with pytest.raises(OperatorError) as info:
        async with StreamingContext(batch_interval=1.0, clock=ManualClock()) as ssc:
            pairs = ssc.queue_stream([[1, 2], [3, 13]]).map(pair, name="pairs")
            counts = pairs.update_state_by_key(lambda vs, old: sum(vs, old or 0))
            counts.foreach_batch(lambda records: None)
            ssc.start()
            await step(ssc, 2)
    assert info.value.operator == "pairs"
    assert info.value.batch_time == 2.0


async def test_update_state_by_key_initial_keys_are_updated_in_the_first_batch():
    seen = []

    def update(values, state):
        seen.append((tuple(values), state))
        return None if state == "drop" else state

    run = await run_stepped(
        lambda s: s.update_state_by_key(update, [("a", "keep"), ("b", "drop")]), [[], []]
    )
    assert sorted(seen) == [((), "drop"), ((), "keep"), ((), "keep")]
    assert [records for _, records in run.outputs[0]] == [[("a", "keep")], [("a", "keep")]]


# -- map_with_state --------------------------------------------------------------------------------


def make_mapping(remove_mod, keep_mod, silent_mod):
    """A pure mapping function whose results record everything it was shown.

    A record with ``value % remove_mod == 0`` removes the key's state (when there is
    one), ``value % keep_mod == 0`` only reads it, any other value adds itself to it;
    results for ``value % silent_mod == 0`` are None (not emitted). On a timeout call
    it tries ``state.update`` and reports whether that was refused.
    """

    def mapping(time, key, value, state):
        exists = state.exists()
        old = state.get() if exists else None
        if value is None:
            try:
                state.update(-1)
                refused = False
            except StateError:
                refused = True
            return (key, "timeout", time, exists, old, state.is_timing_out(), refused)
        timing_out = state.is_timing_out()
        if value % remove_mod == 0:
            if exists:
                state.remove()
        elif value % keep_mod != 0:
            state.update((old or 0) + value)
        if value % silent_mod == 0:
            return None
        return (key, time, value, exists, old, timing_out)

    return mapping


@SETTINGS
@given(
    batches=batches_of(st.tuples(KEYS, st.integers(1, 12))),
    mods=st.tuples(st.integers(2, 7), st.integers(2, 7), st.integers(2, 7)),
    timeout=st.sampled_from([None, 1.0, 2.0, 2.5, 3.0]),
    initial=st.dictionaries(KEYS, st.integers(0, 5), max_size=3),
    size=PARTITION_SIZES,
)
def test_map_with_state(batches, mods, timeout, initial, size):
    mapping = make_mapping(*mods)
    initial_state = list(initial.items())

    def build(s):
        mapped = s.map_with_state(StateSpec(mapping, initial_state=initial_state, timeout=timeout))
        return mapped, mapped.state_snapshots()

    run = drive(build, batches, partition_size=size)
    mapped, snapshots = wref.map_with_state(
        mapping, batches, 1.0, timeout=timeout, initial_state=initial_state or ()
    )
    check_every_batch(run)
    got_mapped, got_snapshots = run.outputs
    # the order between keys is Spark's to choose; each key's calls come in record order
    assert [ref.multiset(records) for _, records in got_mapped] == list(map(ref.multiset, mapped))
    for (_, records), want in zip(got_mapped, mapped, strict=True):
        for key in {ref.freeze(record[0]) for record in want}:
            mine = [r for r in records if ref.freeze(r[0]) == key]
            assert mine == [r for r in want if ref.freeze(r[0]) == key]
    assert [as_dict(records) for _, records in got_snapshots] == snapshots


@SETTINGS
@given(
    batches=batches_of(st.tuples(KEYS, st.integers(1, 12))),
    timeout=st.sampled_from([0.5, 1.0, 1.5, 1.75]),
    size=PARTITION_SIZES,
)
def test_map_with_state_timeouts_with_a_fractional_interval(batches, timeout, size):
    mapping = make_mapping(5, 4, 3)

    def build(s):
        mapped = s.map_with_state(StateSpec(mapping, timeout=timeout))
        return mapped, mapped.state_snapshots()

    run = drive(build, batches, interval=0.25, partition_size=size)
    mapped, snapshots = wref.map_with_state(mapping, batches, 0.25, timeout=timeout)
    check_every_batch(run, 0.25)
    assert [ref.multiset(records) for _, records in run.outputs[0]] == list(
        map(ref.multiset, mapped)
    )
    assert [as_dict(records) for _, records in run.outputs[1]] == snapshots


def running_total(time, key, value, state):
    if value is None:
        return (key, "timed out", state.get())
    total = (state.get() if state.exists() else 0) + value
    state.update(total)
    return (key, total)


async def test_map_with_state_timeout_step_by_step():
    """Timeout 2.0: a key whose last record came at t - 2.0 or earlier gets one call
    with None at t (its state still readable), then disappears."""
    snapshots_after: list[Any] = []
    run = await run_stepped(
        lambda s: (
            mapped := s.map_with_state(StateSpec(running_total, timeout=2.0)),
            mapped.state_snapshots(),
        ),
        [[("a", 1), ("b", 1)], [("b", 2)], [], [("a", 5)], [], [], []],
    )
    for _, records in run.outputs[1]:
        snapshots_after.append(sorted(records))
    assert [(t, sorted(r, key=repr)) for t, r in run.outputs[0]] == [
        (1.0, [("a", 1), ("b", 1)]),
        (2.0, [("b", 3)]),
        (3.0, [("a", "timed out", 1)]),  # last record at 1.0 <= 3.0 - 2.0
        (4.0, [("a", 5), ("b", "timed out", 3)]),  # a is new again
        (5.0, []),
        (6.0, [("a", "timed out", 5)]),
        (7.0, []),
    ]
    assert snapshots_after == [
        [("a", 1), ("b", 1)],
        [("a", 1), ("b", 3)],
        [("b", 3)],
        [("a", 5)],
        [("a", 5)],
        [],
        [],
    ]
    check_every_batch(run)


async def test_map_with_state_timeout_not_a_multiple_of_the_interval():
    run = await run_stepped(
        lambda s: s.map_with_state(StateSpec(running_total, timeout=2.5)),
        [[("a", 1)], [], [], [], []],
    )
    # 1.0 <= t - 2.5 first holds at t = 4.0
    assert run.outputs[0] == [
        (1.0, [("a", 1)]),
        (2.0, []),
        (3.0, []),
        (4.0, [("a", "timed out", 1)]),
        (5.0, []),
    ]


async def test_a_record_keeps_a_key_alive_even_without_an_update():
    def read_only_after_first(time, key, value, state):
        if value is None:
            return ("timeout", time, state.get())
        if not state.exists():
            state.update(value)
        return None

    run = await run_stepped(
        lambda s: s.map_with_state(StateSpec(read_only_after_first, timeout=2.0)),
        [[("a", 1)], [("a", 2)], [("a", 3)], [], [], []],
    )
    assert [(t, r) for t, r in run.outputs[0] if r] == [(5.0, [("timeout", 5.0, 1)])]


async def test_the_state_interface():
    """exists/get/update/remove/is_timing_out, and what a timing-out state refuses."""
    seen: list[Any] = []

    def mapping(time, key, value, state):
        assert isinstance(state, State)
        entry: dict[str, Any] = {"t": time, "value": value, "exists": state.exists()}
        entry["timing_out"] = state.is_timing_out()
        try:
            entry["get"] = state.get()
        except StateError:
            entry["get"] = "raised"
        if value is None:
            for name, call in (("update", lambda: state.update(0)), ("remove", state.remove)):
                try:
                    call()
                    entry[name] = "allowed"
                except StateError:
                    entry[name] = "raised"
            entry["exists_after"] = state.exists()
        elif value == "set":
            state.update(time)
            entry["after"] = (state.exists(), state.get())
        elif value == "remove":
            state.remove()
            entry["after"] = (state.exists(),)
        seen.append(entry)
        return value

    run = await run_stepped(
        lambda s: (
            mapped := s.map_with_state(StateSpec(mapping, timeout=1.0)),
            mapped.state_snapshots(),
        ),
        [[("k", "look"), ("k", "set"), ("k", "look")], [("k", "remove")], [("k", "set")], []],
    )
    assert seen == [
        {"t": 1.0, "value": "look", "exists": False, "timing_out": False, "get": "raised"},
        {"t": 1.0, "value": "set", "exists": False, "timing_out": False, "get": "raised",
         "after": (True, 1.0)},
        {"t": 1.0, "value": "look", "exists": True, "timing_out": False, "get": 1.0},
        {"t": 2.0, "value": "remove", "exists": True, "timing_out": False, "get": 1.0,
         "after": (False,)},
        {"t": 3.0, "value": "set", "exists": False, "timing_out": False, "get": "raised",
         "after": (True, 3.0)},
        {"t": 4.0, "value": None, "exists": True, "timing_out": True, "get": 3.0,
         "update": "raised", "remove": "raised", "exists_after": True},
    ]  # fmt: skip
    # None results are not emitted
    assert run.outputs[0] == [
        (1.0, ["look", "set", "look"]),
        (2.0, ["remove"]),
        (3.0, ["set"]),
        (4.0, []),
    ]
    assert [records for _, records in run.outputs[1]] == [[("k", 1.0)], [], [("k", 3.0)], []]


async def test_map_with_state_initial_state():
    run = await run_stepped(
        lambda s: (
            mapped := s.map_with_state(
                StateSpec(running_total, initial_state=[("a", 100), ("z", 7)])
            ),
            mapped.state_snapshots(),
        ),
        [[("a", 1)], [], [("z", 1), ("n", 2)]],
    )
    assert [(t, sorted(r)) for t, r in run.outputs[0]] == [
        (1.0, [("a", 101)]),
        (2.0, []),
        (3.0, [("n", 2), ("z", 8)]),
    ]
    assert [sorted(records) for _, records in run.outputs[1]] == [
        [("a", 101), ("z", 7)],
        [("a", 101), ("z", 7)],
        [("a", 101), ("n", 2), ("z", 8)],
    ]


async def test_state_snapshots_keep_each_batch_when_the_state_changes_in_place():
    def append(time, key, value, state):
        if state.exists():
            state.get().append(value)  # changed in place, no update() needed
        else:
            state.update([value])

    run = await run_stepped(
        lambda s: s.map_with_state(StateSpec(append)).state_snapshots(),
        [[("k", 1)], [("k", 2)], [], [("k", 3)]],
    )
    assert [records for _, records in run.outputs[0]] == [
        [("k", [1])],
        [("k", [1, 2])],
        [("k", [1, 2])],
        [("k", [1, 2, 3])],
    ]


async def test_state_snapshots_alone_and_derived():
    """state_snapshots() is a DStream like any other, usable without the mapped stream."""
    run = await run_stepped(
        lambda s: (
            s.map_with_state(StateSpec(running_total)).state_snapshots().map(lambda kv: kv[1]),
            s.map_with_state(StateSpec(running_total)).state_snapshots().count(),
        ),
        [[("a", 1), ("a", 2)], [], [("b", 5)]],
    )
    check_every_batch(run)
    assert [records for _, records in run.outputs[0]] == [[3], [3], [3, 5]]
    assert [records for _, records in run.outputs[1]] == [[1], [1], [2]]


# -- memory, errors and arguments ------------------------------------------------------------------


async def test_state_memory_does_not_grow():
    ticks = 40

    def build(s):
        pairs = s.map(lambda x: (x % 4, x))
        mapped = pairs.map_with_state(StateSpec(running_total, timeout=3.0))
        return (
            pairs.update_state_by_key(lambda values, state: (state or 0) + len(values)),
            mapped,
            mapped.state_snapshots(),
        )

    run = await run_stepped(build, [[i, i + 1] for i in range(ticks)])
    for remembered in run.remembered[5:]:
        assert remembered == run.remembered[5]
        assert all(count <= 2 for count in remembered.values()), remembered


@pytest.mark.parametrize("where", ["update_state_by_key", "map_with_state"])
async def test_an_error_in_a_state_function_names_the_operator(where):
    raised = []

    def fail_on_13(value):
        if value == 13:
            exc = ValueError("poisoned")
            raised.append(exc)
            raise exc

    def update(values, state):
        for value in values:
            fail_on_13(value)
        return len(values)

    def mapping(time, key, value, state):
        fail_on_13(value)
        return value

    clock = ManualClock()
    with pytest.raises(OperatorError) as info:
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            stream = ssc.queue_stream([[("a", 1)], [("a", 13)], [("a", 2)]])
            if where == "update_state_by_key":
                out = stream.update_state_by_key(update, name="target")
            else:
                out = stream.map_with_state(StateSpec(mapping), name="target")
            out.foreach_batch(lambda records: None)
            ssc.start()
            await step(ssc, 3)
    assert info.value.operator == "target"
    assert info.value.batch_time == 2.0
    assert info.value.__cause__ is raised[0]


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.update_state_by_key("update"),
        lambda s: s.update_state_by_key(lambda values: values),
        lambda s: s.update_state_by_key(lambda values, state, extra: state),
        lambda s: s.update_state_by_key(lambda v, s: s, None, 0),
        lambda s: s.update_state_by_key(lambda v, s: s, 5),
        lambda s: s.map_with_state(StateSpec("f")),
        lambda s: s.map_with_state(StateSpec(lambda t, k, v: v)),
        lambda s: s.map_with_state(StateSpec(running_total, timeout=0)),
        lambda s: s.map_with_state(StateSpec(running_total, timeout=-1.0)),
        lambda s: s.map_with_state(running_total),
    ],
)
def test_bad_state_arguments_are_refused_at_build_time(call):
    ssc = StreamingContext(batch_interval=1.0, clock=ManualClock())
    with pytest.raises(ConfigurationError):
        call(ssc.queue_stream([[("a", 1)]]))
