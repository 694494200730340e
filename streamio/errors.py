"""The errors streamio raises, all under one base class.

Each error says what was wrong and what to do about it. Configuration errors are
raised while the graph is built, never at the first tick. Every error pickles with
its attributes, so one raised in a worker process reaches the context whole.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "CheckpointError",
    "ConfigurationError",
    "ConnectorError",
    "ContextStateError",
    "OperatorError",
    "ReceiverError",
    "StateError",
    "StopTimeoutError",
    "StreamioError",
]


class StreamioError(Exception):
    """Base class of every error raised by streamio."""


class ConfigurationError(StreamioError, ValueError):
    """A wrong argument or graph, detected when the graph is built."""


class ContextStateError(StreamioError, RuntimeError):
    """An operation that the context's current state does not allow.

    Examples: starting a context twice, adding a stream after ``start()``.
    """


class OperatorError(StreamioError):
    """A user function raised while a batch was computed or output.

    The original exception is chained as ``__cause__``.

    Attributes:
        operator: the name of the operator (or fused stage) that failed.
        batch_time: the batch time being computed.
        function: the user function that raised, with its file and line (None
            when the failure was not in one, such as a record that is not a pair).
    """

    def __init__(
        self, operator: str, batch_time: float, message: str, *, function: str | None = None
    ) -> None:
        super().__init__(operator, batch_time, message)
        self.operator = operator
        self.batch_time = batch_time
        self.function = function

    def __str__(self) -> str:
        operator, batch_time, message = self.args
        return f"operator {operator!r} failed in batch {batch_time}: {message}"

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args, {"function": self.function}), self.__dict__)


class ReceiverError(StreamioError):
    """A receiver kept failing after every restart it was allowed.

    The last failure is chained as ``__cause__``.

    Attributes:
        receiver: the name of the input stream whose receiver failed.
        attempts: how many times the receiver was started.
    """

    def __init__(self, receiver: str, attempts: int, message: str) -> None:
        super().__init__(receiver, attempts, message)
        self.receiver = receiver
        self.attempts = attempts

    def __str__(self) -> str:
        receiver, attempts, message = self.args
        return f"receiver of {receiver!r} failed {attempts} time(s), giving up: {message}"


class ConnectorError(StreamioError):
    """An outside system (broker, socket, file system) failed.

    Attributes:
        retriable: True when trying again later may succeed (a broker that went
            away), False when it cannot (wrong credentials, a refused option).
    """

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args, {"retriable": self.retriable}), self.__dict__)


class StateError(StreamioError, RuntimeError):
    """A ``map_with_state`` function misused its key's state (read a missing one,
    updated one that is timing out)."""


class CheckpointError(StreamioError):
    """A checkpoint could not be written or resumed: a damaged store, a program
    whose graph changed since the checkpoint, a source that cannot be
    checkpointed, a failed write. The message says what to change."""


class StopTimeoutError(StreamioError):
    """A graceful stop ran past ``stop_timeout`` and was cut short.

    Raised out of the ``async with`` block (and ``await_termination()``) instead of
    dropping what was left with only a log line. What was left was neither fully
    output nor committed: a source that can replay (Kafka, a directory) gives those
    records again on the next run.

    Attributes:
        unprocessed: records left, by input stream name: those of the batch that
            was interrupted and those still buffered (streams with none left out).
        batch_time: the batch whose outputs were interrupted, or None when the
            stop was cut short between batches.
        stop_timeout: the seconds the stop was given.
    """

    def __init__(
        self, unprocessed: Mapping[str, int], batch_time: float | None, stop_timeout: float
    ) -> None:
        super().__init__(dict(unprocessed), batch_time, stop_timeout)
        self.unprocessed = dict(unprocessed)
        self.batch_time = batch_time
        self.stop_timeout = stop_timeout

    def __str__(self) -> str:
        what = []
        if self.batch_time is not None:
            what.append(f"the outputs of batch {self.batch_time} did not finish")
        if self.unprocessed:
            left = ", ".join(
                f"{count} record{'s' if count != 1 else ''} of {name!r}"
                for name, count in self.unprocessed.items()
            )
            what.append(f"{left} were not processed and their positions are not committed")
        return (
            f"the graceful stop took over stop_timeout={self.stop_timeout:g}s and was cut "
            f"short: {'; '.join(what)}. Raise stop_timeout to let the final batches finish"
        )


def _rebuild(
    cls: type[StreamioError], args: tuple[object, ...], keywords: dict[str, object]
) -> StreamioError:
    """Unpickle an error whose constructor takes keyword arguments."""
    return cls(*args, **keywords)
