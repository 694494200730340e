"""StreamingContext: configuration, lifecycle, stopping and error propagation."""

from __future__ import annotations

import gc
import math
import multiprocessing
import operator
import os
import socket
import time
import weakref

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

import streamio
import streamio.timeouts
from streamio import (
    ConfigurationError,
    ContextState,
    ContextStateError,
    ManualClock,
    OperatorError,
    Receiver,
    ReceiverError,
    StopTimeoutError,
    StreamingContext,
    StreamioError,
)
from streamio.testing import ListSink, MemorySource

# Upper bound for a wait that only a library bug could make endless.
HANG_GUARD = 10


class Boom(Exception):
    pass


class FailingReceiver(Receiver[int]):
    """Raises at each start, before storing anything (so the failures are in a row)."""

    def __init__(self) -> None:
        self.starts = 0

    async def run(self, output):
        self.starts += 1
        raise Boom(f"failure {self.starts}")


# -- the example of the issue -----------------------------------------------------


async def test_word_count_example():
    clock = ManualClock()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        lines = ssc.queue_stream([["a b", "b c"], ["c c"]])
        counts = lines.flat_map(str.split).map(lambda w: (w, 1)).reduce_by_key(operator.add)
        seen = []
        counts.foreach_batch(lambda t, records: seen.append((t, sorted(records))))
        ssc.start()
        await clock.advance(2.0)
    assert seen[:2] == [(1.0, [("a", 1), ("b", 2), ("c", 1)]), (2.0, [("c", 2)])]


# -- configuration errors -----------------------------------------------------------


@pytest.mark.parametrize(
    "interval", [0, 0.0, -1, -0.5, math.nan, math.inf, -math.inf, "1", None, True]
)
async def test_batch_interval_must_be_a_finite_positive_number(interval):
    with pytest.raises(ConfigurationError) as info:
        StreamingContext(batch_interval=interval, clock=ManualClock())
    message = str(info.value)
    assert "batch_interval must be a finite number of seconds > 0" in message
    assert repr(interval) in message


@pytest.mark.parametrize("capacity", [0, -5, 2.5, True, "100"])
async def test_buffer_capacity_must_be_a_positive_whole_number(capacity):
    with pytest.raises(ConfigurationError, match="buffer_capacity must be a whole number >= 1"):
        StreamingContext(batch_interval=1.0, clock=ManualClock(), buffer_capacity=capacity)


@pytest.mark.parametrize("capacity", [0, -1, 1.5])
async def test_receiver_stream_buffer_capacity_must_be_a_positive_whole_number(capacity):
    ssc = StreamingContext(batch_interval=1.0, clock=ManualClock())
    with pytest.raises(ConfigurationError, match="positive whole number of records"):
        ssc.receiver_stream(MemorySource(), buffer_capacity=capacity)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"partition_size": 0}, "partition_size must be a whole number >= 1"),
        ({"max_receiver_restarts": -1}, "max_receiver_restarts must be a whole number >= 0"),
        ({"max_receiver_restarts": 1.0}, "max_receiver_restarts must be a whole number >= 0"),
        ({"receiver_restart_backoff": -0.1}, "receiver_restart_backoff must be a finite"),
        ({"receiver_restart_backoff": math.nan}, "receiver_restart_backoff must be a finite"),
        ({"stop_timeout": 0}, "stop_timeout must be a finite number of seconds > 0"),
        ({"clock": object()}, "clock must have now"),
    ],
)
async def test_other_invalid_arguments(kwargs, message):
    kwargs.setdefault("clock", ManualClock())
    with pytest.raises(ConfigurationError, match=message):
        StreamingContext(batch_interval=1.0, **kwargs)


async def test_configuration_errors_are_value_errors_and_streamio_errors():
    with pytest.raises(ValueError):
        StreamingContext(batch_interval=0)
    with pytest.raises(StreamioError):
        StreamingContext(batch_interval=0)


@pytest.mark.parametrize("max_rate", [0, -1, math.nan, math.inf])
async def test_max_rate_must_be_a_finite_positive_number(max_rate):
    ssc = StreamingContext(batch_interval=1.0, clock=ManualClock())
    with pytest.raises(ConfigurationError, match="max_rate must be a finite number"):
        ssc.receiver_stream(MemorySource(), max_rate=max_rate)


# -- starting -------------------------------------------------------------------------


async def test_start_without_an_output_operation_says_what_to_add():
    clock = ManualClock()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        stream = ssc.queue_stream([[1]]).map(str)
        with pytest.raises(ConfigurationError) as info:
            ssc.start()
        message = str(info.value)
        assert "no output operation registered" in message
        assert "foreach_batch" in message
        assert ssc.state is ContextState.INITIALIZED
        # the context is still usable: add an output and start
        sink = ListSink()
        stream.foreach_batch(sink)
        ssc.start()
        await clock.advance(1.0)
    assert sink.batches == [(1.0, ["1"])]


async def test_start_twice():
    async with StreamingContext(batch_interval=1.0, clock=ManualClock()) as ssc:
        ssc.queue_stream([]).foreach_batch(ListSink())
        ssc.start()
        with pytest.raises(ContextStateError, match="can be started only once"):
            ssc.start()
        assert ssc.state is ContextState.ACTIVE


async def test_start_after_stop():
    async with StreamingContext(batch_interval=1.0, clock=ManualClock()) as ssc:
        ssc.queue_stream([]).foreach_batch(ListSink())
        await ssc.start()
        await ssc.stop()
        with pytest.raises(ContextStateError, match=r"stopped.*can be started only once"):
            ssc.start()


async def test_start_of_a_context_stopped_before_it_started():
    async with StreamingContext(batch_interval=1.0, clock=ManualClock()) as ssc:
        ssc.queue_stream([]).foreach_batch(ListSink())
        await ssc.stop()
        assert ssc.state is ContextState.STOPPED
        with pytest.raises(ContextStateError, match="started only once"):
            ssc.start()


async def test_start_outside_async_with_says_how_to_run_it():
    ssc = StreamingContext(batch_interval=1.0, clock=ManualClock())
    ssc.queue_stream([[1]]).foreach_batch(ListSink())
    with pytest.raises(ContextStateError, match=r"use `async with StreamingContext\(\.\.\.\)"):
        ssc.start()
    assert ssc.state is ContextState.INITIALIZED


async def test_entering_twice_is_refused():
    ssc = StreamingContext(batch_interval=1.0, clock=ManualClock())
    async with ssc:
        with pytest.raises(ContextStateError, match="entered only once"):
            await ssc.__aenter__()


async def test_await_termination_before_start():
    async with StreamingContext(batch_interval=1.0, clock=ManualClock()) as ssc:
        ssc.queue_stream([]).foreach_batch(ListSink())
        with pytest.raises(ContextStateError, match=r"call ssc\.start\(\) first"):
            await ssc.await_termination(timeout=0)


def _add_queue_stream(ssc, stream):
    ssc.queue_stream([[1]])


def _add_receiver_stream(ssc, stream):
    ssc.receiver_stream(MemorySource())


def _add_async_iterable(ssc, stream):
    async def items():
        yield 1

    ssc.from_async_iterable(items())


@pytest.mark.parametrize(
    "add",
    [
        _add_queue_stream,
        _add_receiver_stream,
        _add_async_iterable,
        lambda ssc, stream: ssc.union(stream, stream),
        lambda ssc, stream: stream.map(str),
        lambda ssc, stream: stream.filter(bool),
        lambda ssc, stream: stream.map(lambda x: (x, 1)).reduce_by_key(operator.add),
        lambda ssc, stream: stream.count(),
        lambda ssc, stream: stream.union(stream),
        lambda ssc, stream: stream.foreach_batch(ListSink()),
        lambda ssc, stream: stream.pprint(),
    ],
)
async def test_nothing_can_be_added_after_start(add):
    clock = ManualClock()
    sink = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        stream = ssc.queue_stream([[1], [2]])
        stream.foreach_batch(sink)
        ssc.start()
        with pytest.raises(ContextStateError) as info:
            add(ssc, stream)
        assert "build the whole graph before start()" in str(info.value)
        # the running graph is unaffected
        await clock.advance(2.0)
    assert sink.batches == [(1.0, [1]), (2.0, [2])]


@pytest.mark.parametrize("awaited", [True, False])
async def test_start_may_be_awaited_or_not(awaited):
    clock = ManualClock()
    sink = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        source = MemorySource()
        ssc.receiver_stream(source).foreach_batch(sink)
        if awaited:
            await ssc.start()
        else:
            ssc.start()
        assert ssc.state is ContextState.ACTIVE
        await source.send(["x", "y"])
        await clock.advance(1.0)
        assert sink.batches == [(1.0, ["x", "y"])]


class NeverOpens(Receiver[int]):
    """A receiver whose open() always fails."""

    def __init__(self) -> None:
        self.opens = 0

    async def open(self):
        self.opens += 1
        raise Boom(f"cannot open {self.opens}")

    async def run(self, output):
        raise AssertionError("run() without open()")


async def test_awaited_start_raises_when_a_receiver_fails_to_open():
    receiver = NeverOpens()
    after: list[ContextState] = []
    with anyio.fail_after(HANG_GUARD):
        async with StreamingContext(
            batch_interval=1.0,
            clock=ManualClock(),
            max_receiver_restarts=1,
            receiver_restart_backoff=0,
        ) as ssc:
            ssc.receiver_stream(MemorySource(), name="fine").foreach_batch(ListSink())
            ssc.receiver_stream(receiver, name="broken").foreach_batch(ListSink())
            with pytest.raises(ReceiverError) as info:
                await ssc.start()
            # the error reached the caller of start(): the body goes on, and the
            # block's exit does not raise it a second time
            after.append(ssc.state)
    assert after == [ContextState.STOPPED]
    assert info.value.receiver == "broken"
    assert info.value.attempts == 2
    assert isinstance(info.value.__cause__, Boom)
    assert receiver.opens == 2


class OpensSlowly(MemorySource):
    """A receiver whose open() takes ``seconds`` of its clock."""

    def __init__(self, clock, seconds: float) -> None:
        super().__init__()
        self.clock = clock
        self.seconds = seconds

    async def open(self):
        await streamio.timeouts.sleep(self.clock, self.seconds)


async def test_the_first_batch_is_the_first_tick_after_the_receivers_opened():
    """No burst of batches for the ticks that passed while a receiver opened; the
    grid's zero time follows, so windows align on the first batch."""
    clock = ManualClock()
    batches, windows = ListSink(), ListSink()
    with anyio.fail_after(HANG_GUARD):
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            stream = ssc.receiver_stream(OpensSlowly(clock, 5.0))
            stream.foreach_batch(batches)
            stream.window(2.0, 2.0).count().foreach_batch(windows)
            ssc.start()
            await clock.advance(9.0)
    assert batches.times == [6.0, 7.0, 8.0, 9.0]
    assert windows.batches == [(7.0, [0]), (9.0, [0])]


# -- state ----------------------------------------------------------------------------


async def test_state_transitions():
    clock = ManualClock()
    ssc = StreamingContext(batch_interval=1.0, clock=clock)
    assert ssc.state is ContextState.INITIALIZED
    async with ssc:
        assert ssc.state is ContextState.INITIALIZED
        ssc.queue_stream([[1]]).foreach_batch(ListSink())
        ssc.start()
        assert ssc.state is ContextState.ACTIVE
        await clock.advance(1.0)
        assert ssc.state is ContextState.ACTIVE
        await ssc.stop()
        assert ssc.state is ContextState.STOPPED
    assert ssc.state is ContextState.STOPPED


async def test_state_is_stopped_after_leaving_the_block():
    async with StreamingContext(batch_interval=1.0, clock=ManualClock()) as ssc:
        ssc.queue_stream([]).foreach_batch(ListSink())
        ssc.start()
    assert ssc.state is ContextState.STOPPED
    assert await ssc.await_termination(timeout=0) is True


async def test_state_is_stopped_after_an_error():
    clock = ManualClock()
    ssc = StreamingContext(batch_interval=1.0, clock=clock)
    with pytest.raises(OperatorError):
        async with ssc:
            ssc.queue_stream([[1]]).foreach_batch(lambda t, r: 1 / 0)
            ssc.start()
            await clock.advance(1.0)
    assert ssc.state is ContextState.STOPPED


# -- graceful stop -----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["leave", "stop", "await stop"])
async def test_graceful_stop_processes_every_buffered_record(how):
    clock = ManualClock()
    sink = ListSink()
    source = MemorySource()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.receiver_stream(source).foreach_batch(sink)
        await ssc.start()
        await source.send([1, 2, 3])
        await source.send([4, 5])
        if how == "stop":
            ssc.stop()
        elif how == "await stop":
            await ssc.stop()
            assert ssc.state is ContextState.STOPPED
            assert sink.batches == [(1.0, [1, 2, 3, 4, 5])]
    assert clock.now() == 0.0
    assert sink.batches == [(1.0, [1, 2, 3, 4, 5])]
    assert source.commits == [5]


async def test_stop_does_not_wait_for_the_next_tick_of_the_system_clock():
    sink = ListSink()
    with anyio.fail_after(HANG_GUARD):
        async with StreamingContext(batch_interval=3600.0) as ssc:
            source = MemorySource()
            ssc.receiver_stream(source).foreach_batch(sink)
            await ssc.start()
            await source.send(["x"])
    assert len(sink.batches) == 1
    batch_time, records = sink.batches[0]
    assert records == ["x"]
    assert batch_time % 3600.0 == 0.0


async def test_a_stuck_final_batch_is_cut_short_at_stop_timeout_on_the_clock():
    clock = ManualClock()
    entered = anyio.Event()
    finished: list[float] = []

    async def stuck_output(time, records):
        entered.set()
        await anyio.Event().wait()  # never set
        finished.append(time)

    source = MemorySource()
    with pytest.raises(StopTimeoutError) as info, anyio.fail_after(HANG_GUARD):
        async with StreamingContext(batch_interval=1.0, clock=clock, stop_timeout=5.0) as ssc:
            ssc.receiver_stream(source, name="r").foreach_batch(stuck_output)
            await ssc.start()
            await source.send([1, 2])
            ssc.stop()
            await entered.wait()  # the final batch hangs
            await clock.advance(4.9)
            assert ssc.state is ContextState.ACTIVE
            await clock.advance(0.1)
            await ssc.await_termination()
    assert finished == []
    assert source.commits == []
    assert info.value.unprocessed == {"r": 2}
    assert info.value.batch_time == 1.0
    assert info.value.stop_timeout == 5.0
    assert ssc.state is ContextState.STOPPED


async def test_a_stuck_batch_in_progress_is_cut_short_at_stop_timeout():
    entered = anyio.Event()

    async def stuck_output(time, records):
        entered.set()
        await anyio.Event().wait()  # never set

    # a batch in progress holds the manual clock: this deadline is on the system clock
    with pytest.raises(StopTimeoutError) as info, anyio.fail_after(HANG_GUARD):
        async with StreamingContext(batch_interval=0.01, stop_timeout=0.05) as ssc:
            ssc.queue_stream([[1, 2, 3]], name="q").foreach_batch(stuck_output)
            ssc.start()
            await entered.wait()
    assert info.value.unprocessed == {"q": 3}
    assert info.value.batch_time is not None
    assert "stop_timeout=0.05s" in str(info.value)


async def test_graceful_stop_after_batches_uses_the_next_grid_time():
    clock = ManualClock()
    sink = ListSink()
    source = MemorySource()
    async with StreamingContext(batch_interval=0.5, clock=clock) as ssc:
        ssc.receiver_stream(source).foreach_batch(sink)
        await ssc.start()
        await source.send(["a"])
        await clock.advance(1.2)
        await source.send(["b", "c"])
    assert sink.batches == [(0.5, ["a"]), (1.0, []), (1.5, ["b", "c"])]


async def test_graceful_stop_with_max_rate_drains_in_several_final_batches():
    clock = ManualClock()
    sink = ListSink()
    source = MemorySource()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.receiver_stream(source, max_rate=2).foreach_batch(sink)
        await ssc.start()
        await source.send([1, 2, 3])
        await source.send([4, 5])
    assert sink.batches == [(1.0, [1, 2]), (2.0, [3, 4]), (3.0, [5])]
    # a batch commits the position of the last chunk it took whole
    assert source.commits == [3, 5]


async def test_graceful_stop_does_not_drain_queue_streams():
    clock = ManualClock()
    sink = ListSink()
    queue = [[1], [2], [3]]
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.queue_stream(queue).foreach_batch(sink)
        ssc.start()
        await clock.advance(1.0)
    assert sink.batches == [(1.0, [1])]
    assert queue == [[2], [3]]


async def test_stop_from_an_output_finishes_the_batch_and_stops():
    clock = ManualClock()
    sink = ListSink()

    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:

        async def output(time, records):
            sink(time, records)
            if time == 2.0:
                await ssc.stop()  # returns at once inside a job
                sink(time, ["after stop"])

        ssc.queue_stream([[1], [2], [3], [4]]).foreach_batch(output)
        ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await clock.advance(4.0)
            assert await ssc.await_termination() is True
    assert sink.batches == [(1.0, [1]), (2.0, [2]), (2.0, ["after stop"])]


async def test_graceful_stop_past_stop_timeout_raises_what_it_left():
    """Final batches that take longer than stop_timeout (of the clock): the stop
    ends between two of them, and the records left reach the user, uncommitted."""
    clock = ManualClock()
    sink = ListSink()
    first, second = MemorySource(), MemorySource()

    def slow_output(time, records):
        sink(time, records)
        clock.elapse(3.0)

    with pytest.raises(StopTimeoutError) as info, anyio.fail_after(HANG_GUARD):
        async with StreamingContext(batch_interval=1.0, clock=clock, stop_timeout=2.0) as ssc:
            one = ssc.receiver_stream(first, name="first", max_rate=2)
            two = ssc.receiver_stream(second, name="second", max_rate=1)
            one.union(two).foreach_batch(slow_output)
            await ssc.start()
            await first.send([1, 2, 3])
            await first.send([4, 5])
            await second.send(["a", "b", "c"])
    assert sink.batches == [(1.0, [1, 2, "a"])]
    error = info.value
    assert error.unprocessed == {"first": 3, "second": 2}
    assert error.batch_time is None
    assert "3 records of 'first', 2 records of 'second' were not processed" in str(error)
    assert "Raise stop_timeout" in str(error)
    # no batch took a chunk whole: nothing was committed
    assert first.commits == []
    assert second.commits == []
    assert ssc.state is ContextState.STOPPED


@pytest.mark.parametrize("where", ["map_async", "output's task", "listener", "receiver listener"])
async def test_awaiting_stop_from_inside_the_job_does_not_wait_for_itself(where):
    """A stop awaited in a task that the stop itself waits for returns once requested."""
    clock = ManualClock()
    sink = ListSink()
    returned: list[str] = []

    async def stop() -> None:
        await ssc.stop()
        returned.append(where)

    async def mapped(record):
        if record == 2:
            await stop()
        return record

    async def output(time, records):
        if time == 2.0:
            async with anyio.create_task_group() as tg:  # as a sink's deliveries do
                tg.start_soon(stop)

    class Listener:
        async def on_batch_completed(self, info):
            if info.batch_time == 2.0:
                await stop()

        async def on_receiver_error(self, info):  # on the receiver's task
            await stop()

    class FailsOnce(MemorySource):
        def __init__(self) -> None:
            super().__init__()
            self.failed = False

        async def run(self, output):
            if not self.failed:
                self.failed = True
                raise Boom("once")
            await super().run(output)

    with anyio.fail_after(HANG_GUARD):
        async with StreamingContext(
            batch_interval=1.0, clock=clock, receiver_restart_backoff=0
        ) as ssc:
            stream = ssc.queue_stream([[1], [2], [3], [4]])
            if where == "map_async":
                stream = stream.map_async(mapped)
            elif where == "output's task":
                stream.foreach_batch(output)
            elif where == "listener":
                ssc.add_listener(Listener())
            else:
                ssc.add_listener(Listener())
                ssc.receiver_stream(FailsOnce()).foreach_batch(ListSink())
            stream.foreach_batch(sink)
            ssc.start()
            await clock.advance(4.0)
            assert await ssc.await_termination() is True
    assert returned == [where]
    if where == "receiver listener":
        assert sink.times == []  # stopped before the first tick
    else:
        assert sink.times == [1.0, 2.0]


async def test_await_termination_inside_the_job_says_it_would_wait_for_itself():
    clock = ManualClock()
    refused: list[float] = []

    async def output(time, records):
        with pytest.raises(ContextStateError, match="would wait for itself"):
            await ssc.await_termination()
        refused.append(time)

    with anyio.fail_after(HANG_GUARD):
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            ssc.queue_stream([[1]]).foreach_batch(output)
            ssc.start()
            await clock.advance(1.0)
    assert refused == [1.0]


# -- immediate stop -----------------------------------------------------------------------


async def test_immediate_stop_drops_buffered_records():
    clock = ManualClock()
    sink = ListSink()
    source = MemorySource()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.receiver_stream(source).foreach_batch(sink)
        await ssc.start()
        await source.send([1, 2, 3])
        ssc.stop(graceful=False)
        with anyio.fail_after(HANG_GUARD):
            assert await ssc.await_termination() is True
        assert ssc.state is ContextState.STOPPED
    assert sink.batches == []
    assert source.commits == []


async def test_immediate_stop_right_after_start_drops_buffered_records():
    clock = ManualClock()
    sink = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.queue_stream([[1]]).foreach_batch(sink)
        ssc.start()
        ssc.stop(graceful=False)
    assert ssc.state is ContextState.STOPPED
    assert sink.batches == []


async def test_immediate_stop_cancels_a_job_in_progress():
    clock = ManualClock()
    entered = anyio.Event()
    finished: list[float] = []

    async def stuck_output(time, records):
        entered.set()
        await anyio.Event().wait()  # never set
        finished.append(time)

    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.queue_stream([[1]]).foreach_batch(stuck_output)
        ssc.start()
        async with anyio.create_task_group() as tg:
            tg.start_soon(clock.advance, 1.0)
            await entered.wait()
            ssc.stop(graceful=False)
            with anyio.fail_after(HANG_GUARD):
                assert await ssc.await_termination() is True
    assert finished == []
    assert ssc.state is ContextState.STOPPED


async def test_immediate_stop_ends_a_graceful_stop_in_progress():
    entered = anyio.Event()
    finished: list[float] = []

    async def stuck_output(time, records):
        entered.set()
        await anyio.Event().wait()  # never set
        finished.append(time)

    source = MemorySource()
    async with StreamingContext(batch_interval=1.0, clock=ManualClock()) as ssc:
        ssc.receiver_stream(source).foreach_batch(stuck_output)
        await ssc.start()
        await source.send([1])
        ssc.stop()
        with anyio.fail_after(HANG_GUARD):
            await entered.wait()  # the final batch of the graceful stop hangs
            ssc.stop(graceful=False)
            assert await ssc.await_termination() is True
    assert finished == []
    assert source.commits == []
    assert ssc.state is ContextState.STOPPED


class JumpingClock:
    """A clock moved by the test, whose timers return without yielding once their
    deadline has passed (as the system clock's do when a batch is late)."""

    def __init__(self) -> None:
        self.time = 0.0
        self.timers: list[JumpingTimer] = []

    def now(self) -> float:
        return self.time

    def timer(self) -> JumpingTimer:
        timer = JumpingTimer(self)
        self.timers.append(timer)
        return timer

    def jump(self, to: float) -> None:
        self.time = to
        for timer in self.timers:
            timer.wake.set()


class JumpingTimer:
    def __init__(self, clock: JumpingClock) -> None:
        self.clock = clock
        self.stopped = False
        self.wake = anyio.Event()

    async def sleep_until(self, deadline: float) -> None:
        while deadline > self.clock.time and not self.stopped:
            await self.wake.wait()
            self.wake = anyio.Event()

    def interrupt(self) -> None:
        self.stopped = True
        self.wake.set()

    close = interrupt


async def test_immediate_stop_from_a_late_batch_runs_no_other_batch():
    """Late batches follow each other without the clock's timer yielding: the
    scheduler yields between any two, so a hard stop takes effect there."""
    clock = JumpingClock()
    seen: list[float] = []

    def output(time, records):
        seen.append(time)
        clock.jump(1000.0)  # batches 2.0 to 1000.0 are due now
        ssc.stop(graceful=False)

    with anyio.fail_after(HANG_GUARD):
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            ssc.queue_stream([]).foreach_batch(output)
            await ssc.start()
            await anyio.wait_all_tasks_blocked()  # the scheduler waits for its first tick
            clock.jump(1.0)
            assert await ssc.await_termination() is True
    assert seen == [1.0]


def report_then_sleep(port: int):
    """A stage that tells the test its worker's pid on a loopback connection, sleeps
    a minute, then says "done" (which it can only do if nothing killed it)."""

    def stage(record):
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(f"{os.getpid()}\n".encode())
            time.sleep(60)
            conn.sendall(b"done\n")
        return record

    return stage


@pytest.mark.parametrize("how", ["stop(graceful=False)", "outer deadline"])
async def test_hard_stop_abandons_a_stage_running_in_the_pool(how):
    """Work running in the context's process pool does not hold a hard stop: its
    worker is killed and gone when the block is left."""
    clock = ManualClock()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener:
        with anyio.move_on_after(HANG_GUARD) as outer:
            async with (
                StreamingContext(
                    batch_interval=1.0, clock=clock, executor="process", max_workers=1
                ) as ssc,
                anyio.create_task_group() as tg,
            ):
                ssc.queue_stream([[1]]).map(report_then_sleep(port)).foreach_batch(ListSink())
                await ssc.start()
                tg.start_soon(clock.advance, 1.0)
                conn = await listener.listeners[0].accept()
                pid = int((await conn.receive()).decode())
                if how == "outer deadline":
                    outer.deadline = anyio.current_time()  # the deadline passes now
                    await anyio.sleep_forever()
                await ssc.stop(graceful=False)
                tg.cancel_scope.cancel()
        assert outer.cancelled_caught is (how == "outer deadline")
        assert ssc.state is ContextState.STOPPED
        async with conn:
            with pytest.raises(anyio.EndOfStream):  # killed before it could say "done"
                await conn.receive()
    assert pid not in [child.pid for child in multiprocessing.active_children()]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# -- await_termination -----------------------------------------------------------------


async def test_await_termination_times_out_on_the_clock_then_reports_termination():
    clock = ManualClock()
    results: list[bool] = []
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.queue_stream([]).foreach_batch(ListSink())
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            assert await ssc.await_termination(timeout=0) is False
            async with anyio.create_task_group() as tg:

                async def wait() -> None:
                    results.append(await ssc.await_termination(timeout=2.5))

                tg.start_soon(wait)
                await anyio.wait_all_tasks_blocked()
                await clock.advance(2.4)
                await anyio.wait_all_tasks_blocked()
                assert results == []
                await clock.advance(0.1)
                await anyio.wait_all_tasks_blocked()
                assert results == [False]
        assert ssc.last_batch is not None
        assert ssc.last_batch.batch_time == 2.0
        assert ssc.state is ContextState.ACTIVE
        ssc.stop()
        with anyio.fail_after(HANG_GUARD):
            assert await ssc.await_termination() is True
        assert await ssc.await_termination(timeout=1.0) is True


async def test_await_termination_waits_for_a_stop_from_another_task():
    clock = ManualClock()
    sink = ListSink()

    async def output(time, records):
        sink(time, records)
        if time == 3.0:
            ssc.stop()

    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.queue_stream([]).foreach_batch(output)
        ssc.start()
        async with anyio.create_task_group() as tg:
            tg.start_soon(clock.advance, 10.0)
            with anyio.fail_after(HANG_GUARD):
                assert await ssc.await_termination() is True
    assert sink.times == [1.0, 2.0, 3.0]


# -- errors in jobs ------------------------------------------------------------------------


async def test_error_in_foreach_batch_leaves_the_block_as_operator_error():
    clock = ManualClock()
    sink = ListSink()

    def output(time, records):
        if time == 2.0:
            raise Boom("bad batch")
        sink(time, records)

    with pytest.raises(OperatorError) as info:
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            ssc.queue_stream([[1], [2], [3]]).foreach_batch(output, name="writer")
            ssc.start()
            await clock.advance(3.0)
    error = info.value
    assert isinstance(error.__cause__, Boom)
    assert error.operator == "writer"
    assert error.batch_time == 2.0
    assert "Boom: bad batch" in str(error)
    # the context stopped at the failure
    assert sink.batches == [(1.0, [1])]


async def test_error_in_a_map_function_names_the_operator():
    clock = ManualClock()
    sink = ListSink()
    with pytest.raises(OperatorError) as info:
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            numbers = ssc.queue_stream([[1, 2], [4, 0]])
            numbers.map(lambda x: 4 // x, name="quarter").map(str).foreach_batch(sink)
            ssc.start()
            await clock.advance(2.0)
    error = info.value
    assert isinstance(error.__cause__, ZeroDivisionError)
    assert error.operator == "quarter"
    assert error.batch_time == 2.0
    assert sink.batches == [(1.0, ["4", "2"])]


async def test_error_interrupts_the_body_of_the_block():
    clock = ManualClock()
    with pytest.raises(OperatorError) as info, anyio.fail_after(HANG_GUARD):
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            ssc.queue_stream([[1]]).foreach_batch(lambda t, r: 1 / 0)
            ssc.start()
            async with anyio.create_task_group() as tg:
                tg.start_soon(clock.advance, 1.0)
                await anyio.sleep_forever()
    assert isinstance(info.value.__cause__, ZeroDivisionError)


async def test_error_is_raised_from_await_termination_and_not_again_from_the_block():
    clock = ManualClock()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.queue_stream([[1]]).map(lambda x: x / 0, name="divide").foreach_batch(ListSink())
        ssc.start()
        async with anyio.create_task_group() as tg:
            tg.start_soon(clock.advance, 1.0)
            with pytest.raises(OperatorError) as info, anyio.fail_after(HANG_GUARD):
                await ssc.await_termination()
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert info.value.operator == "divide"
    assert ssc.state is ContextState.STOPPED


async def test_error_from_await_termination_leaves_the_block_as_operator_error():
    clock = ManualClock()
    source = MemorySource()
    with pytest.raises(OperatorError) as info:
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            ssc.receiver_stream(source).foreach_batch(lambda t, r: 1 / 0, name="fails")
            await ssc.start()
            await source.send([1])
            ssc.stop()  # the final batch fails
            await ssc.await_termination()
    assert info.value.operator == "fails"
    assert isinstance(info.value.__cause__, ZeroDivisionError)


async def test_exception_of_the_body_leaves_the_block_unchanged():
    clock = ManualClock()
    with pytest.raises(KeyError, match="mine"):
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            ssc.queue_stream([]).foreach_batch(ListSink())
            ssc.start()
            raise KeyError("mine")
    assert ssc.state is ContextState.STOPPED


async def test_error_in_an_async_output_propagates():
    clock = ManualClock()

    async def output(time, records):
        await anyio.lowlevel.checkpoint()
        raise Boom("async")

    with pytest.raises(OperatorError) as info:
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            ssc.queue_stream([[1]]).foreach_batch(output)
            ssc.start()
            await clock.advance(1.0)
    assert isinstance(info.value.__cause__, Boom)


# -- errors in receivers -------------------------------------------------------------------


async def test_receiver_error_leaves_the_block_after_the_restarts():
    receiver = FailingReceiver()
    clock = ManualClock()
    with pytest.raises(ReceiverError) as info, anyio.fail_after(HANG_GUARD):
        async with StreamingContext(
            batch_interval=1.0,
            clock=clock,
            max_receiver_restarts=2,
            receiver_restart_backoff=0,
        ) as ssc:
            ssc.receiver_stream(receiver, name="flaky").foreach_batch(ListSink())
            ssc.start()
            await anyio.sleep_forever()
    error = info.value
    assert receiver.starts == 3
    assert error.attempts == 3
    assert error.receiver == "flaky"
    assert isinstance(error.__cause__, Boom)
    assert str(error.__cause__) == "failure 3"
    assert "Boom: failure 3" in str(error)


async def test_receiver_error_is_raised_from_await_termination():
    receiver = FailingReceiver()
    async with StreamingContext(
        batch_interval=1.0,
        clock=ManualClock(),
        max_receiver_restarts=1,
        receiver_restart_backoff=0,
    ) as ssc:
        ssc.receiver_stream(receiver).foreach_batch(ListSink())
        ssc.start()
        with pytest.raises(ReceiverError) as info, anyio.fail_after(HANG_GUARD):
            await ssc.await_termination()
    assert info.value.attempts == 2
    assert isinstance(info.value.__cause__, Boom)
    assert ssc.state is ContextState.STOPPED


async def test_receiver_error_from_await_termination_leaves_the_block_as_receiver_error():
    with pytest.raises(ReceiverError) as info, anyio.fail_after(HANG_GUARD):
        async with StreamingContext(
            batch_interval=1.0,
            clock=ManualClock(),
            max_receiver_restarts=0,
            receiver_restart_backoff=0,
        ) as ssc:
            ssc.receiver_stream(FailingReceiver()).foreach_batch(ListSink())
            ssc.start()
            await ssc.await_termination()
    assert info.value.attempts == 1


# -- remember -------------------------------------------------------------------------------


class Record:
    __slots__ = ("__weakref__", "value")

    def __init__(self, value: int) -> None:
        self.value = value


def make_queue(count: int) -> tuple[list[list[Record]], dict[float, weakref.ref]]:
    queue = [[Record(k)] for k in range(1, count + 1)]
    refs = {float(k): weakref.ref(batch[0]) for k, batch in enumerate(queue, start=1)}
    return queue, refs


def alive(refs: dict[float, weakref.ref]) -> list[float]:
    gc.collect()
    return [time for time, ref in refs.items() if ref() is not None]


@pytest.mark.parametrize("when", ["before start", "after start"])
async def test_remember_keeps_the_batches_of_the_duration(when):
    clock = ManualClock()
    queue, refs = make_queue(6)
    counts: list[int] = []
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.queue_stream(queue).foreach_batch(lambda t, records: counts.append(len(records)))
        if when == "before start":
            ssc.remember(2.0)
        ssc.start()
        if when == "after start":
            ssc.remember(2.0)
        del queue
        await clock.advance(6.0)
        assert counts == [1] * 6
        assert alive(refs) == [5.0, 6.0]
        await clock.advance(1.0)
        assert alive(refs) == [6.0]


async def test_batches_are_dropped_after_their_outputs_by_default():
    clock = ManualClock()
    queue, refs = make_queue(3)
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.queue_stream(queue).foreach_batch(lambda t, records: None)
        ssc.start()
        del queue
        await clock.advance(3.0)
        assert alive(refs) == []


@pytest.mark.parametrize("duration", [0, -1.0, math.nan, math.inf, "2"])
async def test_remember_rejects_invalid_durations(duration):
    ssc = StreamingContext(batch_interval=1.0, clock=ManualClock())
    with pytest.raises(ConfigurationError, match="remember duration must be a finite number"):
        ssc.remember(duration)


# -- the system clock ---------------------------------------------------------------------


async def test_system_clock_runs_batches_on_the_grid():
    interval = 0.05
    sink = ListSink()
    two_batches = anyio.Event()

    def output(batch_time, records):
        sink(batch_time, records)
        if len(sink.batches) == 2:
            two_batches.set()

    started_at = time.time()
    async with StreamingContext(batch_interval=interval) as ssc:
        assert isinstance(ssc.clock, streamio.SystemClock)
        ssc.queue_stream([["a", "b"], ["c"]]).foreach_batch(output)
        ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await two_batches.wait()
    assert [records for _, records in sink.batches[:2]] == [["a", "b"], ["c"]]
    first, second = sink.times[:2]
    assert first > started_at
    for batch_time in (first, second):
        assert batch_time / interval == pytest.approx(round(batch_time / interval), abs=1e-3)
    assert (second - first) / interval == pytest.approx(1.0, abs=1e-3)
