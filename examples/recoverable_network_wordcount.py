"""Counts the words of the lines a TCP server sends, and survives being killed.

The twin of Spark's examples/src/main/python/streaming/recoverable_network_wordcount.py.

Usage: recoverable_network_wordcount <hostname> <port> <checkpoint-directory> <output-file>

Start a server that sends lines (``nc -lk 9999``), then run::

    python -m streamio example recoverable_network_wordcount localhost 9999 ckpt out.txt

Each batch prints, and appends to the output file, ``Counts at time <time> [...]``:
its words and counts, without the excluded words "a", "b" and "c", which are
counted apart ("Dropped N word(s) totally"). Kill the program (even with
``kill -9``) and start it again with the same arguments: it resumes from its
checkpoint, without printing "Creating new context". The socket cannot replay
what it sent, so the checkpoint keeps a write-ahead log of the lines received;
the total of dropped words is state, and resumes too (Spark's example keeps it
in an accumulator, which starts again from zero).
"""

from __future__ import annotations

import contextlib
import operator
import os
from datetime import datetime

import anyio

import streamio
from streamio import StreamingContext
from streamio.connectors.socket import socket_text_stream

from .running import example_parser, until_stopped

EXCLUDED_WORDS = frozenset({"a", "b", "c"})


def add_total(new: list[int], total: int | None) -> int:
    return sum(new) + (total or 0)


def create_context(hostname: str, port: int, checkpoint: str, output: str, interval: float):
    """The job: built on every start, resumed from ``checkpoint`` when there is one."""

    def setup() -> StreamingContext:
        ssc = StreamingContext(batch_interval=interval)
        ssc.checkpoint(checkpoint, interval, write_ahead_log=True)
        lines = socket_text_stream(ssc, hostname, port, name="lines")
        words = lines.flat_map(lambda line: line.split(" "), name="words")
        counts = words.map(lambda word: (word, 1), name="pairs").reduce_by_key(
            operator.add, name="counts"
        )
        dropped = (
            counts.filter(lambda pair: pair[0] in EXCLUDED_WORDS, name="excluded")
            .map(lambda pair: ("dropped", pair[1]), name="excluded counts")
            .update_state_by_key(add_total, initial_state=[("dropped", 0)], name="dropped")
        )

        def echo(batch_time: float, pairs: list[tuple[str, int]]) -> None:
            kept = [pair for pair in pairs if pair[0] not in EXCLUDED_WORDS]
            counts_line = f"Counts at time {datetime.fromtimestamp(batch_time)} {kept}"
            print(counts_line)
            with open(output, "a", encoding="utf-8") as file:
                file.write(counts_line + "\n")

        def report(batch_time: float, totals: list[tuple[str, int]]) -> None:
            print(f"Dropped {dict(totals).get('dropped', 0)} word(s) totally")
            print(f"Appending to {os.path.abspath(output)}")

        counts.foreach_batch(echo, name="echo")
        dropped.foreach_batch(report, name="report")
        return ssc

    return setup


async def recoverable_network_wordcount(
    hostname: str, port: int, checkpoint: str, output: str, batch_interval: float = 1.0
) -> None:
    if not StreamingContext.has_checkpoint(checkpoint):
        print("Creating new context")
        with contextlib.suppress(FileNotFoundError):
            await anyio.Path(output).unlink()
    setup = create_context(hostname, port, checkpoint, output, batch_interval)
    async with StreamingContext.get_or_create(checkpoint, setup) as ssc:
        await ssc.start()
        await until_stopped(ssc)


def main(argv: list[str] | None = None) -> None:
    parser = example_parser(__name__, __doc__, batch_interval=1.0)
    parser.add_argument("hostname")
    parser.add_argument("port", type=int)
    parser.add_argument("checkpoint_directory")
    parser.add_argument("output_file")
    args = parser.parse_args(argv)
    job = recoverable_network_wordcount(
        args.hostname, args.port, args.checkpoint_directory, args.output_file, args.interval
    )
    streamio.run(job, use_uvloop=args.uvloop)


if __name__ == "__main__":
    main()
