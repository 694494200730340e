"""Counts the words a TCP server sends with SQL on every batch, in 1-second batches.

The twin of Spark's examples/src/main/python/streaming/sql_network_wordcount.py.

Usage: sql_network_wordcount <hostname> <port>

Start a server that sends lines (``nc -lk 9999``), then run::

    python -m streamio example sql_network_wordcount localhost 9999

Each batch's words become a table with a ``word`` column, queried with DuckDB
(``streamio[sql]``): ``SELECT word, count(*) AS total FROM batch GROUP BY word``;
the result is printed as Spark's ``DataFrame.show()`` prints it, under a
``========= <time> =========`` line. Spark needs a SparkSession singleton and
``createOrReplaceTempView`` for this; in streamio the batch is the table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import streamio
from streamio import StreamingContext
from streamio.connectors.socket import socket_text_stream

from .running import example_parser, until_stopped

QUERY = "SELECT word, count(*) AS total FROM batch GROUP BY word"
SHOWN_ROWS = 20  # as DataFrame.show()


def show(table: Any) -> str:
    """An Arrow table as Spark's ``DataFrame.show()`` draws it (cells right-aligned)."""
    names = list(table.column_names)
    rows = [[str(value) for value in row.values()] for row in table.to_pylist()[:SHOWN_ROWS]]
    widths = [max([len(name)] + [len(row[i]) for row in rows]) for i, name in enumerate(names)]
    rule = "+" + "+".join("-" * width for width in widths) + "+"

    def line(cells: list[str]) -> str:
        return (
            "|"
            + "|".join(cell.rjust(width) for cell, width in zip(cells, widths, strict=True))
            + "|"
        )

    drawn = [rule, line(names), rule, *map(line, rows), rule]
    if table.num_rows > SHOWN_ROWS:
        drawn.append(f"only showing top {SHOWN_ROWS} rows")
    return "\n".join(drawn) + "\n"


def process(batch_time: float, counts: Any) -> None:
    print(f"========= {datetime.fromtimestamp(batch_time)} =========")
    print(show(counts))


async def sql_network_wordcount(hostname: str, port: int, batch_interval: float = 1.0) -> None:
    async with StreamingContext(batch_interval=batch_interval) as ssc:
        lines = socket_text_stream(ssc, hostname, port)
        words = lines.flat_map(lambda line: line.split(" ")).map(lambda word: {"word": word})
        words.sql(QUERY).foreach_batch(process, format="arrow")
        await ssc.start()
        await until_stopped(ssc)


def main(argv: list[str] | None = None) -> None:
    parser = example_parser(__name__, __doc__, batch_interval=1.0)
    parser.add_argument("hostname")
    parser.add_argument("port", type=int)
    args = parser.parse_args(argv)
    job = sql_network_wordcount(args.hostname, args.port, args.interval)
    streamio.run(job, use_uvloop=args.uvloop)


if __name__ == "__main__":
    main()
