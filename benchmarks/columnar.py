"""Columnar word count: Arrow from the socket to DuckDB, against the Counter floor,
DuckDB run directly, and the row-wise job; all figures in one run.

The data are the 1,000,000 lines of ``benchmarks/wordcount.py`` (10 words each
from a 1,000-word vocabulary, fixed seed). Three figures:

1. **Columnar word count vs the Counter floor.** A server process on 127.0.0.1
   sends the lines to each connection in one ``sendall``; the job reads them with
   ``socket_text_stream(..., columnar=True)`` (lines cut in Arrow, no ``str`` per
   line) and counts the words of every batch with ``sql()``. It is timed from
   ``ssc.start()`` until its last line is counted, at a batch cut (the batch
   interval bounds the idle time included). The baseline is
   ``collections.Counter`` over the same lines already in memory as Python
   strings: the floor of any row-wise Python word count. Target: >= 3x.
2. **streamio vs DuckDB directly.** The same query over the same Arrow arrays
   (the lines in batches of ``--batch``), once through streamio (a push source
   storing record batches, the manual clock stepping the batches) and once with
   DuckDB alone (register each batch, run the query). Target: >= 0.8x.
3. **Memory.** The peak resident set (Linux) of the columnar socket job against
   the row-wise socket job (``flat_map(str.split).count_by_value()``) on the same
   data, and how much each grew above the resident set at its start (the
   process holds the lines of the other figures too): for each job's first run
   (which also loads its libraries' code: DuckDB's is large) and the smallest of
   its later runs, with the row-wise job's speed for comparison.

Every job's counts are checked against the Counter's.

    python benchmarks/columnar.py [--lines N] [--batch N] [--repeat N] [--interval S]
        [--read-size BYTES] [--loop asyncio|uvloop|both]
"""

from __future__ import annotations

import argparse
import collections
import itertools
import time
from typing import Any

import anyio
import duckdb
import pyarrow as pa
from loops import add_loop_option, on_each_loop
from memory import peak_rss_mib, reset_peak_rss, rss_mib
from socket_wordcount import start_server
from wordcount import best_interleaved, make_lines, timed

from streamio import ManualClock, StreamingContext, run
from streamio.connectors.socket import socket_text_stream
from streamio.testing import MemorySource, step

WORD_COUNT = (
    "SELECT word, count(*) AS n FROM "
    "(SELECT unnest(string_split(line, ' ')) AS word FROM batch) GROUP BY word"
)


class Counts:
    """Adds up the per-batch word counts of a job, and notes when its last line came."""

    def __init__(self, lines: int) -> None:
        self.lines = lines
        self.seen = 0
        self.words: collections.Counter[str] = collections.Counter()
        self.ended = 0.0
        self.finished = anyio.Event()

    def add_table(self, table: pa.Table) -> None:
        self.words.update(dict(zip(table["word"].to_pylist(), table["n"].to_pylist(), strict=True)))

    def add_pairs(self, pairs: list[tuple[str, int]]) -> None:
        self.words.update(dict(pairs))

    def count_lines(self, counts: list[int]) -> None:
        self.seen += sum(counts)
        if self.seen >= self.lines and not self.finished.is_set():
            self.ended = time.perf_counter()
            self.finished.set()


async def socket_job(port: int, args: argparse.Namespace, columnar: bool) -> tuple[float, Counts]:
    """Seconds from ``ssc.start()`` until every line was counted, and the counts."""
    counts = Counts(args.lines)
    async with StreamingContext(batch_interval=args.interval) as ssc:
        lines = socket_text_stream(
            ssc, "127.0.0.1", port, columnar=columnar, read_size=args.read_size
        )
        if columnar:
            lines.sql(WORD_COUNT).foreach_batch(counts.add_table, format="arrow")
        else:
            lines.flat_map(str.split).count_by_value().foreach_batch(counts.add_pairs)
        lines.count().foreach_batch(counts.count_lines)
        started = time.perf_counter()
        await ssc.start()
        with anyio.fail_after(60 + args.lines / 20_000):
            await counts.finished.wait()
    assert counts.seen == args.lines, f"{counts.seen:,} lines counted, {args.lines:,} sent"
    return counts.ended - started, counts


async def engine_sql(batches: list[pa.RecordBatch]) -> tuple[float, Counts]:
    """The word count query through streamio over ready Arrow batches."""
    counts = Counts(sum(b.num_rows for b in batches))
    async with StreamingContext(batch_interval=1.0, clock=ManualClock()) as ssc:
        source: MemorySource[Any] = MemorySource()
        ssc.receiver_stream(source).sql(WORD_COUNT).foreach_batch(counts.add_table, format="arrow")
        await ssc.start()
        started = time.perf_counter()
        for batch in batches:
            await source.send(batch)
            await step(ssc)
        elapsed = time.perf_counter() - started
    return elapsed, counts


def duckdb_sql(batches: list[pa.RecordBatch]) -> Counts:
    """The same query with DuckDB alone, batch after batch."""
    counts = Counts(sum(b.num_rows for b in batches))
    connection = duckdb.connect()
    for batch in batches:
        connection.register("batch", batch)
        counts.add_table(connection.sql(WORD_COUNT).to_arrow_table())
        connection.unregister("batch")
    return counts


def first(values: list[float]) -> float:
    return values[0]


def later(values: list[float]) -> float:
    """The smallest of the runs after the first (the first when there is one run)."""
    return min(values[1:] or values)


def measure(args: argparse.Namespace) -> None:
    loop = "uvloop" if args.uvloop else "asyncio"
    lines = make_lines(args.lines)
    floor_counts = collections.Counter(itertools.chain.from_iterable(map(str.split, lines)))
    column = pa.array(lines, pa.string())
    batches = [
        pa.record_batch([column.slice(start, args.batch)], names=["line"])
        for start in range(0, args.lines, args.batch)
    ]
    print(
        f"loop {loop}: {args.lines:,} lines, best of {args.repeat}; socket jobs: batch "
        f"interval {args.interval}s, read size {args.read_size:,} B; in memory: batches of "
        f"{args.batch:,} lines"
    )

    def floor() -> float:
        return timed(
            lambda: collections.Counter(itertools.chain.from_iterable(map(str.split, lines)))
        )

    server, port = start_server(args.lines)
    # per job: the peak RSS of each run, and how much it grew above the RSS at its start
    peaks: dict[bool, list[float]] = {True: [], False: []}
    grown: dict[bool, list[float]] = {True: [], False: []}
    try:

        def socket_run(columnar: bool) -> float:
            reset_peak_rss()
            before = rss_mib()
            elapsed, counts = run(socket_job(port, args, columnar), use_uvloop=args.uvloop)
            peak = peak_rss_mib()
            peaks[columnar].append(peak)
            grown[columnar].append(peak - before)
            assert counts.words == floor_counts, "wrong counts"
            return elapsed

        baseline, columnar_time = best_interleaved(args.repeat, floor, lambda: socket_run(True))
        _, rows_time = best_interleaved(args.repeat, floor, lambda: socket_run(False))
    finally:
        server.kill()
        server.join()

    def engine() -> float:
        elapsed, counts = run(engine_sql(batches), use_uvloop=args.uvloop)
        assert counts.words == floor_counts, "wrong counts"
        return elapsed

    def direct() -> float:
        started = time.perf_counter()
        counts = duckdb_sql(batches)
        elapsed = time.perf_counter() - started
        assert counts.words == floor_counts, "wrong counts"
        return elapsed

    direct_time, engine_time = best_interleaved(args.repeat, direct, engine)

    def rate(seconds: float) -> str:
        return f"{args.lines / seconds:>12,.0f} lines/s"

    print(
        f"  1. columnar socket word count {rate(columnar_time)} | Counter floor "
        f"{rate(baseline)} | ratio {baseline / columnar_time:.2f} (target >= 3)"
    )
    print(
        f"  2. sql() in streamio          {rate(engine_time)} | DuckDB directly "
        f"{rate(direct_time)} | ratio {direct_time / engine_time:.2f} (target >= 0.8)"
    )
    for name, pick in (("first", first), ("later", later)):
        print(
            f"  3. peak RSS, {name} run: columnar job {pick(peaks[True]):.0f} MiB "
            f"(+{pick(grown[True]):.0f} during the job) | row-wise job "
            f"{pick(peaks[False]):.0f} MiB (+{pick(grown[False]):.0f}) | "
            f"ratio {pick(peaks[True]) / pick(peaks[False]):.2f}"
        )
    print(f"     (row-wise socket word count: {rate(rows_time).strip()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000, help="lines per in-memory batch")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    parser.add_argument("--interval", type=float, default=0.25, help="batch interval, seconds")
    parser.add_argument("--read-size", type=int, default=1 << 20, help="socket read size, bytes")
    add_loop_option(parser)
    on_each_loop(parser.parse_args(), measure)


if __name__ == "__main__":
    main()
