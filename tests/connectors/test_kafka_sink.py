"""The Kafka sink against a real broker, and both Kafka connectors against another
client (confluent-kafka, librdkafka): it produces and streamio consumes, streamio
produces and it reads back."""

from __future__ import annotations

import json
import operator
import os
import signal
import time
from typing import Any

import anyio
import confluent_kafka
import pytest

from streamio import OperatorError, StreamingContext
from streamio.connectors.kafka import KafkaRecord, KafkaSink, KafkaSource, kafka_sink
from streamio.errors import ConnectorError
from streamio.testing import ListSink, ManualClock, MemorySource, step

pytestmark = pytest.mark.asyncio(loop_factories=["uvloop"])

HANG_GUARD = 20


def context() -> StreamingContext:
    return StreamingContext(batch_interval=1.0, clock=ManualClock())


@pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])
async def test_each_batch_is_in_kafka_when_the_output_returns(kafka):
    topic = await kafka.topic(partitions=3)
    source: MemorySource[str] = MemorySource()
    acknowledged: list[int] = []
    async with (
        KafkaSink(
            topic,
            bootstrap_servers=kafka.bootstrap_servers,
            key=operator.itemgetter(0),
            value=operator.itemgetter(1),
            value_serializer="json",
            headers=lambda pair: [("word", pair[0].encode())],
            compression_type="gzip",
        ) as sink,
        context() as ssc,
    ):
        counts = ssc.receiver_stream(source).flat_map(str.split).count_by_value()
        counts.foreach_batch(sink)
        counts.foreach_batch(lambda records: acknowledged.append(sink.records_sent))
        await ssc.start()
        await source.send(["a b a", "c a b"])
        await step(ssc)
        assert acknowledged == [3]  # sent and acknowledged before the next output ran
        await source.send(["b d"])
        await step(ssc)
    assert source.commits == [2, 3]
    records = await kafka.read(topic, 5)
    by_word = {}
    for record in records:
        assert record.headers == (("word", record.key),)
        by_word.setdefault(record.key.decode(), []).append(
            (record.partition, json.loads(record.value))
        )
    assert {word: [count for _, count in sent] for word, sent in by_word.items()} == {
        "a": [3],
        "b": [2, 1],
        "c": [1],
        "d": [1],
    }
    assert len({partition for partition, _ in by_word["b"]}) == 1  # partitioned by key


async def test_a_kafka_to_kafka_job_commits_its_source_only_after_the_sink(kafka):
    source_topic, sink_topic = await kafka.topic(), await kafka.topic()
    group = kafka.name("group")
    await kafka.produce(source_topic, [{"value": b"x y x"}, {"value": b"y"}])
    source = KafkaSource(
        source_topic,
        group_id=group,
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        value_deserializer="str",
        session_timeout_ms=2000,
        heartbeat_interval_ms=400,
    )
    async with context() as ssc:
        words = source.stream(ssc).flat_map(lambda r: r.value.split()).count_by_value()
        sink = kafka_sink(
            words,
            sink_topic,
            bootstrap_servers=kafka.bootstrap_servers,
            key=operator.itemgetter(0),
            value=operator.itemgetter(1),
            key_serializer="str",
            value_serializer="str",
        )
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await source.wait_until(lambda stats: stats.received == 2)
        await step(ssc)
        assert sink.records_sent == 2
        assert await kafka.committed(group, source_topic, 1) == [2]
    await sink.aclose()
    out = await kafka.read(sink_topic, 2)
    assert sorted((r.key, r.value) for r in out) == [(b"x", b"2"), (b"y", b"2")]


@pytest.mark.parametrize(
    ("options", "advice"),
    [
        ({"enable_idempotence": True}, "pass enable_idempotence=False"),
        ({"transactional_id": "job-1"}, "pass transactional_id=None and enable_idempotence=False"),
    ],
)
async def test_a_broker_refusing_idempotence_gives_a_clear_error(kafka, options, advice):
    topic = await kafka.topic()
    source: MemorySource[str] = MemorySource()
    sink = KafkaSink(topic, bootstrap_servers=kafka.bootstrap_servers, **options)
    with pytest.raises(OperatorError) as info:
        async with context() as ssc:
            ssc.receiver_stream(source).foreach_batch(sink)
            await ssc.start()
            await source.send(["x"])
            await step(ssc)
    error = info.value.__cause__
    assert isinstance(error, ConnectorError)
    assert not error.retriable
    assert "InitProducerId" in str(error)
    assert advice in str(error)
    assert source.commits == []  # the batch did not reach Kafka: its position stays uncommitted
    await sink.aclose()


async def test_sink_lifecycle_lazy_start_idempotent_close(kafka):
    topic = await kafka.topic()
    sink: KafkaSink[bytes] = KafkaSink(topic, bootstrap_servers=kafka.bootstrap_servers)
    await sink(1.0, [])  # nothing to send: the producer is not even started
    await sink(1.0, [b"one", b"two"])  # started here, in the running loop
    assert sink.records_sent == 2
    await sink.aclose()
    await sink.aclose()
    with pytest.raises(ConnectorError, match="closed"):
        await sink(2.0, [b"three"])
    assert [r.value for r in await kafka.read(topic, 2)] == [b"one", b"two"]


async def test_records_go_in_record_batches_per_partition_in_order(kafka):
    topic = await kafka.topic(partitions=3)
    servers = kafka.bootstrap_servers
    values = [b"%04d" % n + b"." * 46 for n in range(1000)]  # 50 bytes each
    # max_batch_size of 1 KiB: a thousand records make dozens of record batches
    async with KafkaSink(topic, bootstrap_servers=servers, max_batch_size=1024) as sink:
        await sink(1.0, values)  # neither key nor partition: sticky partitions
    assert sink.records_sent == 1000
    records = await kafka.read(topic, 1000)
    assert sorted(r.value for r in records) == values
    for partition in range(3):
        mine = [r.value for r in records if r.partition == partition]
        assert mine == sorted(mine)  # in the order sent

    await kafka.produce(topic, [{"key": b"k1", "value": b"raw"}])  # aiokafka's partitioner
    async with KafkaSink(
        topic,
        bootstrap_servers=servers,
        key=operator.itemgetter(0),
        value=operator.itemgetter(1),
        partition=lambda pair: 2 if pair[0] is None else None,
    ) as sink:
        await sink(2.0, [(b"k1", b"sink"), (None, b"two")])
    partitions = {r.value: r.partition for r in await kafka.read(topic, 1003)}
    assert partitions[b"sink"] == partitions[b"raw"]  # a key's partition, as aiokafka's
    assert partitions[b"two"] == 2

    async with KafkaSink(topic, bootstrap_servers=servers, partition=lambda _: 7) as sink:
        with pytest.raises(ConnectorError, match=r"partition 7 of .* does not exist") as info:
            await sink(3.0, [b"x"])
    assert not info.value.retriable


async def test_a_record_the_serializer_refuses_fails_the_batch_naming_the_option(kafka):
    topic = await kafka.topic()
    async with KafkaSink(topic, bootstrap_servers=kafka.bootstrap_servers) as sink:
        with pytest.raises(ConnectorError, match="value_serializer='json'") as info:
            await sink(1.0, [{"not": "bytes"}])
    assert not info.value.retriable
    assert sink.records_sent == 0


# -- interoperability with confluent-kafka (librdkafka) -------------------------------------


async def test_confluent_kafka_produces_and_streamio_consumes(kafka):
    topic = await kafka.topic(partitions=2)

    def produce() -> None:
        producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": kafka.bootstrap_servers,
                "compression.type": "gzip",
                "acks": "all",
                "enable.idempotence": False,
            }
        )
        for i in range(6):
            producer.produce(
                topic,
                value=json.dumps({"n": i}).encode(),
                key=f"k{i % 3}".encode(),
                partition=i % 2,
                headers=[("source", b"librdkafka")],
                timestamp=1_700_000_000_000 + i,
            )
        assert producer.flush(HANG_GUARD) == 0

    await anyio.to_thread.run_sync(produce)
    source = KafkaSource(
        topic,
        group_id=None,
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        key_deserializer="str",
        value_deserializer="json",
    )
    sink: ListSink[KafkaRecord] = ListSink()
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await source.wait_until(lambda stats: stats.received == 6)
        await step(ssc)
    assert sorted(sink.records, key=lambda r: r.value["n"]) == [
        KafkaRecord(
            key=f"k{i % 3}",
            value={"n": i},
            topic=topic,
            partition=i % 2,
            offset=i // 2,
            timestamp=1_700_000_000_000 + i,
            headers=(("source", b"librdkafka"),),
        )
        for i in range(6)
    ]


async def test_streamio_produces_and_confluent_kafka_reads_back(kafka):
    topic = await kafka.topic(partitions=2)
    source: MemorySource[tuple[str, Any]] = MemorySource()
    async with (
        KafkaSink(
            topic,
            bootstrap_servers=kafka.bootstrap_servers,
            key=operator.itemgetter(0),
            value=operator.itemgetter(1),
            key_serializer="str",
            value_serializer="json",
            headers=lambda pair: {"origin": b"streamio"},
            timestamp_ms=lambda pair: 1_700_000_000_000,
            compression_type="gzip",
        ) as sink,
        context() as ssc,
    ):
        ssc.receiver_stream(source).foreach_batch(sink)
        await ssc.start()
        await source.send([("a", 1), ("b", [2, "deux"]), ("a", None)])
        await step(ssc)

    def read_back() -> list[Any]:
        consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": kafka.bootstrap_servers,
                "group.id": kafka.name("reader"),
                "enable.auto.commit": False,
            }
        )
        consumer.assign(
            [
                confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                for p in (0, 1)
            ]
        )
        messages = []
        deadline = time.monotonic() + HANG_GUARD
        try:
            while len(messages) < 3 and time.monotonic() < deadline:
                message = consumer.poll(0.1)
                if message is not None:
                    assert message.error() is None, message.error()
                    messages.append(message)
        finally:
            consumer.close()
        return messages

    messages = await anyio.to_thread.run_sync(read_back)
    partitions = [m.partition() for m in messages if m.key() == b"a"]
    assert len(partitions) == 2 and len(set(partitions)) == 1  # both "a"s in one partition
    got = [
        (
            m.key(),
            None if m.value() is None else json.loads(m.value()),
            m.headers(),
            m.timestamp()[1],
        )
        for m in sorted(messages, key=lambda m: (m.key(), m.offset()))
    ]
    assert got == [
        (b"a", 1, [("origin", b"streamio")], 1_700_000_000_000),
        (b"a", None, [("origin", b"streamio")], 1_700_000_000_000),
        (b"b", [2, "deux"], [("origin", b"streamio")], 1_700_000_000_000),
    ]
    assert sink.records_sent == 3


async def test_a_broker_that_goes_away_fails_the_batch_with_a_retriable_error(kafka):
    from streamio.connectors.kafka.testing import create_topic, start_broker

    with start_broker() as broker:  # a broker of its own, to kill
        topic = kafka.name("topic")
        await create_topic(broker.bootstrap_servers, topic)
        async with KafkaSink(
            topic, bootstrap_servers=broker.bootstrap_servers, request_timeout_ms=1000
        ) as sink:
            await sink(1.0, [b"before"])
            os.kill(broker.pid, signal.SIGKILL)
            with pytest.raises(ConnectorError) as info, anyio.fail_after(HANG_GUARD):
                await sink(2.0, [b"after"])
    assert info.value.retriable
    assert sink.records_sent == 1
