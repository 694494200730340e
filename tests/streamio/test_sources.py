"""from_async_iterable's receiver: records taken in chunks, none held back while the
iterator waits, the order kept, and the generator closed however the context stops.

Time is the manual clock's; the receiver's progress is read from its buffer.
"""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from streamio import ManualClock, ReceiverError, StreamingContext
from streamio.testing import ListSink

HANG_GUARD = 10


class Boom(Exception):
    pass


async def test_what_the_iterator_gave_is_stored_as_soon_as_it_waits():
    releases = [anyio.Event(), anyio.Event()]

    async def items():
        yield 1
        yield 2
        yield 3
        await releases[0].wait()  # blocks until the test lets it go on
        yield 4
        await releases[1].wait()
        yield 5

    clock = ManualClock()
    sink = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.from_async_iterable(items()).foreach_batch(sink)
        ssc.start()
        await clock.advance(1.0)
        assert sink.batches == [(1.0, [1, 2, 3])]  # while the iterator still waits
        releases[0].set()
        await clock.advance(1.0)
        assert sink.batches[1:] == [(2.0, [4])]  # again while it waits
        releases[1].set()
        await clock.advance(1.0)
        assert sink.batches[2:] == [(3.0, [5])]


async def test_many_chunks_through_a_small_buffer_keep_their_order():
    count = 20_000  # several chunks of records that are all ready at once

    async def items():
        for item in range(count):
            yield item

    clock = ManualClock()
    sink = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:

        def output(time, records):
            sink(time, records)
            if len(sink.records) == count:
                ssc.stop()

        ssc.from_async_iterable(items(), buffer_capacity=1000).foreach_batch(output)
        ssc.start()
        await clock.advance(1000.0)
    assert sink.records == list(range(count))
    assert max(len(records) for _, records in sink.batches) == 1000


async def test_a_stop_while_records_wait_for_room_and_the_iterator_waits_loses_nothing():
    closed = anyio.Event()
    waiting = anyio.Event()

    async def items():
        try:
            yield 1
            yield 2
            await anyio.lowlevel.checkpoint()  # 1 and 2 go to the buffer here
            yield 3
            yield 4
            waiting.set()
            await anyio.Event().wait()  # never set: the iterator waits for ever
        finally:
            closed.set()

    clock = ManualClock()
    sink = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        stream = ssc.from_async_iterable(items(), buffer_capacity=1)
        stream.foreach_batch(sink)
        ssc.start()
        # 1 is stored, 2 waits for room, 3 and 4 are in hand, the iterator waits
        await waiting.wait()
        await stream.wait_for_buffer(lambda s: s.used == 1 and s.waiting_senders == 1)
    # the graceful stop at the end of the block cancels both waits: 2, 3 and 4 are
    # stored anyway, the generator's finally runs, the final batches hold everything
    assert closed.is_set()
    assert sink.records == [1, 2, 3, 4]


async def test_an_iterator_that_never_waits_is_held_back_by_a_full_buffer():
    count = 50_000
    produced = 0

    async def items():
        nonlocal produced
        for item in range(count):
            produced += 1
            yield item

    clock = ManualClock()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        stream = ssc.from_async_iterable(items(), buffer_capacity=10)
        stream.foreach_batch(ListSink())
        ssc.start()
        await stream.wait_for_buffer(lambda s: s.waiting_senders == 1)
        # what is in hand: the chunk being stored and at most one more, of 4096 each
        assert produced <= 2 * 4096 + 1
        ssc.stop(graceful=False)


async def test_records_given_before_the_iterator_raised_are_stored():
    async def broken():
        yield 1
        yield 2
        raise Boom("iterator broke")

    clock = ManualClock()
    with pytest.raises(ReceiverError) as info, anyio.fail_after(HANG_GUARD):
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            stream = ssc.from_async_iterable(broken())
            stream.foreach_batch(ListSink())
            ssc.start()
            await anyio.sleep_forever()
    assert isinstance(info.value.__cause__, Boom)
    assert stream.buffer_statistics().used == 2
