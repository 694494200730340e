"""The Kafka source with checkpoints: offsets committed after the checkpoint, and a
resumed job reads from the checkpoint's offsets, not the group's."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest
from test_kafka_source import (
    HANG_GUARD,
    TIMINGS,
    ReceiverEvents,
    outage_source,
    received,
    source_for,
    values,
)

from streamio import StreamingContext
from streamio.connectors.kafka.testing import create_topic, start_broker
from streamio.testing import ListSink, ManualClock, step

# the loop of the test process does not matter here: one is enough
pytestmark = pytest.mark.asyncio(loop_factories=["uvloop"])


def add(new: list[int], old: int | None) -> int:
    return sum(new) + (old or 0)


def counting_job(directory: Path, source: Any, sink: ListSink[Any]):
    def setup() -> StreamingContext:
        ssc = StreamingContext(1.0, clock=ManualClock(), receiver_restart_backoff=0)
        ssc.checkpoint(directory, 1.0)
        stream = source.stream(ssc)
        pairs = stream.map(lambda record: (record.value, 1))
        pairs.update_state_by_key(add, name="counts").foreach_batch(sink, name="out")
        return ssc

    return setup


async def test_a_resumed_job_reads_from_the_checkpoints_offsets(kafka: Any, tmp_path: Path) -> None:
    topic = await kafka.topic(partitions=2)
    await kafka.produce(topic, values(0, 6, partitions=2))
    first_group = kafka.name("group")
    source = source_for(kafka, topic, first_group, value_deserializer="str")
    sink: ListSink[Any] = ListSink()
    async with StreamingContext.get_or_create(
        tmp_path, counting_job(tmp_path, source, sink)
    ) as ssc:
        await ssc.start()
        await received(source, 6)
        await step(ssc)
    assert sum(dict(sink.batches[-1][1]).values()) == 6
    assert await kafka.committed(first_group, topic, 2) == [3, 3]  # after the checkpoint

    await kafka.produce(topic, values(6, 10, partitions=2))
    # a group that never committed: without the checkpoint it would read from offset 0
    other_group = kafka.name("group")
    source = source_for(kafka, topic, other_group, value_deserializer="str")
    sink = ListSink()
    async with StreamingContext.get_or_create(
        tmp_path, counting_job(tmp_path, source, sink)
    ) as ssc:
        assert ssc.resumed
        await ssc.start()
        await received(source, 4)
        await ssc.clock.advance(2.0)  # type: ignore[attr-defined]
    assert sink.times == [2.0]
    counts = dict(sink.batches[0][1])
    assert counts == {f"v{i}": 1 for i in range(10)}  # each record counted once
    assert await kafka.committed(other_group, topic, 2) == [5, 5]


async def test_a_broker_frozen_past_the_session_timeout_loses_nothing(
    kafka: Any, tmp_path: Path
) -> None:
    with start_broker() as broker:  # a broker of its own, to freeze
        servers = broker.bootstrap_servers
        topic = kafka.name("topic")
        await create_topic(servers, topic)
        await kafka.on(servers).produce(topic, values(0, 3))
        source = outage_source(servers, topic, kafka.name("group"))
        listener = ReceiverEvents()
        sink: ListSink[Any] = ListSink()
        setup = counting_job(tmp_path, source, sink)
        async with StreamingContext.get_or_create(tmp_path, setup) as ssc:
            ssc.add_listener(listener)
            await ssc.start()
            await received(source, 3)
            await step(ssc)
            os.kill(broker.pid, signal.SIGSTOP)
            try:
                with anyio.fail_after(HANG_GUARD):
                    await source.wait_until(lambda stats: stats.broker_failures >= 1)
                # frozen for longer than the group's session timeout (2 s)
                await anyio.sleep(TIMINGS["session_timeout_ms"] / 1000 + 0.5)
                await step(ssc)  # a batch during the outage: empty, checkpointed
            finally:
                os.kill(broker.pid, signal.SIGCONT)
            await kafka.on(servers).produce(topic, values(3, 6))
            await received(source, 6)
            await step(ssc)
    assert ssc.error is None  # the job kept running
    assert listener.errors  # the outage was reported
    assert dict(sink.batches[-1][1]) == {f"v{i}": 1 for i in range(6)}  # nothing lost or doubled
