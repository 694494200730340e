"""The directory source with checkpoints: the checkpoint says which files are done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from test_files import HANG_GUARD, drop_file, wait_buffered

from streamio import StreamingContext
from streamio.connectors.files import text_file_stream
from streamio.testing import ListSink, ManualClock

# the loop of the test process does not matter here: one is enough
pytestmark = pytest.mark.asyncio(loop_factories=["uvloop"])


def job(directory: Path, incoming: Path, sink: ListSink[Any], seen: list[Any]):
    def setup() -> StreamingContext:
        ssc = StreamingContext(1.0, clock=ManualClock(), receiver_restart_backoff=0)
        ssc.checkpoint(directory, 2.0)
        lines = text_file_stream(ssc, incoming, rescan_interval=0.05)
        seen.append(lines)
        lines.foreach_batch(sink, name="out")
        return ssc

    return setup


async def run(
    directory: Path,
    incoming: Path,
    files: dict[str, list[str]],
    until: float,
    *,
    graceful: bool,
    buffered: int,
) -> list[str]:
    sink: ListSink[str] = ListSink()
    seen: list[Any] = []
    async with StreamingContext.get_or_create(
        directory, job(directory, incoming, sink, seen)
    ) as ssc:
        await ssc.start()
        for name, lines in files.items():
            await anyio.to_thread.run_sync(drop_file, incoming, name, lines)
        await wait_buffered(seen[0], buffered)
        with anyio.fail_after(HANG_GUARD):
            await ssc.clock.advance(until)  # type: ignore[attr-defined]
        ssc.stop(graceful=graceful)
    return sink.records


async def test_a_resumed_job_reads_the_files_its_checkpoint_does_not_list(tmp_path: Path) -> None:
    incoming, directory = tmp_path / "incoming", tmp_path / "ckpt"
    incoming.mkdir()
    assert await run(directory, incoming, {"a": ["a1", "a2"]}, 2.0, graceful=True, buffered=2) == [
        "a1",
        "a2",
    ]
    # checkpointed at 2.0; "b" arrives in batch 3, which no checkpoint covers: the crash
    # leaves it to be read again, while "a" (done) is not
    assert await run(directory, incoming, {"b": ["b1"]}, 3.0, graceful=False, buffered=1) == ["b1"]
    assert await run(directory, incoming, {"c": ["c1"]}, 3.0, graceful=True, buffered=2) == [
        "b1",
        "c1",
    ]
