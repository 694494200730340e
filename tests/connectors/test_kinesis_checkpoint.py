"""The Kinesis source with checkpoints: a resumed job starts each shard after the
sequence numbers its checkpoint holds, not at ``initial_position``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from test_kinesis import HANG_GUARD, create, data_of, lines, put, source_for, stream_name

from streamio import StreamingContext
from streamio.connectors.kinesis import KinesisRecord, KinesisSource
from streamio.testing import ListSink, ManualClock

pytestmark = pytest.mark.asyncio(loop_factories=["uvloop"])


async def run(
    directory: Path,
    server: Any,
    stream: str,
    *,
    new: list[str],
    expect: int,
    until: float,
    graceful: bool,
) -> tuple[list[str], KinesisSource]:
    """One run of a checkpointed job (every 2 s) reading ``stream`` from the oldest
    record; ``new`` lines are put once it started, ``expect`` records awaited."""
    sink: ListSink[KinesisRecord] = ListSink()
    sources: list[KinesisSource] = []

    def setup() -> StreamingContext:
        ssc = StreamingContext(1.0, clock=ManualClock(), receiver_restart_backoff=0)
        ssc.checkpoint(directory, 2.0)
        source = source_for(server, stream)  # TRIM_HORIZON, unless restored
        sources.append(source)
        source.stream(ssc).foreach_batch(sink, name="out")
        return ssc

    async with StreamingContext.get_or_create(directory, setup) as ssc:
        await ssc.start()
        await put(server, stream, new)
        (source,) = sources
        with anyio.fail_after(HANG_GUARD):
            await source.wait_until(lambda stats: stats.received >= expect)
            await ssc.clock.advance(until)  # type: ignore[attr-defined]
        ssc.stop(graceful=graceful)
    return data_of(sink.records), source


async def test_a_resumed_job_reads_after_its_checkpoint_not_from_the_oldest_record(
    moto_server, tmp_path
):
    stream, directory = stream_name(), tmp_path / "checkpoint"
    await create(moto_server, stream, shards=2)
    first, source = await run(
        directory, moto_server, stream, new=lines("a", 0, 4), expect=4, until=2.0, graceful=True
    )
    assert sorted(first) == lines("a", 0, 4)
    assert source.statistics().committed == source.statistics().position
    # the grid resumes at 3.0, a batch no checkpoint (every 2 s) covers: the crash
    # leaves "b" to be read again, while "a" (checkpointed) is not
    second, _ = await run(
        directory, moto_server, stream, new=lines("b", 0, 2), expect=2, until=3.0, graceful=False
    )
    assert sorted(second) == lines("b", 0, 2)
    third, _ = await run(
        directory, moto_server, stream, new=["c0"], expect=3, until=3.0, graceful=True
    )
    assert sorted(third) == ["b0", "b1", "c0"]
