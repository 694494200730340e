"""What the Kinesis source gives: records, positions and statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["SHARD_END", "KinesisPosition", "KinesisRecord", "KinesisSourceStatistics"]

#: The position of a shard read to its end (KCL's name for it): nothing more to read.
SHARD_END = "SHARD_END"

#: A source's position: for each shard it has started, the sequence number of the
#: last record stored, :data:`SHARD_END`, or where it started (``"LATEST"`` or
#: ``"TRIM_HORIZON"``) while nothing has been stored from it. A plain dict of
#: strings, so it pickles into a checkpoint.
KinesisPosition = dict[str, str]


class KinesisRecord(NamedTuple):
    """One record of a Kinesis stream.

    Attributes:
        shard_id: the shard it was read from.
        sequence_number: its sequence number in that shard (a decimal string).
        partition_key: the key its producer gave.
        data: its data, through the source's ``value_deserializer`` (bytes by default).
        arrival_time: when Kinesis received it (``ApproximateArrivalTimestamp``),
            in seconds since the epoch.
    """

    shard_id: str
    sequence_number: str
    partition_key: str
    data: Any
    arrival_time: float


@dataclass(frozen=True)
class KinesisSourceStatistics:
    """A snapshot of a :class:`~streamio.connectors.kinesis.KinesisSource`.

    Attributes:
        received: records stored in the stream's buffer.
        skipped: bad records left out (``on_bad_message="skip"``).
        get_records: ``GetRecords`` calls answered.
        reading: shards being read now.
        finished: shards read to their end (closed by a reshard).
        throttled: calls refused for going over a throughput limit (and retried).
        outages: times the endpoint was lost (each reported to the listeners).
        waiting_for_space: a shard's reader waits for room in the full buffer,
            reading nothing meanwhile.
        position: what has been stored so far (see :data:`KinesisPosition`).
        committed: the last position committed (every output of its batches
            finished, and the checkpoint written when checkpointing is on); None
            before the first commit.
    """

    received: int
    skipped: int
    get_records: int
    reading: int
    finished: int
    throttled: int
    outages: int
    waiting_for_space: bool
    position: KinesisPosition
    committed: KinesisPosition | None
