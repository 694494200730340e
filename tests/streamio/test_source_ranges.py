"""The source ranges an output learns for each batch (``stream.source_ranges``):
start and end positions per upstream input, through operators, unions and
windows; empty batches; asked outside the batch; sinks told their stream."""

from __future__ import annotations

from typing import Any

import pytest

from streamio import ContextStateError, DStream, SourceRange, StreamingContext
from streamio.abc import Sink
from streamio.testing import ManualClock, MemorySource, step


def context() -> StreamingContext:
    return StreamingContext(batch_interval=1.0, clock=ManualClock())


async def test_each_batch_covers_from_the_previous_end_to_its_own():
    seen: list[dict[str, SourceRange]] = []
    async with context() as ssc:
        source: MemorySource[str] = MemorySource()
        lines = ssc.receiver_stream(source, name="lines")
        words = lines.flat_map(str.split).map(lambda w: (w, 1)).reduce_by_key(lambda a, b: a + b)
        words.foreach_batch(lambda time, _: seen.append(words.source_ranges(time)))
        await ssc.start()
        await source.send(["a b", "b"])
        await step(ssc)
        await source.send(["c"])
        await source.send(["d", "e"])
        await step(ssc)
        await step(ssc)  # nothing new
    assert [r["lines"] for r in seen] == [
        SourceRange("lines", 1.0, None, 2),
        SourceRange("lines", 2.0, 2, 5),
        SourceRange("lines", 3.0, 5, 5),
    ]
    assert [r["lines"].advanced for r in seen] == [True, True, False]


async def test_a_union_has_the_ranges_of_every_input_and_a_window_those_of_its_batch():
    seen: dict[str, list[dict[str, SourceRange]]] = {"union": [], "window": []}
    async with context() as ssc:
        left: MemorySource[int] = MemorySource()
        right: MemorySource[int] = MemorySource()
        both = ssc.receiver_stream(left, name="left").union(
            ssc.receiver_stream(right, name="right")
        )
        windowed = both.window(2.0, 1.0)
        both.foreach_batch(lambda time, _: seen["union"].append(both.source_ranges(time)))
        windowed.foreach_batch(lambda t, _: seen["window"].append(windowed.source_ranges(t)))
        await ssc.start()
        await left.send([1, 2, 3])
        await step(ssc)
        await right.send([4])
        await step(ssc)
    assert seen["union"] == seen["window"]
    assert seen["union"] == [
        {"left": SourceRange("left", 1.0, None, 3), "right": SourceRange("right", 1.0, None, None)},
        {"left": SourceRange("left", 2.0, 3, 3), "right": SourceRange("right", 2.0, None, 1)},
    ]


async def test_ranges_asked_outside_their_batch_say_when_to_ask():
    errors: list[BaseException] = []
    async with context() as ssc:
        source: MemorySource[int] = MemorySource()
        stream = ssc.receiver_stream(source, name="numbers")

        def output(time: float, _: list[Any]) -> None:
            try:
                stream.source_ranges(time - 1.0)
            except ContextStateError as exc:
                errors.append(exc)

        stream.foreach_batch(output)
        with pytest.raises(ContextStateError, match="while that batch is output"):
            stream.source_ranges(1.0)  # not started
        await ssc.start()
        await step(ssc)
    assert len(errors) == 1
    assert "batch 0.0 of 'numbers'" in str(errors[0])


async def test_foreach_batch_tells_a_sink_its_stream():
    class Remember(Sink[int]):
        def __init__(self) -> None:
            self.streams: list[DStream[Any]] = []
            self.ranges: list[SourceRange] = []

        def attach(self, stream: DStream[Any]) -> None:
            self.streams.append(stream)

        async def __call__(self, batch_time: float, records: list[int]) -> None:
            self.ranges.extend(self.streams[0].source_ranges(batch_time).values())

    sink = Remember()
    async with sink, context() as ssc:
        source: MemorySource[int] = MemorySource()
        evens = ssc.receiver_stream(source, name="n").filter(lambda n: n % 2 == 0)
        evens.foreach_batch(sink)
        await ssc.start()
        await source.send([1, 2, 3])
        await step(ssc)
    assert [s.name for s in sink.streams] == [evens.name]
    assert sink.ranges == [SourceRange("n", 1.0, None, 3)]
