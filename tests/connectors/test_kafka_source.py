"""The Kafka source against a real broker: records and their fields per batch,
offsets committed per batch, failed batches left uncommitted, rebalances, rate
limits, backpressure, and a broker that goes away."""

from __future__ import annotations

import contextlib
import gc
import os
import re
import signal
from typing import Any

import anyio
import pytest
from aiokafka import AIOKafkaConsumer

from streamio import (
    BatchInfo,
    ConfigurationError,
    DeadLetter,
    OperatorError,
    ReceiverError,
    ReceiverInfo,
    StreamingContext,
    StreamingListener,
)
from streamio.connectors.kafka import (
    KafkaPosition,
    KafkaRecord,
    KafkaSource,
    TopicPartition,
    kafka_stream,
)
from streamio.connectors.kafka.testing import create_topic, start_broker
from streamio.errors import ConnectorError
from streamio.testing import ListSink, ManualClock, step

# Most tests run on uvloop (streamio.run's default) only; the first runs on both loops.
pytestmark = pytest.mark.asyncio(loop_factories=["uvloop"])

# Upper bound for waits that only a bug could make endless (group joins included).
HANG_GUARD = 20

# This broker makes a joining member wait about half the session timeout.
TIMINGS: dict[str, Any] = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 400}


def source_for(kafka: Any, topics: Any, group: str | None, **options: Any) -> KafkaSource:
    options.setdefault("auto_offset_reset", "earliest")
    if group is not None:
        options = {**TIMINGS, **options}
    return KafkaSource(topics, group_id=group, bootstrap_servers=kafka.bootstrap_servers, **options)


def context(**options: Any) -> StreamingContext:
    options.setdefault("receiver_restart_backoff", 0)
    return StreamingContext(batch_interval=1.0, clock=ManualClock(), **options)


async def received(source: KafkaSource, count: int) -> None:
    """Wait until ``count`` records are in the stream's buffer (or were)."""
    with anyio.fail_after(HANG_GUARD):
        await source.wait_until(lambda stats: stats.received >= count)


def values(start: int, stop: int, partitions: int = 1) -> list[dict[str, Any]]:
    return [{"value": f"v{i}".encode(), "partition": i % partitions} for i in range(start, stop)]


async def one_batch(source: KafkaSource, count: int) -> list[KafkaRecord]:
    """Run a context over ``source`` for one batch of ``count`` records."""
    sink: ListSink[KafkaRecord] = ListSink()
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await received(source, count)
        await step(ssc)
    assert len(sink.batches) == 1
    return sink.batches[0][1]


# -- records and offsets -----------------------------------------------------------------


@pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])
async def test_records_in_are_records_out_per_batch_with_their_fields(kafka):
    topic = await kafka.topic(partitions=2)
    group = kafka.name("group")
    stamp = 1_700_000_000_000
    await kafka.produce(
        topic,
        [
            {
                "key": f"k{i}".encode(),
                "value": f"v{i}".encode(),
                "partition": i % 2,
                "timestamp_ms": stamp + i,
                "headers": [("n", str(i).encode())],
            }
            for i in range(6)
        ],
    )
    source = source_for(kafka, topic, group, key_deserializer="str", value_deserializer="str")
    sink: ListSink[KafkaRecord] = ListSink()
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await received(source, 6)
        await step(ssc)
        p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
        assert source.statistics().committed == {p0: 3, p1: 3}
        await kafka.produce(topic, [{"value": b"w0", "partition": 0}, {"value": b"w1"}])
        await received(source, 8)
        await step(ssc)
        assert source.statistics().committed[p0] + source.statistics().committed[p1] == 8
    (time1, first), (time2, second) = sink.batches
    assert (time1, time2) == (1.0, 2.0)
    assert sorted(first, key=lambda r: int(r.key[1:])) == [
        KafkaRecord(
            key=f"k{i}",
            value=f"v{i}",
            topic=topic,
            partition=i % 2,
            offset=i // 2,
            timestamp=stamp + i,
            headers=(("n", str(i).encode()),),
        )
        for i in range(6)
    ]
    for partition in (0, 1):  # each partition's records in offset order
        offsets = [r.offset for r in first if r.partition == partition]
        assert offsets == sorted(offsets)
    assert sorted(r.value for r in second) == ["w0", "w1"]
    assert [r.offset for r in second if r.value == "w0"] == [3]
    assert all(r.key is None and r.headers == () for r in second)
    committed = await kafka.committed(group, topic, 2)
    assert sum(committed) == 8 and committed[0] >= 4


def record_objects() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is KafkaRecord)


async def test_buffered_records_become_record_objects_only_when_a_batch_reads_them(kafka):
    topic = await kafka.topic(partitions=2)
    await kafka.produce(topic, values(0, 500, partitions=2))
    source = source_for(kafka, topic, kafka.name("group"), value_deserializer="str")
    sink: ListSink[int] = ListSink()
    async with context() as ssc:
        source.stream(ssc).map(lambda r: r.offset).foreach_batch(sink)
        before = record_objects()
        await ssc.start()
        await received(source, 500)
        assert record_objects() == before  # fields kept as plain tuples, no record yet
        await step(ssc)
        assert record_objects() == before  # built, read and gone
    assert sorted(sink.records) == sorted([*range(250), *range(250)])


async def test_a_columnar_source_stores_record_batches_and_builds_no_record(kafka):
    import pyarrow as pa

    topic = await kafka.topic(partitions=2)
    stamp = 1_700_000_000_000
    await kafka.produce(
        topic,
        [
            {
                "key": f"k{i}".encode(),
                "value": f"v{i}".encode(),
                "partition": i % 2,
                "timestamp_ms": stamp + i,
            }
            for i in range(6)
        ],
    )
    source = source_for(
        kafka,
        topic,
        kafka.name("group"),
        key_deserializer="str",
        value_deserializer="str",
        columnar=True,
    )
    tables: list[Any] = []
    rows: ListSink[Any] = ListSink()
    per_partition: ListSink[Any] = ListSink()
    async with context() as ssc:
        stream = source.stream(ssc)
        stream.foreach_batch(tables.append, format="arrow")
        stream.foreach_batch(rows)
        stream.sql(
            'SELECT partition, count(*) AS n, max("offset") AS last FROM batch '
            "GROUP BY partition ORDER BY partition"
        ).foreach_batch(per_partition)
        before = record_objects()
        await ssc.start()
        await received(source, 6)
        await step(ssc)
        assert record_objects() == before  # no KafkaRecord, ever
    [table] = tables
    assert table.schema == pa.schema(
        [
            ("key", pa.string()),
            ("value", pa.string()),
            ("topic", pa.string()),
            ("partition", pa.int32()),
            ("offset", pa.int64()),
            ("timestamp", pa.int64()),
        ]
    )
    assert sorted(rows.records, key=lambda r: r["key"]) == [
        {
            "key": f"k{i}",
            "value": f"v{i}",
            "topic": topic,
            "partition": i % 2,
            "offset": i // 2,
            "timestamp": stamp + i,
        }
        for i in range(6)
    ]
    assert per_partition.records == [
        {"partition": 0, "n": 3, "last": 2},
        {"partition": 1, "n": 3, "last": 2},
    ]


async def test_a_columnar_source_with_json_values_and_a_value_that_is_not_utf8(kafka):
    topic = await kafka.topic()
    messages = [{"value": b'{"n": 1}'}, {"key": b"k", "value": None}, {"value": b'{"n": 3}'}]
    await kafka.produce(topic, messages)
    source = source_for(kafka, topic, None, value_deserializer="json", columnar=True)
    totals: ListSink[Any] = ListSink()
    async with context() as ssc:
        source.stream(ssc).sql(
            "SELECT sum(value.n) AS total, count(key) AS keys FROM batch"
        ).foreach_batch(totals)
        await ssc.start()
        await received(source, 3)
        await step(ssc)
    assert totals.records == [{"total": 4, "keys": 1}]

    bad = await kafka.topic()
    await kafka.produce(bad, [{"value": b"ok"}, {"value": b"\xff"}])
    source = source_for(kafka, bad, None, value_deserializer="str", columnar=True)
    with pytest.raises(ReceiverError) as info:
        async with context(max_receiver_restarts=0) as ssc:
            source.stream(ssc).foreach_batch(ListSink())
            await ssc.start()
            with anyio.fail_after(HANG_GUARD):
                await anyio.sleep_forever()
    assert f"{bad}[0] offset 1" in str(info.value.__cause__)


async def test_a_restarted_consumer_resumes_after_the_committed_batch(kafka):
    topic = await kafka.topic(partitions=2)
    group = kafka.name("group")
    await kafka.produce(topic, values(0, 4, partitions=2))
    first = await one_batch(source_for(kafka, topic, group, value_deserializer="str"), 4)
    assert sorted(r.value for r in first) == ["v0", "v1", "v2", "v3"]
    assert await kafka.committed(group, topic, 2) == [2, 2]

    await kafka.produce(topic, values(4, 7, partitions=2))
    second = await one_batch(source_for(kafka, topic, group, value_deserializer="str"), 3)
    assert sorted(r.value for r in second) == ["v4", "v5", "v6"]
    assert sorted((r.partition, r.offset) for r in second) == [(0, 2), (0, 3), (1, 2)]
    assert await kafka.committed(group, topic, 2) == [4, 3]


async def test_a_restored_source_reads_from_the_position_not_the_groups_offsets(kafka):
    topic = await kafka.topic(partitions=2)
    group = kafka.name("group")
    await kafka.produce(topic, values(0, 8, partitions=2))
    await one_batch(source_for(kafka, topic, group), 8)
    assert await kafka.committed(group, topic, 2) == [4, 4]
    source = source_for(kafka, topic, group, value_deserializer="str")
    # as a job resumed from a checkpoint taken when partition 0 was at 1, 1 at 3
    await source.restore(KafkaPosition({TopicPartition(topic, 0): (1, 7), (topic, 1): (3, 9)}))
    again = await one_batch(source, 4)
    assert sorted((r.partition, r.offset) for r in again) == [(0, 1), (0, 2), (0, 3), (1, 3)]
    with pytest.raises(ConnectorError, match="start offsets must map"):
        await source.restore(12)


async def test_a_graceful_stop_commits_the_records_it_drains(kafka):
    topic = await kafka.topic()
    group = kafka.name("group")
    await kafka.produce(topic, values(0, 5))
    source = source_for(kafka, topic, group)
    sink: ListSink[KafkaRecord] = ListSink()
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await received(source, 5)
        # leaving the block: the receiver stops fetching, its buffered records are a
        # final batch, committed, and only then does the consumer leave the group
    assert [r.offset for r in sink.records] == [0, 1, 2, 3, 4]
    assert source.statistics().closed
    assert await kafka.committed(group, topic, 1) == [5]


async def test_a_failing_output_leaves_its_batch_uncommitted(kafka):
    topic = await kafka.topic()
    group = kafka.name("group")
    await kafka.produce(topic, values(0, 3))
    source = source_for(kafka, topic, group, value_deserializer="str")
    done: list[list[str]] = []
    failing = False

    def output(records: list[KafkaRecord]) -> None:
        if failing:
            raise RuntimeError("the output's database is down")
        done.append([r.value for r in records])

    with pytest.raises(OperatorError) as info:
        async with context() as ssc:
            source.stream(ssc).foreach_batch(output)
            await ssc.start()
            await received(source, 3)
            await step(ssc)
            assert await kafka.committed(group, topic, 1) == [3]
            await kafka.produce(topic, values(3, 5))
            await received(source, 5)
            failing = True
            await step(ssc)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert done == [["v0", "v1", "v2"]]
    assert await kafka.committed(group, topic, 1) == [3]
    assert source.statistics().closed  # it left the group with the failed context

    again = await one_batch(source_for(kafka, topic, group, value_deserializer="str"), 2)
    assert [(r.offset, r.value) for r in again] == [(3, "v3"), (4, "v4")]
    assert await kafka.committed(group, topic, 1) == [5]
    assert source.statistics().closed


async def test_a_hard_stop_leaves_records_uncommitted_for_the_next_member(kafka):
    topic = await kafka.topic()
    group = kafka.name("group")
    await kafka.produce(topic, values(0, 3))
    source = source_for(kafka, topic, group)
    async with context() as ssc:
        source.stream(ssc).foreach_batch(ListSink())
        await ssc.start()
        await received(source, 3)
        await ssc.stop(graceful=False)  # buffered records are dropped, never committed
    assert source.statistics().closed
    assert await kafka.committed(group, topic, 1) == [None]
    again = await one_batch(source_for(kafka, topic, group), 3)
    assert [r.offset for r in again] == [0, 1, 2]


async def test_after_a_rebalance_only_records_read_under_the_current_assignment_are_committed(
    kafka,
):
    topic = await kafka.topic(partitions=2)
    group = kafka.name("group")
    await kafka.produce(topic, values(0, 4, partitions=2))
    source = source_for(kafka, topic, group)
    sink: ListSink[KafkaRecord] = ListSink()
    everything = {TopicPartition(topic, 0), TopicPartition(topic, 1)}
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await received(source, 4)
        assert source.statistics().assignment == everything
        other = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka.bootstrap_servers,
            group_id=group,
            enable_auto_commit=False,
            **TIMINGS,
        )
        await other.start()
        try:
            with anyio.fail_after(HANG_GUARD):
                while not other.assignment():  # a second member joins: the group rebalances
                    await other.getmany(timeout_ms=100)
                await source.wait_until(lambda stats: len(stats.assignment) == 1)
            (kept,) = source.statistics().assignment
            # the kept partition is read again from its last commit (none)
            await received(source, 6)
            await step(ssc)
            records = [(r.partition, r.offset) for r in sink.records]
            old = [(0, 0), (0, 1), (1, 0), (1, 1)]
            assert sorted(records) == sorted([*old, (kept.partition, 0), (kept.partition, 1)])
            # the partition the other member took was read under the old assignment:
            # its records are not committed by this member (the other one reads them)
            assert source.statistics().committed == {kept: 2}
            committed = await kafka.committed(group, topic, 2)
            assert committed[kept.partition] == 2
            assert committed[1 - kept.partition] is None
        finally:
            await other.stop()


# -- subscription, headers, compression ------------------------------------------------------


async def test_pattern_subscription_and_kafka_stream(kafka):
    prefix = kafka.name("logs")
    await kafka.produce(await _topic_named(kafka, f"{prefix}-a"), [{"value": b"a"}])
    await kafka.produce(await _topic_named(kafka, f"{prefix}-b"), [{"value": b"b"}])
    await kafka.produce(await kafka.topic(), [{"value": b"not matched"}])
    sink: ListSink[tuple[str, str]] = ListSink()
    async with context() as ssc:
        stream = kafka_stream(
            ssc,
            re.compile(re.escape(prefix) + "-.*"),
            group_id=None,
            bootstrap_servers=kafka.bootstrap_servers,
            auto_offset_reset="earliest",
            value_deserializer="str",
            name="logs",
        )
        stream.map(lambda r: (r.topic, r.value)).foreach_batch(sink)
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            while len(sink.records) < 2:
                await step(ssc)
    assert sorted(sink.records) == [(f"{prefix}-a", "a"), (f"{prefix}-b", "b")]


async def _topic_named(kafka: Any, name: str) -> str:
    await create_topic(kafka.bootstrap_servers, name)
    return name


async def test_headers_tombstones_and_compressed_batches(kafka):
    topic = await kafka.topic()
    headers = [("trace", b"abc"), ("trace", b"def"), ("empty", b"")]
    messages = [
        {"key": b"k1", "value": b'{"n": 1}', "headers": headers},
        {"key": b"k1", "value": None},  # a tombstone
        {"value": '"é €"'.encode()},
    ]
    await kafka.produce(topic, messages, compression_type="gzip", linger_ms=20)
    source = source_for(kafka, topic, None, key_deserializer="str", value_deserializer="json")
    records = await one_batch(source, 3)
    assert [(r.key, r.value, r.headers) for r in records[:2]] == [
        ("k1", {"n": 1}, tuple(headers)),
        ("k1", None, ()),
    ]
    assert records[2].value == "é €"


async def test_a_record_that_cannot_be_deserialized_stops_the_source_without_retries(kafka):
    topic = await kafka.topic()
    await kafka.produce(topic, [{"value": b'{"ok": 1}'}, {"value": b"not json"}])
    source = source_for(kafka, topic, None, value_deserializer="json")
    with pytest.raises(ReceiverError) as info:
        async with context(max_receiver_restarts=3) as ssc:
            source.stream(ssc).foreach_batch(ListSink())
            await ssc.start()
            with anyio.fail_after(HANG_GUARD):
                await anyio.sleep_forever()
    assert info.value.attempts == 1
    error = info.value.__cause__
    assert isinstance(error, ConnectorError) and not error.retriable
    assert f"{topic}[0] offset 1" in str(error)


class Drops(StreamingListener):
    def __init__(self) -> None:
        self.skipped: list[dict[str, int]] = []
        self.dead_lettered: list[dict[str, int]] = []

    def on_batch_completed(self, info: BatchInfo) -> None:
        self.skipped.append(info.records_skipped)
        self.dead_lettered.append(info.records_dead_lettered)


BAD_JSON = [{"value": b'{"ok": 1}'}, {"value": b"not json"}, {"value": b"[2]"}]


@pytest.mark.parametrize("policy", ["skip", "dead_letter"])
async def test_records_a_deserializer_refuses_are_left_out_counted_and_committed(kafka, policy):
    topic = await kafka.topic()
    group = kafka.name("group")
    await kafka.produce(topic, BAD_JSON)
    source = source_for(kafka, topic, group, value_deserializer="json", on_deserialize_error=policy)
    sink: ListSink[KafkaRecord] = ListSink()
    letters: ListSink[DeadLetter] = ListSink()
    drops = Drops()
    async with context() as ssc:
        stream = source.stream(ssc, name="events")
        stream.foreach_batch(sink)
        if policy == "dead_letter":
            stream.dead_letters().foreach_batch(letters)
        ssc.add_listener(drops)
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await source.wait_until(lambda stats: stats.received + stats.rejected >= 3)
        await step(ssc)
        assert source.statistics().rejected == 1
    assert [(r.value, r.offset) for r in sink.records] == [({"ok": 1}, 0), ([2], 2)]
    assert await kafka.committed(group, topic, 1) == [3]  # the refused one's offset too
    if policy == "skip":
        assert drops.skipped == [{"events": 1}]
        assert drops.dead_lettered == [{}]
        return
    assert drops.dead_lettered == [{"events": 1}]
    assert drops.skipped == [{}]
    [letter] = letters.records
    assert (letter.operator, letter.batch_time) == ("events", 1.0)
    assert isinstance(letter.error, ValueError)  # json.JSONDecodeError
    raw = letter.record
    assert isinstance(raw, KafkaRecord)
    assert (raw.value, raw.topic, raw.partition, raw.offset) == (b"not json", topic, 0, 1)


async def test_a_fetch_of_refused_records_only_is_committed(kafka):
    topic = await kafka.topic()
    group = kafka.name("group")
    await kafka.produce(topic, [{"value": b"bad"}, {"value": b"worse"}])
    source = source_for(
        kafka, topic, group, value_deserializer="json", on_deserialize_error="skip"
    )
    drops = Drops()
    async with context() as ssc:
        source.stream(ssc, name="events").foreach_batch(ListSink())
        ssc.add_listener(drops)
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await source.wait_until(lambda stats: stats.rejected >= 2)
        await step(ssc)
    assert drops.skipped == [{"events": 2}]
    assert await kafka.committed(group, topic, 1) == [2]


async def test_dead_letters_of_the_source_that_nothing_reads_fail_at_start(kafka):
    topic = await kafka.topic()
    source = source_for(kafka, topic, None, on_deserialize_error="dead_letter")
    async with context() as ssc:
        source.stream(ssc, name="events").foreach_batch(ListSink())
        with pytest.raises(ConfigurationError, match="'events' sends the records it refuses"):
            ssc.start()


async def test_a_wrong_deserialize_error_policy_fails_when_the_source_is_built():
    with pytest.raises(ConfigurationError, match='on_deserialize_error must be "fail"'):
        KafkaSource("t", group_id=None, on_deserialize_error="ignore")  # type: ignore[arg-type]


# -- rate limit and backpressure --------------------------------------------------------------


async def test_max_rate_per_partition_caps_each_batch(kafka):
    topic = await kafka.topic(partitions=2)
    await kafka.produce(topic, values(0, 50, partitions=2))  # 25 per partition
    source = source_for(kafka, topic, None, max_rate_per_partition=10.0)  # 10 per 1 s batch
    sink: ListSink[KafkaRecord] = ListSink()
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        for total in (20, 40, 50):
            await received(source, total)
            await step(ssc)
    sizes = [
        [sum(1 for r in records if r.partition == p) for p in (0, 1)] for _, records in sink.batches
    ]
    assert sizes == [[10, 10], [10, 10], [5, 5]]
    for partition in (0, 1):
        offsets = [r.offset for r in sink.records if r.partition == partition]
        assert offsets == list(range(25))


async def test_each_batch_reports_the_offsets_it_holds_per_partition(kafka):
    topic = await kafka.topic(partitions=2)
    await kafka.produce(topic, values(0, 50, partitions=2))  # 25 per partition
    source = source_for(kafka, topic, None, max_rate_per_partition=10.0)
    described: list[dict[str, Any]] = []

    class Completed:
        def on_batch_completed(self, info: BatchInfo) -> None:
            described.append(info.input_metadata)

    async with context() as ssc:
        ssc.add_listener(Completed())
        source.stream(ssc, name="in").foreach_batch(ListSink())
        await ssc.start()
        for total in (20, 40, 50):
            await received(source, total)
            await step(ssc)
    assert [batch["in"]["offsets"] for batch in described] == [
        {topic: {0: range(0, 10), 1: range(0, 10)}},
        {topic: {0: range(10, 20), 1: range(10, 20)}},
        {topic: {0: range(20, 25), 1: range(20, 25)}},
    ]


async def test_max_rate_caps_the_stream_and_max_rate_per_partition_each_partition(kafka):
    topic = await kafka.topic(partitions=2)
    await kafka.produce(topic, values(0, 50, partitions=2))  # 25 per partition
    sink: ListSink[KafkaRecord] = ListSink()
    # the source stores 10 per partition per batch; a batch takes 15 of them, the
    # rest waits in the buffer
    source = source_for(kafka, topic, None, max_rate_per_partition=10.0)
    async with context() as ssc:
        source.stream(ssc, max_rate=15.0).foreach_batch(sink)
        await ssc.start()
        for total in (20, 40, 50, 50):
            await received(source, total)
            await step(ssc)
    assert [len(records) for _, records in sink.batches] == [15, 15, 15, 5]
    for partition in (0, 1):
        offsets = [r.offset for r in sink.records if r.partition == partition]
        assert offsets == list(range(25))


async def test_a_full_buffer_pauses_fetching_and_nothing_is_lost(kafka):
    topic = await kafka.topic()
    await kafka.produce(topic, values(0, 10))
    source = source_for(kafka, topic, None)
    sink: ListSink[KafkaRecord] = ListSink()
    everything = frozenset({TopicPartition(topic, 0)})
    async with context() as ssc:
        source.stream(ssc, buffer_capacity=4).foreach_batch(sink)
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await source.wait_until(lambda stats: stats.waiting_for_space)
            assert source.statistics().paused == everything
            while len(sink.records) < 10:
                await source.wait_until(lambda s: s.waiting_for_space or s.received == 10)
                await step(ssc)
    assert all(len(records) <= 4 for _, records in sink.batches)
    assert [r.offset for r in sink.records] == list(range(10))
    assert source.statistics().paused == frozenset()


async def test_a_full_byte_budget_pauses_fetching_and_nothing_is_lost(kafka):
    topic = await kafka.topic()
    big = [{"value": bytes([65 + i]) * 10_000, "partition": 0} for i in range(10)]
    await kafka.produce(topic, big)
    source = source_for(kafka, topic, None)
    sink: ListSink[KafkaRecord] = ListSink()
    budget = 35_000  # about three of the records
    async with context(buffer_bytes=budget) as ssc:
        stream = source.stream(ssc)
        stream.foreach_batch(sink)
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await source.wait_until(lambda stats: stats.waiting_for_space)
            assert source.statistics().paused == frozenset({TopicPartition(topic, 0)})
            assert stream.buffer_statistics().used_bytes <= budget
            while len(sink.records) < 10:
                await source.wait_until(lambda s: s.waiting_for_space or s.received == 10)
                assert stream.buffer_statistics().used_bytes <= budget
                await step(ssc)
    assert all(len(records) <= 3 for _, records in sink.batches)
    assert [r.value for r in sink.records] == [record["value"] for record in big]
    assert source.statistics().paused == frozenset()


# -- a broker that goes away -----------------------------------------------------------------


class ReceiverEvents(StreamingListener):
    """The receiver callbacks of a context."""

    def __init__(self) -> None:
        self.started: list[ReceiverInfo] = []
        self.errors: list[ReceiverInfo] = []

    def on_receiver_started(self, info: ReceiverInfo) -> None:
        self.started.append(info)

    def on_receiver_error(self, info: ReceiverInfo) -> None:
        self.errors.append(info)


def outage_source(bootstrap_servers: str, topic: str, group: str, **options: Any) -> KafkaSource:
    """A source that notices an outage quickly."""
    return KafkaSource(
        topic,
        group_id=group,
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="earliest",
        value_deserializer="str",
        broker_check_interval=0.2,
        reconnect_backoff=0.2,
        max_backoff=0.4,
        request_timeout_ms=3000,  # more than a group join takes on this broker
        **TIMINGS,
        **options,
    )


@pytest.mark.parametrize("outage", ["restart", "pause"])
async def test_the_source_rides_out_a_broker_outage_by_default(kafka, outage):
    with start_broker() as broker:  # a broker of its own, to stop
        servers = broker.bootstrap_servers
        port = int(servers.rsplit(":", 1)[1])
        topic = kafka.name("topic")
        await create_topic(servers, topic)
        await kafka.on(servers).produce(topic, values(0, 3))
        source = outage_source(servers, topic, kafka.name("group"))
        listener = ReceiverEvents()
        sink: ListSink[str] = ListSink()
        with contextlib.ExitStack() as after:
            # no receiver restart allowed: one would fail the context
            async with context(max_receiver_restarts=0) as ssc:
                ssc.add_listener(listener)
                source.stream(ssc).map(lambda r: r.value).foreach_batch(sink)
                await ssc.start()
                await received(source, 3)
                await step(ssc)
                if outage == "pause":
                    os.kill(broker.pid, signal.SIGSTOP)  # requests time out
                else:
                    os.kill(broker.pid, signal.SIGKILL)  # connections refused
                with anyio.fail_after(HANG_GUARD):
                    await source.wait_until(lambda stats: stats.broker_failures >= 2)
                if outage == "pause":
                    os.kill(broker.pid, signal.SIGCONT)
                else:
                    # the same address again; in memory, it starts empty
                    after.enter_context(start_broker(port=port))
                    await create_topic(servers, topic)
                await kafka.on(servers).produce(topic, values(3, 6))
                await received(source, 6)
                await step(ssc)
                assert source.statistics().broker_failures == 0
    assert sink.records == ["v0", "v1", "v2", "v3", "v4", "v5"]
    assert [info.attempt for info in listener.started] == [1]
    assert len(listener.errors) >= 2
    for info in listener.errors:
        assert info.attempt == 1  # reported by the source, not a restart
        assert info.extra == {"bootstrap_servers": servers}
        assert isinstance(info.error, ConnectorError) and info.error.retriable
        assert "unreachable" in str(info.error)


async def test_max_reconnects_hands_the_outage_to_the_runtime(kafka):
    with start_broker() as broker:  # a broker of its own, to kill
        topic = kafka.name("topic")
        await create_topic(broker.bootstrap_servers, topic)
        group = kafka.name("group")
        source = outage_source(broker.bootstrap_servers, topic, group, max_reconnects=1)
        listener = ReceiverEvents()
        with pytest.raises(ReceiverError) as info:
            async with context(max_receiver_restarts=1) as ssc:
                ssc.add_listener(listener)
                source.stream(ssc).foreach_batch(ListSink())
                await ssc.start()
                with anyio.fail_after(HANG_GUARD):
                    await source.wait_until(lambda stats: bool(stats.assignment))
                    os.kill(broker.pid, signal.SIGKILL)
                    await anyio.sleep_forever()
    # two failed checks reported by the source, the second raised: the runtime
    # reports it and restarts the receiver once, whose open() fails
    assert info.value.attempts == 2
    errors = [e.error for e in listener.errors]
    assert len(errors) == 4
    assert errors[1] is errors[2]
    assert all(isinstance(e, ConnectorError) and e.retriable for e in errors)
    assert "unreachable" in str(errors[0])
    assert source.statistics().closed


async def test_a_restarted_source_without_a_group_resumes_after_what_it_stored(kafka):
    """Nobody else reads its partitions: after a receiver restart the source goes
    on after the records it had stored (still buffered), not at auto_offset_reset."""
    with start_broker() as broker:  # a broker of its own, to freeze
        servers = broker.bootstrap_servers
        topic = kafka.name("topic")
        await create_topic(servers, topic)
        await kafka.on(servers).produce(topic, values(0, 3))
        source = KafkaSource(
            topic,
            group_id=None,
            bootstrap_servers=servers,
            auto_offset_reset="earliest",
            value_deserializer="str",
            broker_check_interval=0.2,
            reconnect_backoff=0.2,
            max_backoff=0.4,
            max_reconnects=0,  # the first failed check restarts the receiver
            request_timeout_ms=1000,
        )
        outage = anyio.Event()

        class Outage(ReceiverEvents):
            def on_receiver_error(self, info: ReceiverInfo) -> None:
                super().on_receiver_error(info)
                outage.set()  # reported just before run() raises (max_reconnects=0)

        listener = Outage()
        sink: ListSink[str] = ListSink()
        async with context(max_receiver_restarts=100) as ssc:
            ssc.add_listener(listener)
            source.stream(ssc).map(lambda r: r.value).foreach_batch(sink)
            await ssc.start()
            await received(source, 3)  # buffered, not yet in a batch
            os.kill(broker.pid, signal.SIGSTOP)
            try:
                with anyio.fail_after(HANG_GUARD):
                    await outage.wait()
            finally:
                os.kill(broker.pid, signal.SIGCONT)
            await kafka.on(servers).produce(topic, values(3, 6))
            await received(source, 6)
            await step(ssc)
    assert len(listener.started) >= 2  # restarted
    assert sink.records == ["v0", "v1", "v2", "v3", "v4", "v5"]
