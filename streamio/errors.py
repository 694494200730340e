"""The errors streamio raises, all under one base class.

Each error says what was wrong and what to do about it. Configuration errors are
raised while the graph is built, never at the first tick.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "ConnectorError",
    "ContextStateError",
    "OperatorError",
    "ReceiverError",
    "StateError",
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
    """

    def __init__(self, operator: str, batch_time: float, message: str) -> None:
        super().__init__(f"operator {operator!r} failed in batch {batch_time}: {message}")
        self.operator = operator
        self.batch_time = batch_time


class ReceiverError(StreamioError):
    """A receiver kept failing after every restart it was allowed.

    The last failure is chained as ``__cause__``.

    Attributes:
        receiver: the name of the input stream whose receiver failed.
        attempts: how many times the receiver was started.
    """

    def __init__(self, receiver: str, attempts: int, message: str) -> None:
        super().__init__(
            f"receiver of {receiver!r} failed {attempts} time(s), giving up: {message}"
        )
        self.receiver = receiver
        self.attempts = attempts


class ConnectorError(StreamioError):
    """An outside system (broker, socket, file system) failed.

    Attributes:
        retriable: True when trying again later may succeed (a broker that went
            away), False when it cannot (wrong credentials, a refused option).
    """

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


class StateError(StreamioError, RuntimeError):
    """A ``map_with_state`` function misused its key's state (read a missing one,
    updated one that is timing out)."""
