"""Counts the words of the lines a TCP server sends, in 1-second batches.

The twin of Spark's examples/src/main/python/streaming/network_wordcount.py.

Usage: network_wordcount <hostname> <port>

Start a server that sends lines, such as Netcat (``nc -lk 9999``), then run::

    python -m streamio example network_wordcount localhost 9999

and type lines into Netcat: each batch's counts are printed. Ctrl-C stops the
job gracefully.
"""

from __future__ import annotations

import operator

import streamio
from streamio import StreamingContext
from streamio.connectors.socket import socket_text_stream

from .running import example_parser, until_stopped


async def network_wordcount(hostname: str, port: int, batch_interval: float = 1.0) -> None:
    async with StreamingContext(batch_interval=batch_interval) as ssc:
        lines = socket_text_stream(ssc, hostname, port)
        counts = (
            lines.flat_map(lambda line: line.split(" "))
            .map(lambda word: (word, 1))
            .reduce_by_key(operator.add)
        )
        counts.pprint()
        await ssc.start()
        await until_stopped(ssc)


def main(argv: list[str] | None = None) -> None:
    parser = example_parser(__name__, __doc__, batch_interval=1.0)
    parser.add_argument("hostname")
    parser.add_argument("port", type=int)
    args = parser.parse_args(argv)
    streamio.run(network_wordcount(args.hostname, args.port, args.interval), use_uvloop=args.uvloop)


if __name__ == "__main__":
    main()
