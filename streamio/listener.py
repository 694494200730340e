"""Listeners: how users and tools observe batches and receivers.

Subclass :class:`StreamingListener`, override the callbacks you need (plain or
``async def``) and register it with ``ssc.add_listener()``. Events reach each
listener in order, from a task of its own and through a bounded queue (see
:mod:`streamio.bus`), so a slow listener never delays a batch: it falls behind,
and past the queue's capacity its events are dropped and counted. An exception
in a callback is logged and counted, never fatal to the job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "BatchInfo",
    "CheckpointInfo",
    "OutputOperationInfo",
    "ReceiverInfo",
    "StreamingListener",
    "StreamingStartedInfo",
]


@dataclass
class OutputOperationInfo:
    """One output operation's run for one batch (Spark's ``OutputOperationInfo``).

    Attributes:
        name: the output's name (``foreach_batch_1``, or the one given).
        kind: what registered it: ``"foreach_batch"``, ``"pprint"``...
        start_time: clock seconds when it started.
        end_time: clock seconds when it finished (None while it runs).
        error: what it raised, if it failed.
    """

    name: str
    kind: str
    start_time: float
    end_time: float | None = None
    error: BaseException | None = None

    @property
    def duration(self) -> float | None:
        """Seconds it took (None while it runs)."""
        return None if self.end_time is None else self.end_time - self.start_time

    @property
    def status(self) -> Literal["succeeded", "failed", "running"]:
        if self.error is not None:
            return "failed"
        return "running" if self.end_time is None else "succeeded"


@dataclass(frozen=True)
class StreamingStartedInfo:
    """For ``on_streaming_started``: every receiver opened, batches are scheduled.

    Attributes:
        time: clock seconds when it happened (the first batch is the next grid time).
        batch_interval: seconds between batches.
    """

    time: float
    batch_interval: float


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint that was written.

    Attributes:
        batch_time: the batch it covers (the job resumes after it).
        duration: seconds it took (snapshot, write and fsync), in real time.
        bytes_written: bytes of state, batches and positions it wrote: what
            changed since the previous checkpoint.
        keys_written: keys of keyed state it inserted, updated or deleted.
    """

    batch_time: float
    duration: float
    bytes_written: int
    keys_written: int


@dataclass
class BatchInfo:
    """Metrics of one batch. Times are clock seconds.

    Attributes:
        batch_time: the batch's grid time.
        records_per_input: records cut for each input stream, by stream name.
        submission_time: when the batch was cut (later than ``batch_time`` when the
            scheduler was still busy with an earlier batch).
        processing_start_time: when its first output job started (None before).
        processing_end_time: when its last output job finished (None before).
        checkpoint: the checkpoint written after it, if one was.
        error: the exception that failed the batch, when an output failed and the
            context runs with ``on_batch_error="continue"``; None for a batch that
            succeeded.
        records_skipped: records left out by ``on_error="skip"`` (operators) or a
            source's ``on_deserialize_error="skip"`` in this batch, by operator or
            input stream name (only those that skipped any).
        records_dead_lettered: records sent to a ``dead_letters()`` stream in this
            batch, by operator or input stream name.
        output_operations: each output's run so far, in registration order (an
            output appears when it starts).
        input_metadata: per input stream, what its source says about the
            records of this batch: the Kafka source's offset ranges per
            partition (``{"offsets": {"lines": {0: range(40, 50)}}}``), the
            directory source's file names (``{"files": [...]}``). Receivers
            attach it with ``output.put_many(records, metadata=...)``.
        rate_limits: per input stream with a cap, the records per second the
            batch was allowed to take (``max_rate``, or the backpressure
            controller's rate when lower).
    """

    batch_time: float
    records_per_input: Mapping[str, int]
    submission_time: float
    processing_start_time: float | None = None
    processing_end_time: float | None = None
    checkpoint: CheckpointInfo | None = None
    error: BaseException | None = None
    records_skipped: dict[str, int] = field(default_factory=dict)
    records_dead_lettered: dict[str, int] = field(default_factory=dict)
    output_operations: list[OutputOperationInfo] = field(default_factory=list)
    input_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    rate_limits: dict[str, float] = field(default_factory=dict)

    @property
    def num_records(self) -> int:
        """Records cut for this batch, over every input stream."""
        return sum(self.records_per_input.values())

    @property
    def scheduling_delay(self) -> float | None:
        """How long the batch waited after its grid time before it started.

        Zero for the final batches of a graceful stop, which are cut at once,
        before their grid time.
        """
        if self.processing_start_time is None:
            return None
        return max(0.0, self.processing_start_time - self.batch_time)

    @property
    def processing_time(self) -> float | None:
        """How long the batch's output jobs took."""
        if self.processing_start_time is None or self.processing_end_time is None:
            return None
        return self.processing_end_time - self.processing_start_time

    @property
    def processing_delay(self) -> float | None:
        """Spark's name for :attr:`processing_time`."""
        return self.processing_time

    @property
    def total_delay(self) -> float | None:
        """Scheduling delay plus processing time."""
        delay, processing = self.scheduling_delay, self.processing_time
        if delay is None or processing is None:
            return None
        return delay + processing


@dataclass
class ReceiverInfo:
    """What is known of a receiver when a receiver callback fires.

    Attributes:
        stream: the input stream's name.
        attempt: how many times the receiver has been started (1 the first time).
        error: the exception for ``on_receiver_error``, else None.
        extra: connector-specific details (for example the server address).
    """

    stream: str
    attempt: int
    error: BaseException | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class StreamingListener:
    """Callbacks for batch and receiver events; every method is a no-op here."""

    def on_streaming_started(self, info: StreamingStartedInfo) -> Any:
        """Every receiver opened: the first batch is the next grid time."""

    def on_batch_submitted(self, info: BatchInfo) -> Any:
        """A batch was cut and queued for processing."""

    def on_batch_started(self, info: BatchInfo) -> Any:
        """A batch's first output job is starting."""

    def on_batch_completed(self, info: BatchInfo) -> Any:
        """Every output job of a batch has finished (and positions were committed),
        or, with ``on_batch_error="continue"``, one failed: ``info.error`` is set
        and the batch's positions were not committed."""

    def on_checkpoint_written(self, info: CheckpointInfo) -> Any:
        """A checkpoint was written (and the positions it covers committed)."""

    def on_receiver_started(self, info: ReceiverInfo) -> Any:
        """A receiver connected (opened) and is receiving."""

    def on_receiver_error(self, info: ReceiverInfo) -> Any:
        """A receiver raised; it is restarted unless its restarts are used up."""

    def on_receiver_stopped(self, info: ReceiverInfo) -> Any:
        """A receiver finished: its source ended or the context is stopping."""
