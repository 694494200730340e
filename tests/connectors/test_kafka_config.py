"""The Kafka connector's parts that need no broker: serde, records, positions,
argument checks, and secrets kept out of reprs, errors and logs."""

from __future__ import annotations

import contextlib
import logging
import pickle
import re
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import cloudpickle
import pytest
from aiokafka.protocol.admin import (
    ApiVersionResponse_v0,
    SaslAuthenticateResponse_v0,
    SaslHandShakeResponse_v1,
)
from anyio.streams.buffered import BufferedByteReceiveStream

from streamio import ConfigurationError, ReceiverError, StreamingContext
from streamio.connectors.kafka import (
    KafkaPosition,
    KafkaRecord,
    KafkaSink,
    KafkaSource,
    OffsetRange,
    TopicPartition,
    deserialize_json,
    deserialize_str,
    kafka_sink,
    kafka_stream,
    serialize_bytes,
    serialize_json,
    serialize_str,
)
from streamio.connectors.kafka.records import KafkaChunk
from streamio.connectors.kafka.serde import resolve_deserializer, resolve_serializer
from streamio.errors import ConnectorError
from streamio.testing import ListSink, ManualClock

UVLOOP = pytest.mark.asyncio(loop_factories=["uvloop"])

SECRET = "hunter2-do-not-log"


# -- serde ---------------------------------------------------------------------------------


def test_serializers_and_deserializers_round_trip():
    assert deserialize_str(serialize_bytes("héllo")) == "héllo"
    assert serialize_bytes(b"raw") == b"raw"
    assert serialize_bytes(bytearray(b"ab")) == b"ab"
    assert serialize_str(42) == b"42"
    document = {"word": "été", "counts": [1, 2]}
    assert serialize_json(document) == '{"word":"été","counts":[1,2]}'.encode()
    assert deserialize_json(serialize_json(document)) == document


def test_the_default_serializer_refuses_to_guess():
    with pytest.raises(TypeError, match="value_serializer='json'"):
        serialize_bytes({"a": 1})


@pytest.mark.parametrize("name", ["pickle", "cloudpickle", "Pickle"])
def test_pickle_is_refused_by_name(name):
    with pytest.raises(ConfigurationError, match="pickle is not offered"):
        resolve_deserializer(name, "value_deserializer")
    with pytest.raises(ConfigurationError, match="pickle is not offered"):
        resolve_serializer(name, "value_serializer")


def test_serde_names_functions_and_errors():
    assert resolve_deserializer("json", "v") is deserialize_json
    assert resolve_serializer("str", "v") is serialize_str

    def upper(data: bytes) -> str:
        return data.decode().upper()

    assert resolve_deserializer(upper, "v") is upper
    with pytest.raises(ConfigurationError, match="'yaml' is unknown"):
        resolve_deserializer("yaml", "value_deserializer")
    with pytest.raises(ConfigurationError, match="must be one of"):
        resolve_serializer(3, "key_serializer")


# -- records and positions ---------------------------------------------------------------------


def test_records_are_immutable_named_tuples_however_they_are_built():
    fields = (b"k", "v", "t", 1, 7, 1_700_000_000_000, (("h", b"x"),))
    [built] = KafkaChunk([fields])
    plain = KafkaRecord(*fields)
    assert type(built) is KafkaRecord
    assert built == plain and hash(built) == hash(plain)
    assert repr(built) == repr(plain)
    assert built._asdict()["offset"] == 7 and built.headers == (("h", b"x"),)
    with pytest.raises(AttributeError):
        built.value = "changed"  # type: ignore[misc]


def test_a_chunk_slices_and_travels_to_other_processes_as_field_tuples():
    rows = [(None, f"v{i}", "t", 0, i, 1_700_000_000_000 + i, ()) for i in range(5)]
    chunk = KafkaChunk(rows)
    part = chunk[1:3]
    assert isinstance(part, KafkaChunk) and [r.offset for r in part] == [1, 2]
    shipped = pickle.loads(cloudpickle.dumps(part))
    assert isinstance(shipped, KafkaChunk) and list(shipped) == list(part)


def test_a_position_is_a_read_only_mapping_of_next_offsets():
    p0, p1 = TopicPartition("t", 0), TopicPartition("t", 1)
    position = KafkaPosition({p0: (10, 1), p1: (4, 2)})
    assert dict(position) == {p0: 10, p1: 4}
    assert position[p1] == 4 and len(position) == 2
    assert position.entries()[p1] == (4, 2)
    assert repr(position) == "KafkaPosition({t[0]: 10, t[1]: 4})"
    assert ("t", 0) in position  # TopicPartition is a named tuple


def test_offset_ranges_start_where_the_same_assignment_left_off():
    p0, p1, p2 = TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("t", 2)
    # p0 started at 7 (restored), p1 first read at 3, p2 started at 0
    before = KafkaPosition({p0: (10, 1), p1: (4, 2)}, {p0: 7, p1: 3, p2: 0})
    # p1 reassigned since (epoch 5) and first read at 4; p2 read for the first time
    after = KafkaPosition({p0: (12, 1), p1: (6, 5), p2: (2, 3)}, {p0: 7, p1: 4, p2: 0})
    assert after.offset_ranges(before) == [
        OffsetRange("t", 0, 10, 12),
        OffsetRange("t", 1, 4, 6),
        OffsetRange("t", 2, 0, 2),
    ]
    assert after.offset_ranges(None) == [
        OffsetRange("t", 0, 7, 12),
        OffsetRange("t", 1, 4, 6),
        OffsetRange("t", 2, 0, 2),
    ]
    assert KafkaPosition({p0: (5, 1)}).offset_ranges() == [OffsetRange("t", 0, None, 5)]
    assert pickle.loads(pickle.dumps(after)).offset_ranges(before) == after.offset_ranges(before)


@pytest.mark.parametrize(
    ("offsets", "message"),
    [
        ([("topic", 0)], "start offsets must map"),
        ({"topic": 0}, r"key must be \(topic, partition\)"),
        ({("topic", 0): -1}, r"topic\[0\] must be an int >= 0"),
        ({("other", 0): 5}, "names topic 'other', which this source does not read"),
    ],
)
def test_start_offsets_are_checked_when_the_source_is_made(offsets, message):
    with pytest.raises(ConfigurationError, match=message):
        KafkaSource("topic", group_id=None, start_offsets=offsets)
    KafkaSource("topic", group_id=None, start_offsets={TopicPartition("topic", 0): 5})


# -- argument checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"enable_auto_commit": True}, "enable_auto_commit cannot be set"),
        ({"value_deserializer": "pickle"}, "pickle is not offered"),
        ({"fetch_max_wait": 10}, "'fetch_max_wait' is not an aiokafka consumer option"),
        ({"group_id": ""}, "group_id must be"),
        ({"auto_offset_reset": "smallest"}, "auto_offset_reset must be"),
        ({"max_rate_per_partition": 0}, "max_rate_per_partition must be a finite number"),
        ({"max_chunk_records": 0}, "max_chunk_records"),
        ({"commit_timeout": -1}, "commit_timeout"),
        ({"reconnect_backoff": 0}, "reconnect_backoff"),
        ({"reconnect_backoff": 2.0, "max_backoff": 1.0}, "max_backoff .* reconnect_backoff"),
        ({"max_reconnects": -1}, "max_reconnects"),
    ],
)
def test_source_arguments_are_checked_when_it_is_made(kwargs, message):
    kwargs = {"group_id": "g", **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        KafkaSource("topic", **kwargs)


def test_streams_are_named_after_what_they_read_unless_named():
    ssc = StreamingContext(batch_interval=1.0)
    servers = {"bootstrap_servers": "kafka:9092"}
    assert kafka_stream(ssc, "lines", group_id="g", **servers).name == "kafka lines"
    assert kafka_stream(ssc, "lines", group_id="g", **servers).name == "kafka lines 2"
    assert kafka_stream(ssc, ["a", "b"], group_id=None, **servers).name == "kafka a,b"
    pattern = re.compile("logs-.*")
    assert KafkaSource(pattern, group_id=None).stream(ssc).name == "kafka logs-.*"
    assert kafka_stream(ssc, "lines", group_id="g", name="mine", **servers).name == "mine"
    with pytest.raises(ConfigurationError, match="already used"):
        kafka_stream(ssc, "other", group_id="g", name="kafka lines", **servers)


def test_kafka_stream_takes_a_rate_for_the_whole_stream():
    ssc = StreamingContext(batch_interval=1.0)
    with pytest.raises(ConfigurationError, match=r"max_rate must be .* records per second"):
        kafka_stream(ssc, "lines", group_id="g", max_rate=0)
    kafka_stream(ssc, "lines", group_id="g", max_rate=100.0, max_rate_per_partition=10.0)


def test_two_sinks_to_one_topic_get_names_of_their_own():
    ssc = StreamingContext(batch_interval=1.0)
    stream = ssc.queue_stream([[b"a"]])
    kafka_sink(stream, "counts", bootstrap_servers="kafka:9092")
    kafka_sink(stream, "counts", bootstrap_servers="kafka:9092")  # no name clash
    kafka_sink(stream, "counts", name="counts out", bootstrap_servers="kafka:9092")
    with pytest.raises(ConfigurationError, match="'counts out' is already used"):
        stream.foreach_batch(ListSink(), name="counts out")


@pytest.mark.parametrize("topics", ["", [], ["ok", ""], [3]])
def test_source_topics_are_checked(topics):
    with pytest.raises(ConfigurationError, match="topics must be"):
        KafkaSource(topics, group_id=None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"acks": 2}, "acks must be"),
        ({"key": "word"}, "key must be a function"),
        ({"value_serializer": "pickle"}, "pickle is not offered"),
        ({"batch_size": 10}, "'batch_size' is not an aiokafka producer option"),
        ({"key_serializer": str}, None),
    ],
)
def test_sink_arguments_are_checked_when_it_is_made(kwargs, message):
    if message is None:
        KafkaSink("topic", **kwargs)
        return
    with pytest.raises(ConfigurationError, match=message):
        KafkaSink("topic", **kwargs)


def test_reprs_name_the_source_and_sink_but_no_option_value():
    source = KafkaSource(
        ["a", "b"],
        group_id="g",
        bootstrap_servers="kafka:9092",
        sasl_plain_username="job",
        sasl_plain_password=SECRET,
    )
    sink = KafkaSink("out", bootstrap_servers="kafka:9092", sasl_plain_password=SECRET)
    assert repr(source) == (
        "KafkaSource(topics=['a', 'b'], group_id='g', bootstrap_servers='kafka:9092')"
    )
    assert repr(sink) == "KafkaSink(topic='out', bootstrap_servers='kafka:9092')"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@UVLOOP
async def test_an_unreachable_broker_at_start_is_retriable(caplog):
    caplog.set_level(logging.DEBUG)
    source = KafkaSource(
        "topic",
        group_id="g",
        bootstrap_servers=f"127.0.0.1:{closed_port()}",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username="job",
        sasl_plain_password=SECRET,
    )
    with pytest.raises(ReceiverError) as info, anyio.fail_after(10):
        async with StreamingContext(
            batch_interval=1.0,
            clock=ManualClock(),
            max_receiver_restarts=1,
            receiver_restart_backoff=0,  # the backoff is on the manual clock
        ) as ssc:
            source.stream(ssc).foreach_batch(ListSink())
            await ssc.start()
    error = info.value.__cause__
    assert isinstance(error, ConnectorError) and error.retriable
    assert info.value.attempts == 2
    assert SECRET not in str(info.value) and SECRET not in str(error)
    assert caplog.records and SECRET not in caplog.text
    assert source.statistics().closed


class SaslPlainServer:
    """A TCP server on 127.0.0.1 that speaks just enough of the Kafka protocol to take
    a client to SASL PLAIN authentication (ApiVersions, SaslHandshake v1,
    SaslAuthenticate v0), keeps the token it is sent, and refuses it as a broker
    refuses a wrong password."""

    def __init__(self) -> None:
        self.tokens: list[bytes] = []

    async def serve(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            reader = BufferedByteReceiveStream(stream)
            while True:
                try:
                    (size,) = struct.unpack(">i", await reader.receive_exactly(4))
                    request = await reader.receive_exactly(size)
                except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
                    return
                api_key, _version, correlation_id, client_id_length = struct.unpack(
                    ">hhih", request[:10]
                )
                body = request[10 + max(client_id_length, 0) :]
                if api_key == 18:  # ApiVersions
                    versions = [(18, 0, 0), (17, 1, 1), (36, 0, 0)]
                    response: Any = ApiVersionResponse_v0(error_code=0, api_versions=versions)
                elif api_key == 17:  # SaslHandshake
                    response = SaslHandShakeResponse_v1(error_code=0, enabled_mechanisms=["PLAIN"])
                elif api_key == 36:  # SaslAuthenticate: the credentials
                    (length,) = struct.unpack(">i", body[:4])
                    self.tokens.append(body[4 : 4 + length])
                    response = SaslAuthenticateResponse_v0(
                        error_code=58,  # SASL_AUTHENTICATION_FAILED
                        error_message="Authentication failed: invalid credentials",
                        sasl_auth_bytes=b"",
                    )
                else:
                    return
                payload = struct.pack(">i", correlation_id) + response.encode()
                await stream.send(struct.pack(">i", len(payload)) + payload)


@contextlib.asynccontextmanager
async def sasl_plain_server() -> AsyncIterator[tuple[SaslPlainServer, str]]:
    """A running :class:`SaslPlainServer` and its address."""
    server = SaslPlainServer()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, server.serve)
        yield server, f"127.0.0.1:{port}"
        tg.cancel_scope.cancel()


PLAIN = {
    "security_protocol": "SASL_PLAINTEXT",
    "sasl_mechanism": "PLAIN",
    "sasl_plain_username": "job",
    "sasl_plain_password": SECRET,
}


def assert_never_logged(caplog: pytest.LogCaptureFixture, secret: str) -> None:
    assert caplog.records
    for record in caplog.records:
        assert secret not in record.getMessage(), record.getMessage()
        assert secret not in repr(record.args)
    assert secret not in caplog.text


@UVLOOP
async def test_the_source_authenticates_and_no_secret_is_logged(caplog):
    caplog.set_level(logging.DEBUG)
    async with sasl_plain_server() as (server, address):
        source = KafkaSource("topic", group_id="g", bootstrap_servers=address, **PLAIN)
        with pytest.raises(ReceiverError) as info, anyio.fail_after(10):
            async with StreamingContext(
                batch_interval=1.0, clock=ManualClock(), max_receiver_restarts=0
            ) as ssc:
                source.stream(ssc).foreach_batch(ListSink())
                await ssc.start()
    # the credentials reached the server: the client went as far as authenticating
    assert server.tokens == [b"job\x00job\x00" + SECRET.encode()]
    assert SECRET not in str(info.value) and SECRET not in str(info.value.__cause__)
    assert_never_logged(caplog, SECRET)


@UVLOOP
async def test_the_sink_authenticates_and_no_secret_is_logged(caplog):
    caplog.set_level(logging.DEBUG)
    async with sasl_plain_server() as (server, address):
        sink = KafkaSink("topic", bootstrap_servers=address, **PLAIN)
        with pytest.raises(ConnectorError) as info, anyio.fail_after(10):
            await sink.start()
        await sink.aclose()
    assert server.tokens == [b"job\x00job\x00" + SECRET.encode()]
    assert SECRET not in str(info.value)
    assert_never_logged(caplog, SECRET)


@UVLOOP
async def test_a_rate_limit_needs_the_batch_interval():
    source = KafkaSource("topic", group_id=None, max_rate_per_partition=5.0)
    with pytest.raises(ReceiverError) as info, anyio.fail_after(10):
        async with StreamingContext(batch_interval=1.0, clock=ManualClock()) as ssc:
            ssc.receiver_stream(source).foreach_batch(ListSink())  # not source.stream(ssc)
            await ssc.start()
    assert info.value.attempts == 1
    assert isinstance(info.value.__cause__, ConfigurationError)
    assert "source.stream(ssc)" in str(info.value.__cause__)
    assert "batch interval" in str(info.value.__cause__)
