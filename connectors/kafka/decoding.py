"""Fetching, the decoding step: the messages of a ``getmany`` become the rows of one
:class:`~streamio.connectors.kafka.records.KafkaChunk`, keys and values deserialized."""

from __future__ import annotations

import json
from typing import Any

from aiokafka import TopicPartition

from streamio.errors import ConnectorError

from .serde import (
    Deserializer,
    deserialize_bytes,
    deserialize_json,
    deserialize_str,
    resolve_deserializer,
)

__all__ = ["RecordDecoder"]

# The same as the built-in deserializers, called without a Python frame in between.
_FAST_DESERIALIZERS: dict[Any, Deserializer | None] = {
    deserialize_bytes: None,
    deserialize_str: bytes.decode,  # UTF-8, strict
    deserialize_json: json.loads,
}


class RecordDecoder:
    """Turns fetched aiokafka messages into the field tuples of :class:`KafkaRecord`.

    Args:
        key_deserializer, value_deserializer: a name (``"bytes"``, ``"str"``,
            ``"json"``) or a function of the bytes; never applied to None.

    Raises:
        ConfigurationError: for an unknown deserializer.
    """

    __slots__ = ("_key_fn", "_value_fn")

    def __init__(
        self, key_deserializer: str | Deserializer, value_deserializer: str | Deserializer
    ) -> None:
        key_fn = resolve_deserializer(key_deserializer, "key_deserializer")
        value_fn = resolve_deserializer(value_deserializer, "value_deserializer")
        # the C functions behind the built-in ones, without a Python frame per record;
        # None: the bytes stay as they are
        self._key_fn = _FAST_DESERIALIZERS.get(key_fn, key_fn)
        self._value_fn = _FAST_DESERIALIZERS.get(value_fn, value_fn)

    def extend(self, rows: list[tuple[Any, ...]], tp: TopicPartition, messages: list[Any]) -> None:
        """Append the rows of ``messages`` (of partition ``tp``, in offset order) to ``rows``.

        Raises:
            ConnectorError: (not retriable) naming the first record a deserializer
                refuses; none of ``messages`` is appended then.
        """
        key_fn, value_fn = self._key_fn, self._value_fn
        topic, partition = tp.topic, tp.partition
        # the hot loop of the source: one comprehension per case, a tuple of the
        # record's fields each, no call but the deserializers
        try:
            if key_fn is None and value_fn is None:
                rows += [
                    (m.key, m.value, topic, partition, m.offset, m.timestamp, m.headers)
                    for m in messages
                ]
            elif key_fn is None:
                rows += [
                    (
                        m.key,
                        None if (v := m.value) is None else value_fn(v),  # type: ignore[misc]
                        topic,
                        partition,
                        m.offset,
                        m.timestamp,
                        m.headers,
                    )
                    for m in messages
                ]
            else:
                rows += [
                    (
                        None if (k := m.key) is None else key_fn(k),
                        v if (v := m.value) is None or value_fn is None else value_fn(v),
                        topic,
                        partition,
                        m.offset,
                        m.timestamp,
                        m.headers,
                    )
                    for m in messages
                ]
        except Exception as exc:
            raise self._error(tp, messages) from exc

    def _error(self, tp: TopicPartition, messages: list[Any]) -> ConnectorError:
        """Which record of ``messages`` the deserializers refuse, and why."""
        for message in messages:
            for what, fn, data in (
                ("key", self._key_fn, message.key),
                ("value", self._value_fn, message.value),
            ):
                if fn is None or data is None:
                    continue
                try:
                    fn(data)
                except Exception as exc:
                    where = f"{tp.topic}[{tp.partition}] offset {message.offset}"
                    msg = (
                        f"cannot deserialize the {what} of the record at {where}: "
                        f"{type(exc).__name__}: {exc} (choose another {what}_deserializer, "
                        "or one that handles bad input)"
                    )
                    return ConnectorError(msg, retriable=False)
        msg = f"cannot deserialize a record of {tp.topic}[{tp.partition}]"
        return ConnectorError(msg, retriable=False)
