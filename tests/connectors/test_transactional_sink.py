"""The transactional sink into SQLite, driven by an in-process source on the
manual clock: results and offsets in one transaction, a failing write rolling
both back, the fence between two instances of a job, and the errors.

The same sink against Kafka and a real PostgreSQL server is in
``test_transactional_kafka.py``."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest

from streamio import ConfigurationError, OperatorError, StreamingContext
from streamio.connectors.database import FenceError, TransactionalSink
from streamio.testing import ManualClock, MemorySource, step


def context() -> StreamingContext:
    return StreamingContext(batch_interval=1.0, clock=ManualClock())


def rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as connection:
        return connection.execute(query).fetchall()


def database(tmp_path: Path) -> Path:
    path = tmp_path / "results.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE words (word TEXT, batch REAL)")
    return path


async def write_words(connection: Any, batch_time: float, words: list[str]) -> None:
    await connection.executemany(
        "INSERT INTO words VALUES (?, ?)", [(w, batch_time) for w in words]
    )


async def test_results_and_offsets_are_written_together(tmp_path):
    path = database(tmp_path)
    sink = TransactionalSink.sqlite(path, write_words, job="words")
    async with sink, context() as ssc:
        source: MemorySource[str] = MemorySource()
        ssc.receiver_stream(source, name="lines").flat_map(str.split).foreach_batch(sink)
        await ssc.start()
        await source.send(["a b", "c"])
        await step(ssc)
        await step(ssc)  # empty: no transaction at all
        await source.send(["d"])
        await step(ssc)
        assert await sink.stored_offsets() == {("lines", 0): 3}
    assert sink.batches == 2
    assert rows(path, "SELECT * FROM words") == [("a", 1.0), ("b", 1.0), ("c", 1.0), ("d", 3.0)]
    assert rows(path, "SELECT * FROM streamio_offsets") == [("words", "lines", 0, 3, 3.0)]


async def test_a_failing_write_rolls_back_results_and_offsets(tmp_path):
    path = database(tmp_path)

    async def write(connection: Any, batch_time: float, words: list[str]) -> None:
        await write_words(connection, batch_time, words)
        if "boom" in words:
            raise ValueError("cannot write boom")

    sink = TransactionalSink.sqlite(path, write, job="words")
    async with sink:
        with pytest.raises(OperatorError, match="cannot write boom") as caught:
            async with context() as ssc:
                source: MemorySource[str] = MemorySource()
                ssc.receiver_stream(source, name="lines").flat_map(str.split).foreach_batch(sink)
                await ssc.start()
                await source.send(["a"])
                await step(ssc)
                await source.send(["b boom"])
                await step(ssc)
        assert isinstance(caught.value.__cause__, ValueError)
        assert await sink.stored_offsets() == {("lines", 0): 1}
    assert rows(path, "SELECT word FROM words") == [("a",)]


async def test_a_second_instance_of_the_job_is_fenced(tmp_path):
    """Two instances write the same job: the one whose batch does not continue
    the stored offsets fails, and writes nothing."""
    path = database(tmp_path)
    first = TransactionalSink.sqlite(path, write_words, job="words")
    zombie = TransactionalSink.sqlite(path, write_words, job="words")
    async with first, zombie, context() as ssc1, context() as ssc2:
        sources: list[MemorySource[str]] = [MemorySource(), MemorySource()]
        ssc1.receiver_stream(sources[0], name="lines").foreach_batch(first)
        ssc2.receiver_stream(sources[1], name="lines").foreach_batch(zombie)
        await ssc1.start()
        await ssc2.start()
        for source in sources:
            await source.send(["x", "y"])
        await step(ssc1)
        await step(ssc2)
        with pytest.raises(OperatorError) as caught, anyio.fail_after(10):
            await ssc2.await_termination()
        await sources[0].send(["z"])
        await step(ssc1)
    fence = caught.value.__cause__
    assert isinstance(fence, FenceError)
    assert not fence.retriable
    assert fence.mismatches == {("lines", 0): (2, None)}
    message = str(fence)
    assert "refused batch 1.0" in message
    assert "lines[0]: stored up to 2, this batch's start is unknown" in message
    assert "start_offsets=await sink.stored_offsets()" in message
    assert rows(path, "SELECT word FROM words") == [("x",), ("y",), ("z",)]
    assert rows(path, "SELECT next_offset FROM streamio_offsets") == [(3,)]


async def test_records_without_positions_are_refused(tmp_path):
    sink = TransactionalSink.sqlite(database(tmp_path), write_words, job="words")
    async with sink:
        with pytest.raises(ConfigurationError, match="give no source position"):
            async with context() as ssc:
                ssc.queue_stream([["a"]], name="q").foreach_batch(sink)
                await ssc.start()
                await step(ssc)


async def test_wrong_settings_fail_when_the_graph_is_built(tmp_path):
    path = database(tmp_path)
    with pytest.raises(ConfigurationError, match="write must be an async function"):
        TransactionalSink.sqlite(path, lambda c, t, r: None, job="words")
    with pytest.raises(ConfigurationError, match="job must be a non-empty name"):
        TransactionalSink.sqlite(path, write_words, job="")
    with pytest.raises(ConfigurationError, match="table must be a non-empty name"):
        TransactionalSink.sqlite(path, write_words, job="j", offsets_table="")
    sink = TransactionalSink.sqlite(path, write_words, job="words")
    async with sink, context() as ssc:
        ssc.receiver_stream(MemorySource(), name="a").foreach_batch(sink)
        with pytest.raises(ConfigurationError, match="one sink, with its own job=, per output"):
            ssc.receiver_stream(MemorySource(), name="b").foreach_batch(sink)


async def test_a_write_the_database_refuses_fails_the_batch_and_writes_nothing(tmp_path):
    path = tmp_path / "strict.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE words (word TEXT PRIMARY KEY, batch REAL)")
    sink = TransactionalSink.sqlite(path, write_words, job="words")
    async with sink:
        with pytest.raises(OperatorError, match="SQLite refused the batch") as caught:
            async with context() as ssc:
                source: MemorySource[str] = MemorySource()
                ssc.receiver_stream(source, name="lines").foreach_batch(sink)
                await ssc.start()
                await source.send(["a", "a"])
                await step(ssc)
        assert await sink.stored_offsets() == {}
    assert not caught.value.__cause__.retriable
    assert rows(path, "SELECT * FROM words") == []


async def test_a_database_locked_by_another_writer_fails_the_batch_as_retriable(tmp_path):
    path = database(tmp_path)
    sink = TransactionalSink.sqlite(path, write_words, job="words", busy_timeout=0.05)
    async with sink:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        try:
            with pytest.raises(OperatorError, match="stayed locked by another writer") as caught:
                async with context() as ssc:
                    source: MemorySource[str] = MemorySource()
                    ssc.receiver_stream(source, name="lines").foreach_batch(sink)
                    await ssc.start()
                    await source.send(["a"])
                    await step(ssc)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert caught.value.__cause__.retriable
        assert await sink.stored_offsets() == {}
