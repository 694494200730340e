"""The write-ahead log: what a source that cannot replay stored survives a crash."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest

from streamio import StreamingContext
from streamio.errors import ConfigurationError
from streamio.testing import ListSink, ManualClock


def add(new: list[int], old: int | None) -> int:
    return sum(new) + (old or 0)


def job(directory: Path, sink: ListSink[Any], **checkpoint: Any):
    """A word count over a push stream; the stream is found again as ``job.stream``."""

    def setup() -> StreamingContext:
        ssc = StreamingContext(1.0, clock=ManualClock())
        ssc.checkpoint(directory, 2.0, write_ahead_log=True, **checkpoint)
        setup.stream = ssc.push_stream(name="lines")  # type: ignore[attr-defined]
        pairs = setup.stream.map(lambda w: (w, 1))  # type: ignore[attr-defined]
        pairs.update_state_by_key(add, name="counts").foreach_batch(sink, name="out")
        return ssc

    return setup


async def send_logged(stream: Any, records: list[str]) -> None:
    """Send records and wait until the log has put them in the (empty) buffer."""
    await stream.send(records)
    with anyio.fail_after(10):
        await stream.wait_for_buffer(lambda stats: stats.used >= len(records))


def logged(directory: Path) -> list[int]:
    with sqlite3.connect(directory / "wal.sqlite") as db:
        return [seq for (seq,) in db.execute("SELECT seq FROM log ORDER BY seq")]


async def test_what_was_logged_after_the_checkpoint_is_replayed(tmp_path: Path) -> None:
    sink: ListSink[Any] = ListSink()
    setup = job(tmp_path, sink)
    async with StreamingContext.get_or_create(tmp_path, setup) as ssc:
        await ssc.start()
        stream = setup.stream  # type: ignore[attr-defined]
        for word in ("a", "b", "c"):
            await send_logged(stream, [word])
            await ssc.clock.advance(1.0)  # type: ignore[attr-defined]
        await send_logged(stream, ["d"])  # logged, in the buffer, never processed
        assert logged(tmp_path) == [3, 4]  # the checkpoint at 2.0 truncated 1 and 2
        ssc.stop(graceful=False)
    assert dict(sink.batches[-1][1]) == {"a": 1, "b": 1, "c": 1}

    sink = ListSink()
    setup = job(tmp_path, sink)
    async with StreamingContext.get_or_create(tmp_path, setup) as ssc:
        assert ssc.resumed
        await ssc.start()
        await ssc.clock.advance(3.0)  # type: ignore[attr-defined]
    assert sink.times == [3.0]
    assert dict(sink.batches[0][1]) == {"a": 1, "b": 1, "c": 1, "d": 1}  # c, d once
    assert logged(tmp_path) == []  # the final checkpoint covers the replayed entries


async def test_a_job_that_died_before_its_first_checkpoint_replays_the_whole_log(
    tmp_path: Path,
) -> None:
    sink: ListSink[Any] = ListSink()
    setup = job(tmp_path, sink)
    async with StreamingContext.get_or_create(tmp_path, setup) as ssc:
        await ssc.start()
        await send_logged(setup.stream, ["a", "b"])  # type: ignore[attr-defined]
        await ssc.clock.advance(1.0)  # type: ignore[attr-defined]
        ssc.stop(graceful=False)
    assert StreamingContext.has_checkpoint(tmp_path)
    sink = ListSink()
    async with StreamingContext.get_or_create(tmp_path, job(tmp_path, sink)) as ssc:
        await ssc.start()
        await ssc.clock.advance(1.0)  # type: ignore[attr-defined]
    assert sink.batches == [(1.0, [("a", 1), ("b", 1)])]


def test_an_in_process_stream_needs_the_log(tmp_path: Path) -> None:
    ssc = StreamingContext(1.0)
    ssc.push_stream()
    with pytest.raises(ConfigurationError, match="write_ahead_log=True"):
        ssc.checkpoint(tmp_path)

    async def lines():  # pragma: no cover - never iterated
        yield "a"

    logged_ssc = StreamingContext(1.0)
    logged_ssc.checkpoint(tmp_path, write_ahead_log=True)
    logged_ssc.from_async_iterable(lines())  # accepted: the log keeps what it gives
