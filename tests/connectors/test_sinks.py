"""The async callback sink: calls per batch and per chunk, concurrency, retries."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

import streamio.connectors.sinks as sinks_module
from streamio import ConfigurationError, OperatorError, StreamingContext
from streamio.connectors.sinks import AsyncCallbackSink
from streamio.errors import ConnectorError
from streamio.testing import ManualClock, MemorySource, step

HANG_GUARD = 10


class Flaky(Exception):
    pass


@pytest.fixture
def delays(monkeypatch) -> list[float]:
    """Backoff waits are recorded instead of slept."""
    recorded: list[float] = []

    async def record(seconds: float) -> None:
        recorded.append(seconds)
        await anyio.lowlevel.checkpoint()

    monkeypatch.setattr(sinks_module, "_sleep", record)
    return recorded


def context() -> StreamingContext:
    return StreamingContext(batch_interval=1.0, clock=ManualClock())


async def test_one_call_per_batch_with_its_time_and_records():
    calls: list[tuple[float, list[int]]] = []

    async def save(batch_time: float, records: list[int]) -> None:
        await anyio.lowlevel.checkpoint()
        calls.append((batch_time, records))

    source = MemorySource()
    async with context() as ssc:
        ssc.receiver_stream(source).map(lambda x: x * 10).foreach_batch(AsyncCallbackSink(save))
        await ssc.start()
        await source.send([1, 2, 3])
        await step(ssc)
        await step(ssc)  # an empty batch makes no call
        await source.send([4])
        await step(ssc)
    assert calls == [(1.0, [10, 20, 30]), (3.0, [40])]
    assert source.commits == [3, 4]


async def test_chunks_with_at_most_concurrency_calls_in_flight():
    concurrency = 3
    in_flight = 0
    most = 0
    full = anyio.Event()
    chunks: list[list[int]] = []

    async def save(batch_time: float, records: list[int]) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == concurrency:
            full.set()
        with anyio.fail_after(HANG_GUARD):
            await full.wait()  # every call waits until the limit is reached once
        chunks.append(records)
        in_flight -= 1

    sink = AsyncCallbackSink(save, concurrency=concurrency, chunk_size=4)
    await sink(1.0, list(range(30)))
    assert most == concurrency
    assert sorted(chunks) == [list(range(n, min(n + 4, 30))) for n in range(0, 30, 4)]
    assert sink.calls == 8


async def test_concurrency_is_shared_by_every_batch_using_the_sink():
    gate = anyio.Event()
    in_flight = 0
    most = 0

    async def save(batch_time: float, records: list[int]) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await gate.wait()
        in_flight -= 1

    sink = AsyncCallbackSink(save, concurrency=2)
    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            for time in (1.0, 2.0, 3.0):
                tg.start_soon(sink, time, [time])
            while in_flight < 2:
                await anyio.lowlevel.checkpoint()
            for _ in range(20):  # the third call cannot start while two are in flight
                await anyio.lowlevel.checkpoint()
            assert in_flight == 2
            gate.set()
    assert most == 2
    assert sink.calls == 3


async def test_failed_calls_are_retried_with_exponential_backoff(delays):
    attempts: list[list[str]] = []

    async def save(batch_time: float, records: list[str]) -> None:
        attempts.append(records)
        if len(attempts) < 3:
            raise Flaky(f"attempt {len(attempts)}")

    source = MemorySource()
    async with context() as ssc:
        sink = AsyncCallbackSink(save, max_attempts=3, backoff=0.5)
        ssc.receiver_stream(source).foreach_batch(sink)
        await ssc.start()
        await source.send(["x", "y"])
        await step(ssc)
    assert attempts == [["x", "y"]] * 3
    assert delays == [0.5, 1.0]
    assert sink.retries == 2
    assert source.commits == [2]


async def test_backoff_is_capped(delays):
    async def save(batch_time: float, records: list[str]) -> None:
        raise Flaky("down")

    sink = AsyncCallbackSink(save, max_attempts=6, backoff=1.0, max_backoff=3.0)
    with pytest.raises(Flaky):
        await sink(1.0, ["x"])
    assert delays == [1.0, 2.0, 3.0, 3.0, 3.0]
    assert sink.calls == 6


async def test_exhausted_retries_fail_the_batch_and_leave_it_uncommitted(delays):
    errors: list[Flaky] = []

    async def save(batch_time: float, records: list[str]) -> None:
        if "poison" in records:
            errors.append(Flaky("rejected"))
            raise errors[-1]

    source = MemorySource()
    with pytest.raises(OperatorError) as raised:
        async with context() as ssc:
            ssc.receiver_stream(source).foreach_batch(AsyncCallbackSink(save, max_attempts=2))
            await ssc.start()
            await source.send(["fine"])
            await step(ssc)
            await source.send(["poison"])
            await step(ssc)
    assert raised.value.batch_time == 2.0
    assert raised.value.__cause__ is errors[-1]
    assert len(errors) == 2
    assert source.commits == [1]  # the failed batch's position is not committed


async def test_a_failing_chunk_cancels_the_others_and_its_error_propagates(delays):
    started = anyio.Event()
    cancelled: list[list[int]] = []

    async def save(batch_time: float, records: list[int]) -> None:
        if records[0] == 0:
            try:
                started.set()
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                cancelled.append(records)
                raise
        await started.wait()
        raise Flaky(f"chunk {records}")

    sink = AsyncCallbackSink(save, concurrency=2, chunk_size=2, max_attempts=1)
    with pytest.raises(Flaky) as raised, anyio.fail_after(HANG_GUARD):
        await sink(1.0, [0, 1, 2, 3, 4, 5])
    assert str(raised.value) == "chunk [2, 3]"
    assert cancelled == [[0, 1]]
    assert sink.calls == 2  # the last chunk never started


@pytest.mark.parametrize(
    ("error", "calls"),
    [
        (ConnectorError("bad credentials", retriable=False), 1),
        (ConnectorError("busy", retriable=True), 3),
        (KeyError("not retried"), 1),
    ],
)
async def test_what_is_retried(delays, error, calls):
    async def save(batch_time: float, records: list[str]) -> None:
        raise error

    sink = AsyncCallbackSink(save, retry_on=(ConnectorError, OSError))
    with pytest.raises(type(error)):
        await sink(1.0, ["x"])
    assert sink.calls == calls


async def test_a_plain_function_works_too():
    seen: list[Any] = []
    sink = AsyncCallbackSink(lambda time, records: seen.append((time, records)), chunk_size=2)
    await sink(1.0, [1, 2, 3])
    assert sorted(seen) == [(1.0, [1, 2]), (1.0, [3])]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"concurrency": 0},
        {"max_attempts": 0},
        {"backoff": -1},
        {"max_backoff": float("inf")},
        {"chunk_size": 0},
        {"chunk_size": True},
        {"retry_on": ()},
        {"retry_on": KeyboardInterrupt},
        {"retry_on": "ValueError"},
    ],
)
def test_invalid_arguments(kwargs):
    async def save(batch_time: float, records: list[Any]) -> None:
        pass

    with pytest.raises(ConfigurationError):
        AsyncCallbackSink(save, **kwargs)


def test_not_a_function():
    with pytest.raises(ConfigurationError):
        AsyncCallbackSink("save")
