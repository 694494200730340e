"""What sources say about each batch: ``put_many(metadata=)``, merged per batch into
``BatchInfo.input_metadata``."""

from __future__ import annotations

from typing import Any

from streamio import BatchInfo, ManualClock, Receiver, ReceiverOutput, StreamingContext
from streamio.buffer import ChunkBuffer, merge_metadata
from streamio.testing import ListSink


def test_merge_rules_dicts_by_key_lists_concatenated_ranges_spanned_others_replaced():
    merged: dict[str, Any] = {}
    first = {"files": ["a"], "offsets": {"t": {0: range(0, 10)}}, "lag": 5}
    merge_metadata(merged, first)
    merge_metadata(merged, {"files": ["b"], "offsets": {"t": {0: range(10, 15), 1: range(3, 4)}}})
    merge_metadata(merged, {"lag": 2, "host": "h"})
    assert merged == {
        "files": ["a", "b"],
        "offsets": {"t": {0: range(0, 15), 1: range(3, 4)}},
        "lag": 2,
        "host": "h",
    }
    # the chunk's own dicts and lists were copied, not changed
    assert first == {"files": ["a"], "offsets": {"t": {0: range(0, 10)}}, "lag": 5}


def test_a_chunks_metadata_goes_with_its_last_record():
    buffer: ChunkBuffer[int] = ChunkBuffer()
    buffer.put_many_nowait([1, 2, 3], metadata={"files": ["a"]})
    buffer.put_many_nowait([4], metadata={"files": ["b"]})
    buffer.put_many_nowait([5])  # none: nothing to merge
    described: dict[str, Any] = {}
    chunks, _ = buffer.take(2, described)
    assert (chunks, described) == ([[1, 2]], {})  # part of "a" only
    chunks, _ = buffer.take(None, described)
    assert chunks == [[3], [4], [5]]
    assert described == {"files": ["a", "b"]}


class Described(Receiver[str]):
    """Stores each file's lines with its name, as the directory source does."""

    def __init__(self, files: list[tuple[str, list[str]]]) -> None:
        self.files = files

    async def run(self, output: ReceiverOutput[str]) -> None:
        for name, lines in self.files:
            await output.put_many(lines, metadata={"files": [name]})


async def test_each_batch_gets_the_metadata_of_the_chunks_it_took():
    clock = ManualClock()
    completed: list[BatchInfo] = []

    class Completed:
        def on_batch_completed(self, info: BatchInfo) -> None:
            completed.append(info)

    receiver = Described([("a.txt", ["a1", "a2", "a3"]), ("b.txt", ["b1"]), ("c.txt", ["c1"])])
    sink: ListSink[str] = ListSink()
    async with StreamingContext(1.0, clock=clock) as ssc:
        ssc.add_listener(Completed())
        ssc.receiver_stream(receiver, name="files", max_rate=2).foreach_batch(sink)
        ssc.queue_stream([[1]], name="queued").foreach_batch(ListSink())
        await ssc.start()
        await clock.advance(4.0)
    assert sink.batches == [(1.0, ["a1", "a2"]), (2.0, ["a3", "b1"]), (3.0, ["c1"]), (4.0, [])]
    assert [info.input_metadata for info in completed] == [
        {},  # the first two lines of a.txt: its name comes with its last line
        {"files": {"files": ["a.txt", "b.txt"]}},
        {"files": {"files": ["c.txt"]}},
        {},
    ]
    assert [info.rate_limits for info in completed] == [{"files": 2.0}] * 4
