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
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar, overload

__all__ = ["LazyChunk"]

T_co = TypeVar("T_co", covariant=True)


class LazyChunk(Sequence[T_co]):
    """A read-only sequence of records built on each read.

    Implement :meth:`__len__`, :meth:`__iter__` (build the records, in order) and
    :meth:`slice`; store instances with ``await output.put_many(chunk)``. A chunk
    must be picklable for stages that run in a process pool (plain columns are).
    """

    __slots__ = ()

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
