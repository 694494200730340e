"""ssc.push_stream(): the source an application feeds with ``await stream.send(records)``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from streamio import (
    ConfigurationError,
    ContextStateError,
    DStream,
    ManualClock,
    OperatorError,
    PushStream,
    StreamingContext,
)
from streamio.sources import PushReceiver
from streamio.testing import ListSink, MemorySource

# Upper bound for a wait that only a library bug could make endless.
HANG_GUARD = 10


def make_context(clock: ManualClock, **options) -> StreamingContext:
    return StreamingContext(batch_interval=1.0, clock=clock, **options)


@asynccontextmanager
async def context(clock: ManualClock, **options) -> AsyncIterator[StreamingContext]:
    """A running block whose sends cannot hang the suite, whatever a bug does."""
    with anyio.fail_after(HANG_GUARD):
        async with make_context(clock, **options) as ssc:
            yield ssc


# -- a stream like any other ------------------------------------------------------------


async def test_sent_records_form_exact_batches_through_operators():
    clock = ManualClock()
    sink: ListSink[tuple[str, int]] = ListSink()
    async with context(clock) as ssc:
        events = ssc.push_stream(name="events")
        assert isinstance(events, PushStream) and isinstance(events, DStream)
        assert events.name == "events"
        events.flat_map(str.split).count_by_value().foreach_batch(sink)
        await ssc.start()
        await events.send(["a b", "a"])
        await events.send_one("c")
        await clock.advance(1.0)
        await events.send(["b"])
        await clock.advance(1.0)
    assert sink.batches == [(1.0, [("a", 2), ("b", 1), ("c", 1)]), (2.0, [("b", 1)])]


async def test_send_returns_once_the_records_are_in_the_buffer():
    async with context(ManualClock()) as ssc:
        events = ssc.push_stream()
        events.foreach_batch(ListSink())
        await ssc.start()
        await events.send(range(3))
        assert events.buffer_statistics().used == 3
        await events.send_one(3)
        assert events.buffer_statistics().used == 4


async def test_concurrent_senders_keep_each_chunk_whole_and_in_order():
    clock = ManualClock()
    sink: ListSink[str] = ListSink()
    async with context(clock, buffer_capacity=2) as ssc:
        events = ssc.push_stream()
        events.foreach_batch(sink)
        await ssc.start()
        async with anyio.create_task_group() as senders:
            for name in "abc":
                senders.start_soon(events.send, [f"{name}{i}" for i in range(3)])
                await anyio.wait_all_tasks_blocked()  # each queues before the next
            with anyio.fail_after(HANG_GUARD):
                while len(sink.records) < 9:
                    await clock.advance(1.0)
    assert sink.records == ["a0", "a1", "a2", "b0", "b1", "b2", "c0", "c1", "c2"]
    assert max(len(records) for _, records in sink.batches) <= 2


# -- options --------------------------------------------------------------------------------


async def test_a_full_buffer_makes_send_wait_until_a_batch_frees_space():
    clock = ManualClock()
    sink: ListSink[int] = ListSink()
    returned = anyio.Event()
    async with context(clock) as ssc:
        events = ssc.push_stream(buffer_capacity=3)
        events.foreach_batch(sink)
        await ssc.start()

        async def send() -> None:
            await events.send(range(5))
            returned.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(send)
            await anyio.wait_all_tasks_blocked()
            assert not returned.is_set()
            stats = events.buffer_statistics()
            assert (stats.used, stats.capacity, stats.waiting_senders) == (3, 3, 1)
            await clock.advance(1.0)  # the batch takes 3, the rest fits
            await anyio.wait_all_tasks_blocked()
            assert returned.is_set()
        await clock.advance(1.0)
    assert sink.batches == [(1.0, [0, 1, 2]), (2.0, [3, 4])]


async def test_max_rate_caps_the_records_per_batch():
    clock = ManualClock()
    sink: ListSink[int] = ListSink()
    async with context(clock) as ssc:
        events = ssc.push_stream(max_rate=2)
        events.foreach_batch(sink)
        await ssc.start()
        await events.send(range(5))
        await clock.advance(3.0)
    assert sink.batches == [(1.0, [0, 1]), (2.0, [2, 3]), (3.0, [4])]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"buffer_capacity": 0}, "buffer_capacity"),
        ({"buffer_bytes": 0}, "buffer_bytes"),
        ({"max_rate": -1}, "max_rate"),
    ],
)
async def test_bad_options_fail_when_the_graph_is_built(option, message):
    with pytest.raises(ConfigurationError, match=message):
        make_context(ManualClock()).push_stream(**option)


async def test_names_are_unique_like_every_stream_name():
    ssc = make_context(ManualClock())
    ssc.push_stream(name="events")
    with pytest.raises(ConfigurationError, match="already used"):
        ssc.push_stream(name="events")


# -- before start, after stop ----------------------------------------------------------------


async def test_send_before_start_is_an_error_that_says_to_start():
    async with context(ManualClock()) as ssc:
        events = ssc.push_stream(name="events")
        events.foreach_batch(ListSink())
        with pytest.raises(ContextStateError, match=r"'events'.*call ssc.start\(\) before send"):
            await events.send(["x"])
        await ssc.start()
        await events.send(["x"])  # fine once started
        assert events.buffer_statistics().used == 1


async def test_send_after_start_waits_for_the_receiver_to_run():
    clock = ManualClock()
    sink: ListSink[str] = ListSink()
    async with context(clock) as ssc:
        events = ssc.push_stream()
        events.foreach_batch(sink)
        ssc.start()  # not awaited: the receiver has not run yet
        await events.send(["x"])
        await clock.advance(1.0)
    assert sink.batches == [(1.0, ["x"])]


@pytest.mark.parametrize("how", ["left the block", "stopped", "stopped before start"])
async def test_send_after_stop_is_an_error_and_stores_nothing(how):
    async with context(ManualClock()) as ssc:
        events = ssc.push_stream(name="events")
        events.foreach_batch(ListSink())
        if how == "stopped before start":
            ssc.stop()
        else:
            await ssc.start()
            if how == "stopped":
                await ssc.stop()
    with (
        anyio.fail_after(HANG_GUARD),
        pytest.raises(ContextStateError, match=r"'events' no longer takes records.*not stored"),
    ):
        await events.send(["late"])
    assert events.buffer_statistics().used == 0


async def test_send_while_a_graceful_stop_drains_is_refused():
    clock = ManualClock()
    sink: ListSink[str] = ListSink()
    refused: list[str] = []

    async with context(clock) as ssc:
        events = ssc.push_stream(name="events")

        async def output(time, records):
            sink(time, records)
            try:
                await events.send(["during the stop"])
            except ContextStateError as error:
                refused.append(str(error))

        events.foreach_batch(output)
        await ssc.start()
        await events.send(["before the stop"])
    assert sink.batches == [(1.0, ["before the stop"])]
    assert len(refused) == 1 and "no longer takes records" in refused[0]


async def test_a_graceful_stop_stores_the_chunk_in_hand_and_refuses_the_queued_ones():
    clock = ManualClock()
    sink: ListSink[int] = ListSink()
    outcomes: dict[str, str] = {}
    async with context(clock) as ssc:
        events = ssc.push_stream(buffer_capacity=2)
        events.foreach_batch(sink)
        await ssc.start()

        async def send(label: str, records: list[int]) -> None:
            try:
                await events.send(records)
            except ContextStateError:
                outcomes[label] = "refused"
            else:
                outcomes[label] = "stored"

        async with anyio.create_task_group() as tg:
            tg.start_soon(send, "in hand", [1, 2, 3, 4, 5])  # waits for space after 2
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(send, "queued", [6])
            await anyio.wait_all_tasks_blocked()
            assert events.buffer_statistics().waiting_senders == 1
            ssc.stop()
    assert outcomes == {"in hand": "stored", "queued": "refused"}
    assert sink.records == [1, 2, 3, 4, 5]  # drained in final batches, nothing lost


async def test_a_hard_stop_refuses_the_queued_chunks():
    outcomes: list[str] = []
    async with context(ManualClock()) as ssc:
        events = ssc.push_stream(buffer_capacity=1)
        events.foreach_batch(ListSink())
        await ssc.start()

        async def send(records: list[int]) -> None:
            try:
                await events.send(records)
                outcomes.append("stored")
            except ContextStateError:
                outcomes.append("refused")

        async with anyio.create_task_group() as tg:
            tg.start_soon(send, [1, 2])
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(send, [3])
            await anyio.wait_all_tasks_blocked()
            ssc.stop(graceful=False)
    # the chunk in hand was stored (then dropped with the buffer by the hard stop)
    assert outcomes == ["stored", "refused"]


# -- cancellation -------------------------------------------------------------------------------


async def test_a_cancelled_send_that_was_queued_stores_nothing():
    clock = ManualClock()
    sink: ListSink[int] = ListSink()
    async with context(clock) as ssc:
        events = ssc.push_stream(buffer_capacity=1)
        events.foreach_batch(sink)
        await ssc.start()
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.send, [1, 2])  # in hand, waits for space
            await anyio.wait_all_tasks_blocked()
            async with anyio.create_task_group() as cancelled:
                cancelled.start_soon(events.send, [3])  # queued behind it
                await anyio.wait_all_tasks_blocked()
                cancelled.cancel_scope.cancel()
            tg.start_soon(events.send, [4])
            await anyio.wait_all_tasks_blocked()
            with anyio.fail_after(HANG_GUARD):
                while len(sink.records) < 3:
                    await clock.advance(1.0)
        await clock.advance(2.0)
    assert sink.records == [1, 2, 4]


async def test_a_cancelled_send_whose_records_were_handed_over_stores_them_all():
    clock = ManualClock()
    sink: ListSink[int] = ListSink()
    async with context(clock) as ssc:
        events = ssc.push_stream(buffer_capacity=2)
        events.foreach_batch(sink)
        await ssc.start()
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.send, [1, 2, 3, 4, 5])  # 2 stored, 3 in hand
            await anyio.wait_all_tasks_blocked()
            assert events.buffer_statistics().used == 2
            tg.cancel_scope.cancel()
        with anyio.fail_after(HANG_GUARD):
            while len(sink.records) < 5:
                await clock.advance(1.0)
    assert sink.records == [1, 2, 3, 4, 5]


# -- the context's error, for health checks ----------------------------------------------------


def fragile(record: str) -> str:
    if record == "bad":
        raise ValueError("cannot parse 'bad'")
    return record.upper()


async def test_error_is_none_until_the_context_fails_then_the_operator_error():
    clock = ManualClock()
    ssc = make_context(clock)
    seen: list[BaseException | None] = []
    with pytest.raises(OperatorError) as raised, anyio.fail_after(HANG_GUARD):
        async with ssc:
            events = ssc.push_stream()
            events.map(fragile).foreach_batch(ListSink())
            assert ssc.error is None
            await ssc.start()
            await events.send(["good"])
            await clock.advance(1.0)
            seen.append(ssc.error)
            await events.send(["bad"])
            await clock.advance(1.0)
            await anyio.sleep_forever()  # interrupted: nothing awaits termination
    assert seen == [None]
    assert ssc.error is raised.value  # still there after it was raised
    assert isinstance(ssc.error.__cause__, ValueError)
    with pytest.raises(ContextStateError, match="no longer takes records"):
        await events.send(["after the failure"])


async def test_error_is_set_while_something_awaits_termination():
    clock = ManualClock()
    ssc = make_context(clock)
    with anyio.fail_after(HANG_GUARD):
        async with ssc:
            events = ssc.push_stream()
            events.map(fragile).foreach_batch(ListSink())
            await ssc.start()
            await events.send(["bad"])
            async with anyio.create_task_group() as tg:

                async def wait() -> None:
                    with pytest.raises(OperatorError):
                        await ssc.await_termination()

                tg.start_soon(wait)
                await anyio.wait_all_tasks_blocked()
                await clock.advance(1.0)  # the batch fails
                assert isinstance(ssc.error, OperatorError)  # at once, before the wind-down
                with pytest.raises(ContextStateError, match="no longer takes records"):
                    await events.send(["after the failure"])
    assert isinstance(ssc.error, OperatorError)


async def test_error_stays_none_after_a_clean_stop():
    async with context(ManualClock()) as ssc:
        ssc.push_stream().foreach_batch(ListSink())
        await ssc.start()
    assert ssc.error is None


# -- the test kit shares the implementation -------------------------------------------------------


def test_memory_source_is_the_push_receiver_with_commits():
    assert issubclass(MemorySource, PushReceiver)
    assert MemorySource.run is PushReceiver.run  # its send() skips only what a restore covers
