"""The transformation nodes of the graph: narrow (fused), shuffle, and whole-batch.

Narrow nodes are fused into their consumer's per-partition function; key nodes
combine map-side per partition and merge by key hash; the others read their
parents' partitions as a whole.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import anyio

from .batch import (
    Batch,
    PartitionFn,
    cogroup_partitions,
    count_records,
    merge_by_key,
    reduce_records,
    reduce_results,
    split_evenly,
    split_records,
)
from .checks import OnError
from .columnar import is_columnar, key_rows
from .columnar import split_evenly as split_arrow_evenly
from .errors import OperatorError
from .functions import operator_failures
from .graph import Node, Ops, Pipeline
from .record_errors import DeadLetterOwner

__all__ = [
    "AsyncMapNode",
    "CogroupNode",
    "CountNode",
    "DeadLetterNode",
    "NarrowNode",
    "ReduceNode",
    "RepartitionNode",
    "ShuffleNode",
    "TransformNode",
    "UnionNode",
]


class NarrowNode(Node, DeadLetterOwner):
    """map, filter, flat_map, ...: a per-partition function, fused when possible.

    ``on_error`` other than "fail" (record-wise operators only) leaves out the
    records the function refuses (see :mod:`streamio.record_errors`).
    """

    def __init__(
        self,
        parent: Node,
        kind: str,
        fn: PartitionFn,
        user_fn: Callable[..., Any] | None,
        name: str | None,
        executor: str | None = None,
        on_error: OnError = "fail",
    ) -> None:
        self.kind = kind
        super().__init__(parent.graph, (parent,), name)
        self.fn = fn
        self.user_fn = user_fn
        self.executor = executor
        self.on_error = on_error
        self.init_dead_letters()

    def sends_dead_letters(self) -> bool:
        return self.on_error == "dead_letter"

    def check_prepared(self) -> None:
        self.check_dead_letters_read(self.name)

    def forget(self, before: float) -> None:
        super().forget(before)
        self.forget_dead_letters(before)

    def step(self) -> Pipeline:
        """This node's own step after its parent's pipeline."""
        return (
            self.parents[0]
            .pipeline()
            .then(self.fn, self.ops(), self.executor, self.on_error, self)
        )

    def ops(self) -> Ops:
        """The user function of this stage, named for error messages."""
        return ((self.label, self.user_fn),) if self.user_fn is not None else ()

    def pipeline(self) -> Pipeline:
        if self.cached_pipeline is None:
            if self.materialized:
                self.cached_pipeline = Pipeline(self, None, ())
            else:
                self.cached_pipeline = self.step()
        return self.cached_pipeline

    async def compute(self, time: float) -> Batch[Any] | None:
        parts = await self.graph.run(self.step().then(list), time, self.label)
        return None if parts is None else Batch(time, parts)


class ShuffleNode(Node):
    """Key-based aggregation: combine map-side per partition, then merge by key hash.

    The rows of an Arrow partition are read as tuples (see :mod:`streamio.columnar`).
    """

    def __init__(
        self,
        parent: Node,
        kind: str,
        combine: Callable[[Iterable[Any]], dict[Any, Any]],
        merge: Callable[[Any, Any], Any],
        user_fns: tuple[Callable[..., Any], ...],
        num_partitions: int | None,
        name: str | None,
    ) -> None:
        self.kind = kind
        super().__init__(parent.graph, (parent,), name)
        self._combine = lambda records: combine(key_rows(records))
        self._merge = merge
        self._user_fns = user_fns
        self._num_partitions = num_partitions

    async def compute(self, time: float) -> Batch[Any] | None:
        ops = tuple((self.label, fn) for fn in self._user_fns)
        combined = await self.graph.evaluate(self.parents[0], time, self._combine, self.label, ops)
        if combined is None:
            return None
        with operator_failures(self.label, time, ops):
            parts = merge_by_key(combined, self._merge, self._num_partitions or len(combined))
        return Batch(time, parts)


class CogroupNode(Node):
    """``(key, (values of this stream, values of the other))`` for every key of either."""

    kind = "cogroup"

    def __init__(self, left: Node, right: Node, num_partitions: int | None, name: str | None):
        super().__init__(left.graph, (left, right), name)
        self._num_partitions = num_partitions
        self.label = self.name

    async def compute(self, time: float) -> Batch[Any] | None:
        sides = [await parent.partitions(time) for parent in self.parents]
        if any(side is None for side in sides):
            return None
        sides = [[key_rows(part) for part in side] for side in sides]  # type: ignore[union-attr]
        count = self._num_partitions or max(len(side) for side in sides)  # type: ignore[arg-type]
        try:
            parts: list[list[Any]] = cogroup_partitions(sides, count)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            msg = f"records must be (key, value) pairs with hashable keys: {exc}"
            raise OperatorError(self.label, time, msg) from exc
        return Batch(time, parts)


class UnionNode(Node):
    """The records of several streams, partitions side by side."""

    kind = "union"

    async def compute(self, time: float) -> Batch[Any] | None:
        parts: list[Sequence[Any]] = []
        for parent in self.parents:
            got = await parent.partitions(time)
            if got is None:
                return None
            parts.extend(got)
        return Batch(time, parts)


class RepartitionNode(Node):
    """The same records spread evenly over a given number of partitions (Arrow
    partitions as slices of one table)."""

    kind = "repartition"

    def __init__(self, parent: Node, num_partitions: int, name: str | None) -> None:
        super().__init__(parent.graph, (parent,), name)
        self._num_partitions = num_partitions

    async def compute(self, time: float) -> Batch[Any] | None:
        parts = await self.parents[0].partitions(time)
        if parts is None:
            return None
        if all(map(is_columnar, parts)):
            return Batch(time, split_arrow_evenly(parts, self._num_partitions))  # type: ignore[arg-type]
        records = list(itertools.chain.from_iterable(parts))
        return Batch(time, split_evenly(records, self._num_partitions))


class CountNode(Node):
    """One record per batch: how many records the parent's batch holds (0 included)."""

    kind = "count"

    async def compute(self, time: float) -> Batch[Any] | None:
        counts = await self.graph.evaluate(self.parents[0], time, count_records, self.label)
        return None if counts is None else Batch(time, [[sum(counts)]])


class ReduceNode(Node):
    """One record per non-empty batch: all records reduced with ``func``."""

    kind = "reduce"

    def __init__(self, parent: Node, func: Callable[[Any, Any], Any], name: str | None):
        super().__init__(parent.graph, (parent,), name)
        self._func = func

    async def compute(self, time: float) -> Batch[Any] | None:
        func = self._func
        results = await self.graph.evaluate(
            self.parents[0],
            time,
            lambda records: reduce_records(func, records),
            self.label,
            ((self.label, func),),
        )
        if results is None:
            return None
        with operator_failures(self.label, time, ((self.label, func),)):
            return Batch(time, [reduce_results(func, results)])


class TransformNode(Node):
    """A user function of whole batches: ``fn(records...)`` or ``fn(time, records...)``."""

    kind = "transform"

    def __init__(
        self,
        parents: tuple[Node, ...],
        fn: Callable[..., Iterable[Any]],
        with_time: bool,
        name: str | None,
    ) -> None:
        super().__init__(parents[0].graph, parents, name)
        self._fn = fn
        self._with_time = with_time

    async def compute(self, time: float) -> Batch[Any] | None:
        inputs = []
        for parent in self.parents:
            parts = await parent.partitions(time)
            if parts is None:
                return None
            inputs.append(list(itertools.chain.from_iterable(parts)))
        args = (time, *inputs) if self._with_time else tuple(inputs)
        with operator_failures(self.label, time, ((self.label, self._fn),)):
            result = self._fn(*args)
            if inspect.isawaitable(result):
                result = await result
            records = list(result)
        return Batch(time, split_records(records, self.graph.partition_size))


class AsyncMapNode(Node):
    """``map_async``: an async function per record, at most N in flight, order kept."""

    kind = "map_async"

    def __init__(
        self, parent: Node, fn: Callable[[Any], Any], concurrency: int, name: str | None
    ) -> None:
        super().__init__(parent.graph, (parent,), name)
        self._fn = fn
        self._concurrency = concurrency

    async def compute(self, time: float) -> Batch[Any] | None:
        parts = await self.parents[0].partitions(time)
        if parts is None:
            return None
        results: list[list[Any]] = [[None] * len(part) for part in parts]
        work = (
            (out, index, record)
            for out, part in zip(results, parts, strict=True)
            for index, record in enumerate(part)
        )
        failure: list[BaseException] = []
        fn = self._fn

        async def worker(cancel: anyio.CancelScope) -> None:
            for out, index, record in work:
                try:
                    out[index] = await fn(record)
                except Exception as exc:
                    failure.append(exc)
                    cancel.cancel()
                    return

        total = sum(map(len, parts))
        async with anyio.create_task_group() as tg:
            for _ in range(min(self._concurrency, total)):
                tg.start_soon(worker, tg.cancel_scope)
        if failure:
            with operator_failures(self.label, time, ((self.label, fn),)):
                raise failure[0]
        return Batch(time, results)


class DeadLetterNode(Node):
    """The ``dead_letters()`` stream of an operator or an input: the records it
    refused, as :class:`~streamio.DeadLetter`, in the batch they were part of.

    Its owner is memoised (not fused into its consumer): its batch is computed
    once, and the records refused meanwhile make this stream's batch.
    """

    kind = "dead_letters"
    materializes_parents = True

    def __init__(self, owner: Node, name: str | None) -> None:
        super().__init__(owner.graph, (owner,), name)
        assert isinstance(owner, DeadLetterOwner)
        owner.dead_letter_streams.append(self)

    async def compute(self, time: float) -> Batch[Any] | None:
        owner = self.parents[0]
        if await owner.get(time) is None:
            return None
        assert isinstance(owner, DeadLetterOwner)
        letters = list(owner.dead_letters.get(time, ()))
        return Batch(time, split_records(letters, self.graph.partition_size))
