"""State across batches: update_state_by_key against a plain loop, and map_with_state's
cost per batch as the number of keys held grows.

1. The running word count: 1,000,000 generated lines (10 words each from a 1,000-word
   vocabulary) in batches of 100,000 through
   ``flat_map(str.split).map(pair).update_state_by_key(update)``, against a plain
   loop that calls the same ``pair`` and ``update`` functions, in the same run
   (taken in turns, best of N).
2. ``map_with_state`` with a timeout: 100 records per batch on a state of 1,000 keys,
   then of 1,000,000 keys (held from the initial state). Its cost should follow the
   keys touched, not the keys held: the figure is the ratio of the two costs.

Both are driven by the manual clock, so the time measured is the engine's.

    python benchmarks/state.py [--lines N] [--batch N] [--keys N,N] [--repeat N] [--loop ...]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

from loops import add_loop_option, on_each_loop
from wordcount import best_interleaved, make_lines, pair, timed

from streamio import ManualClock, State, StateSpec, StreamingContext, run


def update(values: list[int], old: int | None) -> int:
    return sum(values, old or 0)


def loop_running_count(batches: list[list[str]]) -> dict[str, int]:
    """The plain loop: group each batch's pairs by key, then update every key's state."""
    split = str.split
    state: dict[str, int] = {}
    for lines in batches:
        new_values: dict[str, list[int]] = {}
        for line in lines:
            for word in split(line):
                key, value = pair(word)
                if key in new_values:
                    new_values[key].append(value)
                else:
                    new_values[key] = [value]
        for key in [*state, *(k for k in new_values if k not in state)]:
            state[key] = update(new_values.get(key, []), state.get(key))
    return state


async def engine_running_count(batches: list[list[str]]) -> tuple[float, dict[str, int]]:
    clock = ManualClock()
    last: list[list[tuple[str, int]]] = []
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        counts = ssc.queue_stream(list(batches)).flat_map(str.split).map(pair)
        counts.update_state_by_key(update).foreach_batch(last.append)
        await ssc.start()
        started = time.perf_counter()
        await clock.advance(len(batches))
        elapsed = time.perf_counter() - started
    return elapsed, dict(last[-1])


def count(time: float, key: int, value: int | None, state: State[int]) -> Any:
    if state.is_timing_out():
        return None
    total = state.get_option(0) + value
    state.update(total)
    return (key, total)


async def map_with_state_cost(keys: int, batches: int, per_batch: int, warmup: int) -> float:
    """Seconds per batch of ``per_batch`` records on a state of ``keys`` keys."""
    rng = random.Random(7)
    data = [[(rng.randrange(keys), 1) for _ in range(per_batch)] for _ in range(batches)]
    spec = StateSpec(count, initial_state=((key, 0) for key in range(keys)), timeout=1e6)
    clock = ManualClock()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.queue_stream(data).map_with_state(spec).foreach_batch(lambda records: None)
        await ssc.start()
        await clock.advance(warmup)
        started = time.perf_counter()
        await clock.advance(batches - warmup)
        elapsed = time.perf_counter() - started
    return elapsed / (batches - warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--keys", default="1000,1000000", help="state sizes for map_with_state")
    parser.add_argument("--records", type=int, default=100, help="map_with_state records/batch")
    parser.add_argument("--batches", type=int, default=200, help="map_with_state batches")
    parser.add_argument("--repeat", type=int, default=5, help="best of N runs")
    add_loop_option(parser)
    on_each_loop(parser.parse_args(), measure)


def measure(args: argparse.Namespace) -> None:
    loop = "uvloop" if args.uvloop else "asyncio"
    lines = make_lines(args.lines)
    batches = [lines[i : i + args.batch] for i in range(0, len(lines), args.batch)]
    expected = loop_running_count(batches)
    print(f"loop: {loop}, best of {args.repeat}")

    def engine() -> float:
        elapsed, state = run(engine_running_count(batches), use_uvloop=args.uvloop)
        assert state == expected, "wrong counts"
        return elapsed

    baseline, measured = best_interleaved(
        args.repeat, lambda: timed(lambda: loop_running_count(batches)), engine
    )
    print(
        f"update_state_by_key {args.lines:,} lines {args.lines / measured:>12,.0f} lines/s | "
        f"plain loop {args.lines / baseline:>12,.0f} lines/s | ratio {baseline / measured:.2f}"
    )

    sizes = [int(size) for size in args.keys.split(",")]
    warmup = 5

    def cost(keys: int) -> Callable[[], float]:
        return lambda: run(
            map_with_state_cost(keys, args.batches, args.records, warmup),
            use_uvloop=args.uvloop,
        )

    small, large = best_interleaved(args.repeat, cost(sizes[0]), cost(sizes[-1]))
    for keys, seconds in ((sizes[0], small), (sizes[-1], large)):
        print(
            f"map_with_state {args.records} records/batch, {keys:>9,} keys held "
            f"{1e3 * seconds:8.3f} ms per batch {args.records / seconds:>12,.0f} records/s"
        )
    print(f"map_with_state cost x{large / small:.2f} from {sizes[0]:,} to {sizes[-1]:,} keys")


if __name__ == "__main__":
    main()
