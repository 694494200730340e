"""The Prometheus exporter: a job's metrics in Prometheus' text format at ``/metrics``.

Needs the ``metrics`` extra (``pip install 'streamio[metrics]'``, the
``prometheus-client`` package). The collector reads the job's
:class:`~streamio.metrics.MetricsRegistry`, and the graph's buffers and outputs,
when Prometheus scrapes, so nothing is computed between scrapes. Names follow
Prometheus' conventions: a ``streamio_`` prefix, base units (seconds, bytes),
``_total`` for counters, one label set per input, output or operator name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
    make_asgi_app,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ..inputs import ReceiverInputNode
from ..metrics import Histogram

if TYPE_CHECKING:
    from .monitor import Monitor

__all__ = ["JobCollector", "job_registry", "metrics_app", "metrics_text"]


def _labelled(
    family: CounterMetricFamily | GaugeMetricFamily, values: Mapping[str, float]
) -> CounterMetricFamily | GaugeMetricFamily:
    for name, value in sorted(values.items()):
        family.add_metric([name], value)
    return family


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    buckets = [
        ("+Inf" if bound == float("inf") else repr(bound), count)
        for bound, count in histogram.cumulative()
    ]
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=histogram.sum)


class JobCollector:
    """A ``prometheus_client`` collector of one job's metrics."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        registry, graph = self.monitor.registry, self.monitor.graph
        yield _labelled(
            CounterMetricFamily(
                "streamio_input_records", "Records cut into batches, per input.", labels=["input"]
            ),
            registry.records_in,
        )
        outputs = {output.name: getattr(output, "records_out", 0) for output in graph.outputs}
        yield _labelled(
            CounterMetricFamily(
                "streamio_output_records",
                "Records given to each output operation.",
                labels=["output"],
            ),
            outputs,
        )
        yield from self._buffers()
        yield _labelled(
            GaugeMetricFamily(
                "streamio_input_rate_limit_records_per_second",
                "Records per second a batch may take from each input (the cap in force).",
                labels=["input"],
            ),
            registry.rate_limits,
        )
        yield CounterMetricFamily(
            "streamio_batches_completed", "Batches completed.", value=registry.batches_completed
        )
        yield CounterMetricFamily(
            "streamio_batches_failed", "Batches that failed.", value=registry.batches_failed
        )
        yield GaugeMetricFamily(
            "streamio_batch_interval_seconds", "The batch interval.", value=graph.batch_interval
        )
        yield _histogram(
            "streamio_batch_processing_time_seconds",
            "How long each batch's output operations took.",
            registry.processing_time,
        )
        yield _histogram(
            "streamio_batch_scheduling_delay_seconds",
            "How long each batch waited after its grid time before it started.",
            registry.scheduling_delay,
        )
        yield _histogram(
            "streamio_batch_total_delay_seconds",
            "Scheduling delay plus processing time, per batch.",
            registry.total_delay,
        )
        yield from self._receivers_and_policies()
        yield from self._outputs_and_checkpoints()

    def _buffers(self) -> Iterator[Metric]:
        used = GaugeMetricFamily(
            "streamio_input_buffer_records",
            "Records held in each input's buffer.",
            labels=["input"],
        )
        capacity = GaugeMetricFamily(
            "streamio_input_buffer_capacity_records",
            "Records each input's buffer holds before its receiver waits (when limited).",
            labels=["input"],
        )
        used_bytes = GaugeMetricFamily(
            "streamio_input_buffer_bytes",
            "Estimated bytes of the records held in each input's buffer.",
            labels=["input"],
        )
        max_bytes = GaugeMetricFamily(
            "streamio_input_buffer_capacity_bytes",
            "Estimated bytes each input's buffer holds before its receiver waits.",
            labels=["input"],
        )
        waiting = GaugeMetricFamily(
            "streamio_input_buffer_waiting_senders",
            "Receivers waiting for room in each input's buffer.",
            labels=["input"],
        )
        for node in self.monitor.graph.nodes:
            if isinstance(node, ReceiverInputNode):
                stats = node.buffer.statistics()
                used.add_metric([node.name], stats.used)
                if stats.capacity is not None:
                    capacity.add_metric([node.name], stats.capacity)
                used_bytes.add_metric([node.name], stats.used_bytes)
                max_bytes.add_metric([node.name], stats.max_bytes)
                waiting.add_metric([node.name], stats.waiting_senders)
        yield from (used, capacity, used_bytes, max_bytes, waiting)

    def _receivers_and_policies(self) -> Iterator[Metric]:
        registry = self.monitor.registry
        yield _labelled(
            CounterMetricFamily(
                "streamio_receiver_restarts",
                "Receivers started again after an error.",
                labels=["input"],
            ),
            registry.receiver_restarts,
        )
        yield _labelled(
            CounterMetricFamily(
                "streamio_receiver_errors", "Errors receivers reported.", labels=["input"]
            ),
            registry.receiver_errors,
        )
        yield _labelled(
            CounterMetricFamily(
                "streamio_records_skipped",
                "Records an error policy skipped, per operator.",
                labels=["operator"],
            ),
            registry.records_skipped,
        )
        yield _labelled(
            CounterMetricFamily(
                "streamio_records_dead_lettered",
                "Records an error policy sent to the dead letters, per operator.",
                labels=["operator"],
            ),
            registry.records_dead_lettered,
        )

    def _outputs_and_checkpoints(self) -> Iterator[Metric]:
        registry = self.monitor.registry
        yield _labelled(
            CounterMetricFamily(
                "streamio_output_duration_seconds",
                "Seconds spent in each output operation.",
                labels=["output"],
            ),
            registry.output_seconds,
        )
        yield _labelled(
            CounterMetricFamily(
                "streamio_output_errors",
                "Batches in which each output operation failed.",
                labels=["output"],
            ),
            registry.output_errors,
        )
        if registry.checkpoints:
            yield CounterMetricFamily(
                "streamio_checkpoints", "Checkpoints written.", value=registry.checkpoints
            )
            yield CounterMetricFamily(
                "streamio_checkpoint_written_bytes",
                "Bytes written by checkpoints.",
                value=registry.checkpoint_bytes,
            )
            yield _histogram(
                "streamio_checkpoint_duration_seconds",
                "How long each checkpoint took to write.",
                registry.checkpoint_duration,
            )
            last = registry.last_checkpoint
            yield GaugeMetricFamily(
                "streamio_checkpoint_last_bytes",
                "Bytes written by the last checkpoint.",
                value=0 if last is None else last.bytes_written,
            )


def job_registry(monitor: Monitor) -> CollectorRegistry:
    """A Prometheus registry holding only ``monitor``'s job (not the process-wide one,
    so two contexts in one process never mix their series)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobCollector(monitor))
    return registry


def metrics_app(monitor: Monitor) -> Any:
    """An ASGI app answering every request with the job's metrics in Prometheus'
    format, to mount on its own (``app.mount("/metrics", ssc.metrics_app())``)."""
    return make_asgi_app(job_registry(monitor))


def metrics_text(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The metrics of ``registry`` in Prometheus' text format, and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
