"""Exactly once into a database: results and source offsets in one transaction.

:class:`TransactionalSink` follows the "your own data store" recipe of Spark's
Kafka integration guide. For each batch it opens a transaction, moves the stored
offsets of every partition the batch read from its start to its end (*fenced*:
a row moves only where its stored end is this batch's start), calls your
``write(connection, batch_time, records)`` in that same transaction, and commits.
A job started again resumes from the stored offsets::

    from streamio.connectors.database import TransactionalSink
    from streamio.connectors.kafka import kafka_stream

    async def write(connection, batch_time, counts):
        await connection.executemany(
            "INSERT INTO word_counts VALUES ($1, $2) ON CONFLICT (word) "
            "DO UPDATE SET n = word_counts.n + excluded.n", counts)

    async with TransactionalSink.postgres(dsn, write, job="wordcount") as sink, \\
            StreamingContext(batch_interval=1.0) as ssc:
        lines = kafka_stream(ssc, "lines", group_id=None, auto_offset_reset="earliest",
                             start_offsets=await sink.stored_offsets())
        lines.flat_map(lambda r: r.value.split()).count_by_value().foreach_batch(sink)
        await ssc.start()
        await ssc.await_termination()

Backends: SQLite (``TransactionalSink.sqlite(path, ...)``, ``pip install
'streamio[sqlite]'``, aiosqlite) and PostgreSQL (``TransactionalSink.postgres(dsn,
...)``, ``pip install 'streamio[postgres]'``, asyncpg). README shows the offsets
table.
"""

from __future__ import annotations

from .sink import FenceError, TransactionalSink, Write

__all__ = ["FenceError", "TransactionalSink", "Write"]
