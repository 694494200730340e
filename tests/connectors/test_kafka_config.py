"""The Kafka connector's parts that need no broker: serde, records, positions,
argument checks, and secrets kept out of reprs, errors and logs."""

from __future__ import annotations

import logging
import pickle
import re
import socket

import anyio
import cloudpickle
import pytest

from streamio import ConfigurationError, ReceiverError, StreamingContext
from streamio.connectors.kafka import (
    KafkaPosition,
    KafkaRecord,
    KafkaSink,
    KafkaSource,
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
async def test_an_unreachable_broker_is_retriable_and_no_secret_is_logged(caplog):
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
            batch_interval=1.0, clock=ManualClock(), max_receiver_restarts=1
        ) as ssc:
            source.stream(ssc).foreach_batch(ListSink())
            await ssc.start()
    error = info.value.__cause__
    assert isinstance(error, ConnectorError) and error.retriable
    assert info.value.attempts == 2
    assert SECRET not in str(info.value) and SECRET not in str(error)
    assert caplog.records and SECRET not in caplog.text
    assert source.statistics().closed


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
