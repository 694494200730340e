"""A streamio job for the kill -9 test: Kafka -> count per word -> PostgreSQL,
exactly once through the transactional sink (no checkpoint).

Run as ``python exactly_once_job.py BOOTSTRAP TOPIC DSN JOB TABLE``. Each batch adds
its counts to TABLE (``word text PRIMARY KEY, n bigint``) in the transaction that
moves the job's offsets; the job starts from the offsets stored there. It prints
``ready`` once started and ``batch <time>`` after each batch.
"""

from __future__ import annotations

import sys
from typing import Any

import streamio
from streamio import BatchInfo, StreamingContext, StreamingListener
from streamio.connectors.database import TransactionalSink
from streamio.connectors.kafka import kafka_stream


class Progress(StreamingListener):
    def on_batch_completed(self, info: BatchInfo) -> None:
        print(f"batch {info.batch_time}", flush=True)


async def main(bootstrap_servers: str, topic: str, dsn: str, job: str, table: str) -> None:
    add = (
        f"INSERT INTO {table} (word, n) VALUES ($1, $2) "
        f"ON CONFLICT (word) DO UPDATE SET n = {table}.n + excluded.n"
    )

    async def write(connection: Any, batch_time: float, counts: list[tuple[str, int]]) -> None:
        await connection.executemany(add, counts)

    async with (
        TransactionalSink.postgres(dsn, write, job=job) as sink,
        StreamingContext(batch_interval=0.1) as ssc,
    ):
        ssc.add_listener(Progress())
        words = kafka_stream(
            ssc,
            topic,
            group_id=None,
            bootstrap_servers=bootstrap_servers,
            auto_offset_reset="earliest",
            value_deserializer="str",
            max_rate_per_partition=1000,  # many small batches: kills land mid-stream
            start_offsets=await sink.stored_offsets(),
        )
        words.map(lambda r: r.value).count_by_value().foreach_batch(sink)
        await ssc.start()
        print("ready", flush=True)
        await ssc.await_termination()


if __name__ == "__main__":
    streamio.run(main(*sys.argv[1:6]))
