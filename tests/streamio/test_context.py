"""StreamingContext: configuration, lifecycle, stopping and error propagation."""

from __future__ import annotations

import gc
import math
import operator
import time
import weakref

import anyio
import anyio.lowlevel
import pytest

import streamio
from streamio import (
    ConfigurationError,
    ContextState,
    ContextStateError,
    ManualClock,
    OperatorError,
    Receiver,
    ReceiverError,
    StreamingContext,
    StreamioError,
)
from streamio.testing import ListSink, MemorySource

# Upper bound for a wait that only a library bug could make endless.
HANG_GUARD = 10


class Boom(Exception):
    pass


class FailingReceiver(Receiver[int]):
    """Stores one record per start, then raises."""

    def __init__(self) -> None:
        self.starts = 0

    async def run(self, output):
        self.starts += 1
        await output.put_many([self.starts])
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


async def test_graceful_stop_is_cut_short_after_stop_timeout(caplog):
    entered = anyio.Event()
    finished: list[float] = []

    async def stuck_output(time, records):
        entered.set()
        await anyio.Event().wait()  # never set
        finished.append(time)

    source = MemorySource()
    with anyio.fail_after(HANG_GUARD):
        async with StreamingContext(
            batch_interval=1.0, clock=ManualClock(), stop_timeout=0.01
        ) as ssc:
            ssc.receiver_stream(source).foreach_batch(stuck_output)
            await ssc.start()
            await source.send([1, 2])
    assert entered.is_set()
    assert finished == []
    assert source.commits == []
    assert ssc.state is ContextState.STOPPED
    assert "graceful stop took over 0.01s and was cut short" in caplog.text


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


# -- await_termination -----------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0, 0.001])
async def test_await_termination_times_out_then_reports_termination(seconds):
    clock = ManualClock()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.queue_stream([]).foreach_batch(ListSink())
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            assert await ssc.await_termination(timeout=seconds) is False
        assert ssc.state is ContextState.ACTIVE
        ssc.stop()
        with anyio.fail_after(HANG_GUARD):
            assert await ssc.await_termination() is True
        assert await ssc.await_termination(timeout=seconds) is True


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
