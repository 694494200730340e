"""The metrics registry and the Prometheus exporter, scraped over HTTP from a running job."""

from __future__ import annotations

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Mount
from web import serve_with_uvicorn

from streamio import (
    BatchInfo,
    ContextStateError,
    ManualClock,
    Receiver,
    ReceiverInfo,
    StreamingContext,
)
from streamio.metrics import Histogram, MetricsRegistry
from streamio.testing import ListSink, MemorySource

# Upper bound for a wait that only a bug could make endless.
HANG_GUARD = 10


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def test_histogram_counts_each_value_in_its_bucket():
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 2.0):
        histogram.observe(value)
    assert histogram.cumulative() == [(0.1, 2), (1.0, 3), (float("inf"), 4)]
    assert histogram.count == 4
    assert histogram.sum == pytest.approx(2.65)


def test_registry_reads_the_fields_other_parts_of_the_runtime_add_when_present():
    registry = MetricsRegistry()
    plain = BatchInfo(1.0, {"a": 3, "b": 1}, 1.0, 1.0, 1.5)
    registry.on_batch_completed(plain)
    failed = BatchInfo(2.0, {"a": 2}, 2.25, 2.25, 2.5)
    failed.error = ValueError("boom")  # type: ignore[attr-defined]
    failed.records_skipped = {"parse": 2}  # type: ignore[attr-defined]
    failed.records_dead_lettered = {"parse": 1}  # type: ignore[attr-defined]
    failed.rate_limits = {"a": 250.0}  # type: ignore[attr-defined]
    registry.on_batch_completed(failed)
    assert registry.records_in == {"a": 5, "b": 1}
    assert (registry.batches_completed, registry.batches_failed) == (1, 1)
    assert registry.scheduling_delay.sum == pytest.approx(0.25)
    assert registry.total_delay.sum == pytest.approx(0.5 + 0.5)
    assert registry.records_skipped == {"parse": 2}
    assert registry.records_dead_lettered == {"parse": 1}
    assert registry.rate_limits == {"a": 250.0}


def test_registry_counts_restarts_and_errors_per_input():
    registry = MetricsRegistry()
    registry.on_receiver_started(ReceiverInfo("lines", 1))
    registry.on_receiver_error(ReceiverInfo("lines", 1, ValueError("down")))
    registry.on_receiver_started(ReceiverInfo("lines", 2))
    assert registry.receiver_restarts == {"lines": 1}
    assert registry.receiver_errors == {"lines": 1}


class FailsFirst(Receiver[str]):
    """Its first run stores one record and raises; the second stores one and waits."""

    def __init__(self) -> None:
        self.attempts = 0

    async def run(self, output) -> None:
        self.attempts += 1
        await output.put_many([f"run {self.attempts}"])
        if self.attempts == 1:
            raise ConnectionError("dropped")
        await anyio.sleep_forever()


async def test_metrics_scraped_during_a_running_job_match_its_records():
    clock = ManualClock()
    source: MemorySource[str] = MemorySource()
    sink: ListSink[str] = ListSink()
    batches = [["a b", "c"], [], ["d e f"]]
    with anyio.fail_after(HANG_GUARD):
        async with StreamingContext(
            batch_interval=1.0, clock=clock, dashboard=0, buffer_capacity=100
        ) as ssc:
            queued = ssc.queue_stream(list(batches), name="queued")
            pushed = ssc.receiver_stream(source, name="pushed")
            flaky = ssc.receiver_stream(FailsFirst(), name="flaky")
            words = queued.union(pushed, flaky).flat_map(str.split, name="split")
            words.foreach_batch(sink, name="words")
            await ssc.start()
            await source.send(["x y", "z"])
            await clock.advance(3.0)
            await source.send(["w"])  # buffered, not in any batch yet
            assert ssc.dashboard_url is not None
            metrics = await scrape(ssc.dashboard_url + "metrics")

            assert metrics["streamio_input_records_total", (("input", "queued"),)] == 3
            assert metrics["streamio_input_records_total", (("input", "pushed"),)] == 2
            assert metrics["streamio_input_records_total", (("input", "flaky"),)] == 2
            assert metrics["streamio_output_records_total", (("output", "words"),)] == len(
                sink.records
            )
            assert len(sink.records) == 3 + 3 + 3 + 4  # words: queued, pushed, flaky
            assert metrics["streamio_batches_completed_total", ()] == 3
            assert metrics["streamio_batches_failed_total", ()] == 0
            assert metrics["streamio_input_buffer_records", (("input", "pushed"),)] == 1
            assert metrics["streamio_input_buffer_capacity_records", (("input", "pushed"),)] == 100
            assert metrics["streamio_receiver_restarts_total", (("input", "flaky"),)] == 1
            assert metrics["streamio_receiver_errors_total", (("input", "flaky"),)] == 1
            for name in ("processing_time", "scheduling_delay", "total_delay"):
                histogram = f"streamio_batch_{name}_seconds"
                assert metrics[f"{histogram}_count", ()] == 3
                assert metrics[f"{histogram}_bucket", (("le", "+Inf"),)] == 3
            assert metrics["streamio_batch_interval_seconds", ()] == 1.0

            await clock.advance(1.0)
            later = await scrape(ssc.dashboard_url + "metrics")
            assert later["streamio_input_records_total", (("input", "pushed"),)] == 3
            assert later["streamio_batches_completed_total", ()] == 4


async def test_metrics_app_mounts_on_its_own_in_the_applications_server():
    clock = ManualClock()
    with anyio.fail_after(HANG_GUARD):
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            ssc.queue_stream([[1, 2, 3]], name="numbers").foreach_batch(ListSink(), name="kept")
            app = Starlette(routes=[Mount("/metrics", ssc.metrics_app())])
            await ssc.start()
            await clock.advance(1.0)
            async with serve_with_uvicorn(app) as url:
                metrics = await scrape(f"{url}/metrics/")
    assert metrics["streamio_input_records_total", (("input", "numbers"),)] == 3
    assert metrics["streamio_output_records_total", (("output", "kept"),)] == 3


async def test_the_exporter_is_set_up_before_start():
    async with StreamingContext(batch_interval=1.0, clock=ManualClock()) as ssc:
        ssc.queue_stream([[1]]).foreach_batch(ListSink())
        ssc.start()
        with pytest.raises(ContextStateError, match="before start"):
            ssc.metrics_app()


async def test_checkpoints_are_counted_with_their_size_and_duration(tmp_path):
    clock = ManualClock()
    with anyio.fail_after(HANG_GUARD):
        async with StreamingContext(batch_interval=1.0, clock=clock, dashboard=0) as ssc:
            ssc.checkpoint(tmp_path / "checkpoint", interval=1.0)
            source: MemorySource[tuple[str, int]] = MemorySource()
            pairs = ssc.receiver_stream(source, name="pairs")
            pairs.update_state_by_key(lambda new, total: (total or 0) + sum(new)).foreach_batch(
                ListSink(), name="totals"
            )
            await ssc.start()
            for batch in ([("a", 1)], [("a", 2)], [("b", 1)]):
                await source.send(batch)
                await clock.advance(1.0)
            metrics = await scrape(ssc.dashboard_url + "metrics")
            async with httpx.AsyncClient(base_url=ssc.dashboard_url) as http:
                state = (await http.get("api/state")).json()
    assert metrics["streamio_checkpoints_total", ()] == 3
    assert metrics["streamio_checkpoint_written_bytes_total", ()] > 0
    assert metrics["streamio_checkpoint_duration_seconds_count", ()] == 3
    assert metrics["streamio_checkpoint_last_bytes", ()] > 0
    assert state["checkpoint"]["batch_time"] == 3.0 and state["checkpoint"]["count"] == 3
    assert [batch["checkpoint"]["batch_time"] for batch in state["batches"]] == [1.0, 2.0, 3.0]
