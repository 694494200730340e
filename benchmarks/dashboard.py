"""The cost of metrics and the live dashboard: benchmarks/wordcount.py's word count
with them on against off, measured in turns in the same run.

"on" serves the dashboard (``dashboard=0``: the metrics registry, the monitor and the
server), with a ``to_dashboard`` panel of the top words, a Prometheus scrape after
every run and, in the last row, a page's event stream open and read throughout.
The batches are driven by the manual clock, so the time measured is the engine's;
it is the process' CPU time (``time.process_time``), everything in the process
included (the server, and the page's client when open), which other processes on a
shared machine do not inflate as they do wall-clock time.

    python benchmarks/dashboard.py [--lines N] [--batch N] [--repeat N] [--loop asyncio|uvloop|both]

Prints lines/s of each configuration and its ratio to "off" (1.0: no overhead;
the target is >= 0.95).
"""

from __future__ import annotations

import argparse
import time

import anyio
import httpx
from loops import add_loop_option, on_each_loop
from wordcount import counter_floor, make_lines, word_count

from streamio import ManualClock, StreamingContext, run


async def engine_run(
    batches: list[list[str]], expected: list[dict[str, int]], dashboard: bool, page_open: bool
) -> float:
    clock = ManualClock()
    results: list[list[tuple[str, int]]] = []
    port = 0 if dashboard else None
    async with StreamingContext(batch_interval=1.0, clock=clock, dashboard=port) as ssc:
        counts = word_count(ssc.queue_stream(list(batches)))
        counts.foreach_batch(lambda t, records: results.append(records))
        if dashboard:
            counts.to_dashboard("top words", kind="bar", top=10)
        await ssc.start()
        base_url = ssc.dashboard_url or "http://127.0.0.1"
        async with httpx.AsyncClient(base_url=base_url) as http, anyio.create_task_group() as page:
            if page_open:
                opened = anyio.Event()
                page.start_soon(read_events, http, opened)
                await opened.wait()
            started = time.process_time()
            await clock.advance(len(batches))
            if dashboard:
                scrape = await http.get("metrics")
                assert f"streamio_batches_completed_total {len(batches)}.0" in scrape.text
            elapsed = time.process_time() - started
            page.cancel_scope.cancel()
    assert [dict(r) for r in results] == expected, "wrong counts"
    return elapsed


async def read_events(http: httpx.AsyncClient, opened: anyio.Event) -> None:
    """A page's feed: read every event until cancelled."""
    async with http.stream("GET", "events") as response:
        async for line in response.aiter_lines():
            if line.startswith("event: snapshot"):
                opened.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="best of N runs")
    add_loop_option(parser)
    on_each_loop(parser.parse_args(), measure)


def measure(args: argparse.Namespace) -> None:
    lines = make_lines(args.lines)
    batches = [lines[i : i + args.batch] for i in range(0, len(lines), args.batch)]
    loop = "uvloop" if args.uvloop else "asyncio"
    print(f"{args.lines:,} lines in {len(batches)} batches, loop: {loop}, best of {args.repeat}")
    expected = [dict(counts) for counts in counter_floor(batches)]
    configurations = {
        "off": (False, False),
        "metrics + dashboard": (True, False),
        "... + a page open": (True, True),
    }
    times: dict[str, list[float]] = {name: [] for name in configurations}
    for _ in range(args.repeat):  # in turns, so drifts of the machine's speed hit all alike
        for name, (dashboard, page_open) in configurations.items():
            job = engine_run(batches, expected, dashboard, page_open)
            elapsed = run(job, use_uvloop=args.uvloop)
            times[name].append(elapsed)
    baseline = min(times["off"])
    for name, measured in times.items():
        best = min(measured)
        rate = args.lines / best
        print(f"{name:22} {rate:>12,.0f} lines per CPU second | ratio {baseline / best:.3f}")


if __name__ == "__main__":
    main()
