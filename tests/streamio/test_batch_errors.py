"""``StreamingContext(on_batch_error=...)``: what a failed batch does to the context."""

from __future__ import annotations

import pytest

from streamio import (
    BatchInfo,
    ConfigurationError,
    ManualClock,
    OperatorError,
    StreamingContext,
    StreamingListener,
)
from streamio.testing import ListSink, MemorySource, step


class Failures(StreamingListener):
    """Keeps every completed batch's time and error."""

    def __init__(self) -> None:
        self.completed: list[tuple[float, BaseException | None]] = []

    def on_batch_completed(self, info: BatchInfo) -> None:
        self.completed.append((info.batch_time, info.error))


def failed_func(i: int) -> int:
    if i == 1:  # the second batch fails
        raise ValueError("This is a special error")
    return i


async def test_failed_func_with_resetting_failure():
    """PySpark's test of the same name: the batches after a failed one still run,
    and the error is raised from await_termination, once."""
    clock = ManualClock()
    sink: ListSink[int] = ListSink()
    failures = Failures()
    # the block's exit raises nothing: the error was raised by await_termination
    async with StreamingContext(batch_interval=1.0, clock=clock, on_batch_error="continue") as ssc:
        ssc.queue_stream([[d] for d in range(4)]).map(failed_func).foreach_batch(sink)
        ssc.add_listener(failures)
        await ssc.start()
        await step(ssc, 4)
        assert [records for _, records in sink.batches] == [[0], [2], [3]]
        with pytest.raises(OperatorError, match="This is a special error") as raised:
            await ssc.await_termination(timeout=10)
        assert isinstance(raised.value.__cause__, ValueError)
        assert raised.value.batch_time == 2.0
        # raised once: the next wait times out, the context is still running
        assert await ssc.await_termination(timeout=0) is False
        await step(ssc, 1)
        assert sink.times == [1.0, 3.0, 4.0, 5.0]
    assert [time for time, _ in failures.completed] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [error is not None for _, error in failures.completed] == [
        False,
        True,
        False,
        False,
        False,
    ]
    assert isinstance(failures.completed[1][1], OperatorError)


async def test_a_failed_batch_stops_the_context_by_default():
    clock = ManualClock()
    sink: ListSink[int] = ListSink()
    with pytest.raises(OperatorError, match="This is a special error"):
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            ssc.queue_stream([[d] for d in range(4)]).map(failed_func).foreach_batch(sink)
            await ssc.start()
            await step(ssc, 4)
            await ssc.await_termination()
    assert sink.batches == [(1.0, [0])]


async def test_an_error_no_wait_raised_is_raised_by_the_block():
    clock = ManualClock()
    sink: ListSink[int] = ListSink()
    with pytest.raises(OperatorError, match="This is a special error"):
        async with StreamingContext(
            batch_interval=1.0, clock=clock, on_batch_error="continue"
        ) as ssc:
            ssc.queue_stream([[d] for d in range(4)]).map(failed_func).foreach_batch(sink)
            await ssc.start()
            await step(ssc, 4)
    assert sink.times == [1.0, 3.0, 4.0]


async def test_a_failed_batch_is_not_committed_and_the_next_commit_covers_it():
    clock = ManualClock()
    source: MemorySource[int] = MemorySource()
    sink: ListSink[int] = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock, on_batch_error="continue") as ssc:
        ssc.receiver_stream(source).map(failed_func).foreach_batch(sink)
        await ssc.start()
        await source.send([0])
        await step(ssc, 1)
        assert source.commits == [1]
        await source.send([1])
        await step(ssc, 1)  # fails: position 2 is not committed
        assert source.commits == [1]
        await step(ssc, 1)  # no records: the failed batch's position is committed now
        assert source.commits == [1, 2]
        await source.send([2, 3])
        await step(ssc, 1)
        assert source.commits == [1, 2, 4]
        with pytest.raises(OperatorError):
            await ssc.await_termination(timeout=0)
    assert sink.batches == [(1.0, [0]), (3.0, []), (4.0, [2, 3])]


async def test_the_next_records_commit_covers_a_failed_batch():
    clock = ManualClock()
    source: MemorySource[int] = MemorySource()
    sink: ListSink[int] = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock, on_batch_error="continue") as ssc:
        ssc.receiver_stream(source).map(failed_func).foreach_batch(sink)
        await ssc.start()
        await source.send([1])
        await step(ssc, 1)  # fails
        await source.send([5])
        await step(ssc, 1)
        assert source.commits == [2]
        with pytest.raises(OperatorError):
            await ssc.await_termination(timeout=0)
    assert sink.batches == [(2.0, [5])]


@pytest.mark.parametrize("policy", ["Stop", "retry", None, 1])
def test_a_wrong_on_batch_error_fails_when_the_context_is_built(policy):
    with pytest.raises(ConfigurationError, match=r'on_batch_error must be "stop".*"continue"'):
        StreamingContext(batch_interval=1.0, on_batch_error=policy)  # type: ignore[arg-type]
