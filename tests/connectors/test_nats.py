"""The NATS JetStream connector against a real ``nats-server -js``: messages in =
messages out, acknowledged only after their batch's outputs, a restarted job resuming
at its durable consumer's position, a server restart survived, a full buffer
stopping the fetches, bad messages failed or skipped, and the publish sink."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import nats
import pytest

from streamio import (
    ConfigurationError,
    ConnectorError,
    OperatorError,
    ReceiverError,
    ReceiverInfo,
    StreamingContext,
    StreamingListener,
)
from streamio.connectors.nats import NatsMessage, NatsPublishSink, NatsStreamSource, nats_stream
from streamio.connectors.testing import nats_server
from streamio.testing import ListSink, ManualClock, step

pytestmark = pytest.mark.asyncio(loop_factories=["uvloop"])

HANG_GUARD = 20

_names = itertools.count(1)


@asynccontextmanager
async def jetstream(server: Any) -> AsyncIterator[Any]:
    client = await nats.connect(server.url)
    try:
        yield client.jetstream()
    finally:
        await client.close()


async def new_stream(server: Any, **config: Any) -> tuple[str, str, str]:
    """A JetStream stream of this test's own: (stream, subject prefix, durable name)."""
    n = next(_names)
    name, subject = f"S{n}", f"s{n}"
    async with jetstream(server) as js:
        await js.add_stream(name=name, subjects=[f"{subject}.>"], **config)
    return name, subject, f"job{n}"


async def publish(server: Any, subject: str, payloads: list[bytes]) -> list[int]:
    async with jetstream(server) as js:
        return [(await js.publish(subject, payload)).seq for payload in payloads]


async def consumer(server: Any, stream: str, durable: str) -> Any:
    async with jetstream(server) as js:
        return await js.consumer_info(stream, durable)


def context(**options: Any) -> StreamingContext:
    options.setdefault("receiver_restart_backoff", 0)
    return StreamingContext(batch_interval=1.0, clock=ManualClock(), **options)


def source_for(server: Any, subject: str, durable: str, **options: Any) -> NatsStreamSource:
    options.setdefault("reconnect_backoff", 0.01)
    options.setdefault("fetch_timeout", 0.2)
    return NatsStreamSource(f"{subject}.>", durable=durable, servers=server.url, **options)


async def until(source: NatsStreamSource, predicate: Any) -> None:
    with anyio.fail_after(HANG_GUARD):
        await source.wait_until(predicate)


def payloads(start: int, stop: int) -> list[bytes]:
    return [f"m{i}".encode() for i in range(start, stop)]


class ReceiverErrors(StreamingListener):
    def __init__(self) -> None:
        self.infos: list[ReceiverInfo] = []

    def on_receiver_error(self, info: ReceiverInfo) -> None:
        self.infos.append(info)


# -- messages and acknowledgements --------------------------------------------------------


@pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])
async def test_messages_in_are_messages_out_and_acknowledged_after_their_batch(nats_server):
    stream, subject, durable = await new_stream(nats_server)
    seqs = await publish(nats_server, f"{subject}.a", [b"x", b"y"])
    source = source_for(nats_server, subject, durable)
    sink: ListSink[NatsMessage] = ListSink()
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await until(source, lambda stats: stats.received == 2)
        assert (await consumer(nats_server, stream, durable)).num_ack_pending == 2
        await step(ssc)
        assert (await consumer(nats_server, stream, durable)).num_ack_pending == 0
        more = await publish(nats_server, f"{subject}.b", payloads(0, 3))
        await until(source, lambda stats: stats.received == 5)
        await step(ssc)
    assert sink.batches[0] == (
        1.0,
        [
            NatsMessage(f"{subject}.a", b"x", None, seqs[0]),
            NatsMessage(f"{subject}.a", b"y", None, seqs[1]),
        ],
    )
    assert sink.batches[1][1] == [
        NatsMessage(f"{subject}.b", p, None, s) for p, s in zip(payloads(0, 3), more, strict=True)
    ]
    info = await consumer(nats_server, stream, durable)
    assert (info.num_ack_pending, info.num_pending) == (0, 0)
    assert source.statistics().acknowledged == 5


async def test_a_failing_output_leaves_its_batch_unacknowledged_for_the_next_job(nats_server):
    stream, subject, durable = await new_stream(nats_server)
    await publish(nats_server, f"{subject}.a", payloads(0, 3))

    def fail(batch_time: float, records: list[NatsMessage]) -> None:
        raise RuntimeError("output down")

    source = source_for(nats_server, subject, durable, ack_wait=1.0)
    with pytest.raises(OperatorError):
        async with context() as ssc:
            source.stream(ssc).foreach_batch(fail)
            await ssc.start()
            await until(source, lambda stats: stats.received == 3)
            await step(ssc)
    assert source.statistics().acknowledged == 0
    assert (await consumer(nats_server, stream, durable)).num_ack_pending == 3

    again = source_for(nats_server, subject, durable)  # redelivered after ack_wait
    sink: ListSink[NatsMessage] = ListSink()
    async with context() as ssc:
        again.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await until(again, lambda stats: stats.received == 3)
        await step(ssc)
    assert [m.data for m in sink.records] == payloads(0, 3)
    assert (await consumer(nats_server, stream, durable)).num_ack_pending == 0


async def test_a_restarted_job_resumes_after_the_acknowledged_messages(nats_server):
    _, subject, durable = await new_stream(nats_server)
    await publish(nats_server, f"{subject}.a", payloads(0, 3))
    first = source_for(nats_server, subject, durable)
    async with context() as ssc:
        first.stream(ssc).foreach_batch(ListSink())
        await ssc.start()
        await until(first, lambda stats: stats.received == 3)
        await step(ssc)
    await publish(nats_server, f"{subject}.a", payloads(3, 5))
    second = source_for(nats_server, subject, durable)
    sink: ListSink[NatsMessage] = ListSink()
    async with context() as ssc:
        second.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await until(second, lambda stats: stats.received == 2)
        await step(ssc)
    assert [m.data for m in sink.records] == payloads(3, 5)


async def test_a_graceful_stop_acknowledges_what_it_drains(nats_server):
    stream, subject, durable = await new_stream(nats_server)
    await publish(nats_server, f"{subject}.a", payloads(0, 3))
    source = source_for(nats_server, subject, durable, value_deserializer="str")
    sink: ListSink[NatsMessage] = ListSink()
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await until(source, lambda stats: stats.received == 3)
    assert [m.data for m in sink.records] == ["m0", "m1", "m2"]
    assert (await consumer(nats_server, stream, durable)).num_ack_pending == 0


async def test_nats_stream_names_the_stream_after_its_subject(nats_server):
    async with context() as ssc:
        first = nats_stream(ssc, "a.>", durable="d", servers=nats_server.url)
        assert first.name == "nats a.>"
        assert nats_stream(ssc, "a.>", durable="e", servers=nats_server.url).name != first.name


# -- outages and backpressure ------------------------------------------------------------


async def test_a_server_restart_is_reported_and_survived():
    with nats_server() as server:  # a server of its own, to restart
        stream, subject, durable = await new_stream(server)
        await publish(server, f"{subject}.a", payloads(0, 3))
        source = source_for(server, subject, durable)
        listener = ReceiverErrors()
        sink: ListSink[NatsMessage] = ListSink()
        async with context() as ssc:
            ssc.add_listener(listener)
            source.stream(ssc).foreach_batch(sink)
            await ssc.start()
            await until(source, lambda stats: stats.received == 3)
            await step(ssc)
            await anyio.to_thread.run_sync(server.restart)
            await until(source, lambda stats: stats.connections >= 2)
            await publish(server, f"{subject}.a", payloads(3, 5))
            await until(source, lambda stats: stats.received >= 5)
            await step(ssc)
            assert (await consumer(server, stream, durable)).num_pending == 0
        # at least once: acknowledgements the killed server had not stored yet make
        # it deliver those messages again (after ack_wait), never lose one
        assert set(payloads(0, 5)) <= {m.data for m in sink.records}
        assert [m.data for m in sink.records][:3] == payloads(0, 3)
        assert listener.infos
        for info in listener.infos:
            assert isinstance(info.error, ConnectorError) and info.error.retriable
            assert info.extra["servers"] == [server.url]


async def test_a_first_connection_that_fails_raises():
    with nats_server() as server:
        url = server.url
    source = NatsStreamSource("a.>", durable="d", servers=url)
    with pytest.raises(ConnectorError, match="cannot connect to NATS") as info:
        await source.open()
    assert info.value.retriable


async def test_a_missing_stream_is_not_retriable(nats_server):
    source = NatsStreamSource("nobody.>", durable="d", servers=nats_server.url)
    with pytest.raises(ConnectorError, match="no JetStream stream holds subject") as info:
        await source.open()
    assert not info.value.retriable


async def test_a_full_buffer_stops_the_fetches_and_nothing_is_lost(nats_server):
    stream, subject, durable = await new_stream(nats_server)
    total, capacity, chunk = 1000, 100, 40
    async with jetstream(nats_server) as js:
        futures = [await js.publish_async(f"{subject}.a", p) for p in payloads(0, total)]
        for future in futures:
            await future
    source = source_for(nats_server, subject, durable, chunk_size=chunk, value_deserializer="str")
    sink: ListSink[NatsMessage] = ListSink()
    async with context() as ssc:
        source.stream(ssc, buffer_capacity=capacity).foreach_batch(sink)
        await ssc.start()
        await until(source, lambda stats: stats.waiting_for_space)
        info = await consumer(nats_server, stream, durable)
        # what was fetched is bounded by the buffer and one chunk; the rest waits in JetStream
        assert info.num_ack_pending <= capacity + chunk
        assert info.num_pending >= total - capacity - chunk
        while len(sink.records) < total:
            await until(source, lambda s: s.waiting_for_space or s.received == total)
            await step(ssc)
            assert source.statistics().unacknowledged <= capacity + chunk
    assert all(len(records) <= capacity for _, records in sink.batches)
    assert [m.data for m in sink.records] == [f"m{i}" for i in range(total)]


async def test_the_buffer_not_the_servers_ack_pending_cap_bounds_what_is_fetched(nats_server):
    # JetStream stops delivering at max_ack_pending (1,000 by default) until acks
    # come: below the buffer's capacity, every fetch would wait for a batch
    _, subject, durable = await new_stream(nats_server)
    async with jetstream(nats_server) as js:
        futures = [await js.publish_async(f"{subject}.a", p) for p in payloads(0, 1500)]
        for future in futures:
            await future
    source = source_for(nats_server, subject, durable)
    async with context() as ssc:
        source.stream(ssc, buffer_capacity=5000).foreach_batch(ListSink())
        await ssc.start()
        await until(source, lambda stats: stats.received == 1500)  # no batch yet


# -- bad messages ----------------------------------------------------------------------------


async def test_a_bad_message_fails_the_source_and_stays_unacknowledged(nats_server):
    stream, subject, durable = await new_stream(nats_server)
    seqs = await publish(nats_server, f"{subject}.a", [b"1", b"{not json", b"2"])
    source = source_for(nats_server, subject, durable, value_deserializer="json")
    with pytest.raises(ReceiverError) as info:
        async with context() as ssc:
            source.stream(ssc).foreach_batch(ListSink())
            await ssc.start()
            await anyio.sleep_forever()
    cause = info.value.__cause__
    assert isinstance(cause, ConnectorError) and not cause.retriable
    assert f"message {seqs[1]} of '{subject}.a'" in str(cause)
    assert info.value.attempts == 1
    assert (await consumer(nats_server, stream, durable)).num_ack_pending == 3


async def test_a_bad_message_is_skipped_reported_and_acknowledged(nats_server):
    stream, subject, durable = await new_stream(nats_server)
    seqs = await publish(nats_server, f"{subject}.a", [b"1", b"{not json", b"[2]"])
    source = source_for(
        nats_server, subject, durable, value_deserializer="json", on_bad_message="skip"
    )
    listener = ReceiverErrors()
    sink: ListSink[NatsMessage] = ListSink()
    async with context() as ssc:
        ssc.add_listener(listener)
        events = source.stream(ssc)
        events.foreach_batch(sink)
        await ssc.start()
        await until(source, lambda stats: stats.received == 2)
        await step(ssc)
        assert ssc.last_batch is not None
        assert ssc.last_batch.records_skipped == {events.name: 1}
    assert [(m.data, m.sequence) for m in sink.records] == [(1, seqs[0]), ([2], seqs[2])]
    (info,) = listener.infos
    assert info.extra["message"] == f"message {seqs[1]} of '{subject}.a'"
    assert source.statistics().skipped == 1
    assert (await consumer(nats_server, stream, durable)).num_ack_pending == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"value_deserializer": "pickle"}, "pickle is not offered"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"on_bad_message": "drop"}, "on_bad_message"),
        ({"servers": "http://x"}, "nats:// URLs"),
        ({"deliver": "last"}, "deliver must be"),
        ({"allow_reconnect": True}, "reconnects itself"),
        ({"no_such_option": 1}, "not a nats.connect option"),
    ],
)
async def test_wrong_options_fail_when_the_source_is_made(options, message):
    with pytest.raises(ConfigurationError, match=message):
        NatsStreamSource("a.>", durable="d", **options)


# -- the sink ------------------------------------------------------------------------------


async def test_the_sink_publishes_each_batch_to_jetstream_and_drops_duplicates_by_id(
    nats_server,
):
    stream, subject, _ = await new_stream(nats_server)
    async with (
        NatsPublishSink(
            f"{subject}.out", servers=nats_server.url, value_serializer="json", msg_id=str
        ) as sink,
        context() as ssc,
    ):
        ssc.queue_stream([[1, 2], [3], [1, 2, 3]]).foreach_batch(sink)  # the last one replays
        await ssc.start()
        await step(ssc, 3)
    async with jetstream(nats_server) as js:
        info = await js.stream_info(stream)
        assert info.state.messages == 3
        got = [(await js.get_msg(stream, seq)).data for seq in (1, 2, 3)]
    assert got == [b"1", b"2", b"3"]
    assert sink.written == 6


async def test_the_sink_refuses_what_its_serializer_cannot_send(nats_server):
    async with NatsPublishSink("x.y", servers=nats_server.url) as sink:
        with pytest.raises(TypeError, match="value_serializer='json'"):
            await sink(1.0, [{"a": 1}])


async def test_the_sink_gives_up_after_its_attempts_with_a_retriable_error():
    with nats_server() as server:
        url = server.url
    async with NatsPublishSink("x.y", servers=url, max_attempts=2, retry_backoff=0) as sink:
        with pytest.raises(ConnectorError, match="failed 2 times") as info:
            await sink(1.0, [b"a"])
    assert info.value.retriable
