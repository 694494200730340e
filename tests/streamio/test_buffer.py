"""Unit tests of ChunkBuffer, the bounded buffer between a receiver and the scheduler."""

from __future__ import annotations

import itertools
import tracemalloc
from collections.abc import Iterator, Sequence

import anyio
import pytest

from streamio import ConfigurationError, LazyChunk, ManualClock, StreamingContext
from streamio.buffer import DEFAULT_BUFFER_BYTES, BufferStatistics, ChunkBuffer
from streamio.chunk import estimate_nbytes
from streamio.testing import ListSink, MemorySource, step

MiB = 2**20

# Upper bound for awaits that must not block; reaching it means the buffer hung.
HANG_GUARD = 10


def stats(used: int, capacity: int | None, waiting: int = 0) -> tuple[int, int | None, int]:
    """What ``counts`` returns for a buffer in that state."""
    return used, capacity, waiting


def counts(buffer: ChunkBuffer) -> tuple[int, int | None, int]:
    """The buffer's statistics in records: used, capacity, waiting senders."""
    s = buffer.statistics()
    return s.used, s.capacity, s.waiting_senders


def take(buffer: ChunkBuffer, limit: int | None = None) -> tuple[list, object]:
    """The records ``buffer.take`` returns (as chunks), flattened, and its position."""
    chunks, position = buffer.take(limit)
    return list(itertools.chain.from_iterable(chunks)), position


async def until(buffer: ChunkBuffer, predicate) -> None:
    with anyio.fail_after(HANG_GUARD):
        await buffer.wait_until(predicate)


# -- construction ---------------------------------------------------------------


@pytest.mark.parametrize("capacity", [0, -1, 1.5, True, "10"])
def test_capacity_must_be_a_positive_whole_number(capacity):
    with pytest.raises(ConfigurationError, match="positive whole number of records or None"):
        ChunkBuffer(capacity)


def test_new_buffer_is_empty():
    buffer = ChunkBuffer(3)
    assert counts(buffer) == stats(0, 3)
    assert len(buffer) == 0
    assert take(buffer) == ([], None)


# -- capacity ---------------------------------------------------------------------


async def test_capacity_is_counted_in_records_not_chunks():
    buffer = ChunkBuffer(5)
    with anyio.fail_after(HANG_GUARD):
        # five one-record chunks fit, and so does one chunk of exactly the capacity
        for record in range(5):
            await buffer.put_many([record])
    assert counts(buffer) == stats(5, 5)
    assert len(buffer) == 5
    assert take(buffer) == ([0, 1, 2, 3, 4], None)

    with anyio.fail_after(HANG_GUARD):
        await buffer.put_many(["a", "b", "c", "d", "e"])
    assert counts(buffer) == stats(5, 5)


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
        assert counts(buffer) == stats(5, 5, 1)
        assert not stored.is_set()
        assert take(buffer) == ([1, 2, 3, 4, 5], None)
        await stored.wait()
    assert counts(buffer) == stats(1, 5)
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
    assert counts(buffer) == stats(1, 3)
    assert take(buffer) == ([6], "end-of-chunk")
    assert counts(buffer) == stats(0, 3)


async def test_empty_put_many_with_a_position_carries_only_the_position():
    buffer = ChunkBuffer(2)
    await buffer.put_many([])
    assert take(buffer) == ([], None)
    await buffer.put_many([], position=7)
    assert counts(buffer) == stats(0, 2)
    assert take(buffer) == ([], 7)
    assert take(buffer) == ([], None)


# -- take -----------------------------------------------------------------------------


async def test_take_with_a_limit_splits_chunks_and_keeps_their_position_for_the_last_piece():
    buffer = ChunkBuffer(10)
    await buffer.put_many([1, 2, 3], position="p1")
    await buffer.put_many([4, 5, 6], position="p2")
    assert take(buffer, 2) == ([1, 2], None)
    assert counts(buffer) == stats(4, 10)
    # the rest of the first chunk completes it: its position is reported
    assert take(buffer, 2) == ([3, 4], "p1")
    assert take(buffer, 10) == ([5, 6], "p2")
    assert take(buffer, 10) == ([], None)
    assert counts(buffer) == stats(0, 10)


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
    assert counts(buffer) == stats(2, 10)
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
    assert counts(buffer) == stats(2, 2)
    assert take(buffer) == ([2, 3], None)


# -- cancellation ----------------------------------------------------------------------


async def test_cancelled_put_many_stores_the_rest_of_its_chunk_over_capacity():
    buffer = ChunkBuffer(2)
    await buffer.put_many([1, 2])
    async with anyio.create_task_group() as tg:
        tg.start_soon(buffer.put_many, [3, 4, 5], "p")
        await until(buffer, lambda s: s.waiting_senders == 1)
        tg.cancel_scope.cancel()
    assert counts(buffer) == stats(5, 2)
    assert take(buffer) == ([1, 2, 3, 4, 5], "p")
    assert counts(buffer) == stats(0, 2)


async def test_cancelled_put_many_after_a_partial_store_loses_no_record():
    buffer = ChunkBuffer(3)
    await buffer.put_many([1, 2])
    async with anyio.create_task_group() as tg:
        tg.start_soon(buffer.put_many, [3, 4, 5], "p")
        # the first record of the chunk is stored, the sender waits with two in hand
        await until(buffer, lambda s: s.used == 3 and s.waiting_senders == 1)
        tg.cancel_scope.cancel()
    assert counts(buffer) == stats(5, 3)
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
        assert counts(buffer) == stats(1, 1, 3)
        taken = take(buffer)[0]
        for waiting in (2, 1, 0):
            await until(buffer, lambda s, w=waiting: s.used == 1 and s.waiting_senders == w)
            taken += take(buffer)[0]
    assert sorted(taken) == [0, 1, 2, 3]
    assert counts(buffer) == stats(0, 1)


async def test_wait_until_returns_at_once_when_the_predicate_holds():
    buffer = ChunkBuffer(4)
    await buffer.put_many([1, 2])
    with anyio.fail_after(HANG_GUARD):
        await buffer.wait_until(lambda s: s.used == 2)


async def test_wait_until_is_woken_by_puts_and_takes():
    buffer = ChunkBuffer(4)
    seen: list[tuple[int, int | None, int]] = []

    async def watcher(target: int):
        await until(buffer, lambda s: s.used == target)
        seen.append(counts(buffer))

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
    assert counts(buffer) == stats(10, 100)
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
        assert counts(buffer) == stats(2, 2, 1)
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


# -- the limit in bytes -------------------------------------------------------------------


def test_a_new_buffer_shows_both_limits():
    buffer = ChunkBuffer()
    assert buffer.statistics() == BufferStatistics(
        used=0, capacity=None, waiting_senders=0, used_bytes=0, max_bytes=DEFAULT_BUFFER_BYTES
    )
    assert ChunkBuffer(7, max_bytes=1000).statistics() == BufferStatistics(0, 7, 0, 0, 1000)


@pytest.mark.parametrize("max_bytes", [0, -1, 1.5, True, "1000", None])
def test_max_bytes_must_be_a_positive_whole_number(max_bytes):
    with pytest.raises(ConfigurationError, match="buffer_bytes must be a positive whole number"):
        ChunkBuffer(max_bytes=max_bytes)


async def test_bytes_are_estimated_once_per_chunk_and_freed_exactly_by_takes():
    buffer = ChunkBuffer()
    first = [f"line {n} " * 5 for n in range(100)]
    second = [b"x" * 1000] * 7
    await buffer.put_many(first, position="p1")
    assert buffer.statistics().used_bytes == estimate_nbytes(first)
    await buffer.put_many(second, position="p2")
    held = estimate_nbytes(first) + estimate_nbytes(second)
    assert buffer.statistics().used_bytes == held
    # takes that split chunks free their share; the shares add up to the whole
    for limit in (30, 1, 70, 3):
        before = buffer.statistics().used_bytes
        take(buffer, limit)
        assert 0 < buffer.statistics().used_bytes < before
    assert take(buffer) == ([b"x" * 1000] * 3, "p2")
    assert buffer.statistics().used_bytes == 0


async def test_put_many_waits_when_the_bytes_exceed_the_budget_and_splits_the_chunk():
    records = [bytes([n]) * 1000 for n in range(12)]  # distinct objects of one size
    buffer = ChunkBuffer(max_bytes=5 * estimate_nbytes(records[:1]))  # no limit in records
    done = anyio.Event()

    async def sender():
        await buffer.put_many(records, position="end")
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sender)
        for start in (0, 5):
            await until(buffer, lambda s: s.used == 5 and s.waiting_senders == 1)
            assert buffer.statistics().used_bytes <= buffer.statistics().max_bytes
            assert take(buffer) == (records[start : start + 5], None)
        await done.wait()
    assert take(buffer) == (records[10:], "end")
    assert buffer.statistics().used_bytes == 0


async def test_a_record_larger_than_the_budget_is_stored_alone():
    buffer = ChunkBuffer(max_bytes=1000)
    huge = b"h" * 10_000
    with anyio.fail_after(HANG_GUARD):
        await buffer.put_many([huge])  # an empty buffer takes one record, whatever its size
    assert counts(buffer) == stats(1, None)
    async with anyio.create_task_group() as tg:
        tg.start_soon(buffer.put_many, [b"small", huge], "end")
        await until(buffer, lambda s: s.waiting_senders == 1)
        assert counts(buffer) == stats(1, None, 1)
        assert take(buffer) == ([huge], None)
        await until(buffer, lambda s: s.used == 1 and s.waiting_senders == 1)  # one at a time
        assert take(buffer) == ([b"small"], None)
    assert take(buffer) == ([huge], "end")


async def test_a_producer_of_huge_records_is_held_back_by_bytes():
    # 64 records of 1 MiB, four per chunk, into an 8 MiB buffer that a consumer
    # empties whenever the producer waits: what is allocated stays near the budget
    budget, chunks = 8 * MiB, 16
    buffer = ChunkBuffer(max_bytes=budget)

    async def producer():
        for _ in range(chunks):
            await buffer.put_many([b"h" * MiB for _ in range(4)])

    tracemalloc.start()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(producer)
            taken = 0
            while taken < 4 * chunks:
                await until(
                    buffer,
                    lambda s, t=taken: s.used > 0 and (s.waiting_senders == 1 or s.used + t == 64),
                )
                assert buffer.statistics().used_bytes <= budget
                taken += sum(map(len, buffer.take()[0]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the buffer's 8 MiB, a chunk in the producer's hands and the records just taken
    assert peak < budget + 4 * MiB + 4 * MiB


async def test_put_charges_records_by_bytes_and_waits_when_the_budget_is_full():
    record = b"p" * MiB
    buffer = ChunkBuffer(max_bytes=4 * estimate_nbytes([record]))
    done = anyio.Event()

    async def sender():
        for _ in range(6):
            await buffer.put(record)
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sender)
        await until(buffer, lambda s: s.waiting_senders == 1)
        assert counts(buffer) == stats(4, None, 1)
        assert take(buffer) == ([record] * 4, None)
        await done.wait()
    assert take(buffer) == ([record] * 2, None)
    assert buffer.statistics().used_bytes == 0


async def test_both_limits_hold_and_the_first_reached_makes_senders_wait():
    buffer = ChunkBuffer(3, max_bytes=DEFAULT_BUFFER_BYTES)
    async with anyio.create_task_group() as tg:
        tg.start_soon(buffer.put_many, [1, 2, 3, 4])
        await until(buffer, lambda s: s.waiting_senders == 1)
        assert counts(buffer) == stats(3, 3, 1)
        assert take(buffer) == ([1, 2, 3], None)
    assert take(buffer) == ([4], None)


# -- put_many_nowait --------------------------------------------------------------------------


def test_put_many_nowait_stores_a_chunk_that_fits_whole():
    buffer = ChunkBuffer(4)
    buffer.put_many_nowait([1, 2, 3], position="p")
    buffer.put_many_nowait([], position="q")
    assert counts(buffer) == stats(3, 4)
    assert take(buffer) == ([1, 2, 3], "q")


@pytest.mark.parametrize(
    ("capacity", "max_bytes"), [(2, DEFAULT_BUFFER_BYTES), (None, 100)], ids=["records", "bytes"]
)
def test_put_many_nowait_stores_nothing_when_the_chunk_does_not_fit_whole(capacity, max_bytes):
    buffer = ChunkBuffer(capacity, max_bytes=max_bytes)
    buffer.put_many_nowait([b"a"], position="kept")
    before = buffer.statistics()
    with pytest.raises(anyio.WouldBlock):
        buffer.put_many_nowait([b"b" * 50, b"c" * 50], position="lost")
    assert buffer.statistics() == before
    assert take(buffer) == ([b"a"], "kept")


# -- the estimate ------------------------------------------------------------------------------


def traced_size(make):
    """Bytes that tracemalloc sees ``make()`` allocate and keep (and what it made)."""
    tracemalloc.start()
    try:
        made = make()
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return size, made


@pytest.mark.parametrize(
    "make",
    [
        lambda: [f"{n} some words of a line {n}" for n in range(20_000)],
        lambda: [(f"word{n}", n * 1000) for n in range(20_000)],
        lambda: [{"id": n * 1000, "name": f"name {n}"} for n in range(5_000)],
        lambda: [bytes(n % 3000) for n in range(5_000)],
    ],
    ids=["lines", "pairs", "dicts", "bytes"],
)
def test_the_estimate_is_close_to_what_the_records_allocate(make):
    size, records = traced_size(make)
    assert 0.75 * size < estimate_nbytes(records) < 1.35 * size


class CountingSequence(Sequence[str]):
    """A long sequence that counts how many of its records are read."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.reads = 0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index):
        self.reads += 1
        return f"record {index}"


def test_the_estimate_reads_a_sample_not_every_record():
    records = CountingSequence(1_000_000)
    assert estimate_nbytes(records) > 1_000_000 * 8
    assert records.reads <= 32


class Lines(LazyChunk[str]):
    """Lines kept as one text, built on reading; counts what it builds."""

    built = 0

    def __init__(self, text: str) -> None:
        self.text = text

    def __len__(self) -> int:
        return self.text.count("\n")

    def __iter__(self) -> Iterator[str]:
        for line in self.text.splitlines():
            Lines.built += 1
            yield line

    def slice(self, start: int, stop: int) -> Lines:
        lines = self.text.splitlines(keepends=True)[start:stop]
        return type(self)("".join(lines))


class Declared(Lines):
    """A lazy chunk that declares its size: 1,000 bytes a record."""

    @property
    def nbytes(self) -> int:
        return 1000 * len(self)


async def test_a_lazy_chunk_is_estimated_in_its_compact_form_without_building_records():
    Lines.built = 0
    text = "".join(f"line {n}\n" for n in range(10_000))
    buffer = ChunkBuffer()
    await buffer.put_many(Lines(text))
    # the chunk's attribute, one string, is what it holds; no record was built
    assert len(text) < buffer.statistics().used_bytes < len(text) + 1000
    assert Lines.built == 0


async def test_a_lazy_chunk_that_declares_its_size_is_bounded_by_it():
    buffer = ChunkBuffer(max_bytes=5000)
    text = "".join(f"{n}\n" for n in range(8))
    async with anyio.create_task_group() as tg:
        tg.start_soon(buffer.put_many, Declared(text), "end")
        await until(buffer, lambda s: s.waiting_senders == 1)
        assert counts(buffer) == stats(5, None, 1)
        assert buffer.statistics().used_bytes == 5000
        chunks, _ = buffer.take()
        assert all(isinstance(chunk, Declared) for chunk in chunks)
    assert take(buffer) == (["5", "6", "7"], "end")


# -- through a context ---------------------------------------------------------------------------


async def test_at_the_defaults_a_batch_takes_far_more_than_ten_thousand_records():
    # the old default (10,000 records) capped a stream at 10,000 records a batch;
    # now a receiver stores 200,000 lines of a socket's size without waiting
    clock = ManualClock()
    sink: ListSink[int] = ListSink()
    async with StreamingContext(batch_interval=0.5, clock=clock) as ssc:
        source: MemorySource[str] = MemorySource()
        stream = ssc.receiver_stream(source)
        stream.count().foreach_batch(sink)
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            for start in range(0, 200_000, 2_000):
                await source.send(
                    [f"{n} the words of one line " * 2 for n in range(start, start + 2_000)]
                )
        statistics = stream.buffer_statistics()
        assert (statistics.used, statistics.waiting_senders) == (200_000, 0)
        assert statistics.capacity is None and statistics.max_bytes == DEFAULT_BUFFER_BYTES
        assert 200_000 * 100 < statistics.used_bytes < DEFAULT_BUFFER_BYTES
        await step(ssc)
    assert sink.batches == [(0.5, [200_000])]


async def test_a_stream_of_huge_records_is_bounded_by_its_budget_and_loses_nothing():
    clock = ManualClock()
    budget = 4 * MiB
    sink: ListSink[int] = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock, buffer_bytes=budget) as ssc:
        source: MemorySource[bytes] = MemorySource()
        stream = ssc.receiver_stream(source)
        stream.map(len).foreach_batch(sink)
        await ssc.start()
        async with anyio.create_task_group() as tg:

            async def send_all():
                for _ in range(3):
                    await source.send([b"h" * MiB for _ in range(4)])

            tg.start_soon(send_all)
            while (taken := len(sink.records)) < 12:
                await stream.wait_for_buffer(
                    lambda s, t=taken: s.waiting_senders == 1 or s.used + t == 12
                )
                assert stream.buffer_statistics().used_bytes <= budget
                await step(ssc)
    assert sum(len(records) for _, records in sink.batches) == 12
    assert all(len(records) <= 3 for _, records in sink.batches)  # 4 MiB: 3 records and a bit


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "64MiB", None])
def test_buffer_bytes_of_a_context_must_be_a_positive_whole_number(value):
    with pytest.raises(ConfigurationError, match="buffer_bytes must be a whole number >= 1"):
        StreamingContext(batch_interval=1.0, clock=ManualClock(), buffer_bytes=value)


@pytest.mark.parametrize("value", [0, -1, 2.5])
def test_buffer_bytes_of_a_stream_must_be_a_positive_whole_number(value):
    ssc = StreamingContext(batch_interval=1.0, clock=ManualClock())
    with pytest.raises(ConfigurationError, match="buffer_bytes must be a positive whole number"):
        ssc.receiver_stream(MemorySource(), buffer_bytes=value)


async def test_a_stream_takes_its_own_limits_or_the_contexts():
    ssc = StreamingContext(
        batch_interval=1.0, clock=ManualClock(), buffer_capacity=50, buffer_bytes=5000
    )
    inherited = ssc.receiver_stream(MemorySource())
    own = ssc.receiver_stream(MemorySource(), buffer_capacity=7, buffer_bytes=700)
    assert (inherited.buffer_statistics().capacity, inherited.buffer_statistics().max_bytes) == (
        50,
        5000,
    )
    assert (own.buffer_statistics().capacity, own.buffer_statistics().max_bytes) == (7, 700)
