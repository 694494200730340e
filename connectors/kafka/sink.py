"""The Kafka sink: an output function that writes each batch to a topic.

``stream.foreach_batch(KafkaSink("topic", ...))`` sends every record of a batch and
returns only once Kafka acknowledged all of them (``acks="all"`` by default). Since
streamio commits a batch's source positions only after its outputs returned, the
source offsets of a batch are committed only once its results are in Kafka: a
crash in between replays the batch (at-least-once, end to end).
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from aiokafka import AIOKafkaProducer
from aiokafka import errors as kafka_errors
from aiokafka.partitioner import DefaultPartitioner

from streamio.abc import Sink
from streamio.errors import ConfigurationError, ConnectorError

from .clients import close_quietly
from .errors import to_connector_error
from .serde import Serializer, resolve_serializer

if TYPE_CHECKING:
    from streamio import DStream

__all__ = ["KafkaSink", "kafka_sink"]

R = TypeVar("R")

_RESERVED_OPTIONS = {
    "key_serializer": "pass key_serializer to KafkaSink itself",
    "value_serializer": "pass value_serializer to KafkaSink itself",
    "loop": "the producer is created in the running event loop",
}
_PRODUCER_OPTIONS = frozenset(inspect.signature(AIOKafkaProducer.__init__).parameters) - {"self"}


class KafkaSink(Sink[R]):
    """Writes each batch's records to a Kafka topic: ``stream.foreach_batch(sink)``.

    By default a record is the message value, with no key. Give functions to take
    the key, value, headers, partition or timestamp from each record, for example
    ``key=operator.itemgetter(0), value=operator.itemgetter(1)`` for ``(key, value)``
    pairs. Records with the same key go to the same partition (Kafka's default
    partitioner, murmur2 of the key bytes, as the Java client; a ``partitioner``
    producer option replaces it); records with neither key nor partition fill a
    record batch of one partition, then of another (Kafka's sticky partitioner).

    A batch is written in record batches, one per partition (up to the producer's
    ``max_batch_size`` bytes each), each handed to the producer with one await,
    rather than one send per record: about three times the speed of an aiokafka
    loop awaiting ``send`` for every record (``benchmarks/kafka_sink.py``).

    The producer is started in the running event loop at the first batch (or by
    :meth:`start`) and closed by :meth:`aclose`; the sink is an async context
    manager doing both. Enter it *before* the StreamingContext, so it outlives the
    context's last batches::

        async with KafkaSink("counts", value_serializer="json") as sink, \\
                StreamingContext(batch_interval=1.0) as ssc:
            counts.foreach_batch(sink)

    Args:
        topic: the topic written to.
        bootstrap_servers: ``"host:port"`` or a list of them.
        key, value: functions of a record giving the message key and value
            (default: no key, the record itself as value).
        headers: a function of a record giving ``(name, bytes)`` pairs (or a dict).
        partition: a function of a record giving its partition (None: the
            partitioner's choice); a partition the topic does not have fails the
            batch.
        timestamp_ms: a function of a record giving its timestamp in milliseconds
            (None: the producer's time).
        key_serializer, value_serializer: ``"bytes"`` (bytes-like values as they
            are and ``str`` as UTF-8: the default), ``"str"`` (``str(x)`` as UTF-8),
            ``"json"`` or a function returning bytes; never applied to None.
        acks: ``"all"`` (the default: every in-sync replica has the batch), ``1``
            or ``0``.
        enable_idempotence: no duplicates from the producer's own retries; the
            broker must support idempotent producers.
        transactional_id: write each batch in one Kafka transaction, so readers
            with ``isolation_level="read_committed"`` see all of a batch or none
            of it. Implies idempotence. (Source offsets are still committed after
            the transaction, by the source: a crash between the two replays the
            batch.)
        **producer_config: any other ``aiokafka.AIOKafkaProducer`` option, passed
            through (``compression_type``, ``linger_ms``, ``security_protocol``,
            ``ssl_context``, ``sasl_*``, ``request_timeout_ms``...). Their values are
            never logged nor shown in ``repr``.

    Raises:
        ConfigurationError: for a wrong argument or an unknown producer option.
    """

    def __init__(
        self,
        topic: str,
        *,
        bootstrap_servers: str | list[str] = "localhost:9092",
        key: Callable[[R], Any] | None = None,
        value: Callable[[R], Any] | None = None,
        headers: Callable[[R], Any] | None = None,
        partition: Callable[[R], int | None] | None = None,
        timestamp_ms: Callable[[R], int | None] | None = None,
        key_serializer: str | Serializer = "bytes",
        value_serializer: str | Serializer = "bytes",
        acks: int | str = "all",
        enable_idempotence: bool = False,
        transactional_id: str | None = None,
        **producer_config: Any,
    ) -> None:
        if not isinstance(topic, str) or not topic:
            raise ConfigurationError(f"topic must be a topic name, not {topic!r}")
        for name, fn in (
            ("key", key),
            ("value", value),
            ("headers", headers),
            ("partition", partition),
            ("timestamp_ms", timestamp_ms),
        ):
            if fn is not None and not callable(fn):
                raise ConfigurationError(f"{name} must be a function of a record, not {fn!r}")
        if acks not in ("all", 0, 1, -1):
            raise ConfigurationError(f"acks must be 'all', 1 or 0, not {acks!r}")
        if transactional_id is not None and (
            not isinstance(transactional_id, str) or not transactional_id
        ):
            msg = f"transactional_id must be a non-empty string or None, not {transactional_id!r}"
            raise ConfigurationError(msg)
        for option in producer_config:
            if option in _RESERVED_OPTIONS:
                raise ConfigurationError(f"{option} cannot be set: {_RESERVED_OPTIONS[option]}")
            if option not in _PRODUCER_OPTIONS:
                raise ConfigurationError(f"{option!r} is not an aiokafka producer option")
        self._topic = topic
        self._bootstrap_servers = bootstrap_servers
        self._key = key
        self._value = value
        self._headers = headers
        self._partition = partition
        self._timestamp = timestamp_ms
        self._key_serializer = resolve_serializer(key_serializer, "key_serializer")
        self._value_serializer = resolve_serializer(value_serializer, "value_serializer")
        self._acks = acks
        self._idempotent = bool(enable_idempotence) or transactional_id is not None
        self._enable_idempotence = bool(enable_idempotence)
        self._transactional_id = transactional_id
        self._config = dict(producer_config)
        # the sink picks each record's partition itself, to fill one batch per partition
        self._partitioner = self._config.get("partitioner") or DefaultPartitioner()
        self._sticky = "partitioner" not in self._config
        self._producer: AIOKafkaProducer | None = None
        self._lock: anyio.Lock | None = None
        self._closed = False
        self.records_sent = 0
        """Records Kafka acknowledged so far."""

    def __repr__(self) -> str:
        return f"KafkaSink(topic={self._topic!r}, bootstrap_servers={self._bootstrap_servers!r})"

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the producer now rather than at the first batch (it connects and,
        with idempotence, asks the broker for a producer id)."""
        await self._started()

    async def aclose(self) -> None:
        """Flush and close the producer. Idempotent; the sink cannot send afterwards."""
        self._closed = True
        producer, self._producer = self._producer, None
        if producer is not None:
            await close_quietly(producer, self)

    async def __aenter__(self) -> KafkaSink[R]:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _started(self) -> AIOKafkaProducer:
        if self._closed:
            msg = (
                f"{self!r} is closed; enter it around the StreamingContext "
                "(async with sink, StreamingContext(...)) so it outlives the last batch"
            )
            raise ConnectorError(msg, retriable=False)
        if self._producer is not None:
            return self._producer
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if self._producer is not None:
                return self._producer
            try:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._bootstrap_servers,
                    acks=self._acks,
                    enable_idempotence=self._enable_idempotence,
                    transactional_id=self._transactional_id,
                    **self._config,
                )
            except Exception as exc:
                raise to_connector_error(exc, "producer configuration") from exc
            try:
                await producer.start()
            except BaseException as exc:
                await close_quietly(producer, self)
                if isinstance(exc, Exception):
                    raise self._start_error(exc) from exc
                raise
            self._producer = producer
            return producer

    def _start_error(self, exc: Exception) -> ConnectorError:
        if self._idempotent and isinstance(exc, kafka_errors.BrokerResponseError):
            option = (
                "transactional_id=None and enable_idempotence=False"
                if self._transactional_id is not None
                else "enable_idempotence=False"
            )
            msg = (
                "the broker refused to set up an idempotent producer (InitProducerId "
                f"failed: {type(exc).__name__}). If this broker does not support idempotent "
                f"or transactional producers, pass {option} to KafkaSink."
            )
            return ConnectorError(msg, retriable=False)
        return to_connector_error(exc, "starting the producer")

    # -- sending -----------------------------------------------------------------------

    async def __call__(self, batch_time: float, records: Sequence[R]) -> None:
        """Send every record of the batch; return once Kafka acknowledged them all.

        Raises:
            ConnectorError: when a record could not be serialized or sent (the
                batch then counts as failed and its source offsets stay uncommitted).
        """
        if not records:
            return
        messages = [self._message(record) for record in records]
        producer = await self._started()
        try:
            if self._transactional_id is not None:
                assert self._lock is not None
                async with self._lock, producer.transaction():
                    await self._send_all(producer, messages)
            else:
                await self._send_all(producer, messages)
        except kafka_errors.KafkaError as exc:
            raise to_connector_error(exc, f"producing to {self._topic!r}") from exc
        self.records_sent += len(messages)

    def _message(self, record: R) -> tuple[Any, Any, Any, Any, Any]:
        key = self._key(record) if self._key is not None else None
        value = self._value(record) if self._value is not None else record
        try:
            key_bytes = None if key is None else self._key_serializer(key)
            value_bytes = None if value is None else self._value_serializer(value)
        except Exception as exc:
            msg = f"cannot serialize a record for {self._topic!r}: {type(exc).__name__}: {exc}"
            raise ConnectorError(msg, retriable=False) from exc
        headers = None
        if self._headers is not None:
            given = self._headers(record)
            pairs: Iterable[Any] = given.items() if isinstance(given, dict) else given or ()
            headers = [(str(name), bytes(data)) for name, data in pairs]
        partition = self._partition(record) if self._partition is not None else None
        timestamp = self._timestamp(record) if self._timestamp is not None else None
        return key_bytes, value_bytes, headers, partition, timestamp

    async def _send_all(
        self, producer: AIOKafkaProducer, messages: list[tuple[Any, Any, Any, Any, Any]]
    ) -> None:
        """Append the messages to one record batch per partition, hand each batch to
        the producer when it is full and the rest at the end, then wait for every
        delivery; raise the first error.

        One await per batch of ``max_batch_size`` bytes, not per record. Records
        with a key go to the partition the partitioner gives their key bytes (the
        default: murmur2, as the Java client); records with neither key nor
        partition fill a batch of one partition chosen at random, then of another
        (Kafka's sticky partitioner).
        """
        topic = self._topic
        partitions = sorted(await producer.partitions_for(topic))
        known = frozenset(partitions)
        partitioner = self._partitioner
        builders: dict[int, Any] = {}
        futures: list[asyncio.Future[Any]] = []
        sticky = random.choice(partitions)
        try:
            for key, value, headers, given, timestamp in messages:
                if given is not None:
                    if given not in known:
                        msg = (
                            f"partition {given!r} of {topic!r} does not exist (it has "
                            f"{len(partitions)}: 0 to {len(partitions) - 1})"
                        )
                        raise ConnectorError(msg, retriable=False)
                    partition = given
                elif key is None and self._sticky:
                    partition = sticky
                else:
                    partition = partitioner(key, partitions, partitions)
                builder = builders.get(partition)
                if builder is None:
                    builder = builders[partition] = producer.create_batch()
                added = builder.append(key=key, value=value, timestamp=timestamp, headers=headers)
                if added is None:
                    # full: send it, start another (the first record always fits)
                    futures.append(await producer.send_batch(builder, topic, partition=partition))
                    builder = builders[partition] = producer.create_batch()
                    builder.append(key=key, value=value, timestamp=timestamp, headers=headers)
                    if partition == sticky and key is None:
                        sticky = random.choice(partitions)
            for partition, builder in builders.items():
                futures.append(await producer.send_batch(builder, topic, partition=partition))
        finally:
            # every batch handed over is waited for, so no delivery error goes unseen
            results = await asyncio.gather(*futures, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


def kafka_sink(
    stream: DStream[R], topic: str, *, name: str | None = None, **options: Any
) -> KafkaSink[R]:
    """Write ``stream``'s batches to ``topic``: ``stream.foreach_batch(KafkaSink(topic, ...))``.

    Returns the sink: close it (``await sink.aclose()``) once the context has
    stopped. ``options`` are :class:`KafkaSink`'s; ``name`` is the output's, by
    default one ``foreach_batch`` gives (unique, however many sinks write to the
    same topic).
    """
    sink: KafkaSink[R] = KafkaSink(topic, **options)
    stream.foreach_batch(sink, name=name)
    return sink
