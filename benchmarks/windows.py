"""Cost per slide of reduce_by_key_and_window: window of 2 vs 60 batches, same slide.

With an inverse function the window is updated incrementally (previous result +
entering batch - leaving batch), so its cost per slide should stay flat as the
window grows; without it every window is reduced anew, so the cost grows with the
window. The baseline, measured in the same run, is a plain per-batch
reduce_by_key over the same batches.

    python benchmarks/windows.py [--pairs N] [--keys N] [--measure N] [--loop asyncio|uvloop|both]
"""

from __future__ import annotations

import argparse
import operator
import random
import time
from collections.abc import Callable

from loops import add_loop_option, on_each_loop

from streamio import DStream, ManualClock, StreamingContext, run


def make_batches(count: int, pairs: int, keys: int, seed: int = 42) -> list[list[tuple[int, int]]]:
    rng = random.Random(seed)
    return [[(rng.randrange(keys), 1) for _ in range(pairs)] for _ in range(count)]


async def seconds_per_slide(
    batches: list[list[tuple[int, int]]],
    warmup: int,
    build: Callable[[DStream[tuple[int, int]]], DStream[tuple[int, int]]],
) -> float:
    """Mean time of the batches after ``warmup`` (once the window is full)."""
    clock = ManualClock()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        build(ssc.queue_stream(list(batches))).foreach_batch(lambda t, records: None)
        await ssc.start()
        await clock.advance(warmup)
        started = time.perf_counter()
        await clock.advance(len(batches) - warmup)
        elapsed = time.perf_counter() - started
    return elapsed / (len(batches) - warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20_000, help="records per batch")
    parser.add_argument("--keys", type=int, default=1_000, help="distinct keys")
    parser.add_argument("--measure", type=int, default=20, help="batches measured")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    add_loop_option(parser)
    on_each_loop(parser.parse_args(), measure)


def measure(args: argparse.Namespace) -> None:

    longest = 60
    batches = make_batches(longest + args.measure, args.pairs, args.keys)
    loop = "uvloop" if args.uvloop else "asyncio"
    print(f"{args.pairs:,} records per batch, {args.keys:,} keys, slide 1 batch, loop: {loop}")

    def measure(build: Callable[[DStream[tuple[int, int]]], DStream[tuple[int, int]]]) -> float:
        return min(
            run(seconds_per_slide(batches, longest, build), use_uvloop=args.uvloop)
            for _ in range(args.repeat)
        )

    baseline = measure(lambda s: s.reduce_by_key(operator.add))
    print(
        f"{'baseline reduce_by_key':34} {1e3 * baseline:8.2f} ms per batch "
        f"{args.pairs / baseline:>12,.0f} records/s"
    )
    for inverse in (operator.sub, None):
        for length in (2, longest):
            per_slide = measure(
                lambda s, w=float(length), inv=inverse: s.reduce_by_key_and_window(
                    operator.add, inv, w, 1.0
                )
            )
            label = f"window {length:2} batches, {'with' if inverse else 'without'} inv_func"
            print(
                f"{label:34} {1e3 * per_slide:8.2f} ms per slide "
                f"{args.pairs / per_slide:>12,.0f} records/s | x{per_slide / baseline:.2f} baseline"
            )


if __name__ == "__main__":
    main()
