"""from_async_iterable against a bare ``async for`` over the same generator, same run.

An async generator yields N integers (every item ready at once, as a generator over
data in hand). The baseline iterates it with a bare ``async for``; the engine reads
it with ``ssc.from_async_iterable`` (a buffer large enough for every record, so
backpressure is not measured) until one batch holds them all. Measurements are
taken in turns, best of N, driven by the manual clock.

    python benchmarks/async_iterable.py [--records N] [--repeat N] [--loop asyncio|uvloop|both]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import AsyncIterator

import anyio
from loops import add_loop_option, on_each_loop
from wordcount import best_interleaved

from streamio import ManualClock, StreamingContext, run


async def numbers(count: int, exhausted: anyio.Event | None = None) -> AsyncIterator[int]:
    for number in range(count):
        yield number
    if exhausted is not None:
        exhausted.set()


async def bare_loop(count: int) -> float:
    started = time.perf_counter()
    seen = 0
    async for _ in numbers(count):
        seen += 1
    elapsed = time.perf_counter() - started
    assert seen == count
    return elapsed


async def engine(count: int) -> float:
    clock = ManualClock()
    exhausted = anyio.Event()
    counts: list[int] = []
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        stream = ssc.from_async_iterable(numbers(count, exhausted), buffer_capacity=count + 1)
        stream.count().foreach_batch(counts.extend)
        started = time.perf_counter()
        await ssc.start()
        await exhausted.wait()
        await clock.advance(1.0)  # the batch cut after the last item was stored
        elapsed = time.perf_counter() - started
    assert counts[0] == count, counts
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="best of N runs")
    add_loop_option(parser)
    on_each_loop(parser.parse_args(), measure)


def measure(args: argparse.Namespace) -> None:
    loop = "uvloop" if args.uvloop else "asyncio"
    count = args.records
    baseline, measured = best_interleaved(
        args.repeat,
        lambda: run(bare_loop(count), use_uvloop=args.uvloop),
        lambda: run(engine(count), use_uvloop=args.uvloop),
    )
    print(
        f"{loop:8} from_async_iterable {count / measured:>12,.0f} records/s | "
        f"bare async for {count / baseline:>12,.0f} records/s | ratio {baseline / measured:.2f}"
    )


if __name__ == "__main__":
    main()
