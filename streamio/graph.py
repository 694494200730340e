"""The DStream graph: the registry, evaluation, fusion and per-time memoisation.

Every :class:`~streamio.DStream` wraps one node. ``get(time)`` returns the node's
batch for a batch time, computed once and memoised so a parent shared by several
children runs once. Narrow nodes (map, filter, ...) with a single consumer are not
materialised: their functions are *fused* into their consumer's per-partition
function (see :meth:`Node.pipeline`), so records flow through a chain of C-level
iterators from the source partition to the shuffle or output that consumes them.

The node kinds live beside this module: inputs in :mod:`streamio.inputs`,
transformations in :mod:`streamio.nodes`, windows, state and event time in their
own modules, output operations in :mod:`streamio.outputs`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .batch import Batch, PartitionFn, compose
from .errors import ConfigurationError, ContextStateError
from .functions import Ops, operator_failures

if TYPE_CHECKING:
    from .checkpoint.keyed import KeyedChanges
    from .executors import PartitionExecutor
    from .outputs import OutputOperation

__all__ = ["Graph", "Node", "Ops", "Pipeline"]


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
        # The grid origin: the first batch is one interval later (set by the scheduler
        # once every receiver has opened, so windows align on the first batch).
        self.zero_time = 0.0
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

    def free_name(self, base: str) -> str:
        """``base`` if no stream or output is called so, else ``base 2``, ``base 3``...

        For default names taken from what a source reads (``"kafka lines"``).
        """
        name, number = base, 1
        while name in self._names:
            number += 1
            name = f"{base} {number}"
        return name

    def prepare(self) -> None:
        """Called at start: count each node's consumers (which decides what is
        fused) and work out how long each must remember its batches.

        A node is computed when something asks for its batch: an output at the
        current time, or a window, up to a slide late (its ``lag``). Its parents
        must keep their batches for that lag, plus what windows re-read.
        (``zero_time`` is set once the receivers are ready, by the scheduler.)
        """
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
        batch at ``time``. A failure becomes an OperatorError naming the operator
        and function that raised (see :func:`~streamio.functions.operator_failures`).
        """
        pipeline = node.pipeline().then(tail, tail_ops, executor)
        batch = await pipeline.source.get(time)
        if batch is None:
            return None
        if pipeline.fn is None:
            return batch.partitions
        runner = self.executors[pipeline.executor or self.default_executor]
        with operator_failures(what, time, pipeline.ops):
            return await runner.map_partitions(pipeline.fn, batch.partitions, pipeline.ops)


class Node:
    """A stream in the graph. Subclasses implement ``compute``."""

    kind = "stream"
    graph: Graph
    name: str
    # Set while checkpointing: a node with keyed state records its changed keys here.
    keyed_changes: KeyedChanges | None = None
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

    # -- checkpoints: what a node saves besides its remembered batches ---------

    def state_to_save(self) -> Any:
        """Plain data a checkpoint must save to resume this node (None: nothing).

        Remembered batches (``_generated``, what windows read again) and keyed
        state (:meth:`keyed_state`) are saved apart, incrementally.
        """
        return None

    def restore_saved(self, saved: Any) -> None:
        """Resume from what :meth:`state_to_save` returned at the checkpoint."""

    def keyed_state(self) -> tuple[dict[Any, Any], Callable[[Any], Any]] | None:
        """The node's keyed state and what to save per key, for nodes that keep it;
        they report changed keys to :attr:`keyed_changes` while it is set."""
        return None

    def restore_keyed(self, items: list[tuple[Any, Any]]) -> None:
        """Replace the keyed state with ``(key, saved value)`` pairs."""

    def remembered_batches(self) -> dict[float, Batch[Any] | None]:
        """The batches this node keeps for later batches (windows re-read them)."""
        return self._generated

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
