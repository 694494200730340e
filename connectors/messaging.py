"""What the message-broker connectors share (Redis Streams, NATS, MQTT, ZeroMQ, Kinesis).

- **Payload deserializers**: ``"bytes"``, ``"str"`` (UTF-8, strict), ``"json"`` or any
  function of the bytes, checked when the source is built; and serializers for the
  sinks: ``"bytes"`` (bytes as they are, ``str`` as UTF-8), ``"str"``, ``"json"``
  or a function returning bytes. Data from the network is
  never unpickled: pickle would run code chosen by whoever can publish, so the name
  ``"pickle"`` is refused with that reason.
- **The bad-message policy**: what a source does with a message its deserializer
  refuses. ``"fail"`` (the default) stops the source with a non-retriable
  :class:`~streamio.ConnectorError` naming the message, leaving it unacknowledged
  where the broker keeps it (fix the deserializer, or choose ``"skip"``); ``"skip"``
  leaves the message out of the stream, tells the listeners (``on_receiver_error``,
  with ``info.extra["message"]``), counts it in the batch's
  ``BatchInfo.records_skipped`` (under the stream's name) and acknowledges it
  with its batch, so it is not delivered again.
- **Reconnection backoff**: a capped exponential delay, reset after a healthy
  connection.
- **Attaching a source** under a default name taken from what it reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import anyio

from streamio import DStream, Receiver, StreamingContext
from streamio.checks import check_number, check_whole_number
from streamio.errors import ConfigurationError

__all__ = [
    "BadMessagePolicy",
    "Changes",
    "Deserializer",
    "ReconnectBackoff",
    "Serializer",
    "attach",
    "check_policy",
    "resolve_deserializer",
    "resolve_serializer",
]

T = TypeVar("T")

Deserializer = Callable[[bytes], Any]
Serializer = Callable[[Any], bytes]
BadMessagePolicy = Literal["fail", "skip"]

_DESERIALIZERS: dict[str, Deserializer | None] = {
    "bytes": None,  # the bytes as they are: no call at all
    "str": bytes.decode,  # UTF-8, strict
    "json": json.loads,
}

_NO_PICKLE = (
    "pickle is not offered: unpickling data from a broker runs code chosen by whoever "
    "can publish to it; use 'json' or your own function"
)


def resolve_deserializer(spec: str | Deserializer, what: str) -> Deserializer | None:
    """The function named or given by ``spec``; None for ``"bytes"`` (nothing to do).

    ``what`` names the argument in errors.

    Raises:
        ConfigurationError: for an unknown name, ``"pickle"``, or a non-callable.
    """
    if isinstance(spec, str):
        if spec in _DESERIALIZERS:
            return _DESERIALIZERS[spec]
        if spec.lower() in ("pickle", "cloudpickle"):
            raise ConfigurationError(f"{what}={spec!r}: {_NO_PICKLE}")
        names = ", ".join(repr(name) for name in _DESERIALIZERS)
        raise ConfigurationError(f"{what}={spec!r} is unknown: use {names} or a function")
    if not callable(spec):
        msg = f"{what} must be one of {', '.join(_DESERIALIZERS)} or a function, not {spec!r}"
        raise ConfigurationError(msg)
    return spec


def serialize_bytes(value: Any) -> bytes:
    """Bytes-like values as they are, ``str`` as UTF-8; anything else is refused
    rather than guessed at."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    msg = (
        f"cannot send a {type(value).__name__} as bytes: pass value_serializer='json' "
        "(or 'str', or a function returning bytes)"
    )
    raise TypeError(msg)


def serialize_str(value: Any) -> bytes:
    """``str(value)`` as UTF-8."""
    return str(value).encode()


def serialize_json(value: Any) -> bytes:
    """A compact JSON document (UTF-8)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


_SERIALIZERS: dict[str, Serializer] = {
    "bytes": serialize_bytes,
    "str": serialize_str,
    "json": serialize_json,
}


def resolve_serializer(spec: str | Serializer, what: str) -> Serializer:
    """The function named or given by ``spec``; ``what`` names the argument in errors.

    Raises:
        ConfigurationError: for an unknown name or a non-callable.
    """
    if isinstance(spec, str):
        if spec in _SERIALIZERS:
            return _SERIALIZERS[spec]
        names = ", ".join(repr(name) for name in _SERIALIZERS)
        raise ConfigurationError(f"{what}={spec!r} is unknown: use {names} or a function")
    if not callable(spec):
        msg = f"{what} must be one of {', '.join(_SERIALIZERS)} or a function, not {spec!r}"
        raise ConfigurationError(msg)
    return spec


def check_policy(policy: Any, what: str = "on_bad_message") -> BadMessagePolicy:
    """``policy`` when it is ``"fail"`` or ``"skip"``."""
    if policy not in ("fail", "skip"):
        raise ConfigurationError(f"{what} must be 'fail' or 'skip', not {policy!r}")
    return policy


class ReconnectBackoff:
    """The delays between reconnection attempts: ``initial``, doubled after each
    failure, at most ``maximum``; :meth:`reset` after a healthy connection.

    Args:
        initial: seconds before the first attempt (>= 0).
        maximum: the longest delay (not less than ``initial``).
        max_attempts: failed attempts in a row allowed before :meth:`failed` says
            to give up; None: never give up.

    Raises:
        ConfigurationError: for a wrong argument.
    """

    def __init__(self, initial: float, maximum: float, max_attempts: int | None) -> None:
        self.initial = check_number(initial, "reconnect_backoff", allow_zero=True)
        self.maximum = check_number(maximum, "max_backoff", allow_zero=True)
        if self.maximum < self.initial:
            msg = f"max_backoff ({maximum}) must not be less than reconnect_backoff ({initial})"
            raise ConfigurationError(msg)
        if max_attempts is not None:
            check_whole_number(max_attempts, "max_reconnects (or None)", minimum=0)
        self.max_attempts = max_attempts
        self.failures = 0
        self._delay = self.initial

    def failed(self) -> bool:
        """Count a failed attempt; True while another attempt is allowed."""
        self.failures += 1
        return self.max_attempts is None or self.failures <= self.max_attempts

    def next_delay(self) -> float:
        """The delay before the next attempt (doubles the one after it, up to the cap)."""
        delay = self._delay
        self._delay = min(max(delay * 2, self.initial), self.maximum)
        return delay

    def reset(self) -> None:
        """A connection worked: the next outage starts from the initial delay."""
        self.failures = 0
        self._delay = self.initial


S = TypeVar("S")


class Changes:
    """Wakes the waiters of a source's ``wait_until`` at each change of its statistics.

    Woken by changes, never by a timer: tests and monitors synchronise on it.
    """

    def __init__(self) -> None:
        self._event: anyio.Event | None = None

    def notify(self) -> None:
        """Something changed: wake every waiter."""
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait_until(self, statistics: Callable[[], S], predicate: Callable[[S], bool]) -> None:
        """Return once ``predicate(statistics())`` is true (bound it with ``fail_after``)."""
        while not predicate(statistics()):
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()


def attach(
    ssc: StreamingContext,
    source: Receiver[T],
    *,
    name: str | None,
    default_name: str,
    buffer_capacity: int | None,
    max_rate: float | None,
) -> DStream[T]:
    """``ssc.receiver_stream(source)``, named ``name``, else after what it reads."""
    return ssc.receiver_stream(
        source,
        name=name,
        buffer_capacity=buffer_capacity,
        max_rate=max_rate,
        default_name=default_name,
    )
