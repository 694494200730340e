"""Keeps a running count of the words a TCP server sends, printed every second.

The twin of Spark's examples/src/main/python/streaming/stateful_network_wordcount.py.

Usage: stateful_network_wordcount <hostname> <port>

Start a server that sends lines (``nc -lk 9999``), then run::

    python -m streamio example stateful_network_wordcount localhost 9999

Every batch prints each word's count since the start, beginning from the
initial state hello: 1, world: 1. Spark needs a checkpoint directory for
``updateStateByKey``; streamio keeps the state in the running job.
"""

from __future__ import annotations

import streamio
from streamio import StreamingContext
from streamio.connectors.socket import socket_text_stream

from .running import example_parser, until_stopped

INITIAL_STATE = [("hello", 1), ("world", 1)]


def update(new_values: list[int], last_sum: int | None) -> int:
    return sum(new_values) + (last_sum or 0)


async def stateful_network_wordcount(hostname: str, port: int, batch_interval: float = 1.0) -> None:
    async with StreamingContext(batch_interval=batch_interval) as ssc:
        lines = socket_text_stream(ssc, hostname, port)
        running_counts = (
            lines.flat_map(lambda line: line.split(" "))
            .map(lambda word: (word, 1))
            .update_state_by_key(update, initial_state=INITIAL_STATE)
        )
        running_counts.pprint()
        await ssc.start()
        await until_stopped(ssc)


def main(argv: list[str] | None = None) -> None:
    parser = example_parser(__name__, __doc__, batch_interval=1.0)
    parser.add_argument("hostname")
    parser.add_argument("port", type=int)
    args = parser.parse_args(argv)
    job = stateful_network_wordcount(args.hostname, args.port, args.interval)
    streamio.run(job, use_uvloop=args.uvloop)


if __name__ == "__main__":
    main()
