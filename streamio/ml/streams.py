"""How models meet streams: prediction nodes, training outputs, and the rule that a
batch's predictions come before that batch's learning.

A model is trained by an output operation of its own (``train_on``, ``learn``) or by
a stream that learns as it goes (``evaluate``); it predicts through a
:class:`PredictNode`. Whatever order these were registered in, the predictions of
batch *t* use the model as it was after batch *t - 1*: before a learner takes in
batch *t*, it has every prediction node of the same model compute (and memoise)
its batch *t* first. Prediction nodes are therefore always materialised, never
fused into their consumer.

The state of a model lives in the learner these nodes share (an estimator such as
:class:`~streamio.ml.StreamingKMeans`, or the River model itself), in a plain
picklable form. With checkpointing on, a checkpoint saves the learner's attributes
(and an evaluation's metric), and a resumed job puts them back into the same
objects, so the user's references (``km.latest_model()``, the River model) see the
model as it was at the checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..batch import Batch, PartitionFn
from ..errors import ConfigurationError, OperatorError, StreamioError
from ..graph import Node
from ..outputs import OutputOperation

if TYPE_CHECKING:
    from ..dstream import DStream
    from ..graph import Graph

__all__ = [
    "LearnOutput",
    "ModelNode",
    "PredictNode",
    "node_of",
    "predict_first",
    "restore_attributes",
    "wrap",
]


def node_of(stream: Any, operator: str) -> Node:
    """The graph node of ``stream``; a ConfigurationError when it is no DStream."""
    from ..dstream import DStream

    if not isinstance(stream, DStream):
        msg = f"{operator}() needs a DStream, not {type(stream).__name__}"
        raise ConfigurationError(msg)
    return stream._node


def wrap(like: DStream[Any], node: Node) -> DStream[Any]:
    """A DStream of ``node``, in the context of ``like``."""
    from ..dstream import DStream

    return DStream(like.context, node)


def restore_attributes(owner: object, saved: dict[str, Any]) -> None:
    """Put a checkpoint's copy of ``owner``'s attributes back into ``owner`` itself."""
    attributes = vars(owner)
    attributes.clear()
    attributes.update(saved)


class ModelNode(Node):
    """A stream that uses a model: ``owner`` is the learner whose model it is."""

    owner: object
    learns = False  # whether computing this node trains the model


class PredictNode(ModelNode):
    """The model's predictions on the records of its parent.

    ``predictor()`` is called when a batch is computed and returns the function
    run on each partition (in the parent stage's executor), built from the model
    as it is at that moment.
    """

    def __init__(
        self,
        parent: Node,
        owner: object,
        predictor: Callable[[], PartitionFn],
        kind: str,
        name: str | None,
    ) -> None:
        self.kind = kind
        for ancestor in _ancestors(parent):
            if isinstance(ancestor, ModelNode) and ancestor.learns and ancestor.owner is owner:
                msg = (
                    f"{kind}() on a stream computed from {ancestor.name!r}, which trains the "
                    "same model: its predictions of a batch would need that batch's learning "
                    "first; predict from a stream that does not depend on the learning"
                )
                raise ConfigurationError(msg)
        super().__init__(parent.graph, (parent,), name)
        self.owner = owner
        self._predictor = predictor

    async def compute(self, time: float) -> Batch[Any] | None:
        fn = self._predictor()
        parts = await self.graph.evaluate(
            self.parents[0], time, fn, self.label, ((self.label, fn),)
        )
        return None if parts is None else Batch(time, parts)


async def predict_first(graph: Graph, owner: object, time: float) -> None:
    """Compute batch ``time`` of every consumed prediction node of ``owner``'s model,
    so that none of them sees the learning that is about to happen."""
    for node in graph.nodes:
        if isinstance(node, PredictNode) and node.owner is owner and node.consumers:
            await node.get(time)


class LearnOutput(OutputOperation):
    """An output operation that trains a model on every batch.

    ``partition_fn()`` gives the function run on each partition in the stage's
    executor (None: the partitions as they are); ``learn(time, results)`` then
    takes in the per-partition results, on the event loop.
    """

    def __init__(
        self,
        node: Node,
        owner: object,
        partition_fn: Callable[[], PartitionFn | None],
        learn: Callable[[float, list[Any]], None],
        kind: str,
        name: str | None,
    ) -> None:
        super().__init__(node, learn, kind, name)
        self.owner = owner
        self._partition_fn = partition_fn

    def state_to_save(self) -> Any:
        return vars(self.owner)  # pickled at once: a snapshot of the model

    def restore_saved(self, saved: Any) -> None:
        restore_attributes(self.owner, saved)

    async def run(self, time: float) -> None:
        await predict_first(self.graph, self.owner, time)
        fn = self._partition_fn()
        ops = ((self.name, fn),) if fn is not None else ()
        results = await self.graph.evaluate(self.node, time, fn, self.name, ops)
        if results is None:
            return
        try:
            self.fn(time, results)
        except StreamioError:
            raise
        except Exception as exc:
            raise OperatorError(self.name, time, f"{type(exc).__name__}: {exc}") from exc


def _ancestors(node: Node) -> list[Node]:
    seen: dict[int, Node] = {}
    pending = [node]
    while pending:
        current = pending.pop()
        if id(current) not in seen:
            seen[id(current)] = current
            pending.extend(current.parents)
    return list(seen.values())
