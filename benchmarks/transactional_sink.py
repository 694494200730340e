"""What the transactional sink's fence costs, against the same writes without it.

One job, a stream fed from the benchmark (``MemorySource``, stepped on a manual
clock) whose batches of (word, count) rows are written to a table, in turns:

- baseline: ``foreach_batch`` with a plain function writing the batch in one
  transaction of its own (``executemany``), no offsets;
- streamio: ``foreach_batch(TransactionalSink...)``, the same write inside the
  sink's transaction, which also moves the stream's stored offset (the fence).

Both on SQLite (a file in a temporary directory) and PostgreSQL (a server started
by ``streamio.connectors.testing.postgres_server``, fsync off as in the tests).

    python benchmarks/transactional_sink.py [--batches N] [--batch N] [--repeat N]
                                            [--backend sqlite|postgres|both]

Prints records/s of both and the ratio (streamio / baseline; 1.0 means the fence
costs nothing measurable).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import string
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg

from streamio import StreamingContext, run
from streamio.connectors.database import TransactionalSink
from streamio.connectors.testing import postgres_server
from streamio.testing import ManualClock, MemorySource, step


def make_batches(count: int, size: int, seed: int = 7) -> list[list[tuple[str, int]]]:
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=6)) for _ in range(1000)]
    return [[(rng.choice(words), rng.randint(1, 99)) for _ in range(size)] for _ in range(count)]


async def run_job(output: Any, batches: list[list[tuple[str, int]]]) -> float:
    """Seconds to feed and output every batch through a job writing with ``output``."""
    async with StreamingContext(batch_interval=1.0, clock=ManualClock()) as ssc:
        source: MemorySource[tuple[str, int]] = MemorySource()
        ssc.receiver_stream(source, name="rows").foreach_batch(output)
        await ssc.start()
        started = time.perf_counter()
        for batch in batches:
            await source.send(batch)
            await step(ssc)
        return time.perf_counter() - started


Write = Callable[[Any, float, list[tuple[str, int]]], Awaitable[None]]


async def sqlite_pair(directory: Path, batches: list[list[tuple[str, int]]]) -> tuple[float, float]:
    path = directory / "bench.db"
    with sqlite3.connect(path) as connection:
        connection.execute("DROP TABLE IF EXISTS rows")
        connection.execute("DROP TABLE IF EXISTS streamio_offsets")
        connection.execute("CREATE TABLE rows (word TEXT, n INTEGER)")

    async def write(connection: Any, batch_time: float, rows: list[tuple[str, int]]) -> None:
        await connection.executemany("INSERT INTO rows VALUES (?, ?)", rows)

    plain = await aiosqlite.connect(path, isolation_level=None)
    try:

        async def baseline(batch_time: float, rows: list[tuple[str, int]]) -> None:
            await plain.execute("BEGIN IMMEDIATE")
            await write(plain, batch_time, rows)
            await plain.execute("COMMIT")

        base = await run_job(baseline, batches)
    finally:
        await plain.close()
    async with TransactionalSink.sqlite(path, write, job="bench") as sink:
        ours = await run_job(sink, batches)
    return base, ours


async def postgres_pair(url: str, batches: list[list[tuple[str, int]]]) -> tuple[float, float]:
    setup = await asyncpg.connect(url)
    await setup.execute("DROP TABLE IF EXISTS rows; DROP TABLE IF EXISTS streamio_offsets")
    await setup.execute("CREATE TABLE rows (word text, n integer)")
    await setup.close()

    async def write(connection: Any, batch_time: float, rows: list[tuple[str, int]]) -> None:
        await connection.executemany("INSERT INTO rows VALUES ($1, $2)", rows)

    plain = await asyncpg.connect(url)
    try:

        async def baseline(batch_time: float, rows: list[tuple[str, int]]) -> None:
            async with plain.transaction():
                await write(plain, batch_time, rows)

        base = await run_job(baseline, batches)
    finally:
        await plain.close()
    async with TransactionalSink.postgres(url, write, job="bench") as sink:
        ours = await run_job(sink, batches)
    return base, ours


def report(name: str, records: int, timings: list[tuple[float, float]]) -> None:
    base = min(t[0] for t in timings)
    ours = min(t[1] for t in timings)
    print(
        f"{name:10} baseline {records / base:>10,.0f} records/s   "
        f"transactional sink {records / ours:>10,.0f} records/s   ratio {base / ours:.2f}"
    )


async def main(args: argparse.Namespace) -> None:
    batches = make_batches(args.batches, args.batch)
    records = args.batches * args.batch
    print(f"{args.batches} batches of {args.batch} rows, best of {args.repeat}")
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as directory:
            timings = [await sqlite_pair(Path(directory), batches) for _ in range(args.repeat)]
        report("SQLite", records, timings)
    if args.backend in ("postgres", "both"):
        with postgres_server() as server:
            timings = [await postgres_pair(server.url, batches) for _ in range(args.repeat)]
        report("PostgreSQL", records, timings)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    run(main(parser.parse_args()))
