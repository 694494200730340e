"""Brute-force references for the window and state operators, with Spark's semantics.

Every function takes the raw input batches (a list of lists of records; batch ``i``,
counting from 1, is the one at time ``i * batch_interval``) and recomputes what the
operator emits from them, without any incremental state. Window lengths and slides
are given in batch intervals (whole numbers): a window of ``length`` emitted at
batch ``k`` covers the batches ``k - length + 1 .. k`` (those before the first
batch do not exist: Spark's zero time is one interval before the first batch), and
a stream with slide ``slide`` emits at the batches ``slide, 2 * slide, ...``.

Windowed results are lists of ``(k, records)`` for the emitting batches ``k``; state
results are one entry per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import reduce
from typing import Any

from reference import count_by_value, freeze, reduce_by_key

from streamio import StateError


def emitting(ticks: int, slide: int) -> list[int]:
    """The batches at which a stream of slide ``slide`` emits, among ``1 .. ticks``."""
    return list(range(slide, ticks + 1, slide))


def covered(k: int, length: int) -> range:
    """The batches a window of ``length`` emitted at batch ``k`` covers."""
    return range(max(1, k - length + 1), k + 1)


def window_records(batches: list[list[Any]], k: int, length: int) -> list[Any]:
    """The records of the window emitted at batch ``k``, batch after batch."""
    return [record for i in covered(k, length) if i <= len(batches) for record in batches[i - 1]]


def window(batches: list[list[Any]], length: int, slide: int) -> list[tuple[int, list[Any]]]:
    """``window(length, slide)``: the union of the covered batches, in time order."""
    return [(k, window_records(batches, k, length)) for k in emitting(len(batches), slide)]


# -- reduce_by_key_and_window -------------------------------------------------------------


def reduce_by_key_and_window_recompute(
    func: Callable[[Any, Any], Any],
    batches: list[list[tuple[Any, Any]]],
    length: int,
    slide: int,
) -> list[tuple[int, list[tuple[Any, Any]]]]:
    """Without an inverse function: every key of the window, its values reduced."""
    return [
        (k, reduce_by_key(func, window_records(batches, k, length)))
        for k in emitting(len(batches), slide)
    ]


class SparkWouldFail(Exception):
    """Spark's ReducedWindowedDStream raises here ("Neither previous window has value
    for key, nor new values found"): a filter_func dropped a key whose values are
    still in the window. Tests keep away from such inputs."""


def reduce_by_key_and_window_spark(
    func: Callable[[Any, Any], Any],
    inv_func: Callable[[Any, Any], Any],
    batches: list[list[tuple[Any, Any]]],
    length: int,
    slide: int,
    filter_func: Callable[[tuple[Any, Any]], Any] | None = None,
) -> list[tuple[int, list[tuple[Any, Any]]]]:
    """A step-by-step replay of Spark's ReducedWindowedDStream.compute.

    Each batch is first reduced by key with ``func``. The window at ``k`` is the
    previous window's result (at ``k - slide``; none for the first window), with the
    batches leaving it (``k - length - slide + 1 .. k - length``) taken out with one
    ``inv_func(value, reduced leaving values)`` per key and the entering batches
    (``k - slide + 1 .. k``) added with one ``func(value, reduced entering values)``.
    Keys stay when their value comes back to the "zero", unless ``filter_func``
    (called with the ``(key, value)`` pair) is false for them.
    """
    if slide > length:
        raise ValueError("the incremental form is only meaningful for slide <= window length")
    reduced = [dict(reduce_by_key(func, batch)) for batch in batches]

    def batch(i: int) -> dict[Any, Any]:
        return reduced[i - 1] if 1 <= i <= len(reduced) else {}

    out: list[tuple[int, list[tuple[Any, Any]]]] = []
    previous: dict[Any, Any] = {}
    for k in emitting(len(batches), slide):
        leaving = [batch(i) for i in range(k - length - slide + 1, k - length + 1)]
        entering = [batch(i) for i in range(k - slide + 1, k + 1)]
        keys = list(dict.fromkeys([*previous, *(key for b in leaving + entering for key in b)]))
        result: dict[Any, Any] = {}
        for key in keys:
            old = [b[key] for b in leaving if key in b]
            new = [b[key] for b in entering if key in b]
            if key not in previous:
                if not new:
                    raise SparkWouldFail(key, k)
                value = reduce(func, new)
            else:
                value = previous[key]
                if old:
                    value = inv_func(value, reduce(func, old))
                if new:
                    value = func(value, reduce(func, new))
            result[key] = value
        if filter_func is not None:
            result = {key: value for key, value in result.items() if filter_func((key, value))}
        out.append((k, list(result.items())))
        previous = result
    return out


def reduce_by_key_and_window_group(
    func: Callable[[Any, Any], Any],
    zero: Any,
    batches: list[list[tuple[Any, Any]]],
    length: int,
    slide: int,
) -> list[tuple[int, list[tuple[Any, Any]]]]:
    """The same as :func:`reduce_by_key_and_window_spark` without a filter, when
    ``func`` and its inverse make an abelian group with identity ``zero``, said
    another way: every key seen in any batch so far, with its window's values folded
    from ``zero`` (so ``zero`` once they have all left the window)."""
    out: list[tuple[int, list[tuple[Any, Any]]]] = []
    for k in emitting(len(batches), slide):
        seen = list(dict.fromkeys(key for batch in batches[:k] for key, _ in batch))
        in_window = window_records(batches, k, length)
        out.append(
            (
                k,
                [
                    (key, reduce(func, [v for kk, v in in_window if kk == key], zero))
                    for key in seen
                ],
            )
        )
    return out


def count_by_window(batches: list[list[Any]], length: int, slide: int) -> list[tuple[int, list]]:
    """Spark's ``map(1).reduce_by_window(add, sub)``: nothing until some window held a
    record, then the window's record count every time (0 included)."""
    return [
        (k, [len(window_records(batches, k, length))] if any(batches[:k]) else [])
        for k in emitting(len(batches), slide)
    ]


def reduce_by_window(
    func: Callable[[Any, Any], Any],
    inv_func: Callable[[Any, Any], Any] | None,
    batches: list[list[Any]],
    length: int,
    slide: int,
) -> list[tuple[int, list[Any]]]:
    """Spark's ``map((1, x)).reduce_by_key_and_window(func, inv_func, ..., 1).values()``."""
    keyed = [[(1, record) for record in batch] for batch in batches]
    if inv_func is None:
        windows = reduce_by_key_and_window_recompute(func, keyed, length, slide)
    else:
        windows = reduce_by_key_and_window_spark(func, inv_func, keyed, length, slide)
    return [(k, [value for _, value in pairs]) for k, pairs in windows]


def count_by_value_and_window(
    batches: list[list[Any]], length: int, slide: int
) -> list[tuple[int, list[tuple[Any, int]]]]:
    """The distinct records of each window with their counts (counts of 0 dropped)."""
    return [
        (k, count_by_value(window_records(batches, k, length)))
        for k in emitting(len(batches), slide)
    ]


# -- state -------------------------------------------------------------------------------------


def update_state_by_key(
    update: Callable[[list[Any], Any], Any],
    batches: list[list[tuple[Any, Any]]],
    initial_state: Iterable[tuple[Any, Any]] = (),
) -> tuple[list[dict[Any, Any]], list[list[tuple[Any, Any]]]]:
    """Replay ``update_state_by_key``: every key that has a state or new values is
    updated once per batch (``update(values in record order, state or None)``);
    a None result removes the key.

    Returns the states after each batch and, per batch, the arguments of each call
    of ``update`` (values as an order-free bag, see :func:`reference.freeze`).
    """
    state = dict(initial_state)
    snapshots: list[dict[Any, Any]] = []
    calls: list[list[tuple[Any, Any]]] = []
    for batch in batches:
        grouped: dict[Any, list[Any]] = {}
        for key, value in batch:
            grouped.setdefault(key, []).append(value)
        batch_calls = []
        new_state: dict[Any, Any] = {}
        for key in dict.fromkeys([*state, *grouped]):
            values = grouped.get(key, [])
            old = state.get(key)
            batch_calls.append((tuple(sorted(map(freeze, values), key=repr)), freeze(old)))
            result = update(values, old)
            if result is not None:
                new_state[key] = result
        state = new_state
        snapshots.append(dict(state))
        calls.append(batch_calls)
    return snapshots, calls


class RefState:
    """The ``State`` a mapping function of ``map_with_state`` is given, in the reference."""

    def __init__(self, value: Any, exists: bool, timing_out: bool = False) -> None:
        self._value = value
        self._exists = exists
        self._timing_out = timing_out
        self.updated = False
        self.removed = False

    def exists(self) -> bool:
        return self._exists

    def get(self) -> Any:
        if not self._exists:
            raise LookupError("state is not set")
        return self._value

    def update(self, value: Any) -> None:
        if self._timing_out:
            raise StateError("cannot update a state that is timing out")
        if self.removed:
            raise StateError("cannot update a removed state")
        self._value, self._exists, self.updated = value, True, True

    def remove(self) -> None:
        if self._timing_out:
            raise StateError("cannot remove a state that is timing out")
        if self.removed:
            raise StateError("state already removed")
        self._value, self._exists, self.removed = None, False, True

    def is_timing_out(self) -> bool:
        return self._timing_out


_TIME_TOLERANCE = 1e-9


def map_with_state(
    function: Callable[[float, Any, Any, Any], Any],
    batches: list[list[tuple[Any, Any]]],
    batch_interval: float = 1.0,
    timeout: float | None = None,
    initial_state: Iterable[tuple[Any, Any]] = (),
) -> tuple[list[list[Any]], list[dict[Any, Any]]]:
    """Replay ``map_with_state`` (Spark's MapWithStateRDDRecord.updateRecordWithData).

    Per batch at time ``t``: ``function(t, key, value, state)`` for every record in
    order; a removed state is dropped, an updated one stored, and (with a timeout)
    any record of a key that keeps its state marks the key as active at ``t``. Then,
    with a timeout, every key last active at or before ``t - timeout`` gets one call
    with value None and a timing-out state, and is dropped.

    Returns, per batch, the non-None results of ``function`` and the states after it.
    """
    state = dict(initial_state)
    first_time = round(batch_interval, 9)
    active = dict.fromkeys(state, first_time)  # Spark: initial states count from the start
    mapped: list[list[Any]] = []
    snapshots: list[dict[Any, Any]] = []
    for index, batch in enumerate(batches, start=1):
        time = round(index * batch_interval, 9)
        out: list[Any] = []
        for key, value in batch:
            wrapped = RefState(state.get(key), key in state)
            result = function(time, key, value, wrapped)
            if wrapped.removed:
                state.pop(key, None)
                active.pop(key, None)
            elif wrapped.updated or (wrapped.exists() and timeout is not None):
                state[key] = wrapped.get()
                active[key] = time
            if result is not None:
                out.append(result)
        if timeout is not None:
            idle = [key for key in state if active[key] <= time - timeout + _TIME_TOLERANCE]
            for key in idle:
                result = function(time, key, None, RefState(state[key], True, timing_out=True))
                if result is not None:
                    out.append(result)
                del state[key]
                del active[key]
        mapped.append(out)
        snapshots.append(dict(state))
    return mapped, snapshots
