"""Receivers: supervision and restarts, lifecycle, backpressure, positions, rate limits."""

from __future__ import annotations

import itertools
import tracemalloc
from collections import defaultdict
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from streamio import (
    ConfigurationError,
    ConnectorError,
    ContextState,
    ManualClock,
    OperatorError,
    Receiver,
    ReceiverError,
    ReceiverInfo,
    ReceiverOutput,
    StreamingContext,
    StreamingListener,
)
from streamio.buffer import BufferStatistics
from streamio.receiver import MAX_RESTART_BACKOFF
from streamio.testing import ListSink, MemorySource

# Upper bound for a wait that only a library bug could make endless.
HANG_GUARD = 10


def counts(stats: BufferStatistics) -> tuple[int, int | None, int]:
    """A buffer's statistics in records: used, capacity, waiting senders."""
    return stats.used, stats.capacity, stats.waiting_senders


class Boom(Exception):
    pass


class ReceiverEvents(StreamingListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, str, int, BaseException | None]] = []

    def on_receiver_started(self, info: ReceiverInfo) -> None:
        self.events.append(("started", info.stream, info.attempt, info.error))

    async def on_receiver_error(self, info: ReceiverInfo) -> None:
        await anyio.lowlevel.checkpoint()
        self.events.append(("error", info.stream, info.attempt, info.error))

    def on_receiver_stopped(self, info: ReceiverInfo) -> None:
        self.events.append(("stopped", info.stream, info.attempt, info.error))

    def summary(self) -> list[tuple[str, int]]:
        return [(event, attempt) for event, _, attempt, _ in self.events]


class ScriptedReceiver(Receiver[str]):
    """Logs its lifecycle; attempts listed in ``fail_open`` / ``fail_run`` raise.

    A run stores ``run-<attempt>`` and then raises if its attempt is in
    ``fail_run``; otherwise, when ``forever``, it waits until cancelled, or it
    returns (its source ended).
    """

    def __init__(
        self,
        *,
        fail_open: set[int] = frozenset(),
        fail_run: set[int] = frozenset(),
        forever: bool = True,
    ) -> None:
        self.fail_open = fail_open
        self.fail_run = fail_run
        self.forever = forever
        self.attempt = 0
        self.log: list[str] = []
        self.errors: list[Boom] = []
        self.stored: defaultdict[int, anyio.Event] = defaultdict(anyio.Event)

    async def open(self) -> None:
        self.attempt += 1
        self.log.append(f"open {self.attempt}")
        if self.attempt in self.fail_open:
            error = Boom(f"open {self.attempt}")
            self.errors.append(error)
            raise error

    async def run(self, output: ReceiverOutput[str]) -> None:
        self.log.append(f"run {self.attempt}")
        await output.put_many([f"run-{self.attempt}"])
        self.stored[self.attempt].set()
        if self.attempt in self.fail_run:
            error = Boom(f"run {self.attempt}")
            self.errors.append(error)
            raise error
        if self.forever:
            await anyio.sleep_forever()

    async def aclose(self) -> None:
        self.log.append(f"aclose {self.attempt}")


class Attempts(Receiver[str]):
    """Attempt ``n`` follows step ``script[n - 1]`` (the last step repeats):

    - "fail": raises at once, storing nothing;
    - "store, fail": stores ``run-<n>``, then raises;
    - "hold, fail": raises, storing nothing, once the test calls :meth:`fail`;
    - "store": stores ``run-<n>``, then waits until cancelled.

    ``opened_at`` has the clock's time at each ``open``.
    """

    def __init__(self, clock: ManualClock, script: list[str]) -> None:
        self.clock = clock
        self.script = script
        self.attempt = 0
        self.opened_at: list[float] = []
        self._failing = anyio.Event()

    async def open(self) -> None:
        self.attempt += 1
        self.opened_at.append(self.clock.now())

    async def run(self, output: ReceiverOutput[str]) -> None:
        step = self.script[min(self.attempt, len(self.script)) - 1]
        if step.startswith("store"):
            await output.put_many([f"run-{self.attempt}"])
        if step.startswith("hold"):
            self._failing = anyio.Event()
            await self._failing.wait()
        if step.endswith("fail"):
            raise Boom(f"attempt {self.attempt}")
        await anyio.sleep_forever()

    def fail(self) -> None:
        self._failing.set()


def context(clock: ManualClock, **kwargs: Any) -> StreamingContext:
    return StreamingContext(batch_interval=1.0, clock=clock, **kwargs)


# -- supervision: restarts, their budget and their backoff, on the context's clock --------


async def test_failing_receiver_is_restarted_after_a_backoff_then_its_error_stops_the_context():
    clock = ManualClock()
    receiver = Attempts(clock, ["fail"])
    listener = ReceiverEvents()
    with pytest.raises(ReceiverError) as info, anyio.fail_after(HANG_GUARD):
        async with context(clock, max_receiver_restarts=2) as ssc:
            ssc.add_listener(listener)
            ssc.receiver_stream(receiver, name="flaky").foreach_batch(ListSink())
            ssc.start()
            await clock.advance(10.0)
    # the default backoff, 0.1 s doubling, measured on the manual clock
    assert receiver.opened_at == [0.0, 0.1, pytest.approx(0.3)]
    assert info.value.attempts == 3
    assert info.value.receiver == "flaky"
    assert str(info.value.__cause__) == "attempt 3"
    message = str(info.value)
    assert "3 failures in a row, more than max_receiver_restarts=2" in message
    assert "raise max_receiver_restarts or set it to None" in message
    assert listener.summary() == [
        ("started", 1),
        ("error", 1),
        ("started", 2),
        ("error", 2),
        ("started", 3),
        ("error", 3),
        ("stopped", 3),
    ]
    assert {stream for _, stream, _, _ in listener.events} == {"flaky"}


@pytest.mark.parametrize("restarts", [0, 1, 4])
async def test_number_of_restarts_is_max_receiver_restarts(restarts):
    clock = ManualClock()
    receiver = Attempts(clock, ["fail"])
    with pytest.raises(ReceiverError) as info, anyio.fail_after(HANG_GUARD):
        async with context(clock, max_receiver_restarts=restarts) as ssc:
            ssc.receiver_stream(receiver).foreach_batch(ListSink())
            ssc.start()
            await clock.advance(100.0)
    assert receiver.attempt == restarts + 1
    assert info.value.attempts == restarts + 1


async def test_a_receiver_that_stores_before_each_failure_never_exhausts_a_budget_of_one():
    clock = ManualClock()
    receiver = Attempts(clock, ["store, fail"] * 20 + ["store"])
    listener = ReceiverEvents()
    sink = ListSink()
    async with context(clock, max_receiver_restarts=1) as ssc:
        ssc.add_listener(listener)
        ssc.receiver_stream(receiver).foreach_batch(sink)
        ssc.start()
        await clock.advance(3.0)
        assert receiver.attempt == 21
    # each failure follows a recovery: the backoff starts over at 0.1 s every time
    gaps = [later - earlier for earlier, later in itertools.pairwise(receiver.opened_at)]
    assert gaps == [pytest.approx(0.1)] * 20
    assert sink.records == [f"run-{attempt}" for attempt in range(1, 22)]
    assert [event for event, _ in listener.summary()].count("error") == 20


async def test_failures_in_a_row_without_storing_exhaust_the_budget_even_after_a_recovery():
    clock = ManualClock()
    receiver = Attempts(clock, ["store, fail", "fail", "store, fail", "fail", "fail"])
    with pytest.raises(ReceiverError) as info, anyio.fail_after(HANG_GUARD):
        async with context(clock, max_receiver_restarts=2) as ssc:
            ssc.receiver_stream(receiver).foreach_batch(ListSink())
            ssc.start()
            await clock.advance(10.0)
    # backoffs: 0.1 (after a recovery), 0.2, then 0.1 again after the next recovery, 0.2
    assert receiver.opened_at == pytest.approx([0.0, 0.1, 0.3, 0.4, 0.6])
    assert info.value.attempts == 5
    assert "3 failures in a row" in str(info.value)


async def test_max_receiver_restarts_none_restarts_forever_and_reports_every_failure():
    clock = ManualClock()
    receiver = Attempts(clock, ["fail"] * 50 + ["store"])
    listener = ReceiverEvents()
    sink = ListSink()
    async with StreamingContext(
        batch_interval=100.0, clock=clock, max_receiver_restarts=None
    ) as ssc:
        ssc.add_listener(listener)
        ssc.receiver_stream(receiver).foreach_batch(sink)
        ssc.start()
        await clock.advance(1400.0)
        assert ssc.state is ContextState.ACTIVE
    assert receiver.attempt == 51
    # 0.1 s doubling to 25.6 s (nine waits), then 41 waits at the 30 s cap
    assert receiver.opened_at[-1] == pytest.approx(51.1 + 41 * MAX_RESTART_BACKOFF)
    errors = [attempt for event, attempt in listener.summary() if event == "error"]
    assert errors == list(range(1, 51))
    assert sink.records == ["run-51"]


async def test_the_backoff_doubles_up_to_its_cap_and_starts_over_after_a_recovery():
    clock = ManualClock()
    receiver = Attempts(clock, ["fail"] * 7 + ["store, fail", "fail", "store"])
    async with context(clock, max_receiver_restarts=None, receiver_restart_backoff=1.0) as ssc:
        ssc.receiver_stream(receiver).foreach_batch(ListSink())
        ssc.start()
        await clock.advance(100.0)
    assert MAX_RESTART_BACKOFF == 30.0
    # waits 1, 2, 4, 8, 16, 30, 30; attempt 8 stored a record: 1, then 2
    assert receiver.opened_at == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 61.0, 91.0, 92.0, 94.0]


async def test_an_attempt_up_for_longer_than_the_backoff_cap_starts_the_count_over():
    clock = ManualClock()
    receiver = Attempts(clock, ["fail", "hold, fail", "hold, fail"])
    with pytest.raises(ReceiverError) as info, anyio.fail_after(HANG_GUARD):
        async with context(clock, max_receiver_restarts=1) as ssc:
            ssc.receiver_stream(receiver).foreach_batch(ListSink())
            ssc.start()
            await clock.advance(0.1)
            assert receiver.opened_at == [0.0, 0.1]
            await clock.advance(MAX_RESTART_BACKOFF + 1)
            receiver.fail()  # up for 31 s: a recovery, so the next wait is 0.1 s again
            await clock.advance(0.1)
            assert receiver.opened_at == [0.0, 0.1, pytest.approx(31.2)]
            await clock.advance(MAX_RESTART_BACKOFF - 1)
            receiver.fail()  # up for 29 s only: the second failure in a row
            await clock.advance(1.0)
    assert info.value.attempts == 3
    assert "2 failures in a row, more than max_receiver_restarts=1" in str(info.value)


async def test_receiver_that_recovers_keeps_running_and_delivers_every_attempt():
    clock = ManualClock()
    receiver = ScriptedReceiver(fail_run={1, 2})
    listener = ReceiverEvents()
    sink = ListSink()
    async with context(clock, max_receiver_restarts=2) as ssc:
        ssc.add_listener(listener)
        ssc.receiver_stream(receiver).foreach_batch(sink)
        ssc.start()
        await clock.advance(1.0)  # restarts at 0.1 and 0.2, then the batch at 1.0
        assert receiver.log[-1] == "run 3"
        assert sink.batches == [(1.0, ["run-1", "run-2", "run-3"])]
    assert receiver.log[-1] == "aclose 3"
    assert listener.summary() == [
        ("started", 1),
        ("error", 1),
        ("started", 2),
        ("error", 2),
        ("started", 3),
        ("stopped", 3),
    ]


async def test_failing_open_is_retried_on_the_clock_and_aclose_runs_each_time():
    clock = ManualClock()
    receiver = ScriptedReceiver(fail_open={1, 2, 3})
    listener = ReceiverEvents()
    with pytest.raises(ReceiverError) as info, anyio.fail_after(HANG_GUARD):
        async with context(clock, max_receiver_restarts=2) as ssc:
            ssc.add_listener(listener)
            ssc.receiver_stream(receiver).foreach_batch(ListSink())
            ssc.start()
            # the context is starting (waiting for its receiver to open), and the
            # clock still moves for the receiver's backoff
            await clock.advance(10.0)
    assert receiver.log == [
        "open 1",
        "aclose 1",
        "open 2",
        "aclose 2",
        "open 3",
        "aclose 3",
    ]
    assert info.value.__cause__ is receiver.errors[-1]
    # never connected: no "started"
    assert listener.summary() == [("error", 1), ("error", 2), ("error", 3), ("stopped", 3)]


async def test_a_receiver_whose_first_opens_fail_is_waited_for_by_the_first_batch():
    clock = ManualClock()
    receiver = Attempts(clock, ["store"])
    opens = 0
    original_open = receiver.open

    async def open_on_the_third_try() -> None:
        nonlocal opens
        await original_open()
        opens += 1
        if opens < 3:
            raise ConnectionRefusedError("the server is not up yet")

    receiver.open = open_on_the_third_try  # type: ignore[method-assign]
    sink = ListSink()
    async with context(clock) as ssc:
        ssc.receiver_stream(receiver).foreach_batch(sink)
        ssc.start()
        await clock.advance(2.0)
        assert receiver.opened_at == [0.0, 0.1, pytest.approx(0.3)]
        assert sink.batches == [(1.0, ["run-3"]), (2.0, [])]


async def test_not_restartable_receiver_stops_the_context_at_its_first_error():
    clock = ManualClock()

    class OneShot(ScriptedReceiver):
        restartable = False

    receiver = OneShot(fail_run={1})
    with pytest.raises(ReceiverError) as info, anyio.fail_after(HANG_GUARD):
        async with context(clock, max_receiver_restarts=5) as ssc:
            ssc.receiver_stream(receiver).foreach_batch(ListSink())
            ssc.start()
            await anyio.sleep_forever()
    assert info.value.attempts == 1
    assert "OneShot cannot be restarted" in str(info.value)
    assert receiver.log == ["open 1", "run 1", "aclose 1"]


@pytest.mark.parametrize("retriable", [False, True])
async def test_a_connector_error_is_retried_only_when_retriable(retriable):
    clock = ManualClock()

    class Refused(ScriptedReceiver):
        async def open(self) -> None:
            await super().open()
            if self.attempt == 1:
                raise ConnectorError("the broker refused the credentials", retriable=retriable)

    receiver = Refused()
    sink = ListSink()
    try:
        async with context(clock, max_receiver_restarts=5) as ssc:
            ssc.receiver_stream(receiver).foreach_batch(sink)
            ssc.start()
            with anyio.fail_after(HANG_GUARD):
                await clock.advance(1.0)
    except ReceiverError as error:
        assert not retriable
        assert error.attempts == 1 and "refused the credentials" in str(error)
        assert "not retriable" in str(error)
        assert receiver.log == ["open 1", "aclose 1"]
    else:
        assert retriable
        assert sink.batches == [(1.0, ["run-2"])]


@pytest.mark.parametrize("during", ["backoff", "open"])
async def test_a_graceful_stop_ends_a_receiver_that_has_not_opened_yet(during):
    clock = ManualClock()
    log: list[str] = []
    connecting = anyio.Event()

    class ServerDown(Receiver[int]):
        async def open(self) -> None:
            log.append("open")
            if during == "backoff":
                raise ConnectionRefusedError("the server is not up yet")
            connecting.set()
            await anyio.sleep_forever()  # a connection that hangs

        async def run(self, output: ReceiverOutput[int]) -> None:
            log.append("run")

        async def aclose(self) -> None:
            log.append("aclose")

    with anyio.fail_after(HANG_GUARD):
        async with context(clock, max_receiver_restarts=None) as ssc:
            ssc.receiver_stream(ServerDown()).foreach_batch(ListSink())
            ssc.start()
            if during == "backoff":
                await clock.advance(5.0)  # opens at 0, 0.1, 0.3, 0.7, 1.5, 3.1
            else:
                await connecting.wait()
        # leaving the block stops gracefully: it ends, though the receiver never opened
    assert log == ["open", "aclose"] * (6 if during == "backoff" else 1)


async def test_max_receiver_restarts_accepts_none_and_says_so_when_invalid():
    StreamingContext(batch_interval=1.0, max_receiver_restarts=None)
    with pytest.raises(ConfigurationError, match=r"whole number >= 0, not -1 \(or None"):
        StreamingContext(batch_interval=1.0, max_receiver_restarts=-1)
    with pytest.raises(ConfigurationError, match="give it a receiver_restart_backoff > 0"):
        StreamingContext(batch_interval=1.0, max_receiver_restarts=None, receiver_restart_backoff=0)


# -- lifecycle -----------------------------------------------------------------------------


async def test_open_is_awaited_before_the_first_batch():
    clock = ManualClock()
    log: list[str] = []

    class SlowToOpen(Receiver[int]):
        async def open(self):
            log.append("open begins")
            for _ in range(20):  # a connection that takes several loop turns
                await anyio.lowlevel.checkpoint()
            log.append("open ends")

        async def run(self, output):
            log.append("run")
            await anyio.sleep_forever()

    async with context(clock) as ssc:
        ssc.receiver_stream(SlowToOpen()).foreach_batch(lambda t, r: log.append(f"batch {t}"))
        ssc.start()
        await clock.advance(2.0)
    assert log[:2] == ["open begins", "open ends"]
    assert log.index("batch 1.0") > log.index("open ends")
    assert [entry for entry in log if entry.startswith("batch")] == ["batch 1.0", "batch 2.0"]


async def test_awaited_start_returns_once_every_receiver_opened():
    clock = ManualClock()
    opened: list[str] = []

    class Opens(Receiver[int]):
        def __init__(self, name):
            self.name = name

        async def open(self):
            for _ in range(10):
                await anyio.lowlevel.checkpoint()
            opened.append(self.name)

        async def run(self, output):
            await anyio.sleep_forever()

    async with context(clock) as ssc:
        first = ssc.receiver_stream(Opens("first"))
        second = ssc.receiver_stream(Opens("second"))
        first.union(second).foreach_batch(ListSink())
        await ssc.start()
        assert sorted(opened) == ["first", "second"]


@pytest.mark.parametrize("ending", ["source ends", "context stops", "immediate stop", "run fails"])
async def test_aclose_always_runs(ending):
    clock = ManualClock()
    receiver = ScriptedReceiver(
        fail_run={1} if ending == "run fails" else set(),
        forever=ending in ("context stops", "immediate stop"),
    )
    sink = ListSink()
    try:
        async with context(clock, max_receiver_restarts=0) as ssc:
            ssc.receiver_stream(receiver).foreach_batch(sink)
            await ssc.start()
            await clock.advance(1.0)
            if ending == "immediate stop":
                await ssc.stop(graceful=False)
    except ReceiverError:
        assert ending == "run fails"
    assert receiver.log == ["open 1", "run 1", "aclose 1"]


class CommittingReceiver(Receiver[int]):
    """Stores one positioned chunk, then waits; logs its lifecycle and commits."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.stored = anyio.Event()

    async def open(self) -> None:
        self.log.append("open")

    async def run(self, output: ReceiverOutput[int]) -> None:
        self.log.append("run")
        await output.put_many([1, 2, 3], position="after-3")
        self.stored.set()
        try:
            await anyio.sleep_forever()
        finally:
            self.log.append("run cancelled")

    async def commit(self, position: Any) -> None:
        self.log.append(f"commit {position}")

    async def aclose(self) -> None:
        self.log.append("aclose")


async def test_a_graceful_stop_commits_the_final_batches_before_receivers_close():
    clock = ManualClock()
    receiver = CommittingReceiver()
    sink = ListSink()
    async with context(clock) as ssc:
        ssc.receiver_stream(receiver).foreach_batch(sink)
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await receiver.stored.wait()
    # the final batch ran after the receiver stopped receiving, and before it closed
    assert receiver.log == ["open", "run", "run cancelled", "commit after-3", "aclose"]
    assert sink.batches == [(1.0, [1, 2, 3])]


async def test_a_receiver_that_returns_when_stopped_still_closes_after_the_final_commit():
    class ReturnsWhenStopped(CommittingReceiver):
        async def run(self, output: ReceiverOutput[int]) -> None:
            try:
                await super().run(output)
            except anyio.get_cancelled_exc_class():
                return  # swallows the stop: discouraged, but it must not close early

    clock = ManualClock()
    receiver = ReturnsWhenStopped()
    async with context(clock) as ssc:
        ssc.receiver_stream(receiver).foreach_batch(ListSink())
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await receiver.stored.wait()
    assert receiver.log == ["open", "run", "run cancelled", "commit after-3", "aclose"]


async def test_a_hard_stop_closes_receivers_without_committing_what_they_buffered():
    clock = ManualClock()
    receiver = CommittingReceiver()
    async with context(clock) as ssc:
        ssc.receiver_stream(receiver).foreach_batch(ListSink())
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await receiver.stored.wait()
        await ssc.stop(graceful=False)
    assert receiver.log == ["open", "run", "run cancelled", "aclose"]


async def test_a_graceful_stop_during_a_restart_backoff_ends_the_receiver_at_once():
    clock = ManualClock()
    receiver = ScriptedReceiver(fail_run={1})
    with anyio.fail_after(HANG_GUARD):
        async with context(clock, receiver_restart_backoff=3600) as ssc:
            ssc.receiver_stream(receiver).foreach_batch(ListSink())
            await ssc.start()
            await receiver.stored[1].wait()
            await ssc.stop()
    assert receiver.log == ["open 1", "run 1", "aclose 1"]


async def test_receiver_whose_source_ended_reports_stopped_and_the_context_keeps_running():
    clock = ManualClock()
    receiver = ScriptedReceiver(forever=False)
    listener = ReceiverEvents()
    sink = ListSink()
    async with context(clock) as ssc:
        ssc.add_listener(listener)
        ssc.receiver_stream(receiver).foreach_batch(sink)
        await ssc.start()
        await clock.advance(2.0)
        assert listener.summary() == [("started", 1), ("stopped", 1)]
    assert sink.batches == [(1.0, ["run-1"]), (2.0, [])]


async def test_receiver_is_usable_as_an_async_context_manager():
    receiver = ScriptedReceiver()
    async with receiver as entered:
        assert entered is receiver
        assert receiver.log == ["open 1"]
    assert receiver.log == ["open 1", "aclose 1"]


# -- the order of a receiver's calls, and cleanup deadlines on the context's clock -------


class EndingReceiver(Receiver[str]):
    """Stores its chunks with their positions, then returns: its source has ended.

    Logs its calls in ``log``, which the test's outputs write to as well.
    """

    def __init__(self, chunks: list[tuple[list[str], Any]], log: list[str]) -> None:
        self.chunks = chunks
        self.log = log

    async def open(self) -> None:
        self.log.append("open")

    async def run(self, output: ReceiverOutput[str]) -> None:
        for records, position in self.chunks:
            await output.put_many(records, position=position)
        self.log.append("run ends")

    async def commit(self, position: Any) -> None:
        self.log.append(f"commit {position}")

    async def aclose(self) -> None:
        self.log.append("aclose")


@pytest.mark.parametrize("max_rate", [None, 2])
async def test_a_source_that_ends_is_closed_after_the_commit_of_its_last_batch(max_rate):
    clock = ManualClock()
    log: list[str] = []
    receiver = EndingReceiver([(["a", "b"], "p2"), (["c", "d", "e"], "p5")], log)
    listener = ReceiverEvents()
    async with context(clock) as ssc:
        ssc.add_listener(listener)
        stream = ssc.receiver_stream(receiver, max_rate=max_rate)
        stream.foreach_batch(lambda time, records: log.append(f"output {time} {records}"))
        await ssc.start()
        await clock.advance(4.0)
        assert listener.summary() == [("started", 1), ("stopped", 1)]
    if max_rate is None:
        assert log == [
            "open",
            "run ends",
            "output 1.0 ['a', 'b', 'c', 'd', 'e']",
            "commit p5",
            "aclose",
            "output 2.0 []",
            "output 3.0 []",
            "output 4.0 []",
        ]
    else:  # the last chunk is cut over two batches: its position comes with its end
        assert log == [
            "open",
            "run ends",
            "output 1.0 ['a', 'b']",
            "commit p2",
            "output 2.0 ['c', 'd']",
            "output 3.0 ['e']",
            "commit p5",
            "aclose",
            "output 4.0 []",
        ]


async def test_a_source_that_ended_and_stored_no_position_is_closed_at_once():
    clock = ManualClock()
    log: list[str] = []
    async with context(clock) as ssc:
        receiver = EndingReceiver([(["a"], None)], log)
        ssc.receiver_stream(receiver).foreach_batch(lambda t, r: log.append(f"output {t}"))
        await ssc.start()
        await clock.advance(1.0)
    assert log == ["open", "run ends", "aclose", "output 1.0"]


@pytest.mark.parametrize("graceful", [True, False])
async def test_a_source_that_ended_is_closed_by_a_stop_before_its_last_commit(graceful):
    clock = ManualClock()
    log: list[str] = []
    async with context(clock) as ssc:
        receiver = EndingReceiver([(["a"], "p1")], log)
        ssc.receiver_stream(receiver).foreach_batch(lambda t, r: log.append(f"output {t}"))
        await ssc.start()
        assert log == ["open", "run ends"]  # waiting for its commit
        await ssc.stop(graceful=graceful)
    if graceful:  # the final batch is output and committed first
        assert log == ["open", "run ends", "output 1.0", "commit p1", "aclose"]
    else:
        assert log == ["open", "run ends", "aclose"]


async def test_a_stuck_aclose_is_abandoned_after_ten_seconds_on_the_context_clock(caplog):
    clock = ManualClock()
    closing = anyio.Event()

    class StuckClose(Receiver[int]):
        async def run(self, output: ReceiverOutput[int]) -> None:
            await anyio.sleep_forever()

        async def aclose(self) -> None:
            closing.set()
            await anyio.sleep_forever()

    listener = ReceiverEvents()
    with anyio.fail_after(HANG_GUARD):
        async with context(clock) as ssc:
            ssc.add_listener(listener)
            ssc.receiver_stream(StuckClose(), name="stuck").foreach_batch(ListSink())
            await ssc.start()
            ssc.stop(graceful=False)
            await closing.wait()
            await clock.advance(9.9)
            assert listener.summary() == [("started", 1)]
            await clock.advance(0.1)
    assert listener.summary() == [("started", 1), ("stopped", 1)]
    assert "aclose() of 'stuck' took over 10.0s and was abandoned" in caplog.text


@pytest.mark.parametrize("ending", ["source ends", "hard stop"])
async def test_a_stuck_listener_holds_neither_the_receiver_nor_the_end_for_ever(ending, caplog):
    clock = ManualClock()
    notified = anyio.Event()
    exited = anyio.Event()

    class StuckListener(StreamingListener):
        async def on_receiver_stopped(self, info: ReceiverInfo) -> None:
            notified.set()
            await anyio.sleep_forever()

    async def advance_until_exited() -> None:
        await notified.wait()
        while not exited.is_set():
            await clock.advance(1.0)

    receiver = ScriptedReceiver(forever=ending == "hard stop")
    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as driver:
            async with context(clock) as ssc:
                ssc.add_listener(StuckListener())
                ssc.receiver_stream(receiver, name="flaky").foreach_batch(ListSink())
                await ssc.start()
                if ending == "hard stop":
                    ssc.stop(graceful=False)
                await notified.wait()
                # the receiver closed without waiting for the listener
                assert receiver.log == ["open 1", "run 1", "aclose 1"]
                driver.start_soon(advance_until_exited)
            exited.set()
    # the block's exit waited 10 s of the clock for the listener, then went on
    assert clock.now() >= 10.0
    assert "was still busy 10.0s after the job ended: abandoned" in caplog.text


# -- from_async_iterable --------------------------------------------------------------------


async def test_from_async_iterable_delivers_every_item_in_order():
    clock = ManualClock()
    exhausted = anyio.Event()
    sink = ListSink()

    async def items():
        for item in range(2000):
            yield item
        exhausted.set()

    async with context(clock) as ssc:
        ssc.from_async_iterable(items()).foreach_batch(sink)
        ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await exhausted.wait()
        await clock.advance(1.0)
        assert sink.batches == [(1.0, list(range(2000)))]


async def test_from_async_iterable_through_a_small_buffer_loses_nothing():
    clock = ManualClock()
    count = 100
    sink = ListSink()

    async def items():
        for item in range(count):
            yield item

    async with context(clock) as ssc:

        def output(time, records):
            sink(time, records)
            if len(sink.records) == count:
                ssc.stop()

        ssc.from_async_iterable(items(), buffer_capacity=7).foreach_batch(output)
        ssc.start()
        await clock.advance(1000.0)
    assert sink.records == list(range(count))
    assert max(len(records) for _, records in sink.batches) <= 7
    assert len(sink.batches) >= 15


async def test_from_async_iterable_closes_the_generator_when_the_context_stops():
    clock = ManualClock()
    closed = anyio.Event()
    sink = ListSink()

    async def endless():
        item = 0
        try:
            while True:
                yield item
                item += 1
        finally:
            closed.set()

    async with context(clock) as ssc:
        ssc.from_async_iterable(endless(), buffer_capacity=5).foreach_batch(sink)
        ssc.start()
        await clock.advance(2.0)
    assert closed.is_set()
    assert sink.records == list(range(len(sink.records)))
    assert len(sink.records) >= 5


async def test_from_async_iterable_error_is_not_retried():
    clock = ManualClock()

    async def broken():
        yield 1
        raise Boom("iterator broke")

    with pytest.raises(ReceiverError) as info, anyio.fail_after(HANG_GUARD):
        async with context(clock, max_receiver_restarts=3) as ssc:
            ssc.from_async_iterable(broken()).foreach_batch(ListSink())
            ssc.start()
            await anyio.sleep_forever()
    assert info.value.attempts == 1
    assert isinstance(info.value.__cause__, Boom)


@pytest.mark.parametrize("not_async", [[1, 2], iter([1]), "abc", None])
async def test_from_async_iterable_rejects_plain_iterables(not_async):
    ssc = context(ManualClock())
    with pytest.raises(ConfigurationError, match="needs an async iterable"):
        ssc.from_async_iterable(not_async)


async def test_receiver_stream_rejects_non_receivers():
    ssc = context(ManualClock())
    with pytest.raises(ConfigurationError, match="subclass Receiver or use from_async_iterable"):
        ssc.receiver_stream(object())


# -- backpressure and memory -----------------------------------------------------------------


class Firehose(Receiver[int]):
    """Produces consecutive integers in chunks, as fast as its buffer allows.

    Before each put it notes the buffer's statistics; each time it finds the
    buffer exactly full it sets the next of ``full`` events.
    """

    def __init__(self, chunk: int, fills: int = 10, limit: int | None = None) -> None:
        self.chunk = chunk
        self.limit = limit
        self.produced = 0
        self.stored = 0
        self.output: ReceiverOutput[int] | None = None
        self.snapshots: list[BufferStatistics] = []
        self.full = [anyio.Event() for _ in range(fills)]
        self.fills = 0

    async def run(self, output):
        self.output = output
        while self.limit is None or self.produced < self.limit:
            stats = output.statistics()
            self.snapshots.append(stats)
            if stats.used == stats.capacity and self.fills < len(self.full):
                self.full[self.fills].set()
                self.fills += 1
            records = list(range(self.produced, self.produced + self.chunk))
            self.produced += self.chunk
            await output.put_many(records)
            self.stored = self.produced


async def test_receiver_faster_than_the_pipeline_fills_the_buffer_and_waits():
    clock = ManualClock()
    receiver = Firehose(chunk=5)
    sink = ListSink()
    async with context(clock, buffer_capacity=10) as ssc:
        ssc.receiver_stream(receiver).foreach_batch(sink)
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await receiver.full[0].wait()
        # full to exactly its capacity, the receiver waiting with its next chunk
        assert counts(receiver.output.statistics()) == (10, 10, 1)
        assert (receiver.produced, receiver.stored) == (15, 10)

        await clock.advance(1.0)
        assert sink.batches == [(1.0, list(range(10)))]
        with anyio.fail_after(HANG_GUARD):
            await receiver.full[1].wait()
        assert counts(receiver.output.statistics()) == (10, 10, 1)
        assert (receiver.produced, receiver.stored) == (25, 20)

        await clock.advance(1.0)
        assert sink.batches[1] == (2.0, list(range(10, 20)))
    # stopping: the waiting chunk is stored anyway and processed; nothing lost
    assert sink.records == list(range(receiver.produced))
    assert all(stats.used <= stats.capacity for stats in receiver.snapshots)


async def test_batches_are_capped_by_the_buffer_capacity():
    clock = ManualClock()
    receiver = Firehose(chunk=3)
    sink = ListSink()
    async with context(clock, buffer_capacity=10) as ssc:
        ssc.receiver_stream(receiver).foreach_batch(sink)
        await ssc.start()
        await clock.advance(20.0)
    sizes = [len(records) for _, records in sink.batches[:20]]
    assert sizes and max(sizes) <= 10
    assert sink.records == list(range(receiver.produced))


async def test_memory_stays_flat_with_an_endless_receiver_and_a_small_buffer():
    clock = ManualClock()
    receiver = Firehose(chunk=1000)
    batches = 0
    total = 0
    largest = 0

    async def output(time, records):
        nonlocal batches, total, largest
        assert records == list(range(total, total + len(records)))
        batches += 1
        total += len(records)
        largest = max(largest, len(records))
        # slow I/O: meanwhile an unbounded receiver would store 200k records
        for _ in range(200):
            await anyio.lowlevel.checkpoint()

    tracemalloc.start()
    try:
        async with context(clock, buffer_capacity=5000) as ssc:
            ssc.receiver_stream(receiver).foreach_batch(output)
            await ssc.start()
            tracemalloc.reset_peak()
            await clock.advance(40.0)
            peak = tracemalloc.get_traced_memory()[1]
            assert batches == 40
            assert total >= 40 * 4000
            assert largest <= 5000
    finally:
        tracemalloc.stop()
    assert peak < 3_000_000


# -- positions --------------------------------------------------------------------------


class OffsetReceiver(Receiver[str]):
    """Stores the chunks the test sends, with the positions the test gives."""

    def __init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[
            tuple[list[str], Any, anyio.Event]
        ](1)
        self.commits: list[Any] = []

    async def send(self, records: list[str], position: Any = None) -> None:
        stored = anyio.Event()
        await self._send.send((records, position, stored))
        await stored.wait()

    async def run(self, output):
        async for records, position, stored in self._receive:
            await output.put_many(records, position=position)
            stored.set()

    async def commit(self, position):
        self.commits.append(position)


async def test_commit_after_every_output_with_the_position_of_the_batch_last_chunk():
    clock = ManualClock()
    receiver = OffsetReceiver()
    log: list[tuple[str, float, list[Any]]] = []

    class Completed(StreamingListener):
        def on_batch_completed(self, info):
            log.append(("completed", info.batch_time, list(receiver.commits)))

    async def slow_output(time, records):
        await anyio.lowlevel.checkpoint()
        log.append(("first output", time, list(receiver.commits)))

    def second_output(time, records):
        log.append(("second output", time, list(receiver.commits)))

    async with context(clock) as ssc:
        ssc.add_listener(Completed())
        stream = ssc.receiver_stream(receiver)
        stream.foreach_batch(slow_output)
        stream.map(str.upper).foreach_batch(second_output)
        await ssc.start()
        await receiver.send(["a", "b"], position="offset-2")
        await receiver.send(["c"], position="offset-3")
        await clock.advance(1.0)
        assert receiver.commits == ["offset-3"]
        await clock.advance(1.0)  # an empty batch commits nothing
        assert receiver.commits == ["offset-3"]
        await receiver.send(["d"], position="offset-4")
        await receiver.send(["e"])  # no position: the batch covers offset-4
        await clock.advance(1.0)
        assert receiver.commits == ["offset-3", "offset-4"]
    assert log == [
        ("first output", 1.0, []),
        ("second output", 1.0, []),
        ("completed", 1.0, ["offset-3"]),
        ("first output", 2.0, ["offset-3"]),
        ("second output", 2.0, ["offset-3"]),
        ("completed", 2.0, ["offset-3"]),
        ("first output", 3.0, ["offset-3"]),
        ("second output", 3.0, ["offset-3"]),
        ("completed", 3.0, ["offset-3", "offset-4"]),
    ]


async def test_failing_output_leaves_the_batch_position_uncommitted():
    clock = ManualClock()
    source = MemorySource()
    later: list[float] = []

    def output(time, records):
        if "bad" in records:
            raise Boom("cannot write")

    with pytest.raises(OperatorError) as info:
        async with context(clock) as ssc:
            stream = ssc.receiver_stream(source)
            stream.foreach_batch(output)
            stream.foreach_batch(lambda t, r: later.append(t))
            await ssc.start()
            await source.send(["good"])
            await clock.advance(1.0)
            await source.send(["bad", "worse"])
            await clock.advance(1.0)
    assert isinstance(info.value.__cause__, Boom)
    assert source.commits == [1]
    # the output after the failing one did not run for that batch
    assert later == [1.0]


async def test_position_of_a_chunk_split_by_max_rate_is_committed_once_it_is_all_output():
    clock = ManualClock()
    source = MemorySource()
    sink = ListSink()
    async with context(clock) as ssc:
        ssc.receiver_stream(source, max_rate=2).foreach_batch(sink)
        await ssc.start()
        await source.send(["a", "b", "c"])
        await clock.advance(1.0)
        assert sink.batches == [(1.0, ["a", "b"])]
        assert source.commits == []
        await clock.advance(1.0)
        assert sink.batches[1] == (2.0, ["c"])
        assert source.commits == [3]


async def test_each_receiver_gets_its_own_positions():
    clock = ManualClock()
    left, right = MemorySource(), MemorySource()
    async with context(clock) as ssc:
        ssc.receiver_stream(left).union(ssc.receiver_stream(right)).foreach_batch(ListSink())
        await ssc.start()
        await left.send([1, 2, 3])
        await right.send([4])
        await clock.advance(1.0)
        await right.send([5])
        await clock.advance(1.0)
    assert left.commits == [3]
    assert right.commits == [1, 2]


# -- max_rate ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "max_rate", "per_batch"),
    [(1.0, 3, 3), (0.5, 5, 2), (2.0, 1.5, 3), (1.0, 0.2, 1)],
)
async def test_max_rate_caps_records_per_batch_without_loss(interval, max_rate, per_batch):
    clock = ManualClock()
    source = MemorySource()
    sink = ListSink()
    async with StreamingContext(batch_interval=interval, clock=clock) as ssc:
        ssc.receiver_stream(source, max_rate=max_rate).foreach_batch(sink)
        await ssc.start()
        await source.send(list(range(8)))
        await source.send(list(range(8, 10)))
        full, rest = divmod(10, per_batch)
        batches = full + (1 if rest else 0)
        await clock.advance(interval * (batches + 1))
    # capped batches, then the rest, then an empty batch: nothing lost or repeated
    expected = [per_batch] * full + ([rest] if rest else []) + [0]
    assert [len(records) for _, records in sink.batches] == expected
    assert sink.records == list(range(10))
    assert sink.times[0] == interval


async def test_max_rate_with_a_receiver_waiting_on_a_full_buffer_loses_nothing():
    clock = ManualClock()
    receiver = Firehose(chunk=4, limit=40)
    sink = ListSink()
    async with context(clock, buffer_capacity=4) as ssc:

        def output(time, records):
            sink(time, records)
            if len(sink.records) == 40:
                ssc.stop()

        ssc.receiver_stream(receiver, max_rate=3).foreach_batch(output)
        await ssc.start()
        await clock.advance(1000.0)
    assert sink.records == list(range(40))
    assert max(len(records) for _, records in sink.batches) <= 3
    assert len(sink.batches) >= 14


async def test_a_receiver_reports_an_error_it_recovers_from_to_the_listeners():
    class Reconnecting(Receiver[str]):
        async def run(self, output):
            await output.report_error(ConnectionResetError("peer left"), address="127.0.0.1:9")
            await output.put_many(["after reconnect"])

    events: list[ReceiverInfo] = []

    class Errors(StreamingListener):
        def on_receiver_error(self, info):
            events.append(info)

    clock = ManualClock()
    sink = ListSink()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        ssc.add_listener(Errors())
        ssc.receiver_stream(Reconnecting(), name="tcp").foreach_batch(sink)
        ssc.start()
        await clock.advance(1.0)
    assert [(e.stream, e.attempt, type(e.error), e.extra) for e in events] == [
        ("tcp", 1, ConnectionResetError, {"address": "127.0.0.1:9"})
    ]
    assert sink.records == ["after reconnect"]


async def test_buffer_statistics_are_public_for_receiver_streams_only():
    clock = ManualClock()
    source = MemorySource()
    async with context(clock, buffer_capacity=5) as ssc:
        received = ssc.receiver_stream(source)
        received.foreach_batch(ListSink())
        queued = ssc.queue_stream([[1]])
        queued.foreach_batch(ListSink())
        await ssc.start()
        await source.send([1, 2, 3])
        await received.wait_for_buffer(lambda stats: stats.used == 3)
        assert counts(received.buffer_statistics()) == (3, 5, 0)
        with pytest.raises(ConfigurationError, match="not a receiver stream"):
            queued.buffer_statistics()
