"""Lazy chunks: stored as they are, cut into lazy partitions, built only when read."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import anyio
import pytest

from streamio import LazyChunk, ManualClock, StreamingContext
from streamio.buffer import ChunkBuffer
from streamio.testing import ListSink, MemorySource, step

HANG_GUARD = 10


class Squares(LazyChunk[int]):
    """The squares of ``range(start, stop)``, counting every record it builds."""

    built = 0

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[int]:
        for n in range(self.start, self.stop):
            Squares.built += 1
            yield n * n

    def slice(self, start: int, stop: int) -> Squares:
        return Squares(self.start + start, self.start + stop)


@pytest.fixture(autouse=True)
def reset_build_count():
    Squares.built = 0


# -- the sequence --------------------------------------------------------------------------


def test_a_lazy_chunk_reads_like_a_read_only_sequence():
    chunk = Squares(0, 5)
    assert len(chunk) == 5 and list(chunk) == [0, 1, 4, 9, 16]
    assert chunk[2] == 4 and chunk[-1] == 16
    assert list(chunk[1:3]) == [1, 4] and isinstance(chunk[1:3], Squares)
    assert list(chunk[3:1]) == [] and list(chunk[-2:]) == [9, 16]
    assert chunk[::2] == [0, 4, 16]
    assert 9 in chunk and chunk.index(9) == 3
    assert repr(chunk) == "<Squares of 5 records>"
    with pytest.raises(IndexError):
        chunk[5]


def test_a_chunk_that_forgets_a_method_cannot_be_made():
    class Incomplete(LazyChunk[int]):
        def __len__(self) -> int:
            return 0

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()  # type: ignore[abstract]


# -- the buffer ----------------------------------------------------------------------------


async def test_the_buffer_keeps_a_lazy_chunk_as_it_is_and_slices_it_for_a_limit():
    buffer: ChunkBuffer[int] = ChunkBuffer(100)
    chunk = Squares(0, 10)
    await buffer.put_many(chunk, position="p")
    await buffer.put_many([100, 101])
    assert len(buffer) == 12
    first, position = buffer.take(4)
    assert position is None
    [piece] = first
    assert isinstance(piece, Squares) and list(piece) == [0, 1, 4, 9]
    rest, position = buffer.take()
    assert position == "p"
    assert isinstance(rest[0], Squares) and list(rest[0]) == [16, 25, 36, 49, 64, 81]
    assert rest[1] == [100, 101]
    assert Squares.built == 10  # only by the assertions above


async def test_a_lazy_chunk_larger_than_the_free_space_is_stored_in_lazy_pieces():
    buffer: ChunkBuffer[int] = ChunkBuffer(4)
    taken: list[int] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(buffer.put_many, Squares(0, 10), "end")
        with anyio.fail_after(HANG_GUARD):
            position = None
            while position is None:
                await buffer.wait_until(lambda stats: stats.used > 0)
                chunks, position = buffer.take()
                assert all(isinstance(chunk, Squares) for chunk in chunks)
                assert sum(map(len, chunks)) <= 4
                taken += [record for chunk in chunks for record in chunk]
    assert taken == [n * n for n in range(10)] and position == "end"


# -- through a stream ----------------------------------------------------------------------


async def test_records_of_a_lazy_chunk_are_built_when_a_stage_reads_them():
    clock = ManualClock()
    sink: ListSink[int] = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock, partition_size=4) as ssc:
        source: MemorySource[int] = MemorySource()
        stream = ssc.receiver_stream(source)
        stream.glom().map(len).foreach_batch(sink)
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await source.send(Squares(0, 10))
        assert Squares.built == 0  # stored, not built
        await step(ssc)
        assert sink.batches == [(1.0, [4, 4, 2])]  # partitions of at most 4, lazily cut
        assert Squares.built == 10
        assert source.commits == [10]


async def test_lazy_and_plain_chunks_keep_their_order_and_every_operator_reads_them():
    clock = ManualClock()
    totals: ListSink[int] = ListSink()
    records: ListSink[int] = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock, partition_size=3) as ssc:
        source: MemorySource[int] = MemorySource()
        stream = ssc.receiver_stream(source)
        stream.foreach_batch(records)
        stream.filter(lambda n: n % 2 == 0).reduce(lambda a, b: a + b).foreach_batch(totals)
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await source.send([-1, -2])
            await source.send(Squares(1, 5))
            await source.send([7])
            await source.send(Squares(5, 7))
        await step(ssc)
    assert records.batches == [(1.0, [-1, -2, 1, 4, 9, 16, 7, 25, 36])]
    assert totals.batches == [(1.0, [-2 + 4 + 16 + 36])]
    assert Squares.built == 2 * 6  # two consumers read the input: built once for each


async def test_a_rate_limit_cuts_a_lazy_chunk_across_batches_losing_nothing():
    clock = ManualClock()
    sink: ListSink[int] = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        source: MemorySource[int] = MemorySource()
        ssc.receiver_stream(source, max_rate=4).foreach_batch(sink)
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await source.send(Squares(0, 10))
        await step(ssc, 3)
    assert sink.batches == [(1.0, [0, 1, 4, 9]), (2.0, [16, 25, 36, 49]), (3.0, [64, 81])]
    assert source.commits == [10]  # the position goes with the chunk's last piece


def test_a_lazy_chunk_travels_to_a_process_pool_as_it_is():
    chunk = pickle.loads(pickle.dumps(Squares(2, 4)))
    assert isinstance(chunk, Squares) and list(chunk) == [4, 9]


async def test_stages_in_a_process_pool_read_lazy_partitions():
    clock = ManualClock()
    sink: ListSink[int] = ListSink()
    async with StreamingContext(
        batch_interval=1.0, clock=clock, partition_size=2, executor="process", max_workers=1
    ) as ssc:
        source: MemorySource[int] = MemorySource()
        ssc.receiver_stream(source).map(lambda n: n + 1).foreach_batch(sink)
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await source.send(Squares(0, 5))
        await step(ssc)
    assert sink.batches == [(1.0, [1, 2, 5, 10, 17])]
    assert Squares.built == 0  # built in the worker, not here
