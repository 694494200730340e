"""Prints the five happiest words of each 5-second batch of lines a TCP server sends.

The twin of Spark's examples/src/main/python/streaming/network_wordjoinsentiments.py.

Usage: network_wordjoinsentiments <hostname> <port>

Start a server that sends lines (``nc -lk 9999``), then run::

    python -m streamio example network_wordjoinsentiments localhost 9999

Each batch's word counts are joined with a static word-sentiment table, loaded
once at the start (``word_sentiments.txt`` next to this module: a small list
written for streamio, where Spark ships AFINN): a word's happiness is its
sentiment times its count in the batch. Spark joins each batch's RDD with a
static RDD in ``transform`` and sorts with ``sortByKey``; in streamio a batch is
a list of records, so ``transform`` looks the words up in a dict and sorts.
"""

from __future__ import annotations

import importlib.resources
import operator

import streamio
from streamio import StreamingContext
from streamio.connectors.socket import socket_text_stream

from .running import example_parser, until_stopped


def load_word_sentiments() -> dict[str, int]:
    """The table of ``word score`` lines shipped with the examples (``#``: comments)."""
    text = importlib.resources.files(__package__).joinpath("word_sentiments.txt").read_text()
    rows = (line.split() for line in text.splitlines() if line and not line.startswith("#"))
    return {word: int(score) for word, score in rows}


async def network_wordjoinsentiments(hostname: str, port: int, batch_interval: float = 5.0) -> None:
    word_sentiments = load_word_sentiments()

    def happiest_first(word_counts: list[tuple[str, int]]) -> list[tuple[int, str]]:
        joined = [
            (word_sentiments[word] * count, word)
            for word, count in word_counts
            if word in word_sentiments
        ]
        return sorted(joined, key=lambda pair: (-pair[0], pair[1]))

    def print_happiest_words(happiest: list[tuple[int, str]]) -> None:
        print(f"Happiest topics in the last {batch_interval:g} seconds ({len(happiest)} total):")
        for happiness, word in happiest[:5]:
            print(f"{word} ({happiness} happiness)")

    async with StreamingContext(batch_interval=batch_interval) as ssc:
        lines = socket_text_stream(ssc, hostname, port)
        word_counts = (
            lines.flat_map(lambda line: line.split(" "))
            .map(lambda word: (word, 1))
            .reduce_by_key(operator.add)
        )
        happiest_words = word_counts.transform(happiest_first)
        happiest_words.foreach_batch(print_happiest_words)
        await ssc.start()
        await until_stopped(ssc)


def main(argv: list[str] | None = None) -> None:
    parser = example_parser(__name__, __doc__, batch_interval=5.0)
    parser.add_argument("hostname")
    parser.add_argument("port", type=int)
    args = parser.parse_args(argv)
    job = network_wordjoinsentiments(args.hostname, args.port, args.interval)
    streamio.run(job, use_uvloop=args.uvloop)


if __name__ == "__main__":
    main()
