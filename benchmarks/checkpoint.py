"""Checkpoints: what they cost, measured against the same job without them in one run.

1. The running word count (``update_state_by_key``) over 1,000,000 generated lines
   (as in ``wordcount.py``) in batches of 100,000, with a checkpoint after every
   batch against none. The lines come from a ``MemorySource`` (a queue stream
   cannot be checkpointed), driven by the manual clock. Target: ratio >= 0.8.
2. Checkpoint time per batch with 1,000 keys changed per batch, on a state of
   10,000 keys and on one of 1,000,000 keys (``map_with_state``, state held from the
   initial state): a checkpoint writes only the changed keys, so its time should be
   flat (target: <= 2x from 10k to 1M keys), where a full-state checkpoint (as
   Spark's DStreams write) grows with the state. The median of the batches after
   the first checkpoint (which writes the initial state).
3. The socket word count of ``socket_wordcount.py`` (lines over loopback TCP),
   checkpointed, with the write-ahead log on against off. Target: ratio >= 0.7.

    python benchmarks/checkpoint.py [--lines N] [--batch N] [--keys N,N] [--changed N]
        [--socket-lines N] [--repeat N] [--loop asyncio|uvloop|both]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from loops import add_loop_option, on_each_loop
from socket_wordcount import start_server
from wordcount import make_lines, pair

from streamio import ManualClock, State, StateSpec, StreamingContext, run
from streamio.connectors.socket import socket_text_stream
from streamio.testing import MemorySource


def update(values: list[int], old: int | None) -> int:
    return sum(values, old or 0)


async def running_count(batches: list[list[str]], directory: Path | None) -> float:
    """Seconds to run every batch through the running count (checkpointed into
    ``directory`` after every batch, or not at all)."""
    clock, source = ManualClock(), MemorySource()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        if directory is not None:
            ssc.checkpoint(directory, 1.0)
        words = ssc.receiver_stream(source).flat_map(str.split)
        words.map(pair).update_state_by_key(update).foreach_batch(lambda t, r: None)
        await ssc.start()
        elapsed = 0.0
        for lines in batches:
            await source.send(lines)
            started = time.perf_counter()
            await clock.advance(1.0)
            elapsed += time.perf_counter() - started
    return elapsed


def keep(time: float, key: int, value: int | None, state: State[int]) -> None:
    state.update(value or 0)


async def checkpoint_times(keys: int, changed: int, batches: int, directory: Path) -> list[float]:
    """Seconds of each checkpoint when ``changed`` keys of ``keys`` change per batch."""
    durations: list[float] = []

    class Durations:
        def on_checkpoint_written(self, info: Any) -> None:
            durations.append(info.duration)

    clock, source = ManualClock(), MemorySource()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.checkpoint(directory, 1.0)
        ssc.add_listener(Durations())
        spec = StateSpec(keep, initial_state=((key, 0) for key in range(keys)))
        ssc.receiver_stream(source).map_with_state(spec).foreach_batch(lambda t, r: None)
        await ssc.start()
        for batch in range(batches):
            first = (batch * changed) % keys
            await source.send([(first + i, batch) for i in range(changed)])
            await clock.advance(1.0)
    return durations[1:]  # the first writes the whole initial state


async def socket_count(port: int, lines: int, directory: Path, log: bool) -> float:
    """Seconds until the checkpointed socket word count counted ``lines`` lines."""
    finished = anyio.Event()
    seen = 0

    def count_lines(records: list[int]) -> None:
        nonlocal seen
        seen += sum(records)
        if seen >= lines:
            finished.set()

    async with StreamingContext(batch_interval=0.5) as ssc:
        ssc.checkpoint(directory, 0.5, write_ahead_log=log)
        stream = socket_text_stream(ssc, "127.0.0.1", port)
        stream.flat_map(str.split).map(pair).update_state_by_key(update).foreach_batch(
            lambda t, r: None
        )
        stream.count().foreach_batch(count_lines)
        started = time.perf_counter()
        await ssc.start()
        with anyio.fail_after(120):
            await finished.wait()
        elapsed = time.perf_counter() - started
        ssc.stop(graceful=False)
    return elapsed


def measure(args: argparse.Namespace) -> None:
    loop = "uvloop" if args.uvloop else "asyncio"
    lines = make_lines(args.lines)
    batches = [lines[i : i + args.batch] for i in range(0, len(lines), args.batch)]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        plain, checkpointed = [], []
        for turn in range(args.repeat):
            plain.append(run(running_count(batches, None), use_uvloop=args.uvloop))
            checkpointed.append(
                run(running_count(batches, root / f"count{turn}"), use_uvloop=args.uvloop)
            )
        best_plain, best_checkpointed = min(plain), min(checkpointed)
        print(
            f"[{loop}] running count, {args.lines:,} lines: no checkpoint "
            f"{args.lines / best_plain:,.0f} lines/s, a checkpoint every batch "
            f"{args.lines / best_checkpointed:,.0f} lines/s, ratio "
            f"{best_plain / best_checkpointed:.2f} (target >= 0.8)"
        )

        medians = {}
        for keys in args.keys:
            times = run(
                checkpoint_times(keys, args.changed, 12, root / f"keys{keys}"),
                use_uvloop=args.uvloop,
            )
            medians[keys] = statistics.median(times)
        small, large = min(args.keys), max(args.keys)
        print(
            f"[{loop}] checkpoint time per batch, {args.changed:,} keys changed: "
            + ", ".join(f"{keys:,} keys {medians[keys] * 1000:.2f} ms" for keys in args.keys)
            + f", ratio {medians[large] / medians[small]:.2f} (target <= 2)"
        )

        server, port = start_server(args.socket_lines)
        try:
            off, on = [], []
            for turn in range(args.repeat):
                off.append(
                    run(
                        socket_count(port, args.socket_lines, root / f"off{turn}", False),
                        use_uvloop=args.uvloop,
                    )
                )
                on.append(
                    run(
                        socket_count(port, args.socket_lines, root / f"on{turn}", True),
                        use_uvloop=args.uvloop,
                    )
                )
        finally:
            server.kill()
        print(
            f"[{loop}] socket running count, {args.socket_lines:,} lines: log off "
            f"{args.socket_lines / min(off):,.0f} lines/s, log on "
            f"{args.socket_lines / min(on):,.0f} lines/s, ratio "
            f"{min(off) / min(on):.2f} (target >= 0.7)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument(
        "--keys", type=lambda text: [int(n) for n in text.split(",")], default=[10_000, 1_000_000]
    )
    parser.add_argument("--changed", type=int, default=1_000)
    parser.add_argument("--socket-lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    add_loop_option(parser)
    on_each_loop(parser.parse_args(), measure)


if __name__ == "__main__":
    main()
