"""The Redis Streams connector against a real ``redis-server``: entries in = entries
out, acknowledged only after their batch's outputs, a restarted job resuming at its
pending entries, a dead consumer's entries claimed, a server restart survived, a
full buffer stopping the reads, bad entries failed or skipped, and the XADD sink."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

from streamio import (
    ConfigurationError,
    ConnectorError,
    OperatorError,
    ReceiverError,
    ReceiverInfo,
    StreamingContext,
    StreamingListener,
)
from streamio.connectors.redis import (
    RedisEntry,
    RedisStreamSink,
    RedisStreamSource,
    redis_stream,
)
from streamio.connectors.testing import redis_server
from streamio.testing import ListSink, ManualClock, step

pytestmark = pytest.mark.asyncio(loop_factories=["uvloop"])

# Upper bound for waits that only a bug could make endless.
HANG_GUARD = 20

_names = itertools.count(1)


def names() -> tuple[str, str]:
    """A stream key and a group name of this test's own."""
    n = next(_names)
    return f"stream-{n}", f"group-{n}"


def context(**options: Any) -> StreamingContext:
    options.setdefault("receiver_restart_backoff", 0)
    return StreamingContext(batch_interval=1.0, clock=ManualClock(), **options)


def source_for(server: Any, stream: str, group: str, **options: Any) -> RedisStreamSource:
    options.setdefault("consumer", "worker")
    options.setdefault("reconnect_backoff", 0.01)
    return RedisStreamSource(stream, group=group, url=server.url, **options)


async def add(server: Any, stream: str, entries: list[dict[str, Any]]) -> list[str]:
    async with aioredis.Redis.from_url(server.url) as client:
        return [(await client.xadd(stream, fields)).decode() for fields in entries]


async def pending(server: Any, stream: str, group: str) -> int:
    async with aioredis.Redis.from_url(server.url) as client:
        return int((await client.xpending(stream, group))["pending"])


async def until(source: RedisStreamSource, predicate: Any) -> None:
    with anyio.fail_after(HANG_GUARD):
        await source.wait_until(predicate)


def lines(start: int, stop: int) -> list[dict[str, Any]]:
    return [{"line": f"l{i}"} for i in range(start, stop)]


class ReceiverErrors(StreamingListener):
    def __init__(self) -> None:
        self.infos: list[ReceiverInfo] = []

    def on_receiver_error(self, info: ReceiverInfo) -> None:
        self.infos.append(info)


# -- entries and acknowledgements --------------------------------------------------------


@pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])
async def test_entries_in_are_entries_out_and_acknowledged_after_their_batch(redis_server):
    stream, group = names()
    ids = await add(redis_server, stream, [{"line": "a b", "n": 1}, {"line": "c", "n": 2}])
    source = source_for(redis_server, stream, group)
    sink: ListSink[RedisEntry] = ListSink()
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await until(source, lambda stats: stats.received == 2)
        # read, delivered to this consumer, not acknowledged before the batch's outputs
        assert await pending(redis_server, stream, group) == 2
        assert source.statistics().unacknowledged == 2
        await step(ssc)
        assert await pending(redis_server, stream, group) == 0
        more = await add(redis_server, stream, lines(0, 3))
        await until(source, lambda stats: stats.received == 5)
        await step(ssc)
    assert sink.batches[0] == (
        1.0,
        [
            RedisEntry(stream, ids[0], {"line": "a b", "n": "1"}),
            RedisEntry(stream, ids[1], {"line": "c", "n": "2"}),
        ],
    )
    assert sink.batches[1] == (
        2.0,
        [RedisEntry(stream, i, f) for i, f in zip(more, lines(0, 3), strict=True)],
    )
    assert source.statistics().acknowledged == 5
    assert await pending(redis_server, stream, group) == 0


async def test_a_failing_output_leaves_its_batch_pending_and_a_restart_reads_it_again(
    redis_server,
):
    stream, group = names()
    ids = await add(redis_server, stream, lines(0, 4))

    def fail(batch_time: float, records: list[RedisEntry]) -> None:
        raise RuntimeError("output down")

    source = source_for(redis_server, stream, group)
    with pytest.raises(OperatorError):
        async with context() as ssc:
            source.stream(ssc).foreach_batch(fail)
            await ssc.start()
            await until(source, lambda stats: stats.received == 4)
            await step(ssc)
    assert source.statistics().acknowledged == 0
    assert await pending(redis_server, stream, group) == 4

    await add(redis_server, stream, lines(4, 6))
    again = source_for(redis_server, stream, group)  # the same consumer, a new job
    sink: ListSink[RedisEntry] = ListSink()
    async with context() as ssc:
        again.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await until(again, lambda stats: stats.received == 6)
        await step(ssc)
    assert [entry.id for entry in sink.records][:4] == ids
    assert [entry.fields["line"] for entry in sink.records] == [f"l{i}" for i in range(6)]
    assert await pending(redis_server, stream, group) == 0


async def test_a_restarted_job_resumes_after_the_acknowledged_entries(redis_server):
    stream, group = names()
    await add(redis_server, stream, lines(0, 3))
    first = source_for(redis_server, stream, group)
    async with context() as ssc:
        first.stream(ssc).foreach_batch(ListSink())
        await ssc.start()
        await until(first, lambda stats: stats.received == 3)
        await step(ssc)
    await add(redis_server, stream, lines(3, 5))
    second = source_for(redis_server, stream, group)
    sink: ListSink[RedisEntry] = ListSink()
    async with context() as ssc:
        second.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await until(second, lambda stats: stats.received == 2)
        await step(ssc)
    assert [entry.fields["line"] for entry in sink.records] == ["l3", "l4"]


async def test_a_graceful_stop_acknowledges_what_it_drains(redis_server):
    stream, group = names()
    await add(redis_server, stream, lines(0, 3))
    source = source_for(redis_server, stream, group)
    sink: ListSink[RedisEntry] = ListSink()
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await until(source, lambda stats: stats.received == 3)
    assert len(sink.records) == 3
    assert await pending(redis_server, stream, group) == 0


async def test_entries_left_pending_by_a_dead_consumer_are_claimed(redis_server):
    stream, group = names()
    ids = await add(redis_server, stream, lines(0, 4))
    async with aioredis.Redis.from_url(redis_server.url) as client:
        await client.xgroup_create(stream, group, id="0")
        await client.xreadgroup(group, "dead", {stream: ">"}, count=3)  # never acknowledged
    source = source_for(redis_server, stream, group, consumer="alive", claim_idle=0)
    sink: ListSink[RedisEntry] = ListSink()
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await until(source, lambda stats: stats.received == 4)
        await step(ssc)
    assert source.statistics().claimed == 3
    assert sorted(entry.id for entry in sink.records) == ids
    assert await pending(redis_server, stream, group) == 0


async def test_redis_stream_names_the_stream_after_its_keys(redis_server):
    stream, group = names()
    async with context() as ssc:
        lines_ = redis_stream(ssc, stream, group=group, url=redis_server.url, consumer="w")
        assert lines_.name == f"redis {stream}"
        again = redis_stream(ssc, stream, group=group, url=redis_server.url, consumer="v")
        assert again.name != lines_.name


# -- outages and backpressure ------------------------------------------------------------


async def test_a_server_restart_is_reported_and_survived_with_its_pending_entries():
    with redis_server() as server:  # a server of its own, to restart
        stream, group = names()
        await add(server, stream, lines(0, 3))
        source = source_for(server, stream, group)
        listener = ReceiverErrors()
        sink: ListSink[RedisEntry] = ListSink()
        async with context() as ssc:
            ssc.add_listener(listener)
            source.stream(ssc).foreach_batch(sink)
            await ssc.start()
            await until(source, lambda stats: stats.received == 3)
            await anyio.to_thread.run_sync(server.restart)
            await until(source, lambda stats: stats.connections >= 2)
            await add(server, stream, lines(3, 5))
            await until(source, lambda stats: stats.received == 5)
            await step(ssc)  # acknowledged over the new connection
            assert await pending(server, stream, group) == 0
        assert [entry.fields["line"] for entry in sink.records] == [f"l{i}" for i in range(5)]
        assert listener.infos
        for info in listener.infos:
            assert isinstance(info.error, ConnectorError) and info.error.retriable
            assert info.extra["url"] == server.url


async def test_a_first_connection_that_fails_raises_and_names_the_server():
    with redis_server() as server:
        url = server.url
    source = RedisStreamSource("s", group="g", url=url)
    with pytest.raises(ConnectorError, match=r"cannot connect to Redis at redis://127\.0\.0\.1"):
        await source.open()


async def test_a_full_buffer_stops_the_reads_and_nothing_is_lost(redis_server):
    stream, group = names()
    total, capacity, chunk = 2000, 100, 40
    async with (
        aioredis.Redis.from_url(redis_server.url) as client,
        client.pipeline(transaction=False) as pipe,
    ):
        for fields in lines(0, total):
            pipe.xadd(stream, fields)
        await pipe.execute()
    source = source_for(redis_server, stream, group, chunk_size=chunk)
    sink: ListSink[RedisEntry] = ListSink()
    async with context() as ssc:
        source.stream(ssc, buffer_capacity=capacity).foreach_batch(sink)
        await ssc.start()
        await until(source, lambda stats: stats.waiting_for_space)
        # what is read is bounded by the buffer and one chunk; the rest stays in Redis
        assert source.statistics().received <= capacity + chunk
        assert await pending(redis_server, stream, group) <= capacity + chunk
        while len(sink.records) < total:
            await until(source, lambda s: s.waiting_for_space or s.received == total)
            await step(ssc)
            assert source.statistics().unacknowledged <= capacity + chunk
    assert all(len(records) <= capacity for _, records in sink.batches)
    assert [entry.fields["line"] for entry in sink.records] == [f"l{i}" for i in range(total)]


# -- bad entries ---------------------------------------------------------------------------


async def test_a_bad_entry_fails_the_source_and_stays_pending(redis_server):
    stream, group = names()
    ids = await add(redis_server, stream, [{"v": "1"}, {"v": "{not json"}, {"v": "2"}])
    source = source_for(redis_server, stream, group, value_deserializer="json")
    with pytest.raises(ReceiverError) as info:
        async with context() as ssc:
            source.stream(ssc).foreach_batch(ListSink())
            await ssc.start()
            await anyio.sleep_forever()
    cause = info.value.__cause__
    assert isinstance(cause, ConnectorError) and not cause.retriable
    assert f"entry {ids[1]} of stream {stream!r}" in str(cause)
    assert "on_bad_message='skip'" in str(cause)
    assert info.value.attempts == 1  # not retried: it would fail the same way
    assert await pending(redis_server, stream, group) == 3


async def test_a_bad_entry_is_skipped_reported_and_acknowledged(redis_server):
    stream, group = names()
    ids = await add(redis_server, stream, [{"v": "1"}, {"v": "{not json"}, {"v": "[2]"}])
    source = source_for(
        redis_server, stream, group, value_deserializer="json", on_bad_message="skip"
    )
    listener = ReceiverErrors()
    sink: ListSink[RedisEntry] = ListSink()
    async with context() as ssc:
        ssc.add_listener(listener)
        events = source.stream(ssc)
        events.foreach_batch(sink)
        await ssc.start()
        await until(source, lambda stats: stats.received == 2)
        await step(ssc)
        assert ssc.last_batch is not None
        assert ssc.last_batch.records_skipped == {events.name: 1}
    assert sink.records == [
        RedisEntry(stream, ids[0], {"v": 1}),
        RedisEntry(stream, ids[2], {"v": [2]}),
    ]
    assert source.statistics().skipped == 1
    (info,) = listener.infos
    assert info.extra["message"] == f"entry {ids[1]} of stream {stream!r}"
    assert await pending(redis_server, stream, group) == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"value_deserializer": "pickle"}, "pickle is not offered"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"on_bad_message": "ignore"}, "on_bad_message must be 'fail' or 'skip'"),
        ({"url": "http://x"}, "redis://"),
        ({"claim_idle": -1}, "claim_idle"),
        ({"reconnect_backoff": 2, "max_backoff": 1}, "max_backoff"),
        ({"no_such_option": 1}, "not a Redis client option"),
        ({"decode_responses": True}, "decodes values itself"),
    ],
)
async def test_wrong_options_fail_when_the_source_is_made(options, message):
    with pytest.raises(ConfigurationError, match=message):
        RedisStreamSource("s", group="g", **options)


# -- the sink ------------------------------------------------------------------------------


async def test_the_sink_appends_each_batch_and_trims_with_maxlen(redis_server):
    stream, _ = names()
    async with (
        RedisStreamSink(stream, url=redis_server.url, maxlen=5, approximate=False) as sink,
        context() as ssc,
    ):
        ssc.queue_stream([[{"w": "a", "n": 1}, {"w": "b", "n": 2}], lines(0, 6)]).foreach_batch(
            sink
        )
        await ssc.start()
        await step(ssc)
        async with aioredis.Redis.from_url(redis_server.url, decode_responses=True) as client:
            assert [f for _, f in await client.xrange(stream)] == [
                {"w": "a", "n": "1"},
                {"w": "b", "n": "2"},
            ]
            await step(ssc)
            assert [f["line"] for _, f in await client.xrange(stream)] == [
                f"l{i}" for i in range(1, 6)
            ]
    assert sink.written == 8


async def test_the_sink_stores_plain_values_under_a_field_and_refuses_them_without(
    redis_server,
):
    stream, _ = names()
    async with RedisStreamSink(stream, url=redis_server.url, field="v") as sink:
        await sink(1.0, ["x", 2])
    async with aioredis.Redis.from_url(redis_server.url, decode_responses=True) as client:
        assert [f for _, f in await client.xrange(stream)] == [{"v": "x"}, {"v": "2"}]
    async with RedisStreamSink(stream, url=redis_server.url) as sink:
        with pytest.raises(TypeError, match="pass field="):
            await sink(1.0, ["x"])


async def test_the_sink_gives_up_after_its_attempts_with_a_retriable_error():
    with redis_server() as server:
        url = server.url
    async with RedisStreamSink("s", url=url, max_attempts=3, retry_backoff=0) as sink:
        with pytest.raises(ConnectorError, match="failed 3 times") as info:
            await sink(1.0, [{"a": 1}])
    assert info.value.retriable
