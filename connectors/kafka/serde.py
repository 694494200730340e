"""Turning Kafka's bytes into Python values and back.

A deserializer is any ``Callable[[bytes], Any]``, a serializer any
``Callable[[Any], bytes]``; the names ``"bytes"``, ``"str"`` and ``"json"`` select the
built-in ones below. A ``None`` key or value (a Kafka tombstone) is never passed to
them: it stays ``None`` both ways.

Data from the network is never unpickled: pickle would run code chosen by whoever
can write to the topic, so no pickle serde exists here, and the name ``"pickle"``
is refused with an explanation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from streamio.errors import ConfigurationError

__all__ = [
    "Deserializer",
    "Serializer",
    "deserialize_bytes",
    "deserialize_json",
    "deserialize_str",
    "resolve_deserializer",
    "resolve_serializer",
    "serialize_bytes",
    "serialize_json",
    "serialize_str",
]

Deserializer = Callable[[bytes], Any]
Serializer = Callable[[Any], bytes]


def deserialize_bytes(data: bytes) -> bytes:
    """The bytes as they are (the default: no decoding cost, no decoding errors)."""
    return data


def deserialize_str(data: bytes) -> str:
    """UTF-8 text."""
    return data.decode("utf-8")


def deserialize_json(data: bytes) -> Any:
    """A JSON document (UTF-8), as ``json.loads`` gives it."""
    return json.loads(data)


def serialize_bytes(value: Any) -> bytes:
    """Bytes-like values as they are, ``str`` as UTF-8 (the default).

    Anything else is refused rather than guessed at: choose ``"str"`` or ``"json"``.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    msg = (
        f"cannot send a {type(value).__name__} as Kafka bytes: pass "
        "value_serializer='json' (or 'str', or a function returning bytes)"
    )
    raise TypeError(msg)


def serialize_str(value: Any) -> bytes:
    """``str(value)`` as UTF-8: numbers and other scalars as their text."""
    return str(value).encode("utf-8")


def serialize_json(value: Any) -> bytes:
    """A compact JSON document (UTF-8, non-ASCII kept as is)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


_DESERIALIZERS: dict[str, Deserializer] = {
    "bytes": deserialize_bytes,
    "str": deserialize_str,
    "json": deserialize_json,
}

_SERIALIZERS: dict[str, Serializer] = {
    "bytes": serialize_bytes,
    "str": serialize_str,
    "json": serialize_json,
}

_NO_PICKLE = (
    "pickle is not offered: unpickling data from a topic runs code chosen by whoever "
    "can write to it; use 'json' or your own function"
)


def resolve_deserializer(spec: str | Deserializer, what: str) -> Deserializer:
    """The deserializer named or given by ``spec``; ``what`` names the argument in errors."""
    return _resolve(spec, what, _DESERIALIZERS)


def resolve_serializer(spec: str | Serializer, what: str) -> Serializer:
    """The serializer named or given by ``spec``; ``what`` names the argument in errors."""
    return _resolve(spec, what, _SERIALIZERS)


def _resolve(spec: Any, what: str, table: dict[str, Any]) -> Any:
    if isinstance(spec, str):
        if spec in table:
            return table[spec]
        if spec.lower() in ("pickle", "cloudpickle"):
            raise ConfigurationError(f"{what}={spec!r}: {_NO_PICKLE}")
        names = ", ".join(repr(name) for name in table)
        raise ConfigurationError(f"{what}={spec!r} is unknown: use {names} or a function")
    if not callable(spec):
        msg = f"{what} must be one of {', '.join(table)} or a function, not {spec!r}"
        raise ConfigurationError(msg)
    return spec
