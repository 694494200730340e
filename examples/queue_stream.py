"""Counts the numbers 1 to 1000 by their last digit, five times over, one batch a second.

The twin of Spark's examples/src/main/python/streaming/queue_stream.py.

Usage: queue_stream

Run::

    python -m streamio example queue_stream

Five collections of records are queued before the start; each batch takes the
next one. Spark's program sleeps six seconds before stopping; this one stops
gracefully once the batch that took the last collection has been printed.
"""

from __future__ import annotations

import operator

import streamio
from streamio import BatchInfo, StreamingContext, StreamingListener

from .running import example_parser, until_stopped


class StopWhenDrained(StreamingListener):
    """Stops the job once a batch has completed and the queue is empty."""

    def __init__(self, ssc: StreamingContext, queue: list[list[int]]) -> None:
        self.ssc, self.queue = ssc, queue

    def on_batch_completed(self, info: BatchInfo) -> None:
        if not self.queue:
            self.ssc.stop()


async def queue_stream(batch_interval: float = 1.0) -> None:
    queue = [list(range(1, 1001)) for _ in range(5)]
    async with StreamingContext(batch_interval=batch_interval) as ssc:
        numbers = ssc.queue_stream(queue)
        counts = numbers.map(lambda x: (x % 10, 1)).reduce_by_key(operator.add)
        counts.pprint()
        ssc.add_listener(StopWhenDrained(ssc, queue))
        await ssc.start()
        await until_stopped(ssc)


def main(argv: list[str] | None = None) -> None:
    parser = example_parser(__name__, __doc__, batch_interval=1.0)
    args = parser.parse_args(argv)
    streamio.run(queue_stream(args.interval), use_uvloop=args.uvloop)


if __name__ == "__main__":
    main()
