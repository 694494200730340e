"""One rule for errors: every failure of a user function is an OperatorError naming
the operator, the function and the batch time, whatever the operator and wherever
it runs; the errors streamio raises for a wrong setup keep their type."""

from __future__ import annotations

import operator
import pickle

import anyio
import anyio.lowlevel
import pytest

from streamio import (
    ConfigurationError,
    ConnectorError,
    ContextStateError,
    ManualClock,
    OperatorError,
    ReceiverError,
    StateError,
    StateSpec,
    StopTimeoutError,
    StreamingContext,
)
from streamio.abc import Sink
from streamio.functions import describe
from streamio.testing import ListSink

HANG_GUARD = 10
POISON = 13


def batches() -> list[list[int]]:
    """Batch 2.0 holds the poison. With one record per partition, functions that
    merge two partitions' results run in the context's process, after the stage."""
    return [[1, 2], [3, POISON], [5, 6]]


def lost(value):
    """What a user function raises here: a connector's error, which used to escape
    without its operator and batch."""
    raise ConnectorError(f"lost {value}", retriable=True)


def checked(record):
    if record == POISON:
        lost(record)
    return record


def keep(record):
    return record


def checked_keep(record):
    return checked(record) is not None


def checked_partition(records):
    return [checked(record) for record in records]


def checked_add(a, b):
    checked(a)
    checked(b)
    return a + b


def checked_batch(records):
    return [checked(record) for record in records]


async def checked_async(record):
    await anyio.lowlevel.checkpoint()
    return checked(record)


def checked_update(values, state):
    for value in values:
        checked(value)
    return (state or 0) + len(values)


def misuses_state(time, key, value, state):
    if value == POISON:
        return state.get()  # no state yet: StateError
    return value


def checked_timestamp(record):
    return float(checked(record))


def pair(record):
    return ("k", record)


def checked_output(records):
    for record in records:
        checked(record)


class CheckedSink(Sink[int]):
    async def __call__(self, batch_time, records):
        for record in records:
            checked(record)


# name: (build the job from the stream of batches(), the function that raises, partition size)
CASES = {
    "map": (lambda s: s.map(keep).map(checked, name="target").map(str), checked, 10),
    "filter": (lambda s: s.filter(checked_keep, name="target").map(str), checked_keep, 10),
    "map_partitions": (
        lambda s: s.map_partitions(checked_partition, name="target"),
        checked_partition,
        10,
    ),
    "reduce_by_key, map side": (
        lambda s: s.map(pair).reduce_by_key(checked_add, name="target"),
        checked_add,
        10,
    ),
    "combine_by_key, merging partitions": (
        lambda s: s.map(pair).combine_by_key(keep, checked_add, checked_add, name="target"),
        checked_add,
        1,
    ),
    "reduce, in the stage": (lambda s: s.reduce(checked_add, name="target"), checked_add, 10),
    "reduce, merging partitions": (
        lambda s: s.reduce(checked_add, name="target"),
        checked_add,
        1,
    ),
    "transform": (lambda s: s.transform(checked_batch, name="target"), checked_batch, 10),
    "map_async": (lambda s: s.map_async(checked_async, name="target"), checked_async, 10),
    "update_state_by_key": (
        lambda s: s.map(pair).update_state_by_key(checked_update, name="target"),
        checked_update,
        10,
    ),
    "map_with_state": (
        lambda s: s.map(pair).map_with_state(StateSpec(misuses_state), name="target"),
        misuses_state,
        10,
    ),
    "event_time_window": (
        lambda s: s.event_time_window(checked_timestamp, 10.0, name="target"),
        checked_timestamp,
        10,
    ),
    "reduce_by_key_and_window": (
        lambda s: s.map(lambda x: ("k", x - 10 if x == POISON else x))
        .reduce_by_key_and_window(
            lambda a, b: checked_add(a, b + 10 if b == POISON - 10 else b),
            operator.sub,
            2.0,
            1.0,
            name="target",
        )
        .map(str),
        None,  # a lambda: named by its line below
        10,
    ),
}


@pytest.mark.parametrize("executor", ["inline", "process"])
@pytest.mark.parametrize("case", list(CASES))
async def test_a_user_function_failure_is_an_operator_error(case, executor):
    build, function, partition_size = CASES[case]
    clock = ManualClock()
    with pytest.raises(OperatorError) as info, anyio.fail_after(HANG_GUARD):
        async with StreamingContext(
            batch_interval=1.0,
            clock=clock,
            executor=executor,
            max_workers=1,
            partition_size=partition_size,
        ) as ssc:
            build(ssc.queue_stream(batches())).foreach_batch(ListSink())
            ssc.start()
            await clock.advance(3.0)
    error = info.value
    assert error.operator == "target"
    assert error.batch_time == 2.0
    cause = error.__cause__
    if function is misuses_state:
        assert isinstance(cause, StateError)
        assert "raised StateError: the key has no state" in str(error)
    else:
        assert isinstance(cause, ConnectorError)
        assert cause.retriable is True  # the worker's error arrives whole
        assert "raised ConnectorError: lost 13" in str(error)
    if function is not None:
        assert error.function == describe(function)
    assert error.function is not None
    assert f"{__file__}:" in error.function  # the file and line of the function
    assert error.function in str(error)


@pytest.mark.parametrize("how", ["foreach_batch", "sink"])
async def test_an_output_failure_is_an_operator_error(how):
    clock = ManualClock()
    target = CheckedSink() if how == "sink" else checked_output
    with pytest.raises(OperatorError) as info, anyio.fail_after(HANG_GUARD):
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            ssc.queue_stream(batches()).foreach_batch(target, name="target")
            ssc.start()
            await clock.advance(3.0)
    assert info.value.operator == "target"
    assert info.value.batch_time == 2.0
    assert isinstance(info.value.__cause__, ConnectorError)
    expected = describe(CheckedSink.__call__) if how == "sink" else describe(checked_output)
    assert info.value.function is not None
    assert info.value.function.endswith(expected.split(" ", 1)[1])  # same file and line


async def test_a_failure_outside_user_functions_names_the_stage():
    """A record that is not a pair fails in streamio's own code between the user's
    functions: the stage and its functions are named, the batch time too."""
    clock = ManualClock()
    with pytest.raises(OperatorError) as info:
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            stream = ssc.queue_stream([[("a", 1)], [("a", 1), POISON]])
            stream.map(keep, name="first").reduce_by_key(operator.add, name="sum").pprint()
            ssc.start()
            await clock.advance(2.0)
    error = info.value
    assert error.operator == "first -> sum"
    assert error.batch_time == 2.0
    assert error.function is None
    assert isinstance(error.__cause__, TypeError)
    assert describe(keep) in str(error)


@pytest.mark.parametrize(
    ("misuse", "kind"),
    [
        (lambda ssc: ssc.start(), ContextStateError),
        (lambda ssc: ssc.remember(-1.0), ConfigurationError),
    ],
)
async def test_a_wrong_setup_found_while_running_keeps_its_type(misuse, kind):
    """What streamio says to change in the setup reaches the user as it is, with a
    note naming the operator and batch where it was met."""
    clock = ManualClock()

    def output(records):
        misuse(ssc)

    with pytest.raises(kind) as info:
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            ssc.queue_stream([[1]]).map(keep).foreach_batch(output, name="writer")
            ssc.start()
            await clock.advance(1.0)
    assert not isinstance(info.value, OperatorError)
    assert info.value.__notes__ == ["(raised in operator 'writer', batch 1.0)"]


@pytest.mark.parametrize(
    "error",
    [
        OperatorError("op", 2.0, "it broke", function="f (job.py:3)"),
        ConnectorError("gone", retriable=False),
        ReceiverError("lines", 3, "refused"),
        StopTimeoutError({"lines": 4}, 2.0, 5.0),
        StateError("no state"),
    ],
)
def test_errors_pickle_with_their_attributes(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)
