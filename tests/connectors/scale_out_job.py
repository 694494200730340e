"""A streamio job for the scale-out test: one member of a consumer group.

Run as ``python scale_out_job.py BOOTSTRAP TOPIC GROUP``. For every record it
processes it prints ``record <partition> <offset> <value>`` (flushed per batch),
so the test sees which member processed what.
"""

from __future__ import annotations

import sys

import streamio
from streamio import StreamingContext
from streamio.connectors.kafka import kafka_stream


async def main(bootstrap_servers: str, topic: str, group: str) -> None:
    async with StreamingContext(batch_interval=0.2) as ssc:
        records = kafka_stream(
            ssc,
            topic,
            group_id=group,
            bootstrap_servers=bootstrap_servers,
            auto_offset_reset="earliest",
            value_deserializer="str",
            session_timeout_ms=2000,
            heartbeat_interval_ms=400,
        )

        def emit(batch_time: float, batch: list) -> None:
            for record in batch:
                print(f"record {record.partition} {record.offset} {record.value}")
            sys.stdout.flush()

        records.foreach_batch(emit)
        await ssc.start()
        print("ready", flush=True)
        await ssc.await_termination()


if __name__ == "__main__":
    streamio.run(main(*sys.argv[1:4]))
