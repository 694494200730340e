"""The scheduler: batch times on the interval grid, one batch at a time, metrics."""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from streamio import (
    BatchInfo,
    ConfigurationError,
    ManualClock,
    OperatorError,
    OutputOperationInfo,
    StreamingContext,
    StreamingListener,
    StreamingStartedInfo,
)
from streamio.bus import DEFAULT_QUEUE_SIZE
from streamio.testing import ListSink, MemorySource

DASHES = "-------------------------------------------"


class Boom(Exception):
    pass


class Recorder(StreamingListener):
    """Keeps a snapshot of the BatchInfo at each callback."""

    def __init__(self) -> None:
        self.events: list[tuple[str, BatchInfo]] = []

    def _keep(self, event: str, info: BatchInfo) -> None:
        self.events.append((event, dataclasses.replace(info)))

    def on_batch_submitted(self, info: BatchInfo) -> None:
        self._keep("submitted", info)

    def on_batch_started(self, info: BatchInfo) -> None:
        self._keep("started", info)

    def on_batch_completed(self, info: BatchInfo) -> None:
        self._keep("completed", info)

    def completed(self) -> list[BatchInfo]:
        return [info for event, info in self.events if event == "completed"]


# -- the grid ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "interval", "expected"),
    [
        (0.0, 0.25, [0.25, 0.5, 0.75, 1.0]),
        (0.5, 0.25, [0.75, 1.0, 1.25, 1.5]),
        (0.6, 0.25, [0.75, 1.0, 1.25, 1.5]),
        # 0.3 / 0.1 is 2.9999999999999996 in floating point: 0.3 is still "now"
        (0.3, 0.1, [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3]),
    ],
)
async def test_batch_times_are_on_the_interval_grid_after_the_start(start, interval, expected):
    clock = ManualClock(start)
    sink = ListSink()
    async with StreamingContext(batch_interval=interval, clock=clock) as ssc:
        ssc.queue_stream([]).foreach_batch(sink)
        ssc.start()
        await clock.advance(1.0)
        assert sink.times == expected
        assert clock.now() == start + 1.0


async def test_float_accumulation_does_not_skip_batches():
    clock = ManualClock()
    sink = ListSink()
    async with StreamingContext(batch_interval=0.1, clock=clock) as ssc:
        ssc.queue_stream([[k] for k in range(1, 11)]).foreach_batch(sink)
        ssc.start()
        for _ in range(10):
            await clock.advance(0.1)
        assert sink.times == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
        assert sink.records == list(range(1, 11))


async def test_advance_between_grid_points_runs_only_the_due_batches():
    clock = ManualClock()
    sink = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.queue_stream([]).foreach_batch(sink)
        ssc.start()
        await clock.advance(0.5)
        assert sink.times == []
        await clock.advance(1.0)
        assert sink.times == [1.0]
        await clock.advance(0.49)
        assert sink.times == [1.0]
        await clock.advance(0.01)
        assert sink.times == [1.0, 2.0]


async def test_no_batch_before_the_clock_moves():
    clock = ManualClock()
    sink = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.queue_stream([[1]]).foreach_batch(sink)
        await ssc.start()
        await clock.advance(0)
        assert sink.batches == []


# -- advance() and batch completion ---------------------------------------------------


async def test_advance_returns_only_after_async_outputs_are_done():
    clock = ManualClock()
    done: list[float] = []
    helper_results: list[int] = []

    async with (
        StreamingContext(batch_interval=1.0, clock=clock) as ssc,
        anyio.create_task_group() as tg,
    ):

        async def output(time, records):
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
            # wait for another task, too
            finished = anyio.Event()

            async def helper():
                await anyio.lowlevel.checkpoint()
                helper_results.append(len(records))
                finished.set()

            tg.start_soon(helper)
            await finished.wait()
            done.append(time)

        ssc.queue_stream([[1, 2], [3]]).foreach_batch(output)
        ssc.start()
        await clock.advance(1.0)
        assert done == [1.0]
        await clock.advance(1.0)
        assert done == [1.0, 2.0]
        assert helper_results == [2, 1]


async def test_advance_over_several_intervals_runs_every_due_batch():
    clock = ManualClock()
    sink = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.queue_stream([["a"], ["b"], ["c"]]).foreach_batch(sink)
        ssc.start()
        await clock.advance(3.0)
        assert sink.batches == [(1.0, ["a"]), (2.0, ["b"]), (3.0, ["c"])]


async def test_batches_never_overlap():
    """The first batch runs long (the next two are due before it ends) and yields
    to the loop many times meanwhile: a scheduler that started the due batches
    without waiting would run their outputs during those turns."""
    clock = ManualClock()
    log: list[tuple[str, str, float]] = []
    running: list[tuple[str, float]] = []
    overlaps: list[tuple[tuple[str, float], ...]] = []

    def make_output(name):
        async def output(time, records):
            if running:
                overlaps.append((*running, (name, time)))
            running.append((name, time))
            log.append(("enter", name, time))
            if time == 1.0 and name == "first":
                clock.elapse(2.5)  # batches 2.0 and 3.0 are due now
            for _ in range(20):
                await anyio.lowlevel.checkpoint()
            log.append(("exit", name, time))
            running.remove((name, time))

        return output

    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        stream = ssc.queue_stream([[1], [2], [3]])
        stream.foreach_batch(make_output("first"))
        stream.map(lambda x: x).foreach_batch(make_output("second"))
        ssc.start()
        await clock.advance(3.0)
    assert overlaps == []
    expected = []
    for time in (1.0, 2.0, 3.0):
        for name in ("first", "second"):
            expected += [("enter", name, time), ("exit", name, time)]
    assert log == expected


async def test_output_jobs_run_in_registration_order():
    clock = ManualClock()
    log: list[tuple[str, float]] = []
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        numbers = ssc.queue_stream([[1], [2]])
        words = ssc.queue_stream([["x"], ["y"]])
        words.foreach_batch(lambda t, r: log.append(("c", t)))
        numbers.map(str).foreach_batch(lambda t, r: log.append(("a", t)))
        numbers.foreach_batch(lambda t, r: log.append(("b", t)))
        words.count().foreach_batch(lambda t, r: log.append(("d", t)))
        ssc.start()
        await clock.advance(2.0)
    assert log == [
        ("c", 1.0),
        ("a", 1.0),
        ("b", 1.0),
        ("d", 1.0),
        ("c", 2.0),
        ("a", 2.0),
        ("b", 2.0),
        ("d", 2.0),
    ]


# -- slow batches and metrics ---------------------------------------------------------


async def test_slow_batch_delays_later_batches_which_keep_their_grid_times():
    clock = ManualClock()
    recorder = Recorder()
    seen: list[tuple[float, float]] = []

    def output(time, records):
        seen.append((time, clock.now()))
        if time == 1.0:
            clock.elapse(2.5)

    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.add_listener(recorder)
        ssc.queue_stream([]).foreach_batch(output)
        ssc.start()
        await clock.advance(5.0)
        assert clock.now() == 5.0
        last = ssc.last_batch
    # the batches due during the slow one run late, one after the other, at 3.5
    assert seen == [(1.0, 1.0), (2.0, 3.5), (3.0, 3.5), (4.0, 4.0), (5.0, 5.0)]
    completed = recorder.completed()
    assert [info.batch_time for info in completed] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [info.submission_time for info in completed] == [1.0, 3.5, 3.5, 4.0, 5.0]
    assert [info.scheduling_delay for info in completed] == [0.0, 1.5, 0.5, 0.0, 0.0]
    assert [info.processing_time for info in completed] == [2.5, 0.0, 0.0, 0.0, 0.0]
    assert [info.total_delay for info in completed] == [2.5, 1.5, 0.5, 0.0, 0.0]
    assert [info.processing_delay for info in completed] == [2.5, 0.0, 0.0, 0.0, 0.0]
    assert last is not None
    assert last.batch_time == 5.0


async def test_batch_info_counts_records_per_input():
    clock = ManualClock()
    recorder = Recorder()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.add_listener(recorder)
        source = MemorySource()
        queued = ssc.queue_stream([[1, 2], [], [3]], name="queued")
        received = ssc.receiver_stream(source, name="received")
        # the output reads only part of the graph; counts are of what was cut
        queued.union(received).filter(lambda x: x == "never").foreach_batch(ListSink())
        await ssc.start()
        await source.send(["a", "b", "c"])
        await clock.advance(1.0)
        await source.send(["d"])
        await source.send(["e"])
        await clock.advance(2.0)
    completed = recorder.completed()
    assert [dict(info.records_per_input) for info in completed] == [
        {"queued": 2, "received": 3},
        {"queued": 0, "received": 2},
        {"queued": 1, "received": 0},
    ]
    assert [info.num_records for info in completed] == [5, 2, 1]


async def test_listener_callbacks_in_order_with_the_times_known_at_each():
    clock = ManualClock()
    recorder = Recorder()

    def output(time, records):
        clock.elapse(0.25)

    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.add_listener(recorder)
        ssc.queue_stream([[1]], name="q").foreach_batch(output, name="out")
        ssc.start()
        await clock.advance(1.0)
    assert [event for event, _ in recorder.events] == ["submitted", "started", "completed"]
    submitted, started, completed = (info for _, info in recorder.events)
    assert submitted == BatchInfo(1.0, {"q": 1}, submission_time=1.0)
    assert submitted.scheduling_delay is None
    assert submitted.processing_time is None
    assert submitted.total_delay is None
    assert started == BatchInfo(1.0, {"q": 1}, 1.0, processing_start_time=1.0)
    operation = OutputOperationInfo("out", "foreach_batch", start_time=1.0, end_time=1.25)
    assert completed == BatchInfo(
        1.0, {"q": 1}, 1.0, 1.0, processing_end_time=1.25, output_operations=[operation]
    )
    assert completed.processing_time == 0.25
    assert operation.duration == 0.25
    assert operation.status == "succeeded"


async def test_each_output_operation_has_its_duration_and_status():
    clock = ManualClock()
    recorder = Recorder()

    def slow(time, records):
        clock.elapse(0.5)

    def quick(time, records):
        clock.elapse(0.125)

    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.add_listener(recorder)
        stream = ssc.queue_stream([[1], [2]])
        stream.foreach_batch(slow, name="slow")
        stream.pprint(name="shown")
        stream.foreach_batch(quick)
        ssc.start()
        await clock.advance(2.0)
    started = [info for event, info in recorder.events if event == "started"]
    assert [info.output_operations for info in started] == [[], []]  # snapshots
    first, second = recorder.completed()
    assert [(op.name, op.kind, op.status) for op in first.output_operations] == [
        ("slow", "foreach_batch", "succeeded"),
        ("shown", "pprint", "succeeded"),
        ("foreach_batch_2", "foreach_batch", "succeeded"),
    ]
    assert [op.start_time for op in first.output_operations] == [1.0, 1.5, 1.5]
    assert [op.duration for op in first.output_operations] == [0.5, 0.0, 0.125]
    assert [op.start_time for op in second.output_operations] == [2.0, 2.5, 2.5]


def test_output_operation_status():
    assert OutputOperationInfo("out", "foreach_batch", 1.0).status == "running"
    assert OutputOperationInfo("out", "foreach_batch", 1.0).duration is None
    assert OutputOperationInfo("out", "foreach_batch", 1.0, 1.5).status == "succeeded"
    failed = OutputOperationInfo("out", "foreach_batch", 1.0, 1.5, error=Boom("no"))
    assert (failed.status, failed.duration) == ("failed", 0.5)


async def test_a_failing_output_is_marked_failed_in_its_batch():
    clock = ManualClock()
    operations: list[OutputOperationInfo] = []

    def failing(time, records):
        operations[:] = ssc._runtime.scheduler._running.output_operations  # the live info
        clock.elapse(0.25)
        raise Boom("no")

    with pytest.raises(OperatorError):
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            ssc.queue_stream([[1]]).foreach_batch(failing, name="failing")
            ssc.start()
            await clock.advance(1.0)
    (operation,) = operations
    assert (operation.status, operation.duration) == ("failed", 0.25)
    assert isinstance(operation.error, OperatorError)


async def test_a_slow_listener_falls_behind_without_delaying_the_batches():
    clock = ManualClock()
    release = anyio.Event()
    seen: list[float] = []

    class Slow(StreamingListener):
        async def on_batch_completed(self, info):
            await release.wait()
            seen.append(info.batch_time)

    recorder = Recorder()
    sink = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.add_listener(Slow())
        ssc.add_listener(recorder)
        ssc.queue_stream([[1], [2], [3]]).foreach_batch(sink)
        ssc.start()
        await clock.advance(3.0)
        # the batches ran, the other listener had every event; the slow one waits
        assert sink.times == [1.0, 2.0, 3.0]
        assert [info.batch_time for info in recorder.completed()] == [1.0, 2.0, 3.0]
        assert seen == []
        slow, fast = ssc.listener_statistics()
        # started, submitted 1.0, started 1.0 delivered; stuck in completed 1.0
        assert (slow.delivered, slow.queued, slow.dropped) == (3, 6, 0)
        assert fast.queued == 0
        release.set()
    assert seen == [1.0, 2.0, 3.0]  # in order, all delivered by the block's exit


async def test_events_a_listener_falls_behind_on_past_its_queue_are_dropped_and_counted(
    caplog,
):
    clock = ManualClock()
    release = anyio.Event()
    seen: list[tuple[str, float]] = []

    class Stuck(StreamingListener):
        async def on_streaming_started(self, info):
            await release.wait()

        def on_batch_completed(self, info):
            seen.append(("completed", info.batch_time))

    capacity = DEFAULT_QUEUE_SIZE
    batches = capacity // 3 + 2  # three events per batch: more than the queue holds
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.add_listener(Stuck())
        ssc.queue_stream([]).foreach_batch(ListSink())
        ssc.start()
        await clock.advance(batches)
        (stats,) = ssc.listener_statistics()
        assert stats.queued == capacity
        assert stats.dropped == 3 * batches - capacity
        release.set()
    (stats,) = ssc.listener_statistics()
    assert stats.delivered == 1 + capacity
    assert stats.dropped == 3 * batches - capacity  # the newest events were dropped
    assert seen[0] == ("completed", 1.0)
    assert seen[-1][1] < batches
    assert caplog.text.count("falls behind") == 1  # once per run of drops
    assert "make its callbacks quicker" in caplog.text


@pytest.mark.parametrize("callback", ["on_batch_submitted", "on_batch_completed", "async"])
async def test_a_raising_listener_is_logged_and_counted_and_the_job_goes_on(callback, caplog):
    clock = ManualClock()
    sink = ListSink()
    recorder = Recorder()

    class Raising(StreamingListener):
        def on_batch_submitted(self, info):
            if callback == "on_batch_submitted":
                raise Boom("listener")

        def on_batch_completed(self, info):
            if callback == "on_batch_completed":
                raise Boom("listener")

        async def on_batch_started(self, info):
            await anyio.lowlevel.checkpoint()
            if callback == "async":
                raise Boom("listener")

    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.add_listener(Raising())
        ssc.add_listener(recorder)
        ssc.queue_stream([[1], [2]]).foreach_batch(sink)
        ssc.start()
        await clock.advance(2.0)
        assert ssc.error is None
    assert sink.times == [1.0, 2.0]
    assert [info.batch_time for info in recorder.completed()] == [1.0, 2.0]
    raising, _ = ssc.listener_statistics()
    assert (raising.failed, raising.delivered, raising.dropped) == (2, 5, 0)
    assert "raised in" in caplog.text
    assert "Boom: listener" in caplog.text  # with its traceback


async def test_an_inline_listener_runs_at_the_event_before_the_batch_goes_on():
    clock = ManualClock()
    log: list[str] = []

    class Inline(StreamingListener):
        def on_batch_submitted(self, info):
            log.append(f"submitted {info.batch_time}")

        def on_batch_completed(self, info):
            log.append(f"completed {info.batch_time}")
            raise Boom("counted, not fatal")

    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.add_listener(Inline(), inline=True)
        ssc.queue_stream([[1]]).foreach_batch(lambda time, records: log.append(f"output {time}"))
        ssc.start()
        await clock.advance(1.0)
    assert log == ["submitted 1.0", "output 1.0", "completed 1.0"]
    (stats,) = ssc.listener_statistics()
    assert stats.inline
    assert (stats.failed, stats.dropped) == (1, 0)


async def test_an_inline_listener_must_not_be_async():
    class Async(StreamingListener):
        async def on_batch_completed(self, info):
            pass

    async with StreamingContext(batch_interval=1.0, clock=ManualClock()) as ssc:
        with pytest.raises(ConfigurationError, match=r"must not wait.*without inline=True"):
            ssc.add_listener(Async(), inline=True)
        ssc.add_listener(Async())


async def test_streaming_started_comes_once_the_receivers_opened_before_the_first_batch():
    clock = ManualClock(0.5)
    log: list[Any] = []

    class Events(StreamingListener):
        def on_streaming_started(self, info):
            log.append(info)

        def on_batch_submitted(self, info):
            log.append(("submitted", info.batch_time))

    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.add_listener(Events())
        ssc.receiver_stream(MemorySource()).foreach_batch(ListSink())
        await ssc.start()
        await clock.advance(0.5)
    assert log[0] == StreamingStartedInfo(time=0.5, batch_interval=1.0)
    assert log[1:] == [("submitted", 1.0)]


async def test_final_batches_of_a_graceful_stop_have_no_scheduling_delay():
    clock = ManualClock()
    recorder = Recorder()
    source = MemorySource()

    def output(time, records):
        clock.elapse(0.5)

    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.add_listener(recorder)
        ssc.receiver_stream(source, name="r", max_rate=2).foreach_batch(output)
        await ssc.start()
        await source.send([1, 2, 3])
    # cut at once, before their grid times 1.0 and 2.0
    completed = recorder.completed()
    assert [info.batch_time for info in completed] == [1.0, 2.0]
    assert [info.submission_time for info in completed] == [0.0, 0.5]
    assert [info.scheduling_delay for info in completed] == [0.0, 0.0]
    assert [info.processing_time for info in completed] == [0.5, 0.5]
    assert [info.processing_delay for info in completed] == [0.5, 0.5]
    assert [info.total_delay for info in completed] == [0.5, 0.5]
    assert [dict(info.records_per_input) for info in completed] == [{"r": 2}, {"r": 1}]


async def test_async_listener_callbacks_are_awaited_in_order_by_the_time_advance_returns():
    clock = ManualClock()
    log: list[tuple[str, float]] = []

    class AsyncListener:
        async def on_batch_started(self, info):
            for _ in range(5):  # the next event waits until this callback returns
                await anyio.lowlevel.checkpoint()
            log.append(("started", info.batch_time))

        async def on_batch_completed(self, info):
            await anyio.lowlevel.checkpoint()
            log.append(("completed", info.batch_time))

    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.add_listener(AsyncListener())
        ssc.queue_stream([]).foreach_batch(ListSink())
        ssc.start()
        await clock.advance(1.0)
        assert log == [("started", 1.0), ("completed", 1.0)]
        await clock.advance(1.0)
        assert log == [("started", 1.0), ("completed", 1.0), ("started", 2.0), ("completed", 2.0)]


async def test_last_batch_is_none_before_the_first_batch():
    clock = ManualClock()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.queue_stream([[1, 2]], name="q").foreach_batch(ListSink())
        assert ssc.last_batch is None
        ssc.start()
        assert ssc.last_batch is None
        await clock.advance(1.0)
        assert ssc.last_batch is not None
        assert ssc.last_batch.batch_time == 1.0
        assert ssc.last_batch.num_records == 2


# -- pprint ---------------------------------------------------------------------------


def pprint_block(time, lines):
    return "\n".join([DASHES, f"Time: {time}", DASHES, *lines]) + "\n\n"


# The tests run in UTC (conftest.py): pprint shows local dates and times.


async def test_pprint_prints_like_pyspark(capsys):
    clock = ManualClock()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        stream = ssc.queue_stream([[("a", 1), "b", 3], list(range(11)), list(range(10)), []])
        stream.pprint()
        ssc.start()
        await clock.advance(4.0)
    out = capsys.readouterr().out
    assert out == (
        pprint_block("1970-01-01 00:00:01", ["('a', 1)", "b", "3"])
        + pprint_block("1970-01-01 00:00:02", [str(i) for i in range(10)] + ["..."])
        + pprint_block("1970-01-01 00:00:03", [str(i) for i in range(10)])
        + pprint_block("1970-01-01 00:00:04", [])
    )


async def test_pprint_num_limits_the_records_shown(capsys):
    clock = ManualClock()

    class Record:
        def __str__(self):
            return "as str"

        def __repr__(self):
            return "as repr"

    async with StreamingContext(batch_interval=0.5, clock=clock) as ssc:
        ssc.queue_stream([[Record(), 2, 3], [Record(), 2]]).pprint(2)
        ssc.start()
        await clock.advance(1.0)
    assert capsys.readouterr().out == (
        pprint_block("1970-01-01 00:00:00.500", ["as str", "2", "..."])
        + pprint_block("1970-01-01 00:00:01.000", ["as str", "2"])
    )


async def test_epoch_batch_times_are_grid_floats_and_print_as_dates_with_milliseconds(capsys):
    start = 1796150238.0  # 2026-12-01 18:37:18 UTC
    clock = ManualClock(start)
    sink = ListSink()
    recorder = Recorder()
    async with StreamingContext(batch_interval=0.1, clock=clock) as ssc:
        ssc.add_listener(recorder)
        stream = ssc.queue_stream([[1], [2], [3]])
        stream.pprint()
        stream.foreach_batch(sink)
        # a window derives earlier batch times from later ones: the same floats
        stream.window(0.3, 0.1).foreach_batch(windowed := ListSink())
        ssc.start()
        await clock.advance(0.3)
    # 17961502381 * 0.1 is 1796150238.1000001 in floating point: not a grid time
    assert [repr(time) for time in sink.times] == [
        "1796150238.1",
        "1796150238.2",
        "1796150238.3",
    ]
    assert [info.batch_time for info in recorder.completed()] == sink.times
    assert windowed.batches == [
        (1796150238.1, [1]),
        (1796150238.2, [1, 2]),
        (1796150238.3, [1, 2, 3]),
    ]
    headers = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Time")]
    assert headers == [
        "Time: 2026-12-01 18:37:18.100",
        "Time: 2026-12-01 18:37:18.200",
        "Time: 2026-12-01 18:37:18.300",
    ]


async def test_pprint_shows_whole_seconds_for_intervals_of_a_second_or_more(capsys):
    clock = ManualClock(1796148972.0)
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.queue_stream([[1]]).pprint()
        ssc.start()
        await clock.advance(1.0)
    assert "Time: 2026-12-01 18:16:13\n" in capsys.readouterr().out


async def test_advance_lets_a_receiver_store_what_it_has_before_the_tick():
    async def numbers():
        for number in range(500):
            await anyio.lowlevel.checkpoint()  # the source yields to the loop per item
            yield number

    clock = ManualClock()
    sink = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.from_async_iterable(numbers()).foreach_batch(sink)
        ssc.start()
        await clock.advance(1.0)
    assert sink.batches[0] == (1.0, list(range(500)))


async def test_advance_is_not_held_up_by_a_task_that_never_waits():
    stop = anyio.Event()

    async def spinner():
        while not stop.is_set():
            await anyio.lowlevel.checkpoint()

    clock = ManualClock()
    sink = ListSink()
    async with anyio.create_task_group() as tg:
        tg.start_soon(spinner)
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            ssc.queue_stream([[1], [2]]).foreach_batch(sink)
            ssc.start()
            await clock.advance(2.0)
        stop.set()
    assert sink.batches == [(1.0, [1]), (2.0, [2])]


@pytest.mark.parametrize("interval", [0.05, 0.1, 0.3])
async def test_epoch_sized_batch_times_with_inexact_intervals_lose_no_batch(interval):
    clock = ManualClock(start=1_795_000_000.0)
    counts = ListSink()
    async with StreamingContext(batch_interval=interval, clock=clock) as ssc:
        ssc.queue_stream([[1, 2], [3], [4, 5, 6]] * 10).count().foreach_batch(counts)
        ssc.start()
        await clock.advance(30 * interval)
    assert [records for _, records in counts.batches] == [[2], [1], [3]] * 10
