"""Streaming k-means through streamio against the same numpy update written by hand.

1,000,000 points of 8 dimensions (around 10 centers, fixed seed), as numpy rows, go
through ``queue_stream`` in batches of 10,000 into ``StreamingKMeans.train_on``,
driven by the manual clock, so the time measured is the engine's and the update's,
not the batch interval's. The baseline, measured in the same run and interleaved
with it (best of ``--repeat``), is a plain loop over the same batches doing MLlib's
update in numpy by hand: rows to one array, exact nearest centers, per-center sums
and counts, the decayed weighted update and the dying-cluster check.

    python benchmarks/ml.py [--points N] [--batch N] [--k N] [--repeat N]
                            [--loop asyncio|uvloop|both]

Prints points/s of both and the ratio (streamio / hand-written; 1.0 means no
overhead), and checks that both end with the same centers.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from loops import add_loop_option, on_each_loop

from streamio import ManualClock, StreamingContext, run
from streamio.ml import StreamingKMeans

DIM = 8
DECAY = 0.9


def make_batches(points: int, batch: int, k: int, seed: int = 42) -> list[list[np.ndarray]]:
    rng = np.random.RandomState(seed)
    centers = 5 * rng.randn(k, DIM)
    data = centers[rng.randint(k, size=points)] + rng.randn(points, DIM)
    return [list(data[start : start + batch]) for start in range(0, points, batch)]


def by_hand(
    batches: list[list[np.ndarray]], centers: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """MLlib's streaming k-means update, batch by batch, in numpy, no engine."""
    centers, weights = centers.copy(), weights.copy()
    k = len(centers)
    for rows in batches:
        points = np.array(rows, dtype=float)
        diff = points[:, np.newaxis, :] - centers[np.newaxis, :, :]
        labels = np.einsum("nkd,nkd->nk", diff, diff).argmin(axis=1)
        counts = np.bincount(labels, minlength=k)
        sums = np.stack(
            [np.bincount(labels, weights=points[:, j], minlength=k) for j in range(DIM)], axis=1
        )
        weights *= DECAY
        hit = counts > 0
        updated = weights[hit] + counts[hit]
        share = counts[hit] / np.maximum(updated, 1e-16)
        weights[hit] = updated
        centers[hit] = (
            centers[hit] * (1.0 - share)[:, None] + sums[hit] * (share / counts[hit])[:, None]
        )
        largest, smallest = int(np.argmax(weights)), int(np.argmin(weights))
        if weights[smallest] < 1e-8 * weights[largest]:
            weights[largest] = weights[smallest] = (weights[largest] + weights[smallest]) / 2
            center = centers[largest].copy()
            nudge = 1e-14 * np.maximum(np.abs(center), 1.0)
            centers[largest], centers[smallest] = center + nudge, center - nudge
    return centers


async def through_streamio(
    batches: list[list[np.ndarray]], centers: np.ndarray, weights: np.ndarray
) -> tuple[float, np.ndarray]:
    clock = ManualClock()
    km = StreamingKMeans(k=len(centers), decay_factor=DECAY)
    km.set_initial_centers(centers, weights)
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        km.train_on(ssc.queue_stream(list(batches)))
        ssc.start()
        started = time.perf_counter()
        await clock.advance(len(batches))
        elapsed = time.perf_counter() - started
    return elapsed, km.latest_model().cluster_centers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="points in all")
    parser.add_argument("--batch", type=int, default=10_000, help="points per batch")
    parser.add_argument("--k", type=int, default=10, help="clusters")
    parser.add_argument("--repeat", type=int, default=5, help="best of N runs")
    add_loop_option(parser)
    on_each_loop(parser.parse_args(), measure)


def measure(args: argparse.Namespace) -> None:
    batches = make_batches(args.points, args.batch, args.k)
    rng = np.random.RandomState(7)
    centers, weights = rng.randn(args.k, DIM), np.zeros(args.k)
    loop = "uvloop" if args.uvloop else "asyncio"
    print(f"{args.points:,} points of {DIM} dimensions, batches of {args.batch:,}, "
          f"k={args.k}, loop: {loop}")  # fmt: skip
    hand, engine = float("inf"), float("inf")
    for _ in range(args.repeat):  # interleaved, so both see the same machine load
        started = time.perf_counter()
        expected = by_hand(batches, centers, weights)
        hand = min(hand, time.perf_counter() - started)
        elapsed, got = run(through_streamio(batches, centers, weights), use_uvloop=args.uvloop)
        engine = min(engine, elapsed)
        assert np.allclose(got, expected, rtol=1e-9, atol=1e-9), "the two disagree"
    print(f"{'numpy by hand':24} {args.points / hand:>12,.0f} points/s")
    print(f"{'streamio train_on':24} {args.points / engine:>12,.0f} points/s "
          f"| x{hand / engine:.2f} of by hand")  # fmt: skip


if __name__ == "__main__":
    main()
