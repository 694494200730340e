"""Fetching, the decoding step: the messages of a ``getmany`` become the rows of one
:class:`~streamio.connectors.kafka.records.KafkaChunk`, keys and values deserialized,
or (``columnar=True``) the columns of one Arrow record batch."""

from __future__ import annotations

import json
import operator
from typing import Any

from aiokafka import TopicPartition

from streamio.checks import OnError, check_installed
from streamio.errors import ConnectorError

from .records import KafkaRecord
from .serde import (
    Deserializer,
    deserialize_bytes,
    deserialize_json,
    deserialize_str,
    resolve_deserializer,
)

__all__ = ["COLUMNS", "ColumnDecoder", "RecordDecoder"]

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
        on_error: what a record a deserializer refuses does: ``"fail"`` (a
            non-retriable ConnectorError naming it), or ``"skip"`` /
            ``"dead_letter"`` (left out of the rows, returned by :meth:`extend`).

    Raises:
        ConfigurationError: for an unknown deserializer.
    """

    __slots__ = ("_key_fn", "_on_error", "_value_fn")

    def __init__(
        self,
        key_deserializer: str | Deserializer,
        value_deserializer: str | Deserializer,
        on_error: OnError = "fail",
    ) -> None:
        self._on_error = on_error
        key_fn = resolve_deserializer(key_deserializer, "key_deserializer")
        value_fn = resolve_deserializer(value_deserializer, "value_deserializer")
        # the C functions behind the built-in ones, without a Python frame per record;
        # None: the bytes stay as they are
        self._key_fn = _FAST_DESERIALIZERS.get(key_fn, key_fn)
        self._value_fn = _FAST_DESERIALIZERS.get(value_fn, value_fn)

    def extend(
        self, rows: list[tuple[Any, ...]], tp: TopicPartition, messages: list[Any]
    ) -> list[tuple[KafkaRecord, Exception]]:
        """Append the rows of ``messages`` (of partition ``tp``, in offset order) to ``rows``.

        Returns the records a deserializer refused (``on_error`` "skip" or
        "dead_letter"), raw (key and value bytes, topic, partition, offset), each
        with its error: usually none. Only after the fast path raised are the
        messages decoded one by one.

        Raises:
            ConnectorError: (not retriable, with ``on_error="fail"``) naming the
                first record a deserializer refuses; none of ``messages`` is
                appended then.
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
            if self._on_error == "fail":
                raise self.error(tp, messages) from exc
        else:
            return []
        return self._one_by_one(rows, tp, messages)

    def _one_by_one(
        self, rows: list[tuple[Any, ...]], tp: TopicPartition, messages: list[Any]
    ) -> list[tuple[KafkaRecord, Exception]]:
        """The slow path, after a refusal: the rows that decode, and the others."""
        key_fn, value_fn = self._key_fn, self._value_fn
        topic, partition = tp.topic, tp.partition
        refused: list[tuple[KafkaRecord, Exception]] = []
        for m in messages:
            key, value = m.key, m.value
            try:
                if key is not None and key_fn is not None:
                    key = key_fn(key)
                if value is not None and value_fn is not None:
                    value = value_fn(value)
            except Exception as exc:
                raw = KafkaRecord(
                    m.key, m.value, topic, partition, m.offset, m.timestamp, m.headers
                )
                refused.append((raw, exc))
                continue
            rows.append((key, value, topic, partition, m.offset, m.timestamp, m.headers))
        return refused

    def error(self, tp: TopicPartition, messages: list[Any]) -> ConnectorError:
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
                        "or one that handles bad input, or on_deserialize_error='skip' or "
                        "'dead_letter')"
                    )
                    return ConnectorError(msg, retriable=False)
        msg = f"cannot deserialize a record of {tp.topic}[{tp.partition}]"
        return ConnectorError(msg, retriable=False)


class ColumnDecoder:
    """Turns fetched aiokafka messages into one Arrow record batch (``columnar=True``).

    Columns: ``key``, ``value``, ``topic``, ``partition`` (int32), ``offset`` and
    ``timestamp`` (int64, milliseconds since the epoch, Kafka's unit). Keys and
    values stay binary with the ``"bytes"`` deserializer and become strings in
    Arrow with ``"str"`` (UTF-8 checked there, no Python ``str`` per record);
    another deserializer runs per record and Arrow infers the column's type
    (``"json"`` objects become structs). No :class:`KafkaRecord` is built.

    Args:
        key_deserializer, value_deserializer: as :class:`RecordDecoder`'s.

    Raises:
        ConfigurationError: for an unknown deserializer, or pyarrow missing.
    """

    __slots__ = ("_columns", "_fns", "_pa", "_rows", "schema")

    def __init__(
        self, key_deserializer: str | Deserializer, value_deserializer: str | Deserializer
    ) -> None:
        self._pa = check_installed("pyarrow", "KafkaSource(columnar=True)", "arrow")
        self._rows = RecordDecoder(key_deserializer, value_deserializer)  # names its errors
        pa = self._pa
        self._fns: list[Deserializer | None] = []
        types = []
        for what, given in (("key", key_deserializer), ("value", value_deserializer)):
            fn = resolve_deserializer(given, f"{what}_deserializer")
            if fn is deserialize_bytes:
                self._fns.append(None)
                types.append(pa.binary())
            elif fn is deserialize_str:
                self._fns.append(None)
                types.append(pa.string())
            else:
                self._fns.append(fn)
                types.append(None)
        self._columns: list[Any] = [*types, pa.string(), pa.int32(), pa.int64(), pa.int64()]
        known = all(t is not None for t in types)
        self.schema = pa.schema(list(zip(COLUMNS, self._columns, strict=True))) if known else None

    def arrays(self, tp: TopicPartition, messages: list[Any]) -> list[Any]:
        """The columns of ``messages`` (of partition ``tp``, in offset order).

        Raises:
            ConnectorError: (not retriable) naming the first record a deserializer
                refuses (or whose text is not UTF-8).
        """
        pa = self._pa
        count = len(messages)
        key_type, value_type, *_ = self._columns
        arrays = []
        try:
            for getter, fn, kind in (
                (_KEY, self._fns[0], key_type),
                (_VALUE, self._fns[1], value_type),
            ):
                data = list(map(getter, messages))
                if fn is not None:
                    arrays.append(pa.array([None if d is None else fn(d) for d in data]))
                elif kind == pa.string():
                    arrays.append(pa.array(data, pa.binary()).cast(pa.string()))
                else:
                    arrays.append(pa.array(data, kind))
        except Exception as exc:
            raise self._rows.error(tp, messages) from exc
        arrays.append(pa.array([tp.topic] * count, pa.string()))
        arrays.append(pa.array([tp.partition] * count, pa.int32()))
        arrays.append(pa.array(list(map(_OFFSET, messages)), pa.int64()))
        arrays.append(pa.array(list(map(_TIMESTAMP, messages)), pa.int64()))
        return arrays

    def batch(self, parts: list[list[Any]]) -> Any:
        """One record batch of the columns of several partitions' messages."""
        pa = self._pa
        if len(parts) == 1:
            return pa.record_batch(parts[0], names=COLUMNS)
        columns = [pa.concat_arrays([part[i] for part in parts]) for i in range(len(COLUMNS))]
        return pa.record_batch(columns, names=COLUMNS)


# The columns of a columnar Kafka chunk, in order.
COLUMNS = ["key", "value", "topic", "partition", "offset", "timestamp"]
_KEY = operator.attrgetter("key")
_VALUE = operator.attrgetter("value")
_OFFSET = operator.attrgetter("offset")
_TIMESTAMP = operator.attrgetter("timestamp")
