"""A socket word count with the write-ahead log on, for the kill -9 test.

Run as ``python wal_job.py PORT CHECKPOINT_DIR OUT_FILE``: it reads lines from
127.0.0.1:PORT, checkpoints every 2 s (batches of 0.2 s, so a kill usually lands
between checkpoints and what was received since is only in the log), and after
each batch appends ``{"time": ..., "state": {word: count}}`` to OUT_FILE.
"""

from __future__ import annotations

import json
import sys

import streamio
from streamio import StreamingContext
from streamio.connectors.socket import socket_text_stream


def add(new: list[int], old: int | None) -> int:
    return sum(new) + (old or 0)


async def main(port: str, directory: str, out: str) -> None:
    def write_state(batch_time: float, state: list[tuple[str, int]]) -> None:
        with open(out, "a", encoding="utf-8") as file:
            file.write(json.dumps({"time": batch_time, "state": dict(state)}) + "\n")

    def setup() -> StreamingContext:
        ssc = StreamingContext(batch_interval=0.2)
        ssc.checkpoint(directory, 2.0, write_ahead_log=True)
        lines = socket_text_stream(ssc, "127.0.0.1", int(port), name="lines")
        words = lines.flat_map(str.split, name="words")
        counts = words.map(lambda w: (w, 1), name="pairs").update_state_by_key(add, name="counts")
        counts.foreach_batch(write_state, name="out")
        return ssc

    async with StreamingContext.get_or_create(directory, setup) as ssc:
        await ssc.start()
        print("ready", flush=True)
        await ssc.await_termination()


if __name__ == "__main__":
    streamio.run(main(*sys.argv[1:4]))
