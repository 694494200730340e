"""Exactly once from Kafka into SQLite and into a real PostgreSQL server (the
fixture's, initdb'd and run as a non-root user), with the test broker: a job
stopped mid-stream and started again from the stored offsets writes each record
once; a second instance of the job is fenced; a write that fails rolls back
results and offsets, and the next run reads those records again. And the
PostgreSQL retries: a connection lost inside the transaction, and one lost
after the server committed (through a proxy that cuts it there)."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

from streamio import OperatorError, StreamingContext
from streamio.connectors.database import FenceError, TransactionalSink
from streamio.connectors.kafka import KafkaSource
from streamio.testing import ManualClock, MemorySource, step

pytestmark = pytest.mark.asyncio(loop_factories=["uvloop"])

# Upper bound for waits that only a bug could make endless.
HANG_GUARD = 20

_tables = itertools.count(1)


class Target:
    """A results table ``(value text, batch double)`` in one of the backends."""

    def __init__(self, kind: str, tmp_path: Path, server: Any) -> None:
        self.kind = kind
        self.table = f"results_{next(_tables)}"
        self.path = tmp_path / "results.db"
        self.server = server
        mark = "?" if kind == "sqlite" else "$"
        self.insert = (
            f"INSERT INTO {self.table} VALUES (?, ?)"
            if mark == "?"
            else f"INSERT INTO {self.table} VALUES ($1, $2)"
        )

    async def create(self) -> None:
        await self._execute(f"CREATE TABLE {self.table} (value text, batch double precision)")

    async def _execute(self, statement: str) -> list[tuple[Any, ...]]:
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as connection:
                return connection.execute(statement).fetchall()
        connection = await asyncpg.connect(self.server.url)
        try:
            return [tuple(row) for row in await connection.fetch(statement)]
        finally:
            await connection.close()

    async def values(self) -> list[str]:
        return [row[0] for row in await self._execute(f"SELECT value FROM {self.table}")]

    def sink(self, job: str, fail_on: str | None = None) -> TransactionalSink[str]:
        insert = self.insert

        async def write(connection: Any, batch_time: float, values: list[str]) -> None:
            await connection.executemany(insert, [(value, batch_time) for value in values])
            if fail_on in values:
                raise RuntimeError(f"cannot write {fail_on}")

        if self.kind == "sqlite":
            return TransactionalSink.sqlite(self.path, write, job=job)
        return TransactionalSink.postgres(self.server.url, write, job=job)


@pytest.fixture(params=["sqlite", "postgres"])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    server = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    found = Target(request.param, tmp_path, server)
    await found.create()
    return found


def context() -> StreamingContext:
    return StreamingContext(batch_interval=1.0, clock=ManualClock(), receiver_restart_backoff=0)


def source_for(kafka: Any, topic: str, offsets: dict[tuple[str, int], int]) -> KafkaSource:
    return KafkaSource(
        topic,
        group_id=None,
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        value_deserializer="str",
        start_offsets=offsets,
    )


async def received(source: KafkaSource, count: int) -> None:
    with anyio.fail_after(HANG_GUARD):
        await source.wait_until(lambda stats: stats.received >= count)


def messages(start: int, stop: int) -> list[dict[str, Any]]:
    return [{"value": f"v{i}".encode(), "partition": i % 2} for i in range(start, stop)]


def expected(start: int, stop: int) -> list[str]:
    return sorted(f"v{i}" for i in range(start, stop))


async def test_a_job_stopped_mid_stream_resumes_from_the_stored_offsets(kafka, target):
    job = kafka.name("job")
    topic = await kafka.topic(partitions=2)
    await kafka.produce(topic, messages(0, 10))
    async with target.sink(job) as sink:
        assert await sink.stored_offsets() == {}
        source = source_for(kafka, topic, await sink.stored_offsets())
        async with context() as ssc:
            source.stream(ssc).map(lambda r: r.value).foreach_batch(sink)
            await ssc.start()
            await received(source, 10)
            await step(ssc)
            await kafka.produce(topic, messages(10, 20))
            await received(source, 20)
            await ssc.stop(graceful=False)  # 10 records buffered, never written
        assert sorted(await target.values()) == expected(0, 10)
        stored = await sink.stored_offsets()
        assert stored == {(topic, 0): 5, (topic, 1): 5}

    async with target.sink(job) as sink:
        source = source_for(kafka, topic, await sink.stored_offsets())
        async with context() as ssc:
            source.stream(ssc).map(lambda r: r.value).foreach_batch(sink)
            await ssc.start()
            await kafka.produce(topic, messages(20, 25))
            await received(source, 15)  # 10..24: from the stored offsets, not the start
            await step(ssc)
        assert await sink.stored_offsets() == {(topic, 0): 13, (topic, 1): 12}
    assert sorted(await target.values()) == expected(0, 25)


async def test_a_zombie_instance_of_the_job_is_fenced(kafka, target):
    job = kafka.name("job")
    topic = await kafka.topic(partitions=2)
    await kafka.produce(topic, messages(0, 10))
    async with target.sink(job) as first:
        source = source_for(kafka, topic, {})
        async with context() as ssc:
            source.stream(ssc).map(lambda r: r.value).foreach_batch(first)
            await ssc.start()
            await received(source, 10)
            await step(ssc)

    # Two instances start from the same stored offsets and read the same records.
    async with target.sink(job) as live, target.sink(job) as zombie:
        offsets = await live.stored_offsets()
        sources = [source_for(kafka, topic, offsets), source_for(kafka, topic, offsets)]
        async with context() as ssc_live, context() as ssc_zombie:
            for ssc, source, sink in zip(
                (ssc_live, ssc_zombie), sources, (live, zombie), strict=True
            ):
                source.stream(ssc).map(lambda r: r.value).foreach_batch(sink)
                await ssc.start()
            await kafka.produce(topic, messages(10, 16))
            for source in sources:
                await received(source, 6)
            await step(ssc_live)
            await step(ssc_zombie)
            with pytest.raises(OperatorError) as caught, anyio.fail_after(HANG_GUARD):
                await ssc_zombie.await_termination()
        assert await live.stored_offsets() == {(topic, 0): 8, (topic, 1): 8}
    fence = caught.value.__cause__
    assert isinstance(fence, FenceError)
    assert fence.mismatches == {(topic, 0): (8, 5), (topic, 1): (8, 5)}
    assert f"{topic}[0]: stored up to 8, this batch's start is 5" in str(fence)
    assert sorted(await target.values()) == expected(0, 16)


async def test_a_failed_write_rolls_back_and_the_next_run_reads_its_records_again(kafka, target):
    job = kafka.name("job")
    topic = await kafka.topic(partitions=2)
    await kafka.produce(topic, messages(0, 4))
    async with target.sink(job, fail_on="v5") as sink:
        source = source_for(kafka, topic, {})
        with pytest.raises(OperatorError, match="cannot write v5"):
            async with context() as ssc:
                source.stream(ssc).map(lambda r: r.value).foreach_batch(sink)
                await ssc.start()
                await received(source, 4)
                await step(ssc)
                await kafka.produce(topic, messages(4, 8))
                await received(source, 8)
                await step(ssc)
        assert await sink.stored_offsets() == {(topic, 0): 2, (topic, 1): 2}
    assert sorted(await target.values()) == expected(0, 4)

    async with target.sink(job) as sink:  # the write fixed
        source = source_for(kafka, topic, await sink.stored_offsets())
        async with context() as ssc:
            source.stream(ssc).map(lambda r: r.value).foreach_batch(sink)
            await ssc.start()
            await received(source, 4)
            await step(ssc)
        assert await sink.stored_offsets() == {(topic, 0): 4, (topic, 1): 4}
        assert source.statistics().received == 4  # v4..v7 again, from the stored offsets
    assert sorted(await target.values()) == expected(0, 8)


async def test_a_lost_postgresql_connection_retries_the_whole_transaction(postgres_server):
    """A connection lost inside the transaction rolls it back; the retry on a new
    connection writes the batch, once."""
    target = Target("postgres", Path(), postgres_server)
    await target.create()
    job = f"lost-{next(_tables)}"
    calls = 0

    async def write(connection: Any, batch_time: float, values: list[str]) -> None:
        nonlocal calls
        calls += 1
        await connection.executemany(target.insert, [(v, batch_time) for v in values])
        if calls == 1:
            raise ConnectionResetError("the connection went away")

    sink = TransactionalSink.postgres(postgres_server.url, write, job=job, retry_backoff=0.01)
    async with sink, context() as ssc:
        source: MemorySource[str] = MemorySource()
        ssc.receiver_stream(source, name="lines").foreach_batch(sink)
        await ssc.start()
        await source.send(["a", "b"])
        await step(ssc)
        assert await sink.stored_offsets() == {("lines", 0): 2}
    assert calls == 2
    assert sorted(await target.values()) == ["a", "b"]


class CommitResponseDropper:
    """A TCP proxy to PostgreSQL that, once, forwards a COMMIT and then cuts the
    connection instead of passing the server's answer on: the transaction is
    committed, and the client sees a lost connection."""

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self.armed = True
        self.dropped = anyio.Event()

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        from anyio.abc import SocketAttribute

        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        task_status.started(listener.extra(SocketAttribute.local_port))
        await listener.serve(self._relay)

    async def _relay(self, client: Any) -> None:
        async with client, await anyio.connect_tcp("127.0.0.1", self.server_port) as server:
            swallow = anyio.Event()
            async with anyio.create_task_group() as relay:

                async def to_client() -> None:
                    async for data in server:
                        if swallow.is_set():  # the answer to the COMMIT
                            self.dropped.set()
                            relay.cancel_scope.cancel()
                            return
                        await client.send(data)

                relay.start_soon(to_client)
                async for data in client:
                    if self.armed and b"COMMIT" in data:
                        self.armed = False
                        swallow.set()
                    await server.send(data)
                relay.cancel_scope.cancel()


async def test_a_retry_after_a_commit_whose_answer_was_lost_writes_nothing_more(postgres_server):
    target = Target("postgres", Path(), postgres_server)
    await target.create()
    job = f"committed-{next(_tables)}"
    dropper = CommitResponseDropper(int(postgres_server.url.rsplit(":", 1)[1].split("/")[0]))
    calls = 0

    async def write(connection: Any, batch_time: float, values: list[str]) -> None:
        nonlocal calls
        calls += 1
        await connection.executemany(target.insert, [(v, batch_time) for v in values])

    async with anyio.create_task_group() as proxy:
        port = await proxy.start(dropper.serve)
        dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        sink = TransactionalSink.postgres(dsn, write, job=job, retry_backoff=0.01, ssl=False)
        async with sink, context() as ssc:
            source: MemorySource[str] = MemorySource()
            ssc.receiver_stream(source, name="lines").foreach_batch(sink)
            await ssc.start()
            await source.send(["a", "b"])
            await step(ssc)
            assert dropper.dropped.is_set()
            assert await sink.stored_offsets() == {("lines", 0): 2}
        proxy.cancel_scope.cancel()
    assert calls == 1  # the retry found the batch's offsets stored: no second write
    assert sorted(await target.values()) == ["a", "b"]
