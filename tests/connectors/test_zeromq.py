"""The ZeroMQ connector over real sockets on loopback: PULL and SUB sources (connect
or bind, multipart, topic prefixes), a lost peer reported and reconnected, a full
buffer making a PUSH peer wait, bad messages failed or skipped, PUSH and PUB sinks."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import zmq
import zmq.asyncio

from streamio import (
    ConfigurationError,
    ConnectorError,
    ReceiverError,
    ReceiverInfo,
    StreamingContext,
    StreamingListener,
)
from streamio.connectors.testing import free_port
from streamio.connectors.zeromq import ZmqMessage, ZmqSink, ZmqSource, zmq_stream
from streamio.testing import ListSink, ManualClock, step

pytestmark = pytest.mark.asyncio(loop_factories=["uvloop"])

HANG_GUARD = 20


def endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def context(**options: Any) -> StreamingContext:
    options.setdefault("receiver_restart_backoff", 0)
    return StreamingContext(batch_interval=1.0, clock=ManualClock(), **options)


async def until(source: ZmqSource, predicate: Any) -> None:
    with anyio.fail_after(HANG_GUARD):
        await source.wait_until(predicate)


class Peer:
    """A raw pyzmq socket on the test's side."""

    def __init__(self, socket_type: int, address: str, *, bind: bool, hwm: int = 1000) -> None:
        self.context = zmq.asyncio.Context()
        self.socket = self.context.socket(socket_type)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SNDHWM, hwm)
        (self.socket.bind if bind else self.socket.connect)(address)

    def close(self) -> None:
        self.context.destroy(linger=0)


class ReceiverErrors(StreamingListener):
    def __init__(self) -> None:
        self.infos: list[ReceiverInfo] = []

    def on_receiver_error(self, info: ReceiverInfo) -> None:
        self.infos.append(info)


@pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])
async def test_pull_messages_in_are_messages_out_multipart_included():
    address = endpoint()
    source = ZmqSource(address, kind="pull", bind=True, value_deserializer="str")
    sink: ListSink[ZmqMessage] = ListSink()
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        pusher = Peer(zmq.PUSH, address, bind=False)
        try:
            await pusher.socket.send_multipart([b"one"])
            await pusher.socket.send_multipart([b"head", b"two"])
            await until(source, lambda stats: stats.received == 2)
        finally:
            pusher.close()
        await step(ssc)
    assert sink.batches == [
        (1.0, [ZmqMessage((b"one",), "one"), ZmqMessage((b"head", b"two"), "two")])
    ]


async def test_sub_receives_only_its_topic_prefixes():
    address = endpoint()
    publisher = Peer(zmq.XPUB, address, bind=True)  # sees the subscriptions arrive
    source = ZmqSource(address, kind="sub", topics=["a.", b"b"])
    sink: ListSink[ZmqMessage] = ListSink()
    try:
        async with context() as ssc:
            source.stream(ssc).foreach_batch(sink)
            await ssc.start()
            with anyio.fail_after(HANG_GUARD):
                assert {await publisher.socket.recv() for _ in range(2)} == {b"\x01a.", b"\x01b"}
            for parts in ([b"a.x", b"1"], [b"c", b"2"], [b"bee", b"3"]):
                await publisher.socket.send_multipart(parts)
            await until(source, lambda stats: stats.received == 2)
            await step(ssc)
    finally:
        publisher.close()
    assert [m.parts for m in sink.records] == [(b"a.x", b"1"), (b"bee", b"3")]


async def test_zmq_stream_names_the_stream_after_its_endpoints():
    address = endpoint()
    async with context() as ssc:
        first = zmq_stream(ssc, address, kind="pull")
        assert first.name == f"zmq pull {address}"
        assert zmq_stream(ssc, address, kind="pull").name != first.name


async def test_a_lost_peer_is_reported_and_reconnected():
    address = endpoint()
    source = ZmqSource(address, kind="pull", reconnect_backoff=0.01, max_backoff=0.05)
    listener = ReceiverErrors()
    sink: ListSink[ZmqMessage] = ListSink()
    async with context() as ssc:
        ssc.add_listener(listener)
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        first = Peer(zmq.PUSH, address, bind=True)
        await until(source, lambda stats: stats.connections == 1)
        await first.socket.send(b"before")
        await until(source, lambda stats: stats.received == 1)
        first.close()  # the peer goes away...
        await until(source, lambda stats: stats.disconnections == 1)
        second = Peer(zmq.PUSH, address, bind=True)  # ...and comes back on its port
        try:
            await until(source, lambda stats: stats.connections == 2)
            await second.socket.send(b"after")
            await until(source, lambda stats: stats.received == 2)
        finally:
            second.close()
        await step(ssc)
    assert [m.value for m in sink.records] == [b"before", b"after"]
    assert listener.infos  # the first peer lost (and the second, closed before the stop)
    for info in listener.infos:
        assert isinstance(info.error, ConnectorError) and info.error.retriable
        assert info.extra["endpoint"] == address


async def test_a_full_buffer_makes_the_push_peer_wait_and_nothing_is_lost():
    address = endpoint()
    total, capacity, chunk = 3000, 100, 40
    source = ZmqSource(address, kind="pull", bind=True, chunk_size=chunk, hwm=100)
    sink: ListSink[ZmqMessage] = ListSink()
    async with context() as ssc:
        source.stream(ssc, buffer_capacity=capacity).foreach_batch(sink)
        await ssc.start()
        pusher = Peer(zmq.PUSH, address, bind=False, hwm=100)
        try:
            sent = 0
            with anyio.fail_after(HANG_GUARD):
                await pusher.socket.send(b"0")  # connected once one went through
                sent = 1
                await until(source, lambda stats: stats.received == 1)
                while sent < total:  # until ZeroMQ makes the pusher wait
                    try:
                        await pusher.socket.send(str(sent).encode(), zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    sent += 1
            assert sent < total  # the high-water marks pushed back
            assert source.statistics().received <= capacity + chunk
            with anyio.fail_after(HANG_GUARD):
                async with anyio.create_task_group() as group:

                    async def send_rest() -> None:
                        for i in range(sent, total):
                            await pusher.socket.send(str(i).encode())

                    group.start_soon(send_rest)
                    while len(sink.records) < total:
                        await until(source, lambda s: s.waiting_for_space or s.received == total)
                        await step(ssc)
        finally:
            pusher.close()
    assert all(len(records) <= capacity for _, records in sink.batches)
    assert [int(m.value) for m in sink.records] == list(range(total))


async def test_a_bad_message_fails_the_source():
    address = endpoint()
    source = ZmqSource(address, kind="pull", bind=True, value_deserializer="json")
    pusher = Peer(zmq.PUSH, address, bind=False)
    try:
        with pytest.raises(ReceiverError) as info:
            async with context() as ssc:
                source.stream(ssc).foreach_batch(ListSink())
                await ssc.start()
                await pusher.socket.send(b"{not json")
                await anyio.sleep_forever()
    finally:
        pusher.close()
    cause = info.value.__cause__
    assert isinstance(cause, ConnectorError) and not cause.retriable
    assert "a message of 1 part(s) starting b'{not json'" in str(cause)
    assert info.value.attempts == 1


async def test_a_bad_message_is_skipped_and_reported():
    address = endpoint()
    source = ZmqSource(
        address, kind="pull", bind=True, value_deserializer="json", on_bad_message="skip"
    )
    listener = ReceiverErrors()
    sink: ListSink[ZmqMessage] = ListSink()
    pusher = Peer(zmq.PUSH, address, bind=False)
    try:
        async with context() as ssc:
            ssc.add_listener(listener)
            events = source.stream(ssc)
            events.foreach_batch(sink)
            await ssc.start()
            for payload in (b"1", b"{no", b"[2]"):
                await pusher.socket.send(payload)
            await until(source, lambda stats: stats.received == 2 and stats.skipped == 1)
            await step(ssc)
            assert ssc.last_batch is not None
            assert ssc.last_batch.records_skipped == {events.name: 1}
    finally:
        pusher.close()
    assert [m.value for m in sink.records] == [1, [2]]
    (info,) = listener.infos
    assert info.extra["message"] == "a message of 1 part(s) starting b'{no'"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kind": "req"}, "kind must be 'sub' or 'pull'"),
        ({"kind": "pull", "topics": "a"}, "topics are for kind='sub'"),
        ({"kind": "sub", "endpoints": "127.0.0.1:1"}, "ZeroMQ endpoints"),
        ({"kind": "pull", "value_deserializer": "pickle"}, "pickle is not offered"),
        ({"kind": "pull", "hwm": 0}, "hwm"),
    ],
)
async def test_wrong_options_fail_when_the_source_is_made(options, message):
    endpoints = options.pop("endpoints", "tcp://127.0.0.1:1")
    with pytest.raises(ConfigurationError, match=message):
        ZmqSource(endpoints, **options)


async def test_an_endpoint_that_cannot_be_bound_is_not_retriable():
    address = endpoint()
    holder = Peer(zmq.PULL, address, bind=True)
    try:
        with pytest.raises(ConnectorError, match="cannot bind") as info:
            await ZmqSource(address, kind="pull", bind=True).open()
    finally:
        holder.close()
    assert not info.value.retriable


async def test_the_push_sink_sends_each_batch():
    address = endpoint()
    puller = Peer(zmq.PULL, address, bind=True)
    try:
        async with (
            ZmqSink(address, kind="push", value_serializer="json") as sink,
            context() as ssc,
        ):
            ssc.queue_stream([[{"a": 1}, (b"x", b"y")], [2]]).foreach_batch(sink)
            await ssc.start()
            await step(ssc, 2)
            with anyio.fail_after(HANG_GUARD):
                got = [await puller.socket.recv_multipart() for _ in range(3)]
    finally:
        puller.close()
    assert got == [[b'{"a":1}'], [b"x", b"y"], [b"2"]]
    assert sink.written == 3


async def test_the_pub_sink_waits_for_its_subscribers_and_sends_its_topic():
    address = endpoint()
    async with ZmqSink(address, kind="pub", bind=True, topic="t", subscribers=1) as sink:
        subscriber = Peer(zmq.SUB, address, bind=False)
        subscriber.socket.setsockopt(zmq.SUBSCRIBE, b"t")
        try:
            await sink(1.0, ["hello"])  # sent once the subscription arrived
            with anyio.fail_after(HANG_GUARD):
                assert await subscriber.socket.recv_multipart() == [b"t", b"hello"]
        finally:
            subscriber.close()


async def test_the_pub_sink_fails_when_no_subscriber_comes():
    async with ZmqSink(
        endpoint(), kind="pub", bind=True, subscribers=1, subscribe_timeout=0.05
    ) as sink:
        with pytest.raises(ConnectorError, match="1 subscriber"):
            await sink(1.0, [b"x"])
