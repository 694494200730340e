"""Word count through the engine against plain-Python baselines measured in the same run.

1,000,000 generated lines (10 words each from a 1,000-word vocabulary, fixed seed)
go through ``queue_stream`` in batches of 100,000 lines, driven by the manual
clock, so the time measured is the engine's, not the batch interval's.

    python benchmarks/wordcount.py [--lines N] [--batch N] [--repeat N] [--loop asyncio|uvloop|both]

Prints lines/s of each engine path beside its baseline and the ratio
(engine / baseline; 1.0 means no overhead), then the cost of an empty tick.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import operator
import random
import string
import time
from collections.abc import Callable

from loops import add_loop_option, on_each_loop

from streamio import DStream, ManualClock, StreamingContext, run


def make_lines(count: int, seed: int = 42) -> list[str]:
    rng = random.Random(seed)
    vocabulary = [
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(1000)
    ]
    return [" ".join(rng.choices(vocabulary, k=10)) for _ in range(count)]


def pair(word: str) -> tuple[str, int]:
    return (word, 1)


def loop_word_count(batches: list[list[str]]) -> list[dict[str, int]]:
    """The hand-written loop: the same user functions, no engine."""
    split, add = str.split, operator.add
    results = []
    for lines in batches:
        counts: dict[str, int] = {}
        for line in lines:
            for word in split(line):
                key, value = pair(word)
                if key in counts:
                    counts[key] = add(counts[key], value)
                else:
                    counts[key] = value
        results.append(counts)
    return results


def counter_floor(batches: list[list[str]]) -> list[collections.Counter[str]]:
    """The floor: collections.Counter over the split words, all in C."""
    return [
        collections.Counter(itertools.chain.from_iterable(map(str.split, lines)))
        for lines in batches
    ]


async def engine_run(
    batches: list[list[str]], build: Callable[[DStream[str]], DStream[tuple[str, int]]]
) -> tuple[float, list[list[tuple[str, int]]]]:
    clock = ManualClock()
    results: list[list[tuple[str, int]]] = []
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        build(ssc.queue_stream(list(batches))).foreach_batch(
            lambda t, records: results.append(records)
        )
        await ssc.start()
        started = time.perf_counter()
        await clock.advance(len(batches))
        elapsed = time.perf_counter() - started
    return elapsed, results


async def empty_tick_cost(ticks: int) -> float:
    """Seconds per tick of a context whose one input has no data."""
    clock = ManualClock()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.queue_stream([]).foreach_batch(lambda t, records: None)
        await ssc.start()
        started = time.perf_counter()
        await clock.advance(ticks)
        elapsed = time.perf_counter() - started
    return elapsed / ticks


def word_count(lines: DStream[str]) -> DStream[tuple[str, int]]:
    return lines.flat_map(str.split).map(pair).reduce_by_key(operator.add)


def word_count_skipping(lines: DStream[str]) -> DStream[tuple[str, int]]:
    """The word count with record policies on (no record fails): the guarded path."""
    words = lines.flat_map(str.split, on_error="skip").map(pair, on_error="skip")
    return words.reduce_by_key(operator.add)


def count_values(lines: DStream[str]) -> DStream[tuple[str, int]]:
    return lines.flat_map(str.split).count_by_value()


def best_of(repeat: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(repeat))


def best_interleaved(
    repeat: int, first: Callable[[], float], second: Callable[[], float]
) -> tuple[float, float]:
    """Best times of two measurements taken in turns, so drifts of the machine's
    speed hit both alike."""
    times = [(first(), second()) for _ in range(repeat)]
    return min(t for t, _ in times), min(t for _, t in times)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="best of N runs")
    parser.add_argument("--ticks", type=int, default=20_000, help="empty ticks to time")
    add_loop_option(parser)
    on_each_loop(parser.parse_args(), measure)


def measure(args: argparse.Namespace) -> None:

    lines = make_lines(args.lines)
    batches = [lines[i : i + args.batch] for i in range(0, len(lines), args.batch)]
    loop = "uvloop" if args.uvloop else "asyncio"
    print(f"{args.lines:,} lines in {len(batches)} batches, loop: {loop}, best of {args.repeat}")

    def engine(build: Callable[[DStream[str]], DStream[tuple[str, int]]]) -> float:
        elapsed, results = run(engine_run(batches, build), use_uvloop=args.uvloop)
        expected = counter_floor(batches)
        assert [dict(r) for r in results] == [dict(c) for c in expected], "wrong counts"
        return elapsed

    rows = [
        (
            "reduce_by_key word count",
            lambda: engine(word_count),
            "plain-Python loop",
            lambda: timed(lambda: loop_word_count(batches)),
        ),
        (
            "word count, on_error=skip",
            lambda: engine(word_count_skipping),
            "plain-Python loop",
            lambda: timed(lambda: loop_word_count(batches)),
        ),
        (
            "count_by_value",
            lambda: engine(count_values),
            "Counter floor",
            lambda: timed(lambda: counter_floor(batches)),
        ),
    ]
    for name, engine_fn, baseline_name, baseline_fn in rows:
        baseline, measured = best_interleaved(args.repeat, baseline_fn, engine_fn)
        print(
            f"{name:26} {args.lines / measured:>12,.0f} lines/s | "
            f"{baseline_name:18} {args.lines / baseline:>12,.0f} lines/s | "
            f"ratio {baseline / measured:.2f}"
        )
    tick = best_of(args.repeat, lambda: run(empty_tick_cost(args.ticks), use_uvloop=args.uvloop))
    print(f"empty tick: {tick * 1e6:.1f} us per batch ({args.ticks:,} ticks)")


if __name__ == "__main__":
    main()
