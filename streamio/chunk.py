"""Chunks whose records are built only when a batch reads them.

A receiver normally stores plain lists of records. Records that are objects
(a Kafka record with its key, value, offset...) would then live from their
arrival until their batch is done, and every one of them would be scanned by the
garbage collector on the way: for a fast source that costs more than building
them. A :class:`LazyChunk` keeps its records in a compact form instead (columns of
plain values, which the collector never scans) and builds each record when a
stage iterates over it, so records live only while they are being processed.

The buffer stores a lazy chunk as it is, a batch cuts it into partitions by
slicing, and every operator reads partitions by iterating, so nothing else in the
runtime changes. Reading a partition twice (two outputs of the same input
stream, a window over it) builds its records twice: equal records, not the same
objects.

The buffer bounds what it holds by an estimate of its memory in bytes
(:func:`estimate_nbytes`): a few records of each chunk are measured, never all
of them, and a lazy chunk is measured in its compact form (:attr:`LazyChunk.nbytes`),
without building records.
"""

from __future__ import annotations

import abc
import builtins
import itertools
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar, overload

__all__ = ["LazyChunk", "estimate_nbytes"]

T_co = TypeVar("T_co", covariant=True)

# How many records of a chunk (and items of a record) are measured for an estimate.
_SAMPLE = 32
# The reference to each record that a chunk holds (a 64-bit pointer).
_REFERENCE = 8


def estimate_nbytes(records: Sequence[Any]) -> int:
    """An estimate of the bytes of memory that ``records`` hold, from a sample.

    At most 32 records, spread evenly over the sequence, are measured
    (``sys.getsizeof``) together with the objects each holds directly: the items of
    a tuple, list, set or dict (at most 32 of them, scaled up), the attributes of an
    object with a ``__dict__``. An object met twice in the sample counts once, so
    what records share (a topic's name, ``None``, small numbers) is not charged to
    each. The sample's mean is charged for every record, plus the reference the
    sequence holds to it. Deeper structures are not followed. The cost depends on
    the sample, not on ``len(records)``.

    >>> estimate_nbytes(["x" * 1000] * 10) >= 10 * 8  # one string, ten references
    True
    >>> estimate_nbytes([b"x" * 1000, b"y" * 1000]) >= 2000
    True
    >>> estimate_nbytes([])
    0
    """
    return _REFERENCE * len(records) + _records_size(records)


def _records_size(records: Sequence[Any]) -> int:
    """The records' own sizes (without the sequence's references), from a sample."""
    count = len(records)
    if count == 0:
        return 0
    step = -(-count // _SAMPLE)  # ceiling: at most _SAMPLE records
    sample = [records[index] for index in range(0, count, step)]  # alive: ids stay unique
    seen: set[int] = set()
    measured = 0
    for record in sample:
        measured += _size(record, seen) + _held_size(record, seen)
    return measured * count // len(sample)


def _size(obj: Any, seen: set[int]) -> int:
    """The size of ``obj`` itself, or 0 when it was counted already."""
    key = id(obj)
    if key in seen:
        return 0
    seen.add(key)
    return sys.getsizeof(obj)


def _held_size(record: Any, seen: set[int]) -> int:
    """The sizes of the objects ``record`` holds directly (estimated from a sample)."""
    items: Iterable[Any]
    if isinstance(record, (str, bytes, int, float)):
        return 0
    if isinstance(record, (tuple, list, set, frozenset)):
        count, items = len(record), record
    elif isinstance(record, dict):
        count, items = 2 * len(record), itertools.chain.from_iterable(record.items())
    else:
        attributes = getattr(record, "__dict__", None)
        if not isinstance(attributes, dict):
            return 0
        return _size(attributes, seen) + _held_size(attributes, seen)
    sampled = list(itertools.islice(items, _SAMPLE))
    if not sampled:
        return 0
    return sum(_size(item, seen) for item in sampled) * count // len(sampled)


def _attributes(obj: Any) -> list[Any]:
    """The values of ``obj``'s instance attributes: its ``__dict__`` and its slots."""
    values = list(getattr(obj, "__dict__", {}).values())
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__"):
                values.append(getattr(obj, name, None))
    return values


class LazyChunk(Sequence[T_co]):
    """A read-only sequence of records built on each read.

    Implement :meth:`__len__`, :meth:`__iter__` (build the records, in order) and
    :meth:`slice`; store instances with ``await output.put_many(chunk)``. A chunk
    must be picklable for stages that run in a process pool (plain columns are).
    Override :attr:`nbytes` when the chunk knows its size better than the default
    estimate of its attributes.
    """

    __slots__ = ()

    @property
    def nbytes(self) -> int:
        """An estimate of the bytes of memory the chunk holds, for the buffer's limit.

        The default measures the chunk's attributes (its compact form), building no
        record: an attribute that is a list or tuple is estimated as a sequence of
        records by :func:`estimate_nbytes`, any other with the objects it holds
        directly.
        """
        seen: set[int] = set()
        total = sys.getsizeof(self)
        for value in _attributes(self):
            if isinstance(value, (list, tuple)):  # its size counts its references
                total += _size(value, seen) + _records_size(value)
            else:
                total += _size(value, seen) + _held_size(value, seen)
        return total

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def __iter__(self) -> Iterator[T_co]: ...

    @abc.abstractmethod
    def slice(self, start: int, stop: int) -> LazyChunk[T_co]:
        """The records from ``start`` up to ``stop`` (0 <= start <= stop <= len)."""

    @overload
    def __getitem__(self, index: int) -> T_co: ...

    @overload
    def __getitem__(self, index: builtins.slice) -> Sequence[T_co]: ...

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return self.slice(start, max(start, stop))
            return list(self)[index]
        position = range(len(self))[index]  # IndexError as a list raises it
        return next(iter(self.slice(position, position + 1)))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {len(self)} records>"
