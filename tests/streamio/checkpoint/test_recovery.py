"""A job resumes from its checkpoint with its state exact (manual clock, in process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamio import StreamingContext
from streamio.errors import CheckpointError, ConfigurationError
from streamio.testing import ListSink, ManualClock, MemorySource


def add(new: list[int], old: int | None) -> int:
    return sum(new) + (old or 0)


class Job:
    """A running word count whose source and sink survive the contexts that read them."""

    def __init__(self, directory: Path, interval: float = 1.0, **checkpoint: Any) -> None:
        self.directory = directory
        self.interval = interval
        self.checkpoint = checkpoint
        self.history: list[list[str]] = []  # every chunk ever sent, for replay

    def setup(self, source: MemorySource[str], sink: ListSink[Any], clock: ManualClock):
        def build() -> StreamingContext:
            ssc = StreamingContext(1.0, clock=clock)
            ssc.checkpoint(self.directory, self.interval, **self.checkpoint)
            words = ssc.receiver_stream(source, name="words")
            counts = words.map(lambda w: (w, 1)).update_state_by_key(add, name="counts")
            counts.foreach_batch(sink, name="out")
            return ssc

        return build


async def test_a_restarted_job_resumes_its_state_and_position(tmp_path: Path) -> None:
    job = Job(tmp_path / "ckpt")
    clock, source, sink = ManualClock(), MemorySource(), ListSink()
    async with StreamingContext.get_or_create(job.directory, job.setup(source, sink, clock)) as ssc:
        assert not ssc.resumed
        await ssc.start()
        await source.send(["a", "b", "a"])
        await clock.advance(1.0)
    assert dict(sink.batches[-1][1]) == {"a": 2, "b": 1}
    assert source.commits == [3]

    clock, source, sink = ManualClock(), MemorySource(), ListSink()
    async with StreamingContext.get_or_create(job.directory, job.setup(source, sink, clock)) as ssc:
        assert ssc.resumed
        await ssc.start()
        assert source.restored == 3
        await source.send(["a", "b", "a"])  # the history again: skipped
        await source.send(["b", "c"])
        await clock.advance(2.0)
    assert sink.times == [2.0]  # the grid goes on after the checkpoint's batch
    assert dict(sink.batches[0][1]) == {"a": 2, "b": 2, "c": 1}


async def test_a_crash_between_checkpoints_replays_what_they_did_not_cover(
    tmp_path: Path,
) -> None:
    job = Job(tmp_path / "ckpt", interval=2.0)
    clock, source, sink = ManualClock(), MemorySource(), ListSink()
    async with StreamingContext.get_or_create(job.directory, job.setup(source, sink, clock)) as ssc:
        await ssc.start()
        for chunk in (["a"], ["a", "b"], ["c"]):
            await source.send(chunk)
            await clock.advance(1.0)
        assert dict(sink.batches[-1][1]) == {"a": 2, "b": 1, "c": 1}
        ssc.stop(graceful=False)  # as if killed: the checkpoint of batch 2 is the last
    assert source.commits == [3]  # committed by the checkpoint at 2.0, not after batch 3

    clock, source, sink = ManualClock(), MemorySource(), ListSink()
    async with StreamingContext.get_or_create(job.directory, job.setup(source, sink, clock)) as ssc:
        await ssc.start()
        for chunk in (["a"], ["a", "b"], ["c"]):  # replayed from the source
            await source.send(chunk)
        await clock.advance(3.0)
    assert sink.times == [3.0]
    assert dict(sink.batches[0][1]) == {"a": 2, "b": 1, "c": 1}  # "c" counted once


async def test_checkpoints_are_written_every_interval_and_at_a_graceful_stop(
    tmp_path: Path,
) -> None:
    written: list[float] = []

    class Checkpoints:
        def on_checkpoint_written(self, info: Any) -> None:
            written.append(info.batch_time)

    job = Job(tmp_path / "ckpt", interval=3.0)
    clock, source, sink = ManualClock(), MemorySource(), ListSink()
    ssc = job.setup(source, sink, clock)()
    ssc.add_listener(Checkpoints())
    async with ssc:
        await ssc.start()
        for _ in range(7):
            await source.send(["x"])
            await clock.advance(1.0)
        assert written == [3.0, 6.0]
        assert source.commits == [3, 6]  # positions wait for the checkpoint
    assert written == [3.0, 6.0, 7.0]
    assert source.commits == [3, 6, 7]


def test_the_interval_must_be_a_multiple_of_the_batch_interval(tmp_path: Path) -> None:
    ssc = StreamingContext(2.0)
    with pytest.raises(ConfigurationError, match="multiple of the batch interval"):
        ssc.checkpoint(tmp_path, 3.0)


def test_a_queue_stream_cannot_be_checkpointed(tmp_path: Path) -> None:
    ssc = StreamingContext(1.0)
    ssc.queue_stream([[1]])
    with pytest.raises(ConfigurationError, match=r"queue_stream .* cannot be checkpointed"):
        ssc.checkpoint(tmp_path)
    later = StreamingContext(1.0)
    later.checkpoint(tmp_path)
    with pytest.raises(ConfigurationError, match="cannot be checkpointed"):
        later.queue_stream([[1]])


async def test_a_plain_context_does_not_overwrite_an_earlier_checkpoint(tmp_path: Path) -> None:
    job = Job(tmp_path / "ckpt")
    clock, source, sink = ManualClock(), MemorySource(), ListSink()
    async with job.setup(source, sink, clock)() as ssc:
        await ssc.start()
        await source.send(["a"])
        await clock.advance(1.0)
    clock, source, sink = ManualClock(), MemorySource(), ListSink()
    with pytest.raises(CheckpointError, match="get_or_create"):
        async with job.setup(source, sink, clock)() as ssc:
            await ssc.start()
