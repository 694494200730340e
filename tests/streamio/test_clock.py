"""The manual clock: what advance() lets receivers do before each deadline, and the
watcher through which it knows whether a receiver can run."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from streamio import ManualClock, Receiver, ReceiverOutput, StreamingContext, SystemClock
from streamio.clock import watched
from streamio.testing import ListSink

# Upper bound for a wait that only a library bug could make endless.
HANG_GUARD = 10


class StreamReceiver(Receiver[int]):
    """Stores each item the test sends through a memory stream, one put per item."""

    def __init__(self) -> None:
        self.send, self._receive = anyio.create_memory_object_stream[int](100)

    async def run(self, output: ReceiverOutput[int]) -> None:
        async for item in self._receive:
            await output.put(item)


async def test_a_receiver_whose_awaited_future_is_done_runs_before_the_tick():
    clock = ManualClock()
    receiver = StreamReceiver()
    sink = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.receiver_stream(receiver).foreach_batch(sink)
        await ssc.start()
        for item in range(3):
            receiver.send.send_nowait(item)  # the receiver is woken, not yet run
        await clock.advance(1.0)
        assert sink.batches == [(1.0, [0, 1, 2])]


async def test_a_receiver_yielding_inside_an_async_generator_runs_before_the_tick():
    async def numbers():
        for number in range(200):
            # several bare yields per item, inside the generator the receiver awaits
            await anyio.lowlevel.checkpoint()
            await asyncio.sleep(0)
            yield number

    clock = ManualClock()
    sink = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.from_async_iterable(numbers()).foreach_batch(sink)
        ssc.start()
        await clock.advance(1.0)
    assert sink.batches[0] == (1.0, list(range(200)))


async def test_records_of_a_source_that_wakes_between_ticks_are_in_the_next_batch():
    gate, never = anyio.Event(), anyio.Event()

    async def items():
        await gate.wait()
        for item in range(10):
            yield item
        await never.wait()  # the iterator blocks: its receiver's helper stores the items

    clock = ManualClock()
    sink = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.from_async_iterable(items()).foreach_batch(sink)
        await ssc.start()
        await clock.advance(0.5)
        gate.set()
        await clock.advance(0.5)
        assert sink.batches == [(1.0, list(range(10)))]


async def test_a_receiver_that_never_waits_does_not_hold_advance_up():
    class Spinner(Receiver[int]):
        async def run(self, output: ReceiverOutput[int]) -> None:
            while True:
                await anyio.lowlevel.checkpoint()

    clock = ManualClock()
    sink = ListSink()
    with anyio.fail_after(HANG_GUARD):
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            ssc.receiver_stream(Spinner()).foreach_batch(sink)
            await ssc.start()
            await clock.advance(2.0)
            assert sink.times == [1.0, 2.0]


# -- the watcher ---------------------------------------------------------------------------


async def test_watched_is_the_coroutine_itself_on_other_clocks():
    async def nothing() -> None:
        pass

    coroutine = nothing()
    assert watched(SystemClock(), coroutine) is coroutine
    await coroutine


async def test_watched_passes_results_and_errors_through():
    clock = ManualClock()

    async def answer() -> int:
        await anyio.lowlevel.checkpoint()
        return 42

    error = KeyError("mine")

    async def fails() -> None:
        await anyio.lowlevel.checkpoint()
        raise error

    assert await watched(clock, answer()) == 42
    with pytest.raises(KeyError) as info:
        await watched(clock, fails())
    assert info.value is error


async def test_watched_passes_exceptions_thrown_in_on_to_the_coroutine():
    clock = ManualClock()
    seen: list[str] = []
    never = anyio.Event()

    async def waits() -> None:
        try:
            await never.wait()
        except anyio.get_cancelled_exc_class():
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")

    with anyio.move_on_after(0) as scope:
        await watched(clock, waits())
    assert scope.cancelled_caught
    assert seen == ["cancelled", "finally"]

    async def recovers() -> str:
        try:
            await never.wait()
        except anyio.get_cancelled_exc_class():
            pass
        return "went on"

    # a coroutine that swallows the cancellation goes on, as when awaited directly
    with anyio.CancelScope() as scope:
        scope.cancel()
        result = await watched(clock, recovers())
    assert result == "went on"


async def test_watched_hands_the_task_what_the_coroutine_yields_and_closes_it():
    clock = ManualClock()
    future = asyncio.get_running_loop().create_future()
    closed: list[bool] = []

    async def waits_for_the_future() -> Any:
        try:
            return await future
        finally:
            closed.append(True)

    async def outer() -> Any:
        return await watched(clock, waits_for_the_future())

    coroutine = outer()
    assert coroutine.send(None) is future  # the future itself reaches the task
    coroutine.close()
    assert closed == [True]
    future.cancel()
