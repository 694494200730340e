"""The DStream graph: nodes, fusion of narrow stages, and per-time memoisation.

Every :class:`~streamio.DStream` wraps one node. ``get(time)`` returns the node's
batch for a batch time, computed once and memoised so a parent shared by several
children runs once. Narrow nodes (map, filter, ...) with a single consumer are not
materialised: their functions are *fused* into their consumer's per-partition
function (see :meth:`Node.pipeline`), so records flow through a chain of C-level
iterators from the source partition to the shuffle or output that consumes them.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from .batch import (
    Batch,
    PartitionFn,
    cogroup_partitions,
    compose,
    count_records,
    merge_by_key,
    reduce_records,
    reduce_results,
    split_chunks,
    split_evenly,
    split_records,
)
from .errors import ConfigurationError, ContextStateError, OperatorError, StreamioError
from .functions import describe, find_failing

if TYPE_CHECKING:
    from .buffer import ChunkBuffer
    from .executors import PartitionExecutor
    from .receiver import Receiver

Ops = tuple[tuple[str, Callable[..., Any]], ...]


@dataclass(frozen=True)
class Pipeline:
    """A materialised source node and the fused function to apply to its partitions.

    ``executor`` is where the fused stage runs: "process" when any of its operators
    asked for the pool, "inline" when one asked for the loop, None for the
    context's default.
    """

    source: Node
    fn: PartitionFn | None
    ops: Ops
    executor: str | None = None

    def then(self, fn: PartitionFn | None, ops: Ops = (), executor: str | None = None) -> Pipeline:
        marks = {self.executor, executor}
        chosen = "process" if "process" in marks else ("inline" if "inline" in marks else None)
        return Pipeline(self.source, compose(self.fn, fn), self.ops + ops, chosen)


class Graph:
    """Everything the nodes of one context share: names, executor, partitioning."""

    def __init__(self, batch_interval: float, partition_size: int) -> None:
        self.batch_interval = batch_interval
        self.partition_size = partition_size
        # Where stages run, by name ("inline", "process"), and the default for
        # stages that did not choose; set when the context starts.
        self.executors: dict[str, PartitionExecutor] = {}
        self.default_executor = "inline"
        self.nodes: list[Node] = []
        self.outputs: list[OutputOperation] = []
        self.frozen = False
        self.zero_time = 0.0  # the grid origin; the first batch is one interval later
        self.remember = 0.0  # what ssc.remember() asked for
        self._names: set[str] = set()
        self._counter = itertools.count(1)

    def register(self, node: Node, kind: str, name: str | None) -> str:
        name = self._claim_name(kind, name)
        self.nodes.append(node)
        return name

    def register_output(self, output: OutputOperation, kind: str, name: str | None) -> str:
        name = self._claim_name(kind, name)
        self.outputs.append(output)
        return name

    def _claim_name(self, kind: str, name: str | None) -> str:
        if self.frozen:
            msg = (
                "streams, transformations and output operations cannot be added once the "
                "context has started; build the whole graph before start()"
            )
            raise ContextStateError(msg)
        if name is None:
            name = f"{kind}_{next(self._counter)}"
            while name in self._names:
                name = f"{kind}_{next(self._counter)}"
        elif not isinstance(name, str) or not name:
            raise ConfigurationError(f"name= must be a non-empty string, not {name!r}")
        elif name in self._names:
            msg = f"the name {name!r} is already used by another stream or output; pick another"
            raise ConfigurationError(msg)
        self._names.add(name)
        return name

    def prepare(self, zero_time: float) -> None:
        """Called at start: count each node's consumers (which decides what is
        fused) and work out how long each must remember its batches.

        A node is computed when something asks for its batch: an output at the
        current time, or a window, up to a slide late (its ``lag``). Its parents
        must keep their batches for that lag, plus what windows re-read.
        """
        self.zero_time = zero_time
        for node in self.nodes:
            node.consumers = 0
            node.materialized = False
            node.cached_pipeline = None
            node.lag = 0.0
            node.required_remember = 0.0
        for node in reversed(self.nodes):  # children were created after their parents
            node.required_remember = max(node.required_remember, node.lag + node.own_remember())
            for parent in node.parents:
                parent.consumers += 1
                parent.materialized |= node.materializes_parents
                parent.lag = max(parent.lag, node.lag_for_parents())
                parent.required_remember = max(parent.required_remember, node.retain_for_parents())
        for output in self.outputs:
            output.node.consumers += 1
        for node in self.nodes:
            node.materialized |= node.consumers > 1

    def forget(self, time: float) -> None:
        """Batch ``time`` is done: drop what no window or ``remember()`` needs."""
        for node in self.nodes:
            node.forget(time - max(self.remember, node.required_remember))

    def wants_pool(self) -> bool:
        """Whether some stage asked for the process pool."""
        return any(getattr(node, "executor", None) == "process" for node in self.nodes)

    async def evaluate(
        self,
        node: Node,
        time: float,
        tail: PartitionFn | None,
        what: str,
        tail_ops: Ops = (),
        executor: str | None = None,
    ) -> Any:
        """Run ``node``'s pipeline plus ``tail`` over each partition of its source batch.

        Returns the list of per-partition results, or None when the source has no
        batch at ``time``. A user function that raises becomes an OperatorError
        naming its operator.
        """
        pipeline = node.pipeline().then(tail, tail_ops, executor)
        batch = await pipeline.source.get(time)
        if batch is None:
            return None
        if pipeline.fn is None:
            return batch.partitions
        runner = self.executors[pipeline.executor or self.default_executor]
        try:
            return await runner.map_partitions(pipeline.fn, batch.partitions, pipeline.ops)
        except StreamioError:
            raise
        except Exception as exc:
            failing = getattr(exc, "streamio_operator", None)  # named in a worker process
            if failing is None:
                failing = find_failing(pipeline.ops, exc) if pipeline.ops else what
            raise OperatorError(failing, time, f"{type(exc).__name__}: {exc}") from exc


class Node:
    """A stream in the graph. Subclasses implement ``compute``."""

    kind = "stream"
    graph: Graph
    # Whether this node reads its parents' past batches (windows): they must then be
    # memoised rather than fused into this node and recomputed for every window.
    materializes_parents = False

    def __init__(
        self,
        graph: Graph,
        parents: tuple[Node, ...],
        name: str | None,
        slide: float | None = None,
    ) -> None:
        for parent in parents:
            if parent.graph is not graph:
                msg = "streams of different StreamingContexts cannot be combined"
                raise ConfigurationError(msg)
        slides = {parent.slide for parent in parents}
        if len(slides) > 1:
            listed = ", ".join(f"{p.name} slides every {p.slide:g}s" for p in parents)
            msg = (
                f"{self.kind}() combines streams with different slide intervals ({listed}); "
                "window them to the same slide first"
            )
            raise ConfigurationError(msg)
        self.graph = graph
        self.parents = parents
        # Seconds between this stream's batches: the batch interval, or a window's slide.
        self.slide: float = slide or (parents[0].slide if parents else graph.batch_interval)
        self.consumers = 0
        self.materialized = False  # memoised rather than fused into its consumer
        self.lag = 0.0  # how late this node's batches may be computed (set by prepare)
        self.required_remember = 0.0
        self.cached_pipeline: Pipeline | None = None
        self._generated: dict[float, Batch[Any] | None] = {}
        self.name = graph.register(self, self.kind, name)
        # What errors call this node: its name, or the operator the user wrote when
        # this node is a hidden step of it (the per-batch reduce of a windowed one).
        self.label = self.name

    def own_remember(self) -> float:
        """Seconds of its own past batches this node reads (a windowed reduce: one slide)."""
        return 0.0

    def lag_for_parents(self) -> float:
        """How late this node may ask its parents for a batch, after that batch's time."""
        return self.lag

    def retain_for_parents(self) -> float:
        """Seconds of past batches this node re-reads from its parents (windows)."""
        return 0.0

    def is_valid_time(self, time: float) -> bool:
        """Whether ``time`` is on this stream's slide grid (Spark's alignment)."""
        zero = self.graph.zero_time
        steps = round((time - zero) / self.slide)
        # compared in seconds: at epoch-sized times a float carries ~1e-7 s of error
        return steps >= 1 and abs(zero + steps * self.slide - time) < 1e-6

    def pipeline(self) -> Pipeline:
        """This node as a materialised source (narrow nodes override it to fuse)."""
        if self.cached_pipeline is None:
            self.cached_pipeline = Pipeline(self, None, ())
        return self.cached_pipeline

    async def get(self, time: float) -> Batch[Any] | None:
        """The batch for ``time``, computed at most once; None off the slide grid."""
        try:
            return self._generated[time]
        except KeyError:
            pass
        if not self.is_valid_time(time):
            return None
        batch = await self.compute(time)
        self._generated[time] = batch
        return batch

    async def compute(self, time: float) -> Batch[Any] | None:
        raise NotImplementedError

    def remembered(self, time: float) -> Batch[Any] | None:
        """The memoised batch at ``time``, if it is still kept."""
        return self._generated.get(time)

    def forget(self, before: float) -> None:
        if self._generated:
            for time in [t for t in self._generated if t <= before]:
                del self._generated[time]

    async def partitions(self, time: float) -> list[Sequence[Any]] | None:
        """This node's partitions at ``time`` (fused stages run here).

        They may be the memoised batch's own lists, or lazy chunks of an input
        stream: read them (iterate, ``len``), never change them.
        """
        tail = list if self.pipeline().fn is not None else None
        return await self.graph.evaluate(self, time, tail, self.label)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class InputNode(Node):
    """A stream whose batches are cut by the scheduler at each tick."""

    kind = "input"

    def __init__(self, graph: Graph, name: str | None) -> None:
        super().__init__(graph, (), name)
        self.positions: dict[float, Any] = {}

    def cut(self, time: float) -> Batch[Any]:
        """Take this tick's records (called by the scheduler)."""
        chunks, position = self.take()
        if position is not None:
            self.positions[time] = position
        batch = Batch(time, split_chunks(chunks, self.graph.partition_size))
        self._generated[time] = batch
        return batch

    def take(self) -> tuple[list[Sequence[Any]], Any]:
        """This tick's records, in chunks, and the source position they reach (or None)."""
        raise NotImplementedError

    def pending(self) -> int:
        """Records waiting to be cut (a graceful stop drains them)."""
        return 0

    async def commit(self, time: float) -> None:
        """Every output of batch ``time`` finished: pass its position to the source."""

    async def compute(self, time: float) -> Batch[Any] | None:
        return Batch(time, [[]])


class QueueInputNode(InputNode):
    """Spark's ``queueStream``: each batch takes one item (or all) of a user's queue."""

    kind = "queue_stream"

    def __init__(
        self, graph: Graph, queue: Any, one_at_a_time: bool, default: Any, name: str | None
    ) -> None:
        super().__init__(graph, name)
        self._queue = queue
        self._one_at_a_time = one_at_a_time
        self._default = default

    def _pop(self) -> tuple[bool, Any]:
        queue = self._queue
        if hasattr(queue, "popleft"):
            return (True, queue.popleft()) if queue else (False, None)
        if hasattr(queue, "get_nowait"):
            if queue.empty():
                return False, None
            return True, queue.get_nowait()
        return (True, queue.pop(0)) if queue else (False, None)

    def take(self) -> tuple[list[Sequence[Any]], Any]:
        records: list[Any] = []
        found, item = self._pop()
        if not found:
            return [list(self._default) if self._default is not None else records], None
        while found:
            records.extend(check_queue_item(item, self.name))
            if self._one_at_a_time:
                break
            found, item = self._pop()
        return [records], None


def check_queue_item(item: Any, stream: str) -> Iterable[Any]:
    """A queue item must be a collection of records (a list), not a string or scalar."""
    if isinstance(item, (str, bytes)) or not isinstance(item, Iterable):
        msg = (
            f"queue_stream {stream!r}: each queue item is one batch and must be a "
            f"collection of records such as a list, not {type(item).__name__} {item!r}"
        )
        raise ConfigurationError(msg)
    return item


class ReceiverInputNode(InputNode):
    """A stream fed by a receiver task through a bounded buffer."""

    kind = "receiver_stream"

    def __init__(
        self,
        graph: Graph,
        receiver: Receiver[Any],
        buffer: ChunkBuffer[Any],
        max_records_per_batch: int | None,
        name: str | None,
    ) -> None:
        super().__init__(graph, name)
        self.receiver = receiver
        self.buffer = buffer
        self.max_records_per_batch = max_records_per_batch

    def take(self) -> tuple[list[Sequence[Any]], Any]:
        return self.buffer.take(self.max_records_per_batch)

    def pending(self) -> int:
        return len(self.buffer)

    async def commit(self, time: float) -> None:
        position = self.positions.pop(time, None)
        if position is not None:
            await self.receiver.commit(position)


class NarrowNode(Node):
    """map, filter, flat_map, ...: a per-partition function, fused when possible."""

    def __init__(
        self,
        parent: Node,
        kind: str,
        fn: PartitionFn,
        user_fn: Callable[..., Any] | None,
        name: str | None,
        executor: str | None = None,
    ) -> None:
        self.kind = kind
        super().__init__(parent.graph, (parent,), name)
        self.fn = fn
        self.user_fn = user_fn
        self.executor = executor

    def ops(self) -> Ops:
        """The user function of this stage, named for error messages."""
        return ((self.label, self.user_fn),) if self.user_fn is not None else ()

    def pipeline(self) -> Pipeline:
        if self.cached_pipeline is None:
            if self.materialized:
                self.cached_pipeline = Pipeline(self, None, ())
            else:
                self.cached_pipeline = (
                    self.parents[0].pipeline().then(self.fn, self.ops(), self.executor)
                )
        return self.cached_pipeline

    async def compute(self, time: float) -> Batch[Any] | None:
        parts = await self.graph.evaluate(
            self.parents[0], time, compose(self.fn, list), self.label, self.ops(), self.executor
        )
        return None if parts is None else Batch(time, parts)


class ShuffleNode(Node):
    """Key-based aggregation: combine map-side per partition, then merge by key hash."""

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
        self._combine = combine
        self._merge = merge
        self._user_fns = user_fns
        self._num_partitions = num_partitions

    async def compute(self, time: float) -> Batch[Any] | None:
        ops = tuple((self.label, fn) for fn in self._user_fns)
        combined = await self.graph.evaluate(self.parents[0], time, self._combine, self.label, ops)
        if combined is None:
            return None
        try:
            parts = merge_by_key(combined, self._merge, self._num_partitions or len(combined))
        except Exception as exc:
            msg = f"{type(exc).__name__}: {exc}"
            raise OperatorError(find_failing(ops, exc), time, msg) from exc
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
        count = self._num_partitions or max(len(side) for side in sides)  # type: ignore[arg-type]
        try:
            parts = cogroup_partitions(sides, count)  # type: ignore[arg-type]
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
    """The same records spread evenly over a given number of partitions."""

    kind = "repartition"

    def __init__(self, parent: Node, num_partitions: int, name: str | None) -> None:
        super().__init__(parent.graph, (parent,), name)
        self._num_partitions = num_partitions

    async def compute(self, time: float) -> Batch[Any] | None:
        parts = await self.parents[0].partitions(time)
        if parts is None:
            return None
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
        try:
            return Batch(time, [reduce_results(func, results)])
        except Exception as exc:
            raise OperatorError(self.label, time, f"{type(exc).__name__}: {exc}") from exc


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
        try:
            result = self._fn(*args)
            if inspect.isawaitable(result):
                result = await result
            records = list(result)
        except Exception as exc:
            msg = f"{describe(self._fn)} raised {type(exc).__name__}: {exc}"
            raise OperatorError(self.label, time, msg) from exc
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
            exc = failure[0]
            msg = f"{describe(fn)} raised {type(exc).__name__}: {exc}"
            raise OperatorError(self.label, time, msg) from exc
        return Batch(time, results)


class OutputOperation:
    """An output job: a function called with each batch's time and records."""

    def __init__(
        self,
        node: Node,
        fn: Callable[[float, list[Any]], Any],
        kind: str,
        name: str | None,
        user_fn: Callable[..., Any] | None = None,
    ) -> None:
        self.node = node
        self.fn = fn
        self.user_fn = user_fn or fn
        self.graph = node.graph
        self.name = node.graph.register_output(self, kind, name)

    async def run(self, time: float) -> None:
        parts = await self.node.partitions(time)
        if parts is None:
            return
        records = list(itertools.chain.from_iterable(parts))
        try:
            result = self.fn(time, records)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            msg = f"{describe(self.user_fn)} raised {type(exc).__name__}: {exc}"
            raise OperatorError(self.name, time, msg) from exc
