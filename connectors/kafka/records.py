"""What the Kafka source hands to the stream: records and positions."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from aiokafka import TopicPartition

from streamio import LazyChunk

__all__ = ["KafkaChunk", "KafkaPosition", "KafkaRecord", "OffsetRange", "TopicPartition"]


class KafkaRecord(NamedTuple):
    """One consumed Kafka record: an immutable named tuple.

    Attributes:
        key: the key after the key deserializer (None when the record has none).
        value: the value after the value deserializer (None for a tombstone).
        topic: the topic it was read from.
        partition: its partition.
        offset: its offset in the partition.
        timestamp: milliseconds since the epoch, Kafka's unit (create or log-append
            time, as the topic is configured); ``r.timestamp / 1000`` gives the
            seconds ``event_time_window`` expects.
        headers: ``(name, bytes)`` pairs in order; a name may repeat, as Kafka
            allows.

    A named tuple rather than a class of its own, because it is built in C from
    the fields' tuple: building records is what the source adds to aiokafka's own
    work for every record, and here it costs a fraction of a Python ``__init__``.
    """

    key: Any
    value: Any
    topic: str
    partition: int
    offset: int
    timestamp: int
    headers: tuple[tuple[str, bytes], ...] = ()


# A KafkaRecord from a tuple of its fields, without a Python frame.
_record_from_fields = functools.partial(tuple.__new__, KafkaRecord)


class KafkaChunk(LazyChunk[KafkaRecord]):
    """The records of one fetch, kept as plain tuples until a batch reads them.

    The tuples hold only plain values (a deserializer's output aside), so after
    its first look the garbage collector stops scanning them; each
    :class:`KafkaRecord` is built when a stage iterates over the chunk and is gone
    once processed. Holding a batch's worth of record objects from fetch to
    output instead costs more in collections than the records cost to build.

    Args:
        rows: per record, the fields of its KafkaRecord in order, as a tuple.
    """

    __slots__ = ("_rows",)

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[KafkaRecord]:
        return map(_record_from_fields, self._rows)

    def slice(self, start: int, stop: int) -> KafkaChunk:
        return KafkaChunk(self._rows[start:stop])


class OffsetRange(NamedTuple):
    """The offsets of one partition that a batch covers (Spark's ``OffsetRange``).

    Attributes:
        topic: the topic.
        partition: the partition.
        from_offset: where the batch began reading the partition (inclusive), or
            None when not known: the source neither started it at a given offset
            (``start_offsets``, a restore) nor read a record of it before.
        until_offset: the offset after the last record the batch holds
            (exclusive): the next one to read.
    """

    topic: str
    partition: int
    from_offset: int | None
    until_offset: int


class KafkaPosition(Mapping[TopicPartition, int]):
    """How far the source had read when it stored a chunk: for each partition read
    so far, the next offset to read (the offset a commit stores).

    A read-only mapping ``TopicPartition -> next offset``. Each position covers every
    partition the source has delivered records of since it was assigned it, so the
    position of a batch's last chunk covers the whole batch. It also remembers which
    assignment each offset belongs to: after a rebalance took a partition away (even
    if it came back since), offsets read under the old assignment are not committed
    by this member.

    For each partition it also knows where the current assignment began reading
    it, when known, so that :meth:`offset_ranges` can say where a batch began.
    """

    __slots__ = ("_entries", "_starts")

    def __init__(
        self,
        entries: Mapping[TopicPartition, tuple[int, int]],
        starts: Mapping[TopicPartition, int] | None = None,
    ) -> None:
        self._entries = dict(entries)
        self._starts = dict(starts) if starts else {}

    def __getitem__(self, partition: TopicPartition) -> int:
        return self._entries[partition][0]

    def __iter__(self) -> Iterator[TopicPartition]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> Mapping[TopicPartition, tuple[int, int]]:
        """``partition -> (next offset, assignment epoch)``, for the source's commit."""
        return self._entries

    def offset_ranges(self, since: object = None) -> list[OffsetRange]:
        """The offsets read from ``since`` (an earlier position of the same source,
        or None) up to this position, per partition this position covers.

        A partition's range begins where ``since`` left it when both were read
        under the same assignment; otherwise where this assignment began reading
        it: the offset it was started at (``start_offsets`` or a restore), or else
        the first record read, which is exact unless compaction or transaction
        markers left a gap right there (a fence then refuses the batch rather
        than guess). ``from_offset`` is None when neither is known.
        """
        before = since._entries if isinstance(since, KafkaPosition) else {}
        starts = self._starts
        ranges = []
        for tp, (offset, epoch) in self._entries.items():
            earlier = before.get(tp)
            start = earlier[0] if earlier is not None and earlier[1] == epoch else starts.get(tp)
            ranges.append(OffsetRange(tp.topic, tp.partition, start, offset))
        return ranges

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{tp.topic}[{tp.partition}]: {offset}" for tp, (offset, _) in self._entries.items()
        )
        return f"KafkaPosition({{{parts}}})"
