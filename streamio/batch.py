"""Batches and the per-partition work done on them.

A :class:`Batch` is the records of one batch time, split into partitions. The
functions here are what runs on one partition (fused narrow stages, map-side
combines) and how combined partitions are merged by key hash. They are plain
module-level functions so an executor can ship them to other processes.
"""

from __future__ import annotations

import copy
import functools
import itertools
import operator
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .chunk import LazyChunk

__all__ = ["Batch"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
C = TypeVar("C")

# What runs on one partition: usually records in, records out; a tail step (a
# map-side combine, a count) may return any one value per partition.
PartitionFn = Callable[[Iterable[Any]], Any]


@dataclass(frozen=True)
class Batch(Generic[T]):
    """The records of one batch time, split into partitions.

    Partitions are lists, or :class:`~streamio.chunk.LazyChunk` slices straight
    from a receiver, and must not be changed once the batch exists: a batch is
    shared by every consumer of its stream.
    """

    time: float
    partitions: Sequence[Sequence[T]]

    def records(self) -> list[T]:
        """All records, partition after partition, as one new list."""
        if len(self.partitions) == 1:
            return list(self.partitions[0])
        return list(itertools.chain.from_iterable(self.partitions))

    def __len__(self) -> int:
        return sum(map(len, self.partitions))


def split_records(records: list[T], partition_size: int) -> list[list[T]]:
    """Cut a list into partitions of at most ``partition_size`` records."""
    if len(records) <= partition_size:
        return [records]
    return [records[i : i + partition_size] for i in range(0, len(records), partition_size)]


def split_chunks(chunks: list[Sequence[T]], partition_size: int) -> list[Sequence[T]]:
    """Cut a buffer's chunks into partitions of at most ``partition_size`` records.

    Consecutive lists fill partitions one after the other (each record is copied
    at most once, and a list that makes a partition on its own is used as it is);
    a lazy chunk is cut on its own, into lazy slices, so its records are still
    built only when a stage reads them. Always at least one (maybe empty)
    partition, in record order. The chunks are the batch's: lists among them may
    become partitions and be extended.
    """
    parts: list[Sequence[T]] = []
    filling: list[T] | None = None  # the last partition, while it has room
    for chunk in chunks:
        if isinstance(chunk, LazyChunk):
            filling = None
            parts += [
                chunk.slice(start, min(start + partition_size, len(chunk)))
                for start in range(0, len(chunk), partition_size)
            ]
            continue
        size = len(chunk)
        start = 0
        if filling is not None:
            start = min(size, partition_size - len(filling))
            filling += chunk if start == size else chunk[:start]
        for offset in range(start, size, partition_size):
            if offset == 0 and size <= partition_size and isinstance(chunk, list):
                filling = chunk
            else:
                piece = chunk[offset : offset + partition_size]
                filling = piece if isinstance(piece, list) else list(piece)
            parts.append(filling)
        if filling is not None and len(filling) >= partition_size:
            filling = None
    return parts or [[]]


def split_evenly(records: list[T], count: int) -> list[list[T]]:
    """Cut a list into ``count`` partitions whose sizes differ by at most one."""
    size, extra = divmod(len(records), count)
    parts, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        parts.append(records[start:end])
        start = end
    return parts


def compose(first: PartitionFn | None, second: PartitionFn | None) -> PartitionFn | None:
    """The partition function that applies ``first`` then ``second``."""
    if first is None:
        return second
    if second is None:
        return first
    return lambda records: second(first(records))


# -- values that a function may change ------------------------------------------------
#
# Spark hands every function values deserialised for it, so a reduce function may
# build its result in its first argument (PySpark's own groupByKeyAndWindow reduces
# with ``a.extend(b) or a``). Here values are objects shared by everything that keeps
# them: a remembered batch (windows, ``remember()``), a stream with several
# consumers, a window's previous result, a key's state, a batch already emitted.
# So a function that may change its arguments never receives a kept value as its
# first argument: it gets a private copy, taken once per key (or per partition),
# never per record. Functions known to build new values get values as they are,
# which keeps the word count's ``operator.add`` free of any copy.

# Types whose values cannot change in place: their "copy" is the value itself.
_IMMUTABLE = frozenset({int, float, complex, bool, str, bytes, type(None)})


def concat_lists(first: list[V], second: list[V]) -> list[V]:
    return first + second


def drop_prefix(values: list[V], leaving: list[V]) -> list[V]:
    """The inverse of :func:`concat_lists` for values that left at the front."""
    return values[len(leaving) :]


# Functions that return new values and never change their arguments.
_PURE_FUNCTIONS: tuple[Callable[..., Any], ...] = (
    operator.add,
    operator.sub,
    operator.mul,
    operator.or_,
    operator.and_,
    operator.xor,
    min,
    max,
    concat_lists,
    drop_prefix,
)


def private_copy(value: T) -> T:
    """A copy of ``value`` that a user function may change without changing what is
    kept: a deep copy (what Spark's serialisation gives), or the value itself when
    it cannot change (numbers, strings, None)."""
    if type(value) in _IMMUTABLE:
        return value
    return copy.deepcopy(value)


def _itself(value: T) -> T:
    return value


def copier_for(*funcs: Callable[..., Any] | None) -> Callable[[T], T]:
    """:func:`private_copy` when one of ``funcs`` may change its arguments; the
    identity when all are known not to (see ``_PURE_FUNCTIONS``)."""
    pure = all(any(f is known for known in _PURE_FUNCTIONS) for f in funcs if f is not None)
    return _itself if pure else private_copy


def reduce_partition(func: Callable[[V, V], V], pairs: Iterable[tuple[K, V]]) -> dict[K, V]:
    """Map-side combine of ``reduce_by_key``: one value per key.

    A ``func`` that may change its first argument starts each key from a private
    copy of its first value (see :func:`private_copy`).
    """
    acc: dict[K, V] = {}
    if func is operator.add:  # the common case: the same ``+``, without a call per record
        for key, value in pairs:
            if key in acc:
                acc[key] = acc[key] + value  # type: ignore[operator]
            else:
                acc[key] = value
        return acc
    own = copier_for(func)
    for key, value in pairs:
        if key in acc:
            acc[key] = func(acc[key], value)
        else:
            acc[key] = own(value)
    return acc


def combine_partition(
    create: Callable[[V], C], merge_value: Callable[[C, V], C], pairs: Iterable[tuple[K, V]]
) -> dict[K, C]:
    """Map-side combine of ``combine_by_key``: one combiner per key.

    ``create`` gets a private copy of the key's first value, so a combiner built
    from it (or being it) may be changed in place by ``merge_value``.
    """
    acc: dict[K, C] = {}
    for key, value in pairs:
        if key in acc:
            acc[key] = merge_value(acc[key], value)
        else:
            acc[key] = create(private_copy(value))
    return acc


def group_partition(pairs: Iterable[tuple[K, V]]) -> dict[K, list[V]]:
    """Map-side step of ``group_by_key``: the values of each key, in order."""
    acc: dict[K, list[V]] = {}
    for key, value in pairs:
        try:  # one lookup for a key seen already, the common case
            acc[key].append(value)
        except KeyError:
            acc[key] = [value]
    return acc


def group_mapped(f: Callable[[T], tuple[K, V]], records: Iterable[T]) -> dict[K, list[V]]:
    """:func:`group_partition` of ``map(f, records)``, calling ``f`` from this loop.

    A fused ``map`` right before a grouping step is run here rather than by
    ``map``'s own loop: in CPython a call made from Python code is cheaper than one
    made from C, and with a function per record that is a tenth of the stage.
    """
    acc: dict[K, list[V]] = {}
    for record in records:
        key, value = f(record)
        try:
            acc[key].append(value)
        except KeyError:
            acc[key] = [value]
    return acc


def merge_by_key(
    maps: Sequence[dict[K, C]], merge: Callable[[C, C], C], num_partitions: int
) -> list[list[tuple[K, C]]]:
    """Merge map-side combined partitions into ``num_partitions`` by key hash.

    ``merge`` is called only for a key found in several maps, and may change its
    first argument: such values were combined for this batch, so they are its own.
    """
    if num_partitions == 1:
        acc: dict[K, C] = {}
        for combined in maps:
            if not acc:
                acc = dict(combined)
                continue
            for key, value in combined.items():
                if key in acc:
                    acc[key] = merge(acc[key], value)
                else:
                    acc[key] = value
        return [list(acc.items())]
    parts: list[dict[K, C]] = [{} for _ in range(num_partitions)]
    for combined in maps:
        for key, value in combined.items():
            target = parts[hash(key) % num_partitions]
            if key in target:
                target[key] = merge(target[key], value)
            else:
                target[key] = value
    return [list(part.items()) for part in parts]


def cogroup_partitions(
    sides: Sequence[Sequence[list[tuple[K, Any]]]], num_partitions: int
) -> list[list[tuple[K, tuple[list[Any], ...]]]]:
    """Group the values of every key from each side: ``(key, (values_0, values_1, ...))``."""
    width = len(sides)
    parts: list[dict[K, tuple[list[Any], ...]]] = [{} for _ in range(num_partitions)]
    for index, partitions in enumerate(sides):
        for partition in partitions:
            for key, value in partition:
                target = parts[hash(key) % num_partitions] if num_partitions > 1 else parts[0]
                groups = target.get(key)
                if groups is None:
                    groups = target[key] = tuple([] for _ in range(width))
                groups[index].append(value)
    return [list(part.items()) for part in parts]


def count_records(records: Iterable[Any]) -> int:
    """How many records an iterable holds (without building a list)."""
    if isinstance(records, Sequence):
        return len(records)
    return sum(1 for _ in records)


_EMPTY = object()


def reduce_records(func: Callable[[T, T], T], records: Iterable[T]) -> Any:
    """Reduce a partition to one value, or a private marker when it is empty.

    Like :func:`reduce_partition`, a ``func`` that may change its first argument
    starts from a private copy of the first record.
    """
    iterator = iter(records)
    acc: Any = next(iterator, _EMPTY)
    if acc is _EMPTY:
        return _EMPTY
    acc = copier_for(func)(acc)
    for record in iterator:
        acc = func(acc, record)
    return acc


def reduce_results(func: Callable[[T, T], T], results: Iterable[Any]) -> list[T]:
    """Combine per-partition reductions (values of this batch's own, changed freely);
    empty when every partition was empty."""
    found = [result for result in results if result is not _EMPTY]
    return [functools.reduce(func, found)] if found else []
