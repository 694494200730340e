"""Per-record error policies: ``on_error="fail" | "skip" | "dead_letter"``."""

from __future__ import annotations

import collections
import operator
from typing import Any

import pytest

from streamio import (
    BatchInfo,
    ConfigurationError,
    DeadLetter,
    ManualClock,
    OperatorError,
    StreamingContext,
    StreamingListener,
)
from streamio.testing import ListSink, step

WHERE = ["inline", "process"]


class Infos(StreamingListener):
    def __init__(self) -> None:
        self.batches: list[BatchInfo] = []

    def on_batch_completed(self, info: BatchInfo) -> None:
        self.batches.append(info)

    @property
    def skipped(self) -> list[dict[str, int]]:
        return [info.records_skipped for info in self.batches]

    @property
    def dead_lettered(self) -> list[dict[str, int]]:
        return [info.records_dead_lettered for info in self.batches]


async def run_job(build, batches, *, partition_size=10_000, where="inline", dead=False):
    """Run ``build(stream)`` over ``batches`` from a queue stream. Returns the records
    of each batch, the dead letters of each batch (when ``dead``) and the infos."""
    clock = ManualClock()
    sink: ListSink[Any] = ListSink()
    letters: ListSink[DeadLetter] = ListSink()
    infos = Infos()
    options: dict[str, Any] = {"partition_size": partition_size}
    if where == "process":
        options.update(executor="process", max_workers=1)
    async with StreamingContext(batch_interval=1.0, clock=clock, **options) as ssc:
        out = build(ssc.queue_stream(list(batches)))
        out.foreach_batch(sink)
        if dead:
            out.dead_letters().foreach_batch(letters)
        ssc.add_listener(infos)
        await ssc.start()
        await step(ssc, len(batches))
    records = [records for _, records in sink.batches]
    return records, [records for _, records in letters.batches], infos


def parse(text: str) -> int:
    return int(text)


def halve(x: int) -> list[int]:
    if x % 2:
        raise ValueError(f"odd {x}")
    return [x // 2, x // 2]


def even(x: int) -> bool:
    if x < 0:
        raise ValueError("negative")
    return x % 2 == 0


OPERATORS = [
    # (operator, function, batches, kept, refused)
    ("map", parse, [["1", "x", "3"], ["y"]], [[1, 3], []], [["x"], ["y"]]),
    ("flat_map", halve, [[2, 3, 4], [5]], [[1, 1, 2, 2], []], [[3], [5]]),
    ("filter", even, [[2, -1, 3, 4], []], [[2, 4], []], [[-1], []]),
    (
        "map_values",
        parse,
        [[("a", "1"), ("b", "x")], [("c", "2")]],
        [[("a", 1)], [("c", 2)]],
        [[("b", "x")], []],
    ),
    (
        "flat_map_values",
        halve,
        [[("a", 2), ("b", 1)], [("c", 3)]],
        [[("a", 1), ("a", 1)], []],
        [[("b", 1)], [("c", 3)]],
    ),
]


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize(("kind", "fn", "batches", "kept", "refused"), OPERATORS)
async def test_skip_leaves_out_and_counts_each_refused_record(
    kind, fn, batches, kept, refused, where
):
    build = lambda s: getattr(s, kind)(fn, on_error="skip", name="op")  # noqa: E731
    records, _, infos = await run_job(build, batches, where=where)
    assert records == kept
    assert infos.skipped == [{"op": len(r)} if r else {} for r in refused]
    assert infos.dead_lettered == [{}, {}]


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize(("kind", "fn", "batches", "kept", "refused"), OPERATORS)
async def test_dead_letters_hold_each_refused_record_with_its_error(
    kind, fn, batches, kept, refused, where
):
    build = lambda s: getattr(s, kind)(fn, on_error="dead_letter", name="op")  # noqa: E731
    records, letters, infos = await run_job(build, batches, where=where, dead=True)
    assert records == kept
    assert [[letter.record for letter in batch] for batch in letters] == refused
    for time, batch in enumerate(letters, start=1):
        for letter in batch:
            assert isinstance(letter, DeadLetter)
            assert isinstance(letter.error, ValueError)
            assert (letter.operator, letter.batch_time) == ("op", float(time))
    assert infos.dead_lettered == [{"op": len(r)} if r else {} for r in refused]
    assert infos.skipped == [{}, {}]


@pytest.mark.parametrize("where", WHERE)
async def test_fail_is_the_default_and_fails_the_batch(where):
    with pytest.raises(OperatorError, match="invalid literal") as raised:
        await run_job(lambda s: s.map(parse, name="op"), [["1", "x"]], where=where)
    assert raised.value.operator == "op"


async def test_an_error_in_a_step_without_a_policy_still_fails_the_batch():
    def build(s):
        return s.map(parse, on_error="skip", name="tolerant").map(
            lambda x: 10 // x, name="strict"
        )

    with pytest.raises(OperatorError) as raised:
        await run_job(build, [["1", "x", "0"]])
    assert raised.value.operator == "strict"
    assert isinstance(raised.value.__cause__, ZeroDivisionError)


@pytest.mark.parametrize("where", WHERE)
async def test_fused_steps_with_policies_each_count_their_own(where):
    def build(s):
        return (
            s.map(parse, on_error="skip", name="parse")
            .filter(even, on_error="skip", name="even")
            .map(lambda x: (x % 3, 1))
            .reduce_by_key(operator.add)
        )

    records, _, infos = await run_job(build, [["4", "x", "-2", "6", "y", "3"]], where=where)
    assert sorted(records[0]) == [(0, 1), (1, 1)]
    assert infos.skipped == [{"parse": 2, "even": 1}]


async def test_the_error_free_path_calls_each_function_once_per_record():
    calls: collections.Counter[int] = collections.Counter()

    def counted(x: int) -> int:
        calls[x] += 1
        if x == 4:
            raise ValueError("four")
        return x

    # partitions of 2: [0, 1] [2, 3] [4, 5]; only the partition of 4 runs again
    records, _, infos = await run_job(
        lambda s: s.map(counted, on_error="skip", name="op"), [list(range(6))], partition_size=2
    )
    assert records == [[0, 1, 2, 3, 5]]
    assert calls == {0: 1, 1: 1, 2: 1, 3: 1, 4: 2, 5: 1}
    assert infos.skipped == [{"op": 1}]


async def test_a_flat_map_that_fails_half_way_through_a_record_gives_none_of_it():
    def spread(x: int):
        yield x
        if x == 2:
            raise ValueError("two")
        yield x * 10

    records, letters, _ = await run_job(
        lambda s: s.flat_map(spread, on_error="dead_letter"), [[1, 2, 3]], dead=True
    )
    assert records == [[1, 10, 3, 30]]
    assert [letter.record for letter in letters[0]] == [2]


async def test_a_skipping_map_before_a_state_update_counts_what_it_skipped():
    def build(s):
        pairs = s.map(lambda w: (w, int(w[1:])), on_error="skip", name="pairs")
        return pairs.update_state_by_key(lambda vs, old: (old or 0) + sum(vs))

    records, _, infos = await run_job(build, [["a1", "a", "b2"], ["a3", "bx"]])
    assert records == [[("a1", 1), ("b2", 2)], [("a1", 1), ("b2", 2), ("a3", 3)]]
    assert infos.skipped == [{"pairs": 1}, {"pairs": 1}]


async def test_the_dead_letters_stream_may_be_output_before_its_operator():
    clock = ManualClock()
    sink: ListSink[int] = ListSink()
    letters: ListSink[DeadLetter] = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        parsed = ssc.queue_stream([["1", "x"]]).map(parse, on_error="dead_letter")
        parsed.dead_letters().foreach_batch(letters)
        parsed.foreach_batch(sink)
        await ssc.start()
        await step(ssc, 1)
    assert sink.batches == [(1.0, [1])]
    assert [letter.record for letter in letters.records] == ["x"]


async def test_dead_letters_that_nothing_reads_fail_at_start():
    async with StreamingContext(batch_interval=1.0, clock=ManualClock()) as ssc:
        parsed = ssc.queue_stream([["1"]]).map(parse, on_error="dead_letter", name="parse")
        parsed.dead_letters()  # no output on it
        parsed.foreach_batch(lambda records: None)
        with pytest.raises(ConfigurationError, match="'parse' sends the records it refuses"):
            ssc.start()


async def test_dead_letters_of_a_stream_that_sends_none_fail_when_built():
    async with StreamingContext(batch_interval=1.0, clock=ManualClock()) as ssc:
        parsed = ssc.queue_stream([["1"]]).map(parse, on_error="skip", name="parse")
        with pytest.raises(ConfigurationError, match=r"dead_letters\(\) of 'parse'"):
            parsed.dead_letters()


@pytest.mark.parametrize("policy", ["ignore", None, "Skip"])
async def test_a_wrong_policy_fails_when_the_graph_is_built(policy):
    async with StreamingContext(batch_interval=1.0, clock=ManualClock()) as ssc:
        with pytest.raises(ConfigurationError, match=r'filter\(\): on_error must be "fail"'):
            ssc.queue_stream([]).filter(even, on_error=policy)
