"""A CPU-heavy stage inline, in a process pool and on a Dask LocalCluster.

200,000 records through ``map(heavy)`` (a pure-Python function of about 30 us a
record) then ``count_by_value``, driven by the manual clock, in batches of 20,000
(partitions of 2,500 records, one task each). Also the word count of
``wordcount.py`` inline and in the process pool, in large batches (100,000 lines)
and small ones (500 lines), to show when a cheap stage pays for the trip to other
processes.

    python benchmarks/executors.py [--records N] [--workers N] [--loop L] [--no-dask]
                                   [--repeat N]

Prints records/s for each path and the speed-up against inline, measured in the
same run: the paths take turns, and each keeps its best of ``--repeat`` runs (on a
2-core machine anything else running takes a worker's core, not inline's).
"""

from __future__ import annotations

import argparse
import contextlib
import operator
import os
import time
from collections.abc import Callable
from typing import Any

from loops import add_loop_option, on_each_loop
from wordcount import make_lines, pair

from streamio import DStream, ManualClock, StreamingContext, run


def heavy(x: int) -> int:
    """About 30 us of pure-Python arithmetic (a linear congruential walk)."""
    h = x
    for _ in range(300):
        h = (h * 1103515245 + 12345) & 0x7FFFFFFF
    return h & 0xFF


async def timed_run(
    batches: list[list[Any]],
    build: Callable[[DStream[Any]], DStream[Any]],
    **options: Any,
) -> float:
    clock = ManualClock()
    async with StreamingContext(
        batch_interval=1.0, clock=clock, partition_size=2_500, **options
    ) as ssc:
        build(ssc.queue_stream(list(batches))).foreach_batch(lambda t, records: None)
        await ssc.start()
        await clock.advance(1.0)  # the first batch warms the workers up; not timed
        started = time.perf_counter()
        await clock.advance(len(batches) - 1)
        elapsed = time.perf_counter() - started
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    add_loop_option(parser)
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs of each path")
    on_each_loop(parser.parse_args(), measure)


def measure(args: argparse.Namespace) -> None:
    batches = [
        list(range(i, i + args.batch)) for i in range(0, args.records + args.batch, args.batch)
    ]
    measured = args.records  # the warm-up batch is not timed
    loop = "uvloop" if args.uvloop else "asyncio"
    print(
        f"CPU-heavy stage: {measured:,} records, {args.workers} workers, loop: {loop}, "
        f"best of {args.repeat}"
    )

    def heavy_stage(s: DStream[int]) -> DStream[Any]:
        return s.map(heavy).count_by_value()

    def report(label: str, seconds: float, inline: float | None, cpu: tuple[float, float]) -> None:
        ratio = "" if inline is None else f" | x{inline / seconds:.2f} inline"
        own, workers = cpu
        spent = f"CPU/record: here {own:.1f} us" + (
            f", workers {workers:.1f} us" if workers else ""
        )
        print(f"  {label:28} {measured / seconds:>10,.0f} records/s{ratio:15} | {spent}")

    def best_in_turns(paths: dict[str, dict[str, Any]], work: list[list[Any]], build: Any) -> None:
        """Each path once per round, ``args.repeat`` rounds; report each path's best.

        Beside the speed, the CPU time per record (last round) of this process and
        of the pool's workers (reaped at the context's stop; a Dask cluster's are
        not counted): a pool that adds no work spends in its workers what inline
        spends here, and then only free cores decide its speed-up.
        """
        times: dict[str, list[float]] = {label: [] for label in paths}
        cpu: dict[str, tuple[float, float]] = {}
        records = sum(map(len, work))
        for _ in range(args.repeat):
            for label, options in paths.items():
                before = os.times()
                elapsed = run(timed_run(work, build, **options), use_uvloop=args.uvloop)
                after = os.times()
                times[label].append(elapsed)
                own = after.user + after.system - before.user - before.system
                workers = sum(after[2:4]) - sum(before[2:4])  # children's user + system
                cpu[label] = (own * 1e6 / records, workers * 1e6 / records)
        inline = min(times["inline"])
        for label in paths:
            best = min(times[label])
            report(label, best, None if label == "inline" else inline, cpu[label])

    pool = {"executor": "process", "max_workers": args.workers}
    with contextlib.ExitStack() as stack:
        paths: dict[str, dict[str, Any]] = {"inline": {}, "process pool": pool}
        if not args.no_dask:
            from distributed import Client, LocalCluster

            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=args.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
            )
            paths["dask LocalCluster"] = {"executor": stack.enter_context(Client(cluster))}
        best_in_turns(paths, batches, heavy_stage)

    def word_count(s: DStream[str]) -> DStream[Any]:
        return s.flat_map(str.split).map(pair).reduce_by_key(operator.add)

    for total, size in ((1_000_000, 100_000), (100_000, 500)):
        lines = make_lines(total + size)
        line_batches = [lines[i : i + size] for i in range(0, len(lines), size)]
        print(f"cheap stage: word count of {total:,} lines in batches of {size:,}")
        measured = total
        best_in_turns({"inline": {}, "process pool": pool}, line_batches, word_count)


if __name__ == "__main__":
    main()
