"""Window operators: batches over the last ``window_length`` seconds, every slide.

A windowed stream emits only at times on its slide grid (Spark's alignment: grid
times counted from the context's zero time, one interval before the first batch).
Its parent's batches are memoised for exactly the window's length, so memory is
bounded by the window. ``reduce_by_key_and_window`` with an inverse function is
incremental: the previous window's result, plus the batches entering, minus the
batches leaving, so its cost per slide does not grow with the window's length.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .batch import Batch, copier_for, merge_by_key, reduce_partition
from .errors import ConfigurationError, OperatorError
from .functions import operator_failures
from .graph import Node
from .times import snap

__all__: list[str] = []


def check_window(
    operator: str, parent_slide: float, length: Any, slide: Any
) -> tuple[float, float]:
    """Validate a window's length and slide against the parent's slide."""
    slide = parent_slide if slide is None else slide
    for what, value in (("window_length", length), ("slide_interval", slide)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigurationError(f"{operator}(): {what} must be seconds, not {value!r}")
        steps = value / parent_slide if math.isfinite(value) else math.nan
        if not (steps >= 1 - 1e-9 and abs(steps - round(steps)) < 1e-6):
            lower = max(1, math.floor(steps)) if math.isfinite(steps) else 1
            msg = (
                f"{operator}(): {what} {value!r} must be a positive multiple of the parent "
                f"stream's slide {parent_slide:g}s (for example {lower * parent_slide:g} or "
                f"{(lower + 1) * parent_slide:g})"
            )
            raise ConfigurationError(msg)
    return float(length), float(slide)


def times_between(node: Node, after: float, until: float) -> Iterator[float]:
    """``node``'s grid times in (after, until], skipping those before its zero time."""
    step = node.slide
    count = round((until - after) / step)
    for index in range(count - 1, -1, -1):
        time = snap(until - index * step, node.graph.batch_interval)
        if node.is_valid_time(time):
            yield time


class WindowNode(Node):
    """The union of the parent's batches in ``(t - window_length, t]``, every slide."""

    kind = "window"
    materializes_parents = True

    def __init__(self, parent: Node, length: float, slide: float, name: str | None) -> None:
        super().__init__(parent.graph, (parent,), name, slide=slide)
        self.length = length

    def lag_for_parents(self) -> float:
        return self.lag + self.slide - self.parents[0].slide  # new batches of the window

    def retain_for_parents(self) -> float:
        return self.lag + self.length - self.parents[0].slide

    async def compute(self, time: float) -> Batch[Any] | None:
        parent = self.parents[0]
        parts: list[Sequence[Any]] = []
        for past in times_between(parent, time - self.length, time):
            got = await parent.partitions(past)
            if got:
                parts.extend(got)
        return Batch(time, parts or [[]])


def _reduce_values(func: Callable[[Any, Any], Any], batches: list[Batch[Any]]) -> dict[Any, Any]:
    """The values of each key over several batches, reduced (private copies)."""
    pairs = itertools.chain.from_iterable(part for batch in batches for part in batch.partitions)
    return reduce_partition(func, pairs)


class ReducedWindowNode(Node):
    """Incremental ``reduce_by_key_and_window``: previous window + entering - leaving.

    The parent is the per-batch ``reduce_by_key`` of the stream. Keys are kept
    even when their value returns to the "zero" (as in Spark) unless
    ``filter_func`` drops them.
    """

    kind = "reduce_by_key_and_window"
    materializes_parents = True

    def __init__(
        self,
        reduced: Node,
        func: Callable[[Any, Any], Any],
        inv_func: Callable[[Any, Any], Any],
        length: float,
        slide: float,
        num_partitions: int | None,
        filter_func: Callable[[tuple[Any, Any]], Any] | None,
        name: str | None,
    ) -> None:
        super().__init__(reduced.graph, (reduced,), name, slide=slide)
        self.length = length
        self._func = func
        self._inv_func = inv_func
        self._num_partitions = num_partitions
        self._filter_func = filter_func

    def own_remember(self) -> float:
        return self.slide  # the previous window's result

    def lag_for_parents(self) -> float:
        return self.lag + self.slide - self.parents[0].slide  # the batches entering

    def retain_for_parents(self) -> float:
        # the batches leaving the next window are up to a window and a slide old
        return self.lag + self.length + self.slide - self.parents[0].slide

    async def _batches(self, after: float, until: float) -> list[Batch[Any]]:
        parent = self.parents[0]
        found = [await parent.get(time) for time in times_between(parent, after, until)]
        return [batch for batch in found if batch is not None]

    async def compute(self, time: float) -> Batch[Any] | None:
        length, slide = self.length, self.slide
        previous = await self.get(snap(time - slide, self.graph.batch_interval))
        leaving = await self._batches(time - slide - length, time - length)
        entering = await self._batches(time - slide, time)
        functions = (self._func, self._inv_func, self._filter_func)
        with operator_failures(self.label, time, tuple((self.label, f) for f in functions if f)):
            result = self._merge(previous, leaving, entering)
        count = self._num_partitions or max((len(b.partitions) for b in entering), default=1)
        return Batch(time, merge_by_key([result], self._func, count))

    def _merge(
        self,
        previous: Batch[Any] | None,
        leaving: list[Batch[Any]],
        entering: list[Batch[Any]],
    ) -> dict[Any, Any]:
        """The new window from the previous one. The previous window's values are
        kept (emitted, and read again for the next one): the functions get private
        copies of those they change, so the cost follows the keys touched."""
        func, inv_func = self._func, self._inv_func
        own = copier_for(func, inv_func)
        result: dict[Any, Any] = {}
        if previous is not None:
            for partition in previous.partitions:
                result.update(partition)
        left = _reduce_values(func, leaving)
        for key, value in left.items():
            if key not in result:
                msg = (
                    f"key {key!r} leaves the window but the previous window has no value "
                    "for it: does filter_func drop keys that still have values, or do the "
                    "keys hash inconsistently?"
                )
                raise OperatorError(self.label, previous.time if previous else 0.0, msg)
            result[key] = inv_func(own(result[key]), value)
        for key, value in _reduce_values(func, entering).items():
            if key not in result:
                result[key] = value
            elif key in left:  # a value of this window's own already
                result[key] = func(result[key], value)
            else:
                result[key] = func(own(result[key]), value)
        if self._filter_func is not None:
            keep = self._filter_func
            result = {key: value for key, value in result.items() if keep((key, value))}
        return result
