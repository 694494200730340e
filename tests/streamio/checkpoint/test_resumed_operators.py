"""Every kind of state resumes exactly: a job stopped hard after batch k and
resumed from its checkpoint gives, for the later batches, what one run that was
never interrupted gives (manual clock; MemorySource replays the history)."""

from __future__ import annotations

import operator
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streamio import DStream, State, StateSpec, StreamingContext
from streamio.checkpoint import JsonSerializer
from streamio.testing import ListSink, ManualClock, MemorySource

Build = Callable[[DStream[Any]], DStream[Any]]
BATCHES = 9


def words(seed: int) -> list[list[str]]:
    """Chunks of ``word@event_time`` records, event times near their batch's."""
    rng = random.Random(seed)
    return [
        [
            f"{rng.choice('abcde')}@{batch + rng.uniform(-1.5, 0.5):.3f}"
            for _ in range(rng.randrange(6))
        ]
        for batch in range(1, BATCHES + 1)
    ]


def word(record: str) -> str:
    return record.split("@", maxsplit=1)[0]


def timed(record: str) -> tuple[float, str]:
    name, at = record.split("@")
    return (float(at), name)


def remember_count(
    time: float, key: str, value: int | None, state: State[int]
) -> tuple[str, int | str]:
    if state.is_timing_out():
        return (key, "timed out")
    total = state.get_option(0) + (value or 0)
    state.update(total)
    return (key, total)


def timestamp(record: tuple[float, str]) -> float:
    return record[0]


PIPELINES: dict[str, Build] = {
    "window": lambda s: s.map(word).window(3.0, 1.0).count_by_value(),
    "sliding window of two": lambda s: s.map(word).window(4.0, 2.0).count_by_value(),
    "window of the input": lambda s: s.window(2.0, 1.0),
    "incremental reduce_by_key_and_window": lambda s: s.map(
        lambda r: (word(r), 1)
    ).reduce_by_key_and_window(operator.add, operator.sub, 3.0, 1.0),
    "reduce_by_key_and_window": lambda s: s.map(lambda r: (word(r), 1)).reduce_by_key_and_window(
        operator.add, None, 4.0, 2.0
    ),
    "count_by_window": lambda s: s.count_by_window(3.0, 1.0),
    "update_state_by_key": lambda s: s.map(lambda r: (word(r), 1)).update_state_by_key(
        lambda new, old: None if not new and old else sum(new) + (old or 0)
    ),
    "map_with_state with a timeout": lambda s: s.map(lambda r: (word(r), 1)).map_with_state(
        StateSpec(remember_count, timeout=2.0)
    ),
    "map_with_state snapshots": lambda s: (
        s.map(lambda r: (word(r), 1)).map_with_state(StateSpec(remember_count)).state_snapshots()
    ),
    "event-time windows": lambda s: s.map(timed).event_time_window(
        timestamp, 2.0, allowed_lateness=1.0
    ),
    "event-time late records": lambda s: (
        s.map(timed).event_time_window(timestamp, 1.0, 0.5).late_records()
    ),
    "session windows": lambda s: s.map(timed).session_window(
        timestamp, 0.7, allowed_lateness=0.5, key=lambda r: r[1]
    ),
}


def normal(records: list[Any]) -> list[Any]:
    return sorted(map(repr, records))


async def run(
    build: Build,
    history: list[list[str]],
    directory: Path | None,
    *,
    first: int = 1,
    last: int = BATCHES,
    interval: float = 1.0,
    **checkpoint: Any,
) -> dict[float, list[Any]]:
    """Batches first..last (1-based) of ``history``, one chunk per batch; with
    ``directory``, resumed from (and checkpointing into) it; stopped hard."""
    clock, source, sink = ManualClock(), MemorySource(), ListSink()

    def setup() -> StreamingContext:
        ssc = StreamingContext(1.0, clock=clock)
        if directory is not None:
            ssc.checkpoint(directory, interval, **checkpoint)
        build(ssc.receiver_stream(source, name="words")).foreach_batch(sink, name="out")
        return ssc

    ssc = StreamingContext.get_or_create(directory, setup) if directory else setup()
    async with ssc:
        await ssc.start()
        replay = first - 1 if ssc.resumed else 0
        for chunk in history[:replay]:  # the source gives the history again
            await source.send(chunk)
        await clock.advance(first - 1)
        for chunk in history[first - 1 : last]:
            await source.send(chunk)
            await clock.advance(1.0)
        ssc.stop(graceful=False)
    return {time: normal(records) for time, records in sink.batches}


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("crash_after", [1, 5])
async def test_a_resumed_job_goes_on_as_if_never_stopped(
    tmp_path: Path, pipeline: str, crash_after: int
) -> None:
    build, history = PIPELINES[pipeline], words(crash_after)
    expected = await run(build, history, None)
    directory = tmp_path / "ckpt"
    before = await run(build, history, directory, last=crash_after)
    after = await run(build, history, directory, first=crash_after + 1)
    assert {**before, **after} == expected
    assert after and min(after) > crash_after  # nothing before the checkpoint runs again


async def test_a_job_resumes_from_the_last_checkpoint_before_the_crash(tmp_path: Path) -> None:
    build, history = PIPELINES["incremental reduce_by_key_and_window"], words(3)
    expected = await run(build, history, None)
    directory = tmp_path / "ckpt"
    await run(build, history, directory, last=5, interval=2.0)  # checkpoint at 4, not 5
    after = await run(build, history, directory, first=5, interval=2.0)
    assert after == {time: records for time, records in expected.items() if time >= 5}


async def test_keyed_state_in_json(tmp_path: Path) -> None:
    build, history = PIPELINES["update_state_by_key"], words(5)
    expected = await run(build, history, None)
    directory = tmp_path / "ckpt"
    kept = {"serializer": JsonSerializer()}
    before = await run(build, history, directory, last=4, **kept)
    after = await run(build, history, directory, first=5, **kept)
    assert {**before, **after} == expected
