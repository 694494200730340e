"""Unit tests of ChunkBuffer, the bounded buffer between a receiver and the scheduler."""

from __future__ import annotations

import itertools
import tracemalloc

import anyio
import pytest

from streamio import ConfigurationError
from streamio.buffer import BufferStatistics, ChunkBuffer

# Upper bound for awaits that must not block; reaching it means the buffer hung.
HANG_GUARD = 10


def stats(used: int, capacity: int, waiting: int = 0) -> BufferStatistics:
    return BufferStatistics(used=used, capacity=capacity, waiting_senders=waiting)


def take(buffer: ChunkBuffer, limit: int | None = None) -> tuple[list, object]:
    """The records ``buffer.take`` returns (as chunks), flattened, and its position."""
    chunks, position = buffer.take(limit)
    return list(itertools.chain.from_iterable(chunks)), position


async def until(buffer: ChunkBuffer, predicate) -> None:
    with anyio.fail_after(HANG_GUARD):
        await buffer.wait_until(predicate)


# -- construction ---------------------------------------------------------------


@pytest.mark.parametrize("capacity", [0, -1, 1.5, True, "10", None])
def test_capacity_must_be_a_positive_whole_number(capacity):
    with pytest.raises(ConfigurationError, match="positive whole number of records"):
        ChunkBuffer(capacity)


def test_new_buffer_is_empty():
    buffer = ChunkBuffer(3)
    assert buffer.statistics() == stats(0, 3)
    assert len(buffer) == 0
    assert take(buffer) == ([], None)


# -- capacity ---------------------------------------------------------------------


async def test_capacity_is_counted_in_records_not_chunks():
    buffer = ChunkBuffer(5)
    with anyio.fail_after(HANG_GUARD):
        # five one-record chunks fit, and so does one chunk of exactly the capacity
        for record in range(5):
            await buffer.put_many([record])
    assert buffer.statistics() == stats(5, 5)
    assert len(buffer) == 5
    assert take(buffer) == ([0, 1, 2, 3, 4], None)

    with anyio.fail_after(HANG_GUARD):
        await buffer.put_many(["a", "b", "c", "d", "e"])
    assert buffer.statistics() == stats(5, 5)


async def test_put_many_waits_when_the_records_exceed_the_capacity():
    buffer = ChunkBuffer(5)
    await buffer.put_many([1, 2, 3])
    stored = anyio.Event()

    async def sender():
        await buffer.put_many([4, 5, 6])
        stored.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sender)
        # two of the three records fit; the sender waits with the third in hand
        await until(buffer, lambda s: s.waiting_senders == 1)
        assert buffer.statistics() == stats(5, 5, 1)
        assert not stored.is_set()
        assert take(buffer) == ([1, 2, 3, 4, 5], None)
        await stored.wait()
    assert buffer.statistics() == stats(1, 5)
    assert take(buffer) == ([6], None)


async def test_put_many_larger_than_capacity_is_split_and_position_goes_with_last_piece():
    buffer = ChunkBuffer(3)
    done = anyio.Event()

    async def sender():
        await buffer.put_many(range(7), position="end-of-chunk")
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sender)
        await until(buffer, lambda s: s.used == 3 and s.waiting_senders == 1)
        assert take(buffer) == ([0, 1, 2], None)
        await until(buffer, lambda s: s.used == 3 and s.waiting_senders == 1)
        assert take(buffer) == ([3, 4, 5], None)
        await done.wait()
    assert buffer.statistics() == stats(1, 3)
    assert take(buffer) == ([6], "end-of-chunk")
    assert buffer.statistics() == stats(0, 3)


async def test_empty_put_many_with_a_position_carries_only_the_position():
    buffer = ChunkBuffer(2)
    await buffer.put_many([])
    assert take(buffer) == ([], None)
    await buffer.put_many([], position=7)
    assert buffer.statistics() == stats(0, 2)
    assert take(buffer) == ([], 7)
    assert take(buffer) == ([], None)


# -- take -----------------------------------------------------------------------------


async def test_take_with_a_limit_splits_chunks_and_keeps_their_position_for_the_last_piece():
    buffer = ChunkBuffer(10)
    await buffer.put_many([1, 2, 3], position="p1")
    await buffer.put_many([4, 5, 6], position="p2")
    assert take(buffer, 2) == ([1, 2], None)
    assert buffer.statistics() == stats(4, 10)
    # the rest of the first chunk completes it: its position is reported
    assert take(buffer, 2) == ([3, 4], "p1")
    assert take(buffer, 10) == ([5, 6], "p2")
    assert take(buffer, 10) == ([], None)
    assert buffer.statistics() == stats(0, 10)


async def test_take_reports_the_position_of_the_last_whole_chunk():
    buffer = ChunkBuffer(10)
    await buffer.put_many([1], position="a")
    await buffer.put_many([2])
    await buffer.put_many([3], position="c")
    await buffer.put_many([4, 5], position="d")
    assert take(buffer, 4) == ([1, 2, 3, 4], "c")
    assert take(buffer) == ([5], "d")


async def test_take_zero_takes_nothing():
    buffer = ChunkBuffer(10)
    await buffer.put_many([1, 2], position="p")
    assert take(buffer, 0) == ([], None)
    assert buffer.statistics() == stats(2, 10)
    assert take(buffer) == ([1, 2], "p")


async def test_take_frees_space_for_a_waiting_sender():
    buffer = ChunkBuffer(2)
    await buffer.put_many([1, 2])
    done = anyio.Event()

    async def sender():
        await buffer.put_many([3])
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sender)
        await until(buffer, lambda s: s.waiting_senders == 1)
        assert take(buffer, 1) == ([1], None)
        await done.wait()
    assert buffer.statistics() == stats(2, 2)
    assert take(buffer) == ([2, 3], None)


# -- cancellation ----------------------------------------------------------------------


async def test_cancelled_put_many_stores_the_rest_of_its_chunk_over_capacity():
    buffer = ChunkBuffer(2)
    await buffer.put_many([1, 2])
    async with anyio.create_task_group() as tg:
        tg.start_soon(buffer.put_many, [3, 4, 5], "p")
        await until(buffer, lambda s: s.waiting_senders == 1)
        tg.cancel_scope.cancel()
    assert buffer.statistics() == stats(5, 2)
    assert take(buffer) == ([1, 2, 3, 4, 5], "p")
    assert buffer.statistics() == stats(0, 2)


async def test_cancelled_put_many_after_a_partial_store_loses_no_record():
    buffer = ChunkBuffer(3)
    await buffer.put_many([1, 2])
    async with anyio.create_task_group() as tg:
        tg.start_soon(buffer.put_many, [3, 4, 5], "p")
        # the first record of the chunk is stored, the sender waits with two in hand
        await until(buffer, lambda s: s.used == 3 and s.waiting_senders == 1)
        tg.cancel_scope.cancel()
    assert buffer.statistics() == stats(5, 3)
    assert take(buffer, 3) == ([1, 2, 3], None)
    assert take(buffer) == ([4, 5], "p")


async def test_cancelled_put_stores_its_record():
    buffer = ChunkBuffer(1)
    await buffer.put("a")
    async with anyio.create_task_group() as tg:
        tg.start_soon(buffer.put, "b", 2)
        await until(buffer, lambda s: s.waiting_senders == 1)
        tg.cancel_scope.cancel()
    assert take(buffer) == (["a", "b"], 2)


# -- statistics ------------------------------------------------------------------------


async def test_statistics_count_waiting_senders():
    buffer = ChunkBuffer(1)
    await buffer.put_many([0])
    async with anyio.create_task_group() as tg:
        for record in (1, 2, 3):
            tg.start_soon(buffer.put_many, [record])
        await until(buffer, lambda s: s.waiting_senders == 3)
        assert buffer.statistics() == stats(1, 1, 3)
        taken = take(buffer)[0]
        for waiting in (2, 1, 0):
            await until(buffer, lambda s, w=waiting: s.used == 1 and s.waiting_senders == w)
            taken += take(buffer)[0]
    assert sorted(taken) == [0, 1, 2, 3]
    assert buffer.statistics() == stats(0, 1)


async def test_wait_until_returns_at_once_when_the_predicate_holds():
    buffer = ChunkBuffer(4)
    await buffer.put_many([1, 2])
    with anyio.fail_after(HANG_GUARD):
        await buffer.wait_until(lambda s: s.used == 2)


async def test_wait_until_is_woken_by_puts_and_takes():
    buffer = ChunkBuffer(4)
    seen: list[BufferStatistics] = []

    async def watcher(target: int):
        await until(buffer, lambda s: s.used == target)
        seen.append(buffer.statistics())

    async with anyio.create_task_group() as tg:
        tg.start_soon(watcher, 3)
        await buffer.put_many([1])
        await buffer.put_many([2, 3])
    assert seen == [stats(3, 4)]
    async with anyio.create_task_group() as tg:
        tg.start_soon(watcher, 1)
        await anyio.lowlevel.checkpoint()
        take(buffer, 2)
    assert seen[-1] == stats(1, 4)


# -- put() ------------------------------------------------------------------------------


async def test_put_keeps_order_and_counts_records():
    buffer = ChunkBuffer(100)
    for record in range(10):
        await buffer.put(record)
    assert buffer.statistics() == stats(10, 100)
    assert take(buffer, 4) == ([0, 1, 2, 3], None)
    await buffer.put(10)
    assert take(buffer) == ([4, 5, 6, 7, 8, 9, 10], None)


async def test_put_with_a_position_closes_the_coalesced_chunk():
    buffer = ChunkBuffer(100)
    await buffer.put(1)
    await buffer.put(2, position="p2")
    await buffer.put(3)
    await buffer.put(4)
    # the positioned record ends a chunk: taking up to it reports its position
    assert take(buffer, 2) == ([1, 2], "p2")
    assert take(buffer) == ([3, 4], None)


async def test_put_does_not_coalesce_into_a_chunk_stored_by_put_many():
    buffer = ChunkBuffer(100)
    await buffer.put(1)
    await buffer.put_many([2, 3], position="p")
    await buffer.put(4)
    assert take(buffer, 3) == ([1, 2, 3], "p")
    assert take(buffer) == ([4], None)


async def test_put_coalesces_into_the_rest_of_a_partly_taken_chunk():
    buffer = ChunkBuffer(100)
    await buffer.put("a")
    await buffer.put("b")
    assert take(buffer, 1) == (["a"], None)
    await buffer.put("c")
    assert take(buffer) == (["b", "c"], None)
    # once everything was taken, a new put starts a fresh chunk
    await buffer.put("d")
    assert take(buffer) == (["d"], None)


async def test_put_waits_when_the_buffer_is_full():
    buffer = ChunkBuffer(2)
    await buffer.put(1)
    await buffer.put(2)
    done = anyio.Event()

    async def sender():
        await buffer.put(3)
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sender)
        await until(buffer, lambda s: s.waiting_senders == 1)
        assert buffer.statistics() == stats(2, 2, 1)
        assert not done.is_set()
        assert take(buffer) == ([1, 2], None)
        await done.wait()
    assert take(buffer) == ([3], None)


async def test_put_coalesces_records_into_chunks_instead_of_one_chunk_per_record():
    count = 100_000
    records = [object() for _ in range(count)]
    buffer = ChunkBuffer(count)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for record in records:
            await buffer.put(record)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(buffer) == count
    # one list of 100k references is ~0.8 MB; a chunk (list + tuple) per record
    # would be more than 10 MB
    assert held < 3_000_000
    taken, position = take(buffer)
    assert position is None
    assert len(taken) == count
    assert all(a is b for a, b in zip(taken, records, strict=True))
