"""A checkpointed streamio job for the kill -9 test: Kafka lines -> running word count.

Run as ``python kill_job.py BOOTSTRAP TOPIC GROUP CHECKPOINT_DIR OUT_FILE``. After
each batch it appends ``{"time": ..., "state": {word: count}}`` to OUT_FILE (a
plain sink: a batch replayed after a crash is written again). It prints "ready"
once started.

With ``KILL_IN_CHECKPOINT_WRITE=n`` in its environment, the process kills itself
(SIGKILL) in the middle of its n-th checkpoint's database transaction: SQLite's
progress handler fires while the transaction's statements run.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
from typing import Any

import streamio
from streamio import StreamingContext
from streamio.checkpoint.store import CheckpointStore
from streamio.connectors.kafka import kafka_stream


def add(new: list[int], old: int | None) -> int:
    return sum(new) + (old or 0)


def die_in_a_checkpoint_write(which: int) -> None:
    original = CheckpointStore.write
    calls = itertools.count(1)

    def write(self: CheckpointStore, changes: Any) -> None:
        if next(calls) == which:
            self.connection.set_progress_handler(lambda: os.kill(os.getpid(), signal.SIGKILL), 50)
        original(self, changes)

    CheckpointStore.write = write  # type: ignore[method-assign]


async def main(bootstrap_servers: str, topic: str, group: str, directory: str, out: str) -> None:
    def write_state(batch_time: float, state: list[tuple[str, int]]) -> None:
        with open(out, "a", encoding="utf-8") as file:
            file.write(json.dumps({"time": batch_time, "state": dict(state)}) + "\n")

    def setup() -> StreamingContext:
        ssc = StreamingContext(batch_interval=0.2)
        ssc.checkpoint(directory, 0.4)
        lines = kafka_stream(
            ssc,
            topic,
            group_id=group,
            bootstrap_servers=bootstrap_servers,
            auto_offset_reset="earliest",
            value_deserializer="str",
            session_timeout_ms=2000,
            heartbeat_interval_ms=400,
            name="lines",
        )
        words = lines.flat_map(lambda record: record.value.split(), name="words")
        counts = words.map(lambda w: (w, 1), name="pairs").update_state_by_key(add, name="counts")
        counts.foreach_batch(write_state, name="out")
        return ssc

    async with StreamingContext.get_or_create(directory, setup) as ssc:
        await ssc.start()
        print("ready", flush=True)
        await ssc.await_termination()


if __name__ == "__main__":
    if "KILL_IN_CHECKPOINT_WRITE" in os.environ:
        die_in_a_checkpoint_write(int(os.environ["KILL_IN_CHECKPOINT_WRITE"]))
    streamio.run(main(*sys.argv[1:6]))
