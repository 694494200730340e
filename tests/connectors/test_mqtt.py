"""The MQTT connector against a real ``mosquitto``: messages in = messages out over
wildcard subscriptions at each QoS, a persistent session keeping what is published
while the job is away, a broker restart survived, a full buffer disconnecting the
source without losing a message, bad messages failed or skipped, and the sink."""

from __future__ import annotations

import itertools
from typing import Any

import aiomqtt
import anyio
import pytest

from streamio import (
    ConfigurationError,
    ConnectorError,
    ReceiverError,
    ReceiverInfo,
    StreamingContext,
    StreamingListener,
)
from streamio.connectors.mqtt import MqttMessage, MqttPublishSink, MqttSource, mqtt_stream
from streamio.connectors.testing import mosquitto_server
from streamio.testing import ListSink, ManualClock, step

pytestmark = pytest.mark.asyncio(loop_factories=["uvloop"])

HANG_GUARD = 20

_names = itertools.count(1)


def prefix() -> str:
    """A topic prefix (and client id) of this test's own."""
    return f"t{next(_names)}"


def context(**options: Any) -> StreamingContext:
    options.setdefault("receiver_restart_backoff", 0)
    return StreamingContext(batch_interval=1.0, clock=ManualClock(), **options)


def source_for(server: Any, topics: Any, **options: Any) -> MqttSource:
    options.setdefault("reconnect_backoff", 0.01)
    return MqttSource(topics, host="127.0.0.1", port=server.port, **options)


async def publish(server: Any, messages: list[tuple[str, bytes]], qos: int = 1) -> None:
    async with aiomqtt.Client("127.0.0.1", server.port) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=qos)


async def until(source: MqttSource, predicate: Any) -> None:
    with anyio.fail_after(HANG_GUARD):
        await source.wait_until(predicate)


class ReceiverErrors(StreamingListener):
    def __init__(self) -> None:
        self.infos: list[ReceiverInfo] = []

    def on_receiver_error(self, info: ReceiverInfo) -> None:
        self.infos.append(info)


@pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])
@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_messages_in_are_messages_out_over_wildcards(mosquitto_server, qos):
    t = prefix()
    source = source_for(mosquitto_server, [f"{t}/+/temp", f"{t}/logs/#"], qos=qos)
    sink: ListSink[MqttMessage] = ListSink()
    sent = [
        (f"{t}/a/temp", b"1"),
        (f"{t}/b/temp", b"2"),
        (f"{t}/a/humidity", b"not subscribed"),
        (f"{t}/logs/x/y", b"3"),
    ]
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()  # subscribed once started
        await publish(mosquitto_server, sent, qos=2)
        await until(source, lambda stats: stats.received == 3)
        await step(ssc)
    assert sorted(sink.records) == [
        MqttMessage(f"{t}/a/temp", b"1", qos, False),
        MqttMessage(f"{t}/b/temp", b"2", qos, False),
        MqttMessage(f"{t}/logs/x/y", b"3", qos, False),
    ]
    assert sink.times == [1.0]


async def test_a_persistent_session_gets_what_was_published_while_the_job_was_away(
    mosquitto_server,
):
    t = prefix()
    first = source_for(mosquitto_server, f"{t}/#", client_id=t, value_deserializer="str")
    sink: ListSink[MqttMessage] = ListSink()
    async with context() as ssc:
        first.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await publish(mosquitto_server, [(f"{t}/a", b"m0")])
        await until(first, lambda stats: stats.received == 1)
        await step(ssc)
    await publish(mosquitto_server, [(f"{t}/a", b"m1"), (f"{t}/b", b"m2")])  # job away
    second = source_for(mosquitto_server, f"{t}/#", client_id=t, value_deserializer="str")
    async with context() as ssc:
        second.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await until(second, lambda stats: stats.received == 2)
        await step(ssc)
    assert [m.payload for m in sink.records] == ["m0", "m1", "m2"]


async def test_mqtt_stream_names_the_stream_after_its_topics(mosquitto_server):
    async with context() as ssc:
        first = mqtt_stream(ssc, "a/#", port=mosquitto_server.port)
        assert first.name == "mqtt a/#"
        assert mqtt_stream(ssc, "a/#", port=mosquitto_server.port).name != first.name


async def test_a_broker_restart_is_reported_and_survived():
    with mosquitto_server() as server:  # a broker of its own, to restart
        t = prefix()
        source = source_for(server, f"{t}/#")
        listener = ReceiverErrors()
        sink: ListSink[MqttMessage] = ListSink()
        async with context() as ssc:
            ssc.add_listener(listener)
            source.stream(ssc).foreach_batch(sink)
            await ssc.start()
            await publish(server, [(f"{t}/a", b"before")])
            await until(source, lambda stats: stats.received == 1)
            await anyio.to_thread.run_sync(server.restart)
            await until(source, lambda stats: stats.connections >= 2 and stats.connected)
            await publish(server, [(f"{t}/a", b"after")])  # subscribed again
            await until(source, lambda stats: stats.received == 2)
            await step(ssc)
        assert [m.payload for m in sink.records] == [b"before", b"after"]
        assert listener.infos
        for info in listener.infos:
            assert isinstance(info.error, ConnectorError) and info.error.retriable
            assert info.extra["broker"] == f"127.0.0.1:{server.port}"


async def test_a_first_connection_that_fails_raises():
    with mosquitto_server() as server:
        port = server.port
    source = MqttSource("a/#", port=port)
    with pytest.raises(ConnectorError, match="cannot connect or subscribe") as info:
        await source.open()
    assert info.value.retriable


async def test_a_full_buffer_disconnects_the_source_and_nothing_is_lost(mosquitto_server):
    t = prefix()
    total, capacity, chunk = 500, 50, 20
    source = source_for(mosquitto_server, f"{t}/#", client_id=t, chunk_size=chunk)
    sink: ListSink[MqttMessage] = ListSink()
    async with context() as ssc:
        source.stream(ssc, buffer_capacity=capacity).foreach_batch(sink)
        await ssc.start()
        await publish(mosquitto_server, [(f"{t}/a", str(i).encode()) for i in range(total)])
        await until(source, lambda stats: stats.paused)
        # disconnected: the broker holds the rest of the session's messages
        assert not source.statistics().connected
        assert source.statistics().received < total
        while len(sink.records) < total:
            await until(source, lambda s: s.paused or s.received == total)
            await step(ssc)
    assert source.statistics().pauses >= 1
    # none lost; a message whose acknowledgement had not reached the broker when
    # the source disconnected comes again (MQTT's redelivery of QoS 1)
    assert {int(m.payload) for m in sink.records} == set(range(total))


async def test_a_bad_message_fails_the_source(mosquitto_server):
    t = prefix()
    source = source_for(mosquitto_server, f"{t}/#", value_deserializer="json")
    with pytest.raises(ReceiverError) as info:
        async with context() as ssc:
            source.stream(ssc).foreach_batch(ListSink())
            await ssc.start()
            await publish(mosquitto_server, [(f"{t}/bad", b"{not json")])
            await anyio.sleep_forever()
    cause = info.value.__cause__
    assert isinstance(cause, ConnectorError) and not cause.retriable
    assert f"a message of topic '{t}/bad'" in str(cause)
    assert info.value.attempts == 1


async def test_a_bad_message_is_skipped_and_reported(mosquitto_server):
    t = prefix()
    source = source_for(
        mosquitto_server, f"{t}/#", value_deserializer="json", on_bad_message="skip"
    )
    listener = ReceiverErrors()
    sink: ListSink[MqttMessage] = ListSink()
    async with context() as ssc:
        ssc.add_listener(listener)
        events = source.stream(ssc)
        events.foreach_batch(sink)
        await ssc.start()
        await publish(mosquitto_server, [(f"{t}/a", b"1"), (f"{t}/b", b"{no"), (f"{t}/a", b"[2]")])
        await until(source, lambda stats: stats.received == 2 and stats.skipped == 1)
        await step(ssc)
        assert ssc.last_batch is not None
        assert ssc.last_batch.records_skipped == {events.name: 1}
    assert [m.payload for m in sink.records] == [1, [2]]
    (info,) = listener.infos
    assert info.extra["message"] == f"a message of topic '{t}/b'"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"topics": "a/b+/c"}, "not a topic filter"),
        ({"topics": "a/#/c"}, "not a topic filter"),
        ({"qos": 3}, "qos must be 0, 1 or 2"),
        ({"port": 0}, "port must be"),
        ({"value_deserializer": "pickle"}, "pickle is not offered"),
        ({"max_queued_incoming_messages": 10}, "drops messages"),
        ({"no_such_option": 1}, "not an aiomqtt.Client option"),
    ],
)
async def test_wrong_options_fail_when_the_source_is_made(options, message):
    topics = options.pop("topics", "a/#")
    with pytest.raises(ConfigurationError, match=message):
        MqttSource(topics, **options)


async def test_the_sink_publishes_each_batch(mosquitto_server):
    t = prefix()
    received: list[bytes] = []
    async with aiomqtt.Client("127.0.0.1", mosquitto_server.port) as reader:
        await reader.subscribe(f"{t}/out", qos=1)
        async with (
            MqttPublishSink(
                f"{t}/out", port=mosquitto_server.port, qos=1, value_serializer="json"
            ) as sink,
            context() as ssc,
        ):
            ssc.queue_stream([[{"a": 1}], [2, 3]]).foreach_batch(sink)
            await ssc.start()
            await step(ssc, 2)
        with anyio.fail_after(HANG_GUARD):
            async for message in reader.messages:
                received.append(message.payload)  # type: ignore[arg-type]
                if len(received) == 3:
                    break
    assert sorted(received) == [b"2", b"3", b'{"a":1}']
    assert sink.written == 3


async def test_the_sink_gives_up_after_its_attempts_with_a_retriable_error():
    with mosquitto_server() as server:
        port = server.port
    async with MqttPublishSink("x", port=port, max_attempts=2, retry_backoff=0) as sink:
        with pytest.raises(ConnectorError, match="failed 2 times") as info:
            await sink(1.0, [b"a"])
    assert info.value.retriable
