"""The metrics registry: running totals of a job, fed by its listener events.

A :class:`MetricsRegistry` is a :class:`~streamio.StreamingListener`: every
completed batch, receiver event and checkpoint adds to its counters and
histograms. It keeps plain numbers (no dependency), read by the Prometheus
exporter (:mod:`streamio.dashboard.exporter`), the dashboard and the terminal
demo. What a listener event cannot tell (buffer fill now, records each output
was given) the readers take from the graph when they read.

Fields of :class:`~streamio.BatchInfo` that other parts of the runtime are adding
(``error``, ``rate_limits``, ``records_skipped``, ``records_dead_lettered``,
``output_operations``) are read when present, so the registry works with
whichever of them the running version has.
"""

from __future__ import annotations

import bisect
from collections import Counter

from .listener import BatchInfo, CheckpointInfo, ReceiverInfo, StreamingListener

__all__ = ["DURATION_BUCKETS", "Histogram", "MetricsRegistry"]

# Upper bounds (seconds) of the duration histograms' buckets, besides +Inf: from a
# millisecond to a minute, as Prometheus' default buckets but wider.
DURATION_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0
)  # fmt: skip


class Histogram:
    """Observations counted per bucket (not cumulative), with their count and sum."""

    def __init__(self, bounds: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= it) pairs, ending with +Inf (Prometheus')."""
        total, pairs = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            pairs.append((bound, total))
        return pairs


class MetricsRegistry(StreamingListener):
    """Counters and histograms of one job, updated by its listener events.

    Attributes:
        records_in: records cut into batches, by input stream.
        batches_completed: batches whose outputs all finished.
        batches_failed: batches reported with an error (``BatchInfo.error``).
        processing_time, scheduling_delay, total_delay: per batch, in seconds.
        receiver_errors: errors reported by receivers, by input stream.
        receiver_restarts: receivers started again after an error, by input.
        records_skipped, records_dead_lettered: records an error policy left
            out of a batch, by operator.
        rate_limits: the records/s cap in force per input at the last batch
            (the backpressure controller's rate, or a static ``max_rate``).
        output_seconds: seconds spent in each output operation.
        output_errors: batches in which each output operation failed.
        checkpoints, checkpoint_bytes, checkpoint_duration: checkpoints
            written, bytes they wrote in all, and how long each took.
        last_checkpoint: the last checkpoint's information, None before one.
    """

    def __init__(self) -> None:
        self.records_in: Counter[str] = Counter()
        self.batches_completed = 0
        self.batches_failed = 0
        self.processing_time = Histogram()
        self.scheduling_delay = Histogram()
        self.total_delay = Histogram()
        self.receiver_errors: Counter[str] = Counter()
        self.receiver_restarts: Counter[str] = Counter()
        self.records_skipped: Counter[str] = Counter()
        self.records_dead_lettered: Counter[str] = Counter()
        self.rate_limits: dict[str, float] = {}
        self.output_seconds: Counter[str] = Counter()
        self.output_errors: Counter[str] = Counter()
        self.checkpoints = 0
        self.checkpoint_bytes = 0
        self.checkpoint_duration = Histogram()
        self.last_checkpoint: CheckpointInfo | None = None

    @property
    def records_total(self) -> int:
        """Records cut into batches, over every input."""
        return sum(self.records_in.values())

    def on_batch_completed(self, info: BatchInfo) -> None:
        self.records_in.update(info.records_per_input)
        if getattr(info, "error", None) is None:
            self.batches_completed += 1
        else:
            self.batches_failed += 1
        for histogram, value in (
            (self.processing_time, info.processing_time),
            (self.scheduling_delay, info.scheduling_delay),
            (self.total_delay, info.total_delay),
        ):
            if value is not None:
                histogram.observe(value)
        self.rate_limits.update(getattr(info, "rate_limits", None) or {})
        self.records_skipped.update(getattr(info, "records_skipped", None) or {})
        self.records_dead_lettered.update(getattr(info, "records_dead_lettered", None) or {})
        for output in getattr(info, "output_operations", None) or ():
            if output.start_time is not None and output.end_time is not None:
                self.output_seconds[output.name] += output.end_time - output.start_time
            if output.error is not None:
                self.output_errors[output.name] += 1

    def on_receiver_started(self, info: ReceiverInfo) -> None:
        if info.attempt > 1:
            self.receiver_restarts[info.stream] += 1

    def on_receiver_error(self, info: ReceiverInfo) -> None:
        self.receiver_errors[info.stream] += 1

    def on_checkpoint_written(self, info: CheckpointInfo) -> None:
        """A checkpoint was written: its duration and size (each checkpoint has this
        event; ``BatchInfo.checkpoint`` repeats it and is not counted again)."""
        self.last_checkpoint = info
        self.checkpoints += 1
        self.checkpoint_bytes += info.bytes_written
        self.checkpoint_duration.observe(info.duration)
