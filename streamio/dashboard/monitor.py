"""What the dashboard knows of a running job, fed by listener events.

A :class:`Monitor` is a listener that keeps the last ``retained_batches``
completed batches (Spark's ``spark.streaming.ui.retainedBatches``), the batch
in progress, each input's status and last error, the last checkpoint, and the
``to_dashboard`` panels, beside a :class:`~streamio.metrics.MetricsRegistry`.
Its memory is bounded by ``retained_batches``.

Pages are told of changes without polling: :meth:`Monitor.wait_change` returns
once something changed since the version a page last saw. Events only bump a
version; the work of building what a page receives is done by the page's own
request, so a job with no page open pays next to nothing.
"""

from __future__ import annotations

import time as _time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import anyio

from ..inputs import InputNode, ReceiverInputNode
from ..listener import BatchInfo, ReceiverInfo, StreamingListener
from ..metrics import MetricsRegistry
from .graph_view import describe_graph
from .panels import Panel, jsonable

if TYPE_CHECKING:
    from ..clock import Clock
    from ..graph import Graph

__all__ = ["Monitor", "batch_summary"]


def _error_text(error: Any) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


def batch_summary(info: BatchInfo, graph: Graph) -> dict[str, Any]:
    """One batch as the dashboard shows it (JSON-ready).

    Its output operations are the ones the batch reports with their timings
    (``BatchInfo.output_operations``), or else the graph's, untimed.
    """
    outputs = [
        {
            "name": output.name,
            "kind": output.kind,
            "start": output.start_time,
            "end": output.end_time,
            "duration": (
                None
                if output.start_time is None or output.end_time is None
                else output.end_time - output.start_time
            ),
            "error": _error_text(output.error),
        }
        for output in getattr(info, "output_operations", None) or ()
    ] or [
        {"name": o.name, "kind": o.kind, **dict.fromkeys(("start", "end", "duration", "error"))}
        for o in graph.outputs
    ]
    checkpoint = getattr(info, "checkpoint", None)
    return {
        "time": info.batch_time,
        "records": dict(info.records_per_input),
        "num_records": info.num_records,
        "submitted": info.submission_time,
        "started": info.processing_start_time,
        "ended": info.processing_end_time,
        "scheduling_delay": info.scheduling_delay,
        "processing_time": info.processing_time,
        "total_delay": info.total_delay,
        "error": _error_text(getattr(info, "error", None)),
        "outputs": outputs,
        "input_metadata": jsonable(getattr(info, "input_metadata", None) or {}),
        "rate_limits": jsonable(getattr(info, "rate_limits", None) or {}),
        "skipped": jsonable(getattr(info, "records_skipped", None) or {}),
        "dead_lettered": jsonable(getattr(info, "records_dead_lettered", None) or {}),
        "checkpoint": None if checkpoint is None else _checkpoint_json(checkpoint),
    }


def _checkpoint_json(info: Any) -> dict[str, Any]:
    return {
        "batch_time": getattr(info, "batch_time", None),
        "duration": getattr(info, "duration", None),
        "bytes_written": getattr(info, "bytes_written", None),
        "keys_written": getattr(info, "keys_written", None),
    }


class Monitor(StreamingListener):
    """The dashboard's view of one context's job (one per context).

    Args:
        graph: the job's graph (drawn, and read for buffers and outputs).
        clock: the context's clock (for how long the job has run).
        retained_batches: how many completed batches are kept.
    """

    def __init__(self, graph: Graph, clock: Clock, retained_batches: int) -> None:
        self.graph = graph
        self.clock = clock
        self.retained_batches = retained_batches
        self.registry = MetricsRegistry()
        self.panels: list[Panel] = []
        self.completed: OrderedDict[float, dict[str, Any]] = OrderedDict()
        self.sequence = 0  # completed batches seen, retained or not
        self.active: dict[float, dict[str, Any]] = {}
        self.inputs: dict[str, dict[str, Any]] = {}
        self.started_at: float | None = None  # clock time the job started
        self.started_wall: float | None = None  # and the wall time, for people
        self.stopped = False
        self.version = 0
        self._changed: anyio.Event | None = None

    # -- listener events -------------------------------------------------------

    def on_streaming_started(self, info: Any) -> None:
        self._started(info.time)

    def _started(self, time: float) -> None:
        if self.started_at is None:
            self.started_at = time
            self.started_wall = _time.time()
        self._changed_now()

    def on_batch_submitted(self, info: BatchInfo) -> None:
        self._started(info.batch_time - self.graph.batch_interval)
        self.active[info.batch_time] = {
            "time": info.batch_time,
            "num_records": info.num_records,
            "submitted": info.submission_time,
            "started": None,
        }
        self._changed_now()

    def on_batch_started(self, info: BatchInfo) -> None:
        entry = self.active.get(info.batch_time)
        if entry is not None:
            entry["started"] = info.processing_start_time
        self._changed_now()

    def on_batch_completed(self, info: BatchInfo) -> None:
        self.active.pop(info.batch_time, None)
        self.completed[info.batch_time] = batch_summary(info, self.graph)
        self.completed.move_to_end(info.batch_time)
        while len(self.completed) > self.retained_batches:
            self.completed.popitem(last=False)
        self.sequence += 1
        self._changed_now()

    def on_receiver_started(self, info: ReceiverInfo) -> None:
        self._receiver(info, "receiving")

    def on_receiver_error(self, info: ReceiverInfo) -> None:
        entry = self._receiver(info, "failed")
        entry["last_error"] = _error_text(info.error)
        entry["last_error_time"] = self.clock.now()

    def on_receiver_stopped(self, info: ReceiverInfo) -> None:
        self._receiver(info, "stopped")

    def on_checkpoint_written(self, info: Any) -> None:
        self._changed_now()

    def _receiver(self, info: ReceiverInfo, status: str) -> dict[str, Any]:
        entry = self.inputs.setdefault(info.stream, {"last_error": None, "last_error_time": None})
        entry["status"] = status
        entry["attempt"] = info.attempt
        self._changed_now()
        return entry

    # -- change notification ---------------------------------------------------

    def _changed_now(self) -> None:
        self.version += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def changed(self) -> None:
        """Tell the pages that something changed (a panel's batch, the job's end)."""
        self._changed_now()

    def stop(self) -> None:
        """The job has terminated: pages get a last update and their streams end."""
        self.stopped = True
        self._changed_now()

    async def wait_change(self, version: int) -> None:
        """Return once :attr:`version` differs from ``version`` (at once if it does)."""
        while self.version == version:
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    # -- what pages receive ----------------------------------------------------

    def add_panel(self, panel: Panel) -> None:
        self.panels.append(panel)

    def batches_since(self, sequence: int) -> list[dict[str, Any]]:
        """The retained batches completed after the first ``sequence`` of the job."""
        new = min(self.sequence - sequence, len(self.completed))
        if new <= 0:
            return []
        return list(self.completed.values())[-new:]

    def status(self, panel_versions: dict[str, int] | None = None) -> dict[str, Any]:
        """Everything but the batch history: header, inputs, active batches, totals,
        checkpoint, and the panels whose version differs from ``panel_versions``
        (all of them when None)."""
        registry, now = self.registry, self.clock.now()
        panels = [
            panel.to_json()
            for panel in self.panels
            if panel_versions is None or panel_versions.get(panel.name) != panel.version
        ]
        if panel_versions is not None:
            panel_versions.update((panel["name"], panel["version"]) for panel in panels)
        checkpoint = registry.last_checkpoint
        return {
            "header": {
                "interval": self.graph.batch_interval,
                "started": self.started_at,
                "started_wall": self.started_wall,
                "now": now,
                "completed": registry.batches_completed,
                "failed": registry.batches_failed,
                "records": registry.records_total,
                "stopped": self.stopped,
                "retained": self.retained_batches,
            },
            "inputs": self._inputs_status(),
            "active": list(self.active.values()),
            "outputs": [
                {"name": output.name, "records": getattr(output, "records_out", None)}
                for output in self.graph.outputs
            ],
            "skipped": dict(registry.records_skipped),
            "dead_lettered": dict(registry.records_dead_lettered),
            "checkpoint": (
                None
                if checkpoint is None
                else {**_checkpoint_json(checkpoint), "count": registry.checkpoints}
            ),
            "panels": panels,
        }

    def _inputs_status(self) -> list[dict[str, Any]]:
        registry, inputs = self.registry, []
        for node in self.graph.nodes:
            if not isinstance(node, InputNode):
                continue
            entry: dict[str, Any] = {
                "name": node.name,
                "kind": node.kind,
                "records": registry.records_in.get(node.name, 0),
                "rate_limit": registry.rate_limits.get(node.name),
                "status": "queue",
                "attempt": None,
                "last_error": None,
                "last_error_time": None,
                "restarts": registry.receiver_restarts.get(node.name, 0),
                "buffer": None,
            }
            entry.update(self.inputs.get(node.name, {}))
            if isinstance(node, ReceiverInputNode):
                if node.name not in self.inputs:
                    entry["status"] = "starting"
                stats = node.buffer.statistics()
                entry["buffer"] = {
                    "used": stats.used,
                    "capacity": stats.capacity,
                    "used_bytes": stats.used_bytes,
                    "max_bytes": stats.max_bytes,
                    "waiting_senders": stats.waiting_senders,
                }
            inputs.append(entry)
        return inputs

    def snapshot(self) -> dict[str, Any]:
        """All a page needs when it opens: the status, the graph, every retained batch."""
        return {
            **self.status(),
            "graph": describe_graph(self.graph),
            "batches": list(self.completed.values()),
            "sequence": self.sequence,
        }
