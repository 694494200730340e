"""Backpressure: a source 3x faster than the pipeline, with and without the controller.

A receiver offers records at ``3 * --pipeline-rate`` records/s on the system
clock (a chunk every 10 ms; while its buffer is full it waits, and the chunks it
could not offer meanwhile stay at the origin, as a socket or a broker would keep
them). The pipeline's output takes ``records / --pipeline-rate`` seconds per
batch (an ``await``, as a slow sink does, so the source keeps producing
meanwhile). Both runs have the same buffer (``--buffer`` records). Each runs
``--batches`` batches and prints, per batch: the records it took, the cap in
force, its processing time, its scheduling delay and the buffer's fill when it
was cut; then the peak resident memory of the run, and the records/s the job
processed, with the ratio to the run without the controller.

- without: ``StreamingContext(batch_interval)``: each batch takes what the
  buffer holds; it takes longer than an interval, so every later batch starts
  later (the delay grows until the buffer bounds the batch size, then goes on
  growing by the same amount per batch);
- with: ``StreamingContext(batch_interval, backpressure=True)``: the PID
  controller caps each batch near what the pipeline processes in an interval,
  the rest waits in the buffer (the source waits once it is full), and the
  delay settles.

Target: with the controller, the scheduling delay is under 2 batch intervals
within 10 batches and stays there, and memory stays flat.

    python benchmarks/backpressure.py [--batches N] [--interval S]
        [--pipeline-rate N] [--buffer N] [--initial-rate N] [--loop asyncio|uvloop|both]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import anyio
from loops import add_loop_option, on_each_loop
from memory import peak_rss_mib, reset_peak_rss

from streamio import BatchInfo, Receiver, ReceiverOutput, StreamingContext, run

SOURCE_SPEEDUP = 3
CHUNK_SECONDS = 0.01


class FastSource(Receiver[int]):
    """Offers ``rate`` records/s in chunks every 10 ms, skipping the slots it
    spent waiting for buffer space (those records stay at the origin)."""

    def __init__(self, rate: float) -> None:
        self._chunk = max(1, int(rate * CHUNK_SECONDS))
        self.offered = 0

    async def run(self, output: ReceiverOutput[int]) -> None:
        chunk = list(range(self._chunk))
        next_slot = time.monotonic()
        while True:
            await output.put_many(chunk)
            self.offered += len(chunk)
            next_slot = max(next_slot + CHUNK_SECONDS, time.monotonic())
            await anyio.sleep(max(0.0, next_slot - time.monotonic()))


@dataclass
class Row:
    batch: BatchInfo
    buffered: int  # records in the buffer when the batch was cut


async def job(args: argparse.Namespace, backpressure: bool) -> tuple[list[Row], float, float]:
    """The completed batches, the records/s processed, and the peak RSS (MiB)."""
    rows: list[Row] = []
    done = anyio.Event()
    source = FastSource(SOURCE_SPEEDUP * args.pipeline_rate)

    async def slow_output(batch_time: float, records: list[int]) -> None:
        await anyio.sleep(len(records) / args.pipeline_rate)

    class Watch:
        """Inline: reads the buffer at the cut, before the receiver refills it."""

        def on_batch_submitted(self, info: BatchInfo) -> None:
            left = stream.buffer_statistics().used
            rows.append(Row(info, left + info.records_per_input["fast"]))

        def on_batch_completed(self, info: BatchInfo) -> None:
            rows[-1].batch = info
            if len(rows) >= args.batches:
                done.set()

    settings: dict[str, object] = {"buffer_capacity": args.buffer}
    if backpressure:
        settings.update(backpressure=True, initial_rate=args.initial_rate)
    reset_peak_rss()
    async with StreamingContext(args.interval, **settings) as ssc:  # type: ignore[arg-type]
        ssc.add_listener(Watch(), inline=True)
        stream = ssc.receiver_stream(source, name="fast")
        stream.foreach_batch(slow_output)
        await ssc.start()
        started = time.monotonic()
        await done.wait()
        elapsed = time.monotonic() - started
        ssc.stop(graceful=False)
    processed = sum(row.batch.records_per_input["fast"] for row in rows[: args.batches])
    return rows[: args.batches], processed / elapsed, peak_rss_mib()


def settled_by(rows: list[Row], interval: float) -> int | None:
    """The first batch (1-based) from which every delay is under 2 intervals."""
    for index in range(len(rows)):
        if all((row.batch.scheduling_delay or 0.0) < 2 * interval for row in rows[index:]):
            return index + 1
    return None


def show(title: str, rows: list[Row], interval: float) -> None:
    print(f"  {title}")
    print("    batch  records  cap (rec/s)  processing (s)  sched. delay (s)  buffered")
    for number, row in enumerate(rows, 1):
        info = row.batch
        cap = info.rate_limits.get("fast")
        shown_cap = "-" if cap is None else f"{cap:,.0f}"
        print(
            f"    {number:5d}  {info.records_per_input['fast']:7,d}  {shown_cap:>11}"
            f"  {info.processing_time or 0.0:14.3f}  {info.scheduling_delay or 0.0:16.3f}"
            f"  {row.buffered:8,d}"
        )
    print(f"    settled (delay < 2 intervals from then on) by batch: {settled_by(rows, interval)}")


def measure(args: argparse.Namespace) -> None:
    loop = "uvloop" if args.uvloop else "asyncio"
    print(
        f"{loop}: source {SOURCE_SPEEDUP * args.pipeline_rate:,.0f} records/s, pipeline "
        f"{args.pipeline_rate:,.0f} records/s, interval {args.interval}s, "
        f"buffer {args.buffer:,} records, {args.batches} batches"
    )
    without, without_rate, without_rss = run(job(args, False), use_uvloop=args.uvloop)
    show("without the controller", without, args.interval)
    controlled, controlled_rate, controlled_rss = run(job(args, True), use_uvloop=args.uvloop)
    show("with the controller", controlled, args.interval)
    delays = [row.batch.scheduling_delay or 0.0 for row in without]
    print(
        f"  without: delay {delays[9]:.2f}s at batch 10, {delays[-1]:.2f}s at batch "
        f"{len(delays)}; max buffered {max(row.buffered for row in without):,}; "
        f"peak RSS {without_rss:.0f} MiB; {without_rate:,.0f} records/s (baseline)"
    )
    delays = [row.batch.scheduling_delay or 0.0 for row in controlled]
    print(
        f"  with:    delay {delays[9]:.2f}s at batch 10, {delays[-1]:.2f}s at batch "
        f"{len(delays)}; max buffered {max(row.buffered for row in controlled):,}; "
        f"peak RSS {controlled_rss:.0f} MiB; {controlled_rate:,.0f} records/s "
        f"(ratio {controlled_rate / without_rate:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.1, help="batch interval, s")
    parser.add_argument("--pipeline-rate", type=float, default=20_000, help="records/s")
    parser.add_argument("--buffer", type=int, default=10_000, help="buffer capacity, records")
    parser.add_argument("--initial-rate", type=float, default=None, help="records/s")
    add_loop_option(parser)
    on_each_loop(parser.parse_args(), measure)


if __name__ == "__main__":
    main()
