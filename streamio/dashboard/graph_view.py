"""The DStream graph as the dashboard draws it: nodes, edges, fused stages.

Read from the graph itself, so the picture is the job that runs: every stream
with its name and kind, the output operations, and which narrow operators are
fused (their functions run inside the stage of the node they read from, with no
batch of their own in between).
"""

from __future__ import annotations

from typing import Any

from ..graph import Graph
from ..nodes import NarrowNode

__all__ = ["describe_graph"]


def describe_graph(graph: Graph) -> dict[str, Any]:
    """Nodes (name, kind, parents, fused, stage) and outputs (name, kind, stream).

    ``stage`` names the materialised stream whose partitions a fused node's
    function runs over; fusion is decided at start, so before it ``fused`` is
    None for every node.
    """
    started = graph.frozen and bool(graph.executors)
    nodes = []
    for node in graph.nodes:
        fused: bool | None = None
        stage = node.name
        if started:
            fused = isinstance(node, NarrowNode) and not node.materialized
            if fused:
                stage = node.pipeline().source.name
        entry: dict[str, Any] = {
            "name": node.name,
            "kind": node.kind,
            "parents": [parent.name for parent in node.parents],
            "fused": fused,
            "stage": stage,
        }
        receiver = getattr(node, "receiver", None)
        if receiver is not None:
            entry["receiver"] = type(receiver).__name__
        nodes.append(entry)
    outputs = [
        {"name": output.name, "kind": getattr(output, "kind", "output"), "stream": output.node.name}
        for output in graph.outputs
    ]
    return {"nodes": nodes, "outputs": outputs, "started": started}
