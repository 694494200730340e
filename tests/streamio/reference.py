"""Plain-Python reference implementations of the DStream operators, one batch at a time.

Each function takes the records of one batch (a list) and returns the records the
operator emits for it, with the semantics of Spark Streaming's DStreams. Where Spark
leaves the order unspecified, compare through :func:`multiset` or :func:`unordered`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any


def map_(f: Callable[[Any], Any], records: list[Any]) -> list[Any]:
    return [f(record) for record in records]


def flat_map(f: Callable[[Any], Iterable[Any]], records: list[Any]) -> list[Any]:
    out: list[Any] = []
    for record in records:
        for item in f(record):
            out.append(item)
    return out


def filter_(f: Callable[[Any], Any], records: list[Any]) -> list[Any]:
    return [record for record in records if f(record)]


def count(records: list[Any]) -> list[int]:
    return [len(records)]


def reduce_(f: Callable[[Any, Any], Any], records: list[Any]) -> list[Any]:
    if not records:
        return []
    acc = records[0]
    for record in records[1:]:
        acc = f(acc, record)
    return [acc]


def _keys_in_order(*sides: list[tuple[Any, Any]]) -> list[Any]:
    keys: list[Any] = []
    seen: set[Any] = set()
    for side in sides:
        for key, _ in side:
            if key not in seen:
                seen.add(key)
                keys.append(key)
    return keys


def values_of(key: Any, pairs: list[tuple[Any, Any]]) -> list[Any]:
    return [value for k, value in pairs if k == key]


def count_by_value(records: list[Any]) -> list[tuple[Any, int]]:
    distinct: list[Any] = []
    for record in records:
        if record not in distinct:
            distinct.append(record)
    return [(value, sum(1 for r in records if r == value)) for value in distinct]


def reduce_by_key(f: Callable[[Any, Any], Any], pairs: list[tuple[Any, Any]]) -> list[Any]:
    return [(key, reduce_(f, values_of(key, pairs))[0]) for key in _keys_in_order(pairs)]


def group_by_key(pairs: list[tuple[Any, Any]]) -> list[tuple[Any, list[Any]]]:
    return [(key, values_of(key, pairs)) for key in _keys_in_order(pairs)]


def combine_by_key(
    create: Callable[[Any], Any],
    merge_value: Callable[[Any, Any], Any],
    pairs: list[tuple[Any, Any]],
) -> list[tuple[Any, Any]]:
    """The result when the whole batch is one partition (merge_combiners unused)."""
    out = []
    for key in _keys_in_order(pairs):
        values = values_of(key, pairs)
        acc = create(values[0])
        for value in values[1:]:
            acc = merge_value(acc, value)
        out.append((key, acc))
    return out


def map_values(f: Callable[[Any], Any], pairs: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    return [(key, f(value)) for key, value in pairs]


def flat_map_values(
    f: Callable[[Any], Iterable[Any]], pairs: list[tuple[Any, Any]]
) -> list[tuple[Any, Any]]:
    return [(key, item) for key, value in pairs for item in f(value)]


def cogroup(
    left: list[tuple[Any, Any]], right: list[tuple[Any, Any]]
) -> list[tuple[Any, tuple[list[Any], list[Any]]]]:
    return [
        (key, (values_of(key, left), values_of(key, right))) for key in _keys_in_order(left, right)
    ]


def join(left: list[tuple[Any, Any]], right: list[tuple[Any, Any]]) -> list[Any]:
    return [(k, (v, w)) for k, v in left for k2, w in right if k == k2]


def left_outer_join(left: list[tuple[Any, Any]], right: list[tuple[Any, Any]]) -> list[Any]:
    out = []
    for key, value in left:
        matches = values_of(key, right)
        if matches:
            out.extend((key, (value, w)) for w in matches)
        else:
            out.append((key, (value, None)))
    return out


def right_outer_join(left: list[tuple[Any, Any]], right: list[tuple[Any, Any]]) -> list[Any]:
    return [(key, (v, w)) for key, (w, v) in left_outer_join(right, left)]


def full_outer_join(left: list[tuple[Any, Any]], right: list[tuple[Any, Any]]) -> list[Any]:
    left_keys = {key for key, _ in left}
    missing = [(key, (None, w)) for key, w in right if key not in left_keys]
    return left_outer_join(left, right) + missing


def union(*batches: list[Any]) -> list[Any]:
    out: list[Any] = []
    for batch in batches:
        out.extend(batch)
    return out


def per_batch(fn: Callable[..., list[Any]], *streams: list[list[Any]]) -> list[list[Any]]:
    """Apply a per-batch reference to every batch; shorter streams end in empty batches."""
    ticks = max(len(stream) for stream in streams)
    padded = [list(stream) + [[]] * (ticks - len(stream)) for stream in streams]
    return [fn(*batch) for batch in zip(*padded, strict=True)]


# -- comparing where Spark's order is unspecified -----------------------------------


def freeze(value: Any) -> Any:
    """A hashable form of a record: lists and tuples become tuples, recursively."""
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    return value


def multiset(records: Iterable[Any]) -> Counter[Any]:
    """The records as a multiset (order ignored, multiplicity kept)."""
    return Counter(freeze(record) for record in records)


def bag(values: Iterable[Any]) -> tuple[Any, ...]:
    """An order-free, comparable form of a list of values."""
    return tuple(sorted((freeze(v) for v in values), key=repr))


def _loosen(value: Any) -> Any:
    if isinstance(value, list):
        return bag(_loosen(item) for item in value)
    if isinstance(value, tuple):
        return tuple(_loosen(item) for item in value)
    return value


def unordered(records: Iterable[Any]) -> Counter[Any]:
    """The records as a multiset, with the order of the lists inside them dropped too
    (the values of ``group_by_key`` and ``cogroup``)."""
    return Counter(_loosen(record) for record in records)
