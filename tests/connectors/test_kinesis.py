"""The Kinesis connector against moto's Kinesis server (a real HTTP endpoint on
loopback): records in = records out, resharding (a parent's records before its
children's), restore from a position, an endpoint outage survived, a full buffer
stopping GetRecords, bad records failed or skipped, and the PutRecords sink with
Kinesis's partial failures (a shard over its write limit) retried."""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from aiobotocore.session import get_session

from streamio import (
    ConfigurationError,
    ConnectorError,
    ReceiverError,
    ReceiverInfo,
    StreamingContext,
    StreamingListener,
)
from streamio.connectors.kinesis import (
    SHARD_END,
    KinesisRecord,
    KinesisSink,
    KinesisSource,
    kinesis_stream,
)
from streamio.connectors.testing import moto_server as start_moto
from streamio.testing import ListSink, ManualClock, step

pytestmark = pytest.mark.asyncio(loop_factories=["uvloop"])

# Upper bound for waits that only a bug could make endless.
HANG_GUARD = 30
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "test-key-id", "aws_secret_access_key": "test-secret-42"}
# Hash keys that land in the lower and the upper half of the key space.
LOW, HIGH = str(2**100), str(2**127 + 2**100)

_names = itertools.count(1)


def stream_name() -> str:
    return f"stream-{next(_names)}"


def context(**options: Any) -> StreamingContext:
    options.setdefault("receiver_restart_backoff", 0)
    return StreamingContext(batch_interval=1.0, clock=ManualClock(), **options)


def source_for(server: Any, stream: str, **options: Any) -> KinesisSource:
    options.setdefault("initial_position", "TRIM_HORIZON")
    options.setdefault("poll_interval", 0.05)
    options.setdefault("reconnect_backoff", 0.01)
    options.setdefault("max_backoff", 0.2)
    return KinesisSource(
        stream, region_name=REGION, endpoint_url=server.url, **CREDENTIALS, **options
    )


@contextlib.asynccontextmanager
async def kinesis(server: Any) -> AsyncIterator[Any]:
    """A plain aiobotocore client to the server."""
    async with get_session().create_client(
        "kinesis", region_name=REGION, endpoint_url=server.url, **CREDENTIALS
    ) as client:
        yield client


async def create(server: Any, stream: str, shards: int = 1) -> None:
    async with kinesis(server) as client:
        await client.create_stream(StreamName=stream, ShardCount=shards)


async def put(server: Any, stream: str, data: list[str], hash_key: str | None = None) -> None:
    """Put the lines with one PutRecords, in order (to the shard of ``hash_key`` if
    given), each its own partition key."""
    extra = {} if hash_key is None else {"ExplicitHashKey": hash_key}
    records = [{"Data": line.encode(), "PartitionKey": line, **extra} for line in data]
    async with kinesis(server) as client:
        reply = await client.put_records(StreamName=stream, Records=records)
    assert reply["FailedRecordCount"] == 0


async def read_all(server: Any, stream: str) -> dict[str, list[bytes]]:
    """Every record of every shard, from the oldest."""
    found: dict[str, list[bytes]] = {}
    async with kinesis(server) as client:
        for shard in (await client.list_shards(StreamName=stream))["Shards"]:
            iterator = (
                await client.get_shard_iterator(
                    StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )
            )["ShardIterator"]
            reply = await client.get_records(ShardIterator=iterator)
            found[shard["ShardId"]] = [record["Data"] for record in reply["Records"]]
    return found


async def until(source: KinesisSource, predicate: Any) -> None:
    with anyio.fail_after(HANG_GUARD):
        await source.wait_until(predicate)


def lines(prefix: str, start: int, stop: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(start, stop)]


def data_of(records: list[KinesisRecord]) -> list[str]:
    return [record.data.decode() for record in records]


class ReceiverErrors(StreamingListener):
    def __init__(self) -> None:
        self.infos: list[ReceiverInfo] = []

    def on_receiver_error(self, info: ReceiverInfo) -> None:
        self.infos.append(info)


# -- the test server ----------------------------------------------------------------------


async def test_the_test_server_reshards_as_kinesis_does(moto_server):
    stream = stream_name()
    await create(moto_server, stream)
    await put(moto_server, stream, ["p0", "p1"])
    async with kinesis(moto_server) as client:
        await client.split_shard(
            StreamName=stream, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**127)
        )
    await put(moto_server, stream, ["low"], LOW)
    await put(moto_server, stream, ["high"], HIGH)
    assert await read_all(moto_server, stream) == {
        "shardId-000000000000": [b"p0", b"p1"],  # kept by the parent
        "shardId-000000000001": [b"low"],  # new records go to the open children
        "shardId-000000000002": [b"high"],
    }
    async with kinesis(moto_server) as client:
        iterator = (
            await client.get_shard_iterator(
                StreamName=stream,
                ShardId="shardId-000000000000",
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                StartingSequenceNumber="2",
            )
        )["ShardIterator"]
        reply = await client.get_records(ShardIterator=iterator)
    assert reply["Records"] == []
    assert "NextShardIterator" not in reply  # the closed parent is read to its end


# -- records and positions -----------------------------------------------------------------


@pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])
async def test_records_in_are_records_out_from_every_shard(moto_server):
    stream = stream_name()
    await create(moto_server, stream, shards=2)
    await put(moto_server, stream, lines("low", 0, 3), LOW)
    await put(moto_server, stream, lines("high", 0, 2), HIGH)
    source = source_for(moto_server, stream, chunk_size=2)
    sink: ListSink[KinesisRecord] = ListSink()
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await until(source, lambda stats: stats.received == 5)
        assert source.statistics().committed is None  # not before the batch's outputs
        await step(ssc)
        committed = source.statistics().committed
        await put(moto_server, stream, lines("low", 3, 5), LOW)
        await until(source, lambda stats: stats.received == 7)
        await step(ssc)
    assert committed == {"shardId-000000000000": "3", "shardId-000000000001": "2"}
    by_shard: dict[str, list[str]] = {}
    for record in sink.records:
        by_shard.setdefault(record.shard_id, []).append(record.data.decode())
    assert by_shard == {
        "shardId-000000000000": lines("low", 0, 5),
        "shardId-000000000001": lines("high", 0, 2),
    }
    first = sink.batches[0][1][0]
    assert first.partition_key == first.data.decode()
    assert first.sequence_number == "1"
    assert first.arrival_time > 1.7e9
    assert source.statistics().committed == {
        "shardId-000000000000": "5",
        "shardId-000000000001": "2",
    }


async def test_latest_starts_with_the_records_added_after_the_start(moto_server):
    stream = stream_name()
    await create(moto_server, stream)
    await put(moto_server, stream, ["old"])
    source = source_for(moto_server, stream, initial_position="LATEST")
    sink: ListSink[KinesisRecord] = ListSink()
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await until(source, lambda stats: stats.get_records >= 1)
        await put(moto_server, stream, ["new"])
        await until(source, lambda stats: stats.received == 1)
        await step(ssc)
    assert data_of(sink.records) == ["new"]


async def test_a_split_shard_is_read_to_its_end_before_its_children(moto_server):
    stream = stream_name()
    await create(moto_server, stream)
    await put(moto_server, stream, lines("p", 0, 4))
    source = source_for(moto_server, stream, chunk_size=2)
    sink: ListSink[KinesisRecord] = ListSink()
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await until(source, lambda stats: stats.received == 4)
        # mid-stream: the parent gets more, then splits; the children get records at once
        await put(moto_server, stream, lines("p", 4, 10))
        async with kinesis(moto_server) as client:
            await client.split_shard(
                StreamName=stream,
                ShardToSplit="shardId-000000000000",
                NewStartingHashKey=str(2**127),
            )
        await put(moto_server, stream, lines("low", 0, 3), LOW)
        await put(moto_server, stream, lines("high", 0, 3), HIGH)
        await until(source, lambda stats: stats.received == 16)
        await step(ssc)
        committed = source.statistics().committed
    order = data_of(sink.records)
    assert sorted(order) == sorted(lines("p", 0, 10) + lines("low", 0, 3) + lines("high", 0, 3))
    assert order[:10] == lines("p", 0, 10)  # every parent record before any child's
    assert [line for line in order if line.startswith("low")] == lines("low", 0, 3)
    assert committed == {
        "shardId-000000000000": SHARD_END,
        "shardId-000000000001": "3",
        "shardId-000000000002": "3",
    }


async def test_children_listed_with_their_unread_parent_wait_for_it(moto_server):
    stream = stream_name()
    await create(moto_server, stream)
    await put(moto_server, stream, lines("p", 0, 10))
    async with kinesis(moto_server) as client:
        await client.split_shard(
            StreamName=stream, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**127)
        )
    await put(moto_server, stream, lines("low", 0, 3), LOW)
    await put(moto_server, stream, lines("high", 0, 3), HIGH)
    source = source_for(moto_server, stream, chunk_size=2)  # the parent takes five calls
    sink: ListSink[KinesisRecord] = ListSink()
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await until(source, lambda stats: stats.received == 16)
        await step(ssc)
    order = data_of(sink.records)
    assert order[:10] == lines("p", 0, 10)
    assert sorted(order[10:]) == sorted(lines("low", 0, 3) + lines("high", 0, 3))


async def test_a_merged_shard_is_read_after_both_parents(moto_server):
    stream = stream_name()
    await create(moto_server, stream, shards=2)
    await put(moto_server, stream, lines("low", 0, 6), LOW)
    await put(moto_server, stream, lines("high", 0, 2), HIGH)
    async with kinesis(moto_server) as client:
        await client.merge_shards(
            StreamName=stream,
            ShardToMerge="shardId-000000000000",
            AdjacentShardToMerge="shardId-000000000001",
        )
    await put(moto_server, stream, lines("merged", 0, 2), HIGH)
    source = source_for(moto_server, stream, chunk_size=1)
    sink: ListSink[KinesisRecord] = ListSink()
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await until(source, lambda stats: stats.received == 10)
        await step(ssc)
    order = data_of(sink.records)
    assert order[-2:] == lines("merged", 0, 2)
    assert sorted(order[:-2]) == sorted(lines("low", 0, 6) + lines("high", 0, 2))


async def test_a_restored_source_reads_only_what_came_after_its_position(moto_server):
    stream = stream_name()
    await create(moto_server, stream, shards=2)
    await put(moto_server, stream, lines("low", 0, 3), LOW)
    await put(moto_server, stream, lines("high", 0, 2), HIGH)
    first = source_for(moto_server, stream)
    async with context() as ssc:
        first.stream(ssc).foreach_batch(ListSink())
        await ssc.start()
        await until(first, lambda stats: stats.received == 5)
        await step(ssc)
    position = first.statistics().committed
    assert position is not None
    await put(moto_server, stream, lines("low", 3, 5), LOW)
    await put(moto_server, stream, lines("high", 2, 3), HIGH)

    again = source_for(moto_server, stream)  # TRIM_HORIZON would read everything
    await again.restore(position)
    sink: ListSink[KinesisRecord] = ListSink()
    async with context() as ssc:
        again.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await until(again, lambda stats: stats.received == 3)
        await step(ssc)
    assert sorted(data_of(sink.records)) == ["high2", "low3", "low4"]


async def test_a_restored_position_skips_finished_shards_and_reads_new_children(moto_server):
    stream = stream_name()
    await create(moto_server, stream)
    await put(moto_server, stream, lines("p", 0, 3))
    async with kinesis(moto_server) as client:
        await client.split_shard(
            StreamName=stream, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**127)
        )
    await put(moto_server, stream, lines("low", 0, 2), LOW)
    # the checkpoint saw the parent to its end; the children appeared after it
    source = source_for(moto_server, stream, initial_position="LATEST")
    await source.restore({"shardId-000000000000": SHARD_END})
    sink: ListSink[KinesisRecord] = ListSink()
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await until(source, lambda stats: stats.received == 2)
        await step(ssc)
    assert data_of(sink.records) == lines("low", 0, 2)


@pytest.mark.parametrize("position", [["shardId-0", "1"], {"shardId-0": 1}, "1"])
async def test_restore_refuses_a_position_it_did_not_make(moto_server, position):
    source = source_for(moto_server, "s")
    with pytest.raises(ConnectorError, match="not a position of a Kinesis source") as info:
        await source.restore(position)
    assert not info.value.retriable


# -- outages and backpressure ------------------------------------------------------------


async def test_an_outage_is_reported_and_each_shard_resumes_after_what_it_stored():
    with start_moto() as server:  # a server of its own, to stop and start
        stream = stream_name()
        await create(server, stream)
        await put(server, stream, lines("l", 0, 3))
        source = source_for(server, stream)
        listener = ReceiverErrors()
        sink: ListSink[KinesisRecord] = ListSink()
        async with context() as ssc:
            ssc.add_listener(listener)
            source.stream(ssc).foreach_batch(sink)
            await ssc.start()
            await until(source, lambda stats: stats.received == 3)
            server.kill()
            await until(source, lambda stats: stats.outages >= 2)  # retried with backoff
            await anyio.to_thread.run_sync(server.start)
            # moto lost everything: the stream is made again with what it held, and more
            await create(server, stream)
            await put(server, stream, lines("l", 0, 6))
            await until(source, lambda stats: stats.received == 6)
            await step(ssc)
        assert data_of(sink.records) == lines("l", 0, 6)  # nothing twice, nothing skipped
        assert len(listener.infos) == source.statistics().outages
        for info in listener.infos:
            assert isinstance(info.error, ConnectorError) and info.error.retriable
            assert info.extra["endpoint"] == server.url


async def test_a_missing_stream_fails_at_open_and_names_it(moto_server):
    source = source_for(moto_server, "no-such-stream")
    with pytest.raises(ReceiverError) as info:
        async with context() as ssc:
            source.stream(ssc).foreach_batch(ListSink())
            await ssc.start()
    cause = info.value.__cause__
    assert isinstance(cause, ConnectorError) and not cause.retriable
    assert "'no-such-stream' not found" in str(cause)


async def test_a_full_buffer_stops_get_records_and_nothing_is_lost(moto_server):
    stream = stream_name()
    total, capacity, chunk = 2000, 100, 40
    await create(moto_server, stream)
    async with kinesis(moto_server) as client:
        for start in range(0, total, 500):
            await client.put_records(
                StreamName=stream,
                Records=[
                    {"Data": line.encode(), "PartitionKey": "k"}
                    for line in lines("l", start, start + 500)
                ],
            )
    source = source_for(moto_server, stream, chunk_size=chunk)
    sink: ListSink[KinesisRecord] = ListSink()
    async with context() as ssc:
        source.stream(ssc, buffer_capacity=capacity).foreach_batch(sink)
        await ssc.start()
        await until(source, lambda stats: stats.waiting_for_space)
        calls = source.statistics().get_records
        # what is read is bounded by the buffer and one chunk; the rest stays in Kinesis
        assert source.statistics().received <= capacity + chunk
        while len(sink.records) < total:
            await until(source, lambda s: s.waiting_for_space or s.received == total)
            assert source.statistics().received - len(sink.records) <= capacity + chunk
            await step(ssc)
    assert calls <= (capacity + chunk) // chunk + 1
    assert all(len(records) <= capacity for _, records in sink.batches)
    assert data_of(sink.records) == lines("l", 0, total)


# -- bad records ---------------------------------------------------------------------------


async def test_a_bad_record_fails_the_source(moto_server):
    stream = stream_name()
    await create(moto_server, stream)
    await put(moto_server, stream, ["1", "{not json", "2"])
    source = source_for(moto_server, stream, value_deserializer="json")
    with pytest.raises(ReceiverError) as info:
        async with context() as ssc:
            source.stream(ssc).foreach_batch(ListSink())
            await ssc.start()
            await anyio.sleep_forever()
    cause = info.value.__cause__
    assert isinstance(cause, ConnectorError) and not cause.retriable
    assert "record 2 of shard shardId-000000000000" in str(cause)
    assert info.value.attempts == 1
    assert source.statistics().received == 0


async def test_a_bad_record_is_skipped_reported_and_counted(moto_server):
    stream = stream_name()
    await create(moto_server, stream)
    await put(moto_server, stream, ["1", "{not json", "[2]"])
    source = source_for(moto_server, stream, value_deserializer="json", on_bad_message="skip")
    listener = ReceiverErrors()
    sink: ListSink[KinesisRecord] = ListSink()
    async with context() as ssc:
        ssc.add_listener(listener)
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await until(source, lambda stats: stats.received == 2)
        await step(ssc)
    assert [record.data for record in sink.records] == [1, [2]]
    assert source.statistics().skipped == 1
    (info,) = listener.infos
    assert info.extra["message"] == "record 2 of shard shardId-000000000000"
    assert source.statistics().committed == {"shardId-000000000000": "3"}


# -- configuration and credentials -----------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"initial_position": "EARLIEST"}, "initial_position must be 'LATEST' or 'TRIM_HORIZON'"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"chunk_size": 10_001}, "at most 10,000"),
        ({"value_deserializer": "pickle"}, "pickle is not offered"),
        ({"on_bad_message": "ignore"}, "on_bad_message must be 'fail' or 'skip'"),
        ({"poll_interval": -1}, "poll_interval"),
        ({"endpoint_url": "127.0.0.1:4566"}, "http"),
        ({"aws_access_key_id": "k"}, "together"),
        ({"reconnect_backoff": 2, "max_backoff": 1}, "max_backoff"),
    ],
)
async def test_wrong_options_fail_when_the_source_is_made(options, message):
    options.setdefault("region_name", REGION)
    with pytest.raises(ConfigurationError, match=message):
        KinesisSource("s", **options)


async def test_a_missing_region_fails_when_the_source_is_made(monkeypatch, tmp_path):
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(ConfigurationError, match="pass region_name="):
        KinesisSource("s")
    with pytest.raises(ConfigurationError, match="pass region_name="):
        KinesisSink("s")


async def test_credentials_come_from_the_environment_and_are_never_shown(
    moto_server, monkeypatch, caplog
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-77")
    stream = stream_name()
    await create(moto_server, stream)
    await put(moto_server, stream, ["a"])
    source = KinesisSource(
        stream, region_name=REGION, endpoint_url=moto_server.url, initial_position="TRIM_HORIZON"
    )
    caplog.set_level(logging.DEBUG)
    sink: ListSink[KinesisRecord] = ListSink()
    async with context() as ssc:
        source.stream(ssc).foreach_batch(sink)
        await ssc.start()
        await until(source, lambda stats: stats.received == 1)
        await step(ssc)
    assert data_of(sink.records) == ["a"]
    assert "env-secret-77" not in caplog.text
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("streamio"))
    assert "env-key-id" not in ours
    for shown in (repr(source), repr(KinesisSink(stream, region_name=REGION, **CREDENTIALS))):
        assert "test-secret-42" not in shown and "env-secret-77" not in shown


async def test_kinesis_stream_names_the_stream_after_the_kinesis_stream(moto_server):
    async with context() as ssc:
        records = kinesis_stream(ssc, "events", region_name=REGION, endpoint_url=moto_server.url)
        assert records.name == "kinesis events"


# -- the sink --------------------------------------------------------------------------------


async def test_the_sink_writes_each_batch_with_its_partition_keys(moto_server):
    stream = stream_name()
    await create(moto_server, stream, shards=2)
    options = {"region_name": REGION, "endpoint_url": moto_server.url, **CREDENTIALS}
    async with (
        KinesisSink(stream, value_serializer="json", partition_key=str, **options) as sink,
        context() as ssc,
    ):
        ssc.queue_stream([[{"n": i} for i in range(3)], [{"n": 3}]]).foreach_batch(sink)
        await ssc.start()
        await step(ssc, 2)
    found = await read_all(moto_server, stream)
    assert sorted(data for shard in found.values() for data in shard) == [
        b'{"n":0}', b'{"n":1}', b'{"n":2}', b'{"n":3}'
    ]
    assert sink.written == 4 and sink.retried == 0


async def test_the_sink_sends_large_batches_in_calls_kinesis_accepts(moto_server):
    stream = stream_name()
    await create(moto_server, stream)
    async with KinesisSink(
        stream, partition_key="k", region_name=REGION, endpoint_url=moto_server.url, **CREDENTIALS
    ) as sink:
        await sink(1.0, [f"r{i}" for i in range(1200)])  # over 500 records a call
        await sink(2.0, [b"x" * 900_000] * 7)  # over 5 MiB a call
        with pytest.raises(ValueError, match="record 1 of the batch is 1,048,577 bytes"):
            await sink(3.0, ["ok", b"x" * (2**20)])
    (shard,) = (await read_all(moto_server, stream)).values()
    assert shard[:1200] == [f"r{i}".encode() for i in range(1200)]
    assert len(shard) == 1207


async def test_records_kinesis_fails_are_retried_until_written():
    with start_moto(shard_write_limit=(10, 0.3)) as server:
        stream = stream_name()
        await create(server, stream)
        async with KinesisSink(
            stream,
            partition_key="k",
            max_attempts=50,
            retry_backoff=0.05,
            region_name=REGION,
            endpoint_url=server.url,
            **CREDENTIALS,
        ) as sink:
            await sink(1.0, [f"r{i}" for i in range(25)])
        (shard,) = (await read_all(server, stream)).values()
    assert shard == [f"r{i}".encode() for i in range(25)]
    assert sink.written == 25
    assert sink.retried >= 15  # the first call took 10 of them


async def test_records_still_failed_after_the_attempts_fail_the_batch_clearly():
    with start_moto(shard_write_limit=(10, 3600)) as server:
        stream = stream_name()
        await create(server, stream)
        async with KinesisSink(
            stream,
            partition_key="k",
            max_attempts=3,
            retry_backoff=0,
            region_name=REGION,
            endpoint_url=server.url,
            **CREDENTIALS,
        ) as sink:
            with pytest.raises(ConnectorError) as info:
                await sink(1.0, [f"r{i}" for i in range(25)])
    assert info.value.retriable
    assert str(info.value).startswith(f"PutRecords to {stream!r} at {server.url}: 15 of 25")
    assert "after 3 attempts (15 ProvisionedThroughputExceededException)" in str(info.value)
    assert sink.written == 10


async def test_a_lost_endpoint_fails_the_sink_after_its_attempts():
    with start_moto() as server:
        url = server.url
    async with KinesisSink(
        "s", max_attempts=2, retry_backoff=0, region_name=REGION, endpoint_url=url, **CREDENTIALS
    ) as sink:
        with pytest.raises(ConnectorError, match="1 of 1 records still not written") as info:
            await sink(1.0, ["a"])
    assert info.value.retriable


async def test_the_sink_refuses_a_missing_stream_at_once(moto_server):
    async with KinesisSink(
        "no-such-stream", region_name=REGION, endpoint_url=moto_server.url, **CREDENTIALS
    ) as sink:
        with pytest.raises(ConnectorError, match="refused PutRecords") as info:
            await sink(1.0, ["a"])
    assert not info.value.retriable
