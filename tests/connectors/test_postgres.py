"""The PostgreSQL sink against a real server (initdb'd by the fixture): batches
written in one transaction, an idempotent upsert keyed by the named columns, COPY
without a key, a refused row failing the whole batch, a server restart survived."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import asyncpg
import pytest

from streamio import ConfigurationError, ConnectorError, OperatorError, StreamingContext
from streamio.connectors.postgres import PostgresSink
from streamio.connectors.testing import postgres_server
from streamio.testing import ManualClock, step

pytestmark = pytest.mark.asyncio(loop_factories=["uvloop"])

_names = itertools.count(1)


async def table(server: Any, ddl: str) -> str:
    """A new table of this test's own: ``ddl`` is its column list."""
    name = f"t{next(_names)}"
    connection = await asyncpg.connect(server.url)
    try:
        await connection.execute(f"CREATE TABLE {name} ({ddl})")
    finally:
        await connection.close()
    return name


async def rows(server: Any, query: str) -> list[tuple[Any, ...]]:
    connection = await asyncpg.connect(server.url)
    try:
        return [tuple(r) for r in await connection.fetch(query)]
    finally:
        await connection.close()


def context() -> StreamingContext:
    return StreamingContext(batch_interval=1.0, clock=ManualClock())


@pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])
async def test_an_upsert_keyed_by_the_named_columns_is_idempotent(postgres_server):
    name = await table(postgres_server, "word text PRIMARY KEY, n int, batch float")
    sink = PostgresSink(name, dsn=postgres_server.url, columns=["word", "n", "batch"], key=["word"])
    batches = [
        [("a", 1, 1.0), {"word": "b", "n": 2, "batch": 1.0}],
        [("a", 5, 2.0)],
        [("a", 5, 2.0)],  # the same batch again, as after a replay
    ]
    async with sink, context() as ssc:
        ssc.queue_stream(batches).foreach_batch(sink)
        await ssc.start()
        await step(ssc, 3)
    assert await rows(postgres_server, f"SELECT * FROM {name} ORDER BY word") == [
        ("a", 5, 2.0),
        ("b", 2, 1.0),
    ]
    assert sink.written == 4


async def test_keys_only_do_nothing_on_conflict(postgres_server):
    name = await table(postgres_server, "k int PRIMARY KEY")
    async with PostgresSink(name, dsn=postgres_server.url, columns=["k"], key=["k"]) as sink:
        await sink(1.0, [(1,), (2,)])
        await sink(2.0, [(2,), (3,)])
        assert "DO NOTHING" in (sink.statement or "")
    assert await rows(postgres_server, f"SELECT k FROM {name} ORDER BY k") == [(1,), (2,), (3,)]


async def test_without_a_key_rows_are_copied(postgres_server):
    name = await table(postgres_server, "line text, n int")
    async with PostgresSink(
        f"public.{name}", dsn=postgres_server.url, columns=["line", "n"]
    ) as sink:
        await sink(1.0, [(f"l{i}", i) for i in range(2500)])
        assert sink.statement is None
    assert await rows(postgres_server, f"SELECT count(*), sum(n) FROM {name}") == [
        (2500, sum(range(2500)))
    ]


async def test_a_refused_row_fails_the_batch_and_writes_nothing_of_it(postgres_server):
    name = await table(postgres_server, "k int PRIMARY KEY, v int NOT NULL")
    sink = PostgresSink(name, dsn=postgres_server.url, columns=["k", "v"], key=["k"], chunk_size=2)
    async with sink:
        with pytest.raises(ConnectorError, match="refused the batch") as info:
            await sink(1.0, [(1, 1), (2, 2), (3, None)])  # the third chunk is refused
    assert not info.value.retriable
    assert await rows(postgres_server, f"SELECT * FROM {name}") == []


async def test_a_record_of_the_wrong_shape_fails_its_batch(postgres_server):
    name = await table(postgres_server, "k int, v int")
    async with PostgresSink(name, dsn=postgres_server.url, columns=["k", "v"]) as sink:
        with pytest.raises(TypeError, match="no value for column 'v'"):
            await sink(1.0, [{"k": 1}])
        with pytest.raises(OperatorError) as info:
            async with context() as ssc:
                ssc.queue_stream([[(1,)]]).foreach_batch(sink)
                await ssc.start()
                await step(ssc)
    assert "tuples of 2 values" in str(info.value.__cause__)


async def test_a_server_restart_is_survived_and_a_dead_server_gives_up():
    with postgres_server() as server:  # a server of its own, to restart
        name = await table(server, "k int PRIMARY KEY, v int")
        sink = PostgresSink(name, dsn=server.url, columns=["k", "v"], key=["k"], retry_backoff=0.01)
        async with sink:
            await sink(1.0, [(1, 1)])
            await anyio.to_thread.run_sync(server.restart)  # the connection dies with it
            await sink(2.0, [(2, 2)])  # reconnected, written
            assert await rows(server, f"SELECT k FROM {name} ORDER BY k") == [(1,), (2,)]
            server.kill()
            with pytest.raises(ConnectorError, match="failed 5 times") as info:
                await sink(3.0, [(3, 3)])
        assert info.value.retriable


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dsn": "mysql://x"}, "postgresql://"),
        ({"columns": "k"}, "list of column names"),
        ({"columns": ["k", "k"]}, "twice"),
        ({"key": ["z"]}, "not among columns"),
        ({"chunk_size": 0}, "chunk_size"),
    ],
)
async def test_wrong_options_fail_when_the_sink_is_made(options, message):
    arguments: dict[str, Any] = {"dsn": "postgresql://x@h/db", "columns": ["k", "v"], **options}
    with pytest.raises(ConfigurationError, match=message):
        PostgresSink("t", **arguments)
