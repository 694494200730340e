"""Exactly once through kill -9: a job process (Kafka -> count per word ->
TransactionalSink into PostgreSQL, no checkpoint) is killed with SIGKILL at
seeded random moments while records keep coming, and started again each time
from the offsets stored in the database. At the end the table holds exactly
the counts of everything produced: no batch lost, none added twice."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest
from anyio.streams.text import TextReceiveStream

pytestmark = pytest.mark.asyncio(loop_factories=["uvloop"])

JOB = Path(__file__).with_name("exactly_once_job.py")
ROOT = Path(__file__).resolve().parents[2]
GUARD = 60  # seconds; only a bug comes near it
KILLS = 10
PARTITIONS = 3
WORDS = ["apple", "bean", "corn", "date", "elm", "fig", "grape"]


async def stored_total(dsn: str, job: str) -> int:
    """The records the database holds the results of: the sum of the job's offsets."""
    connection = await asyncpg.connect(dsn)
    try:
        value = await connection.fetchval(
            "SELECT coalesce(sum(next_offset), 0) FROM streamio_offsets WHERE job = $1", job
        )
    finally:
        await connection.close()
    return int(value)


async def run_job(command: list[str], until: Any) -> None:
    """Run the job; ``await until(process, lines)`` decides when it is killed
    (``lines`` yields what it prints); killed with SIGKILL then."""
    process = await anyio.open_process(command, stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert process.stdout is not None

        async def lines() -> Any:
            pending = ""
            async for text in TextReceiveStream(process.stdout):
                pending += text
                *complete, pending = pending.split("\n")
                for line in complete:
                    yield line

        with anyio.fail_after(GUARD):
            await until(lines())
    finally:
        process.send_signal(signal.SIGKILL)
        with anyio.move_on_after(10, shield=True):
            await process.wait()
        await process.aclose()


async def test_kill_9_at_random_moments_leaves_exact_counts(kafka, postgres_server):
    rng = random.Random(1009)
    topic = await kafka.topic(partitions=PARTITIONS)
    job, table = kafka.name("job"), f"counts_{rng.randrange(10**9)}"
    dsn = postgres_server.url
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"CREATE TABLE {table} (word text PRIMARY KEY, n bigint)")
    finally:
        await connection.close()
    command = [sys.executable, str(JOB), kafka.bootstrap_servers, topic, dsn, job, table]
    produced: Counter[str] = Counter()

    async def produce(count: int) -> None:
        words = [rng.choice(WORDS) for _ in range(count)]
        produced.update(words)
        await kafka.produce(
            topic, [{"value": w.encode(), "partition": i % PARTITIONS} for i, w in enumerate(words)]
        )

    progress = []
    for _ in range(KILLS):
        await produce(1500)
        batches, delay = rng.randint(1, 6), rng.uniform(0.0, 0.1)

        async def kill_mid_stream(lines: Any, batches: int = batches, delay: float = delay) -> None:
            async for line in lines:
                if line.startswith("batch"):
                    batches -= 1
                    if not batches:
                        break
            await anyio.sleep(delay)  # the kill lands wherever the job is then

        await run_job(command, kill_mid_stream)
        progress.append(await stored_total(dsn, job))

    await produce(500)
    total = produced.total()

    async def until_done(lines: Any) -> None:
        async for line in lines:
            if line.startswith("batch") and await stored_total(dsn, job) == total:
                return

    await run_job(command, until_done)
    connection = await asyncpg.connect(dsn)
    try:
        counts = dict(await connection.fetch(f"SELECT word, n FROM {table}"))
    finally:
        await connection.close()
    print(f"records held by the database after each of {KILLS} kills: {progress} of {total}")
    assert counts == dict(produced)
    # the database never went back, and most runs moved it before they were killed
    assert progress == sorted(progress)
    assert sum(b > a for a, b in zip([0, *progress], progress, strict=False)) >= KILLS // 2
