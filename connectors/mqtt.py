"""MQTT for streamio: a subscribing source and a publishing sink (aiomqtt).

Source — each message of the subscribed topic filters (wildcards ``+`` and ``#``
allowed, QoS 0, 1 or 2) an :class:`MqttMessage`, stored in chunks of what has
arrived (one ``put_many`` each).

Delivery guarantee: **at most once** for what the job holds. aiomqtt acknowledges a
QoS 1 or 2 message (``PUBACK`` / ``PUBREC``) as soon as it arrives and offers no
manual acknowledgement, so a message in the stream's buffer when the job dies is
not delivered again. What the broker still holds is not lost: with a
``client_id`` the session is persistent (``clean_session=False``), and the broker
keeps the QoS 1 and 2 messages published while the source is away (restarted,
disconnected, or paused by backpressure) and delivers them when it comes back.
Without ``client_id`` the session is clean: what is published while the source is
away is lost. A reconnection may bring a QoS 1 message again whose acknowledgement
had not reached the broker (MQTT's own redelivery).

Backpressure: MQTT has no way to make a broker wait but not being connected. When
a chunk does not fit in the stream's buffer, the source disconnects, waits until
the chunk is stored, and connects again; a persistent session's messages wait in
the broker meanwhile (up to its ``max_queued_messages``), so memory stays bounded by
the buffer's capacity plus what arrived before the disconnection.

A lost broker is reported to the listeners (``on_receiver_error``, with
``info.extra["broker"]``) and reconnected with capped exponential backoff by the
source itself; the subscriptions are made again on each connection.

    from streamio.connectors.mqtt import mqtt_stream

    readings = mqtt_stream(ssc, "sensors/+/temperature", host="broker", qos=1,
                           client_id="job-1", value_deserializer="json")

Sink — each record published to a topic; with QoS 1 or 2 the call returns once the
broker acknowledged every message (at least once: a replayed batch is published
again)::

    async with MqttPublishSink("alerts", host="broker", qos=1) as sink, \\
            StreamingContext(batch_interval=1.0) as ssc:
        alerts.foreach_batch(sink)

Needs ``pip install 'streamio[mqtt]'``.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

try:
    import aiomqtt
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("the MQTT connector needs aiomqtt: pip install 'streamio[mqtt]'") from exc

import anyio

from streamio import DStream, Receiver, ReceiverOutput, StreamingContext
from streamio.abc import Sink
from streamio.checks import check_whole_number
from streamio.errors import ConfigurationError, ConnectorError

from .messaging import (
    BadMessagePolicy,
    Changes,
    Deserializer,
    ReconnectBackoff,
    Serializer,
    attach,
    check_policy,
    resolve_deserializer,
    resolve_serializer,
)

__all__ = [
    "MqttMessage",
    "MqttPublishSink",
    "MqttSource",
    "MqttSourceStatistics",
    "mqtt_stream",
]

logger = logging.getLogger(__name__)

# Options the connectors set themselves, and why a caller may not.
_RESERVED = {
    "hostname": "pass host= to the connector",
    "port": "pass port= to the connector",
    "identifier": "pass client_id= to the source (a persistent session)",
    "clean_session": "set by client_id: persistent with one, clean without",
    "max_queued_incoming_messages": "aiomqtt drops messages past it; the source "
    "disconnects instead when its buffer is full",
}
_CLIENT_OPTIONS = frozenset(inspect.signature(aiomqtt.Client.__init__).parameters) - {"self"}
# How long a connection may take (aiomqtt's own timeout, 10 s by default, comes first).
_CONNECT_DEADLINE = 30.0
# How long a disconnection may take before it is abandoned.
_CLOSE_TIMEOUT = 5.0


async def _enter(stack: contextlib.AsyncExitStack, client: aiomqtt.Client) -> None:
    """Connect ``client`` inside ``stack``, shielded from cancellation.

    aiomqtt leaves a half-made connection behind (an open socket, a pending task)
    when cancelled while it connects: the connection is made whole, or fails by
    aiomqtt's own timeout, before a stop goes on; ``_CONNECT_DEADLINE`` bounds it.
    """
    with anyio.CancelScope(shield=True) as scope:
        scope.deadline = anyio.current_time() + _CONNECT_DEADLINE
        await stack.enter_async_context(client)
    if scope.cancelled_caught:
        raise aiomqtt.MqttError(f"no answer within {_CONNECT_DEADLINE}s")


class MqttMessage(NamedTuple):
    """One MQTT message.

    Attributes:
        topic: the topic it was published to.
        payload: its payload, through the source's ``value_deserializer``.
        qos: the QoS it was delivered with (the lower of publisher's and subscription's).
        retain: it is the topic's retained message, sent on subscribing.
    """

    topic: str
    payload: Any
    qos: int
    retain: bool


@dataclass(frozen=True)
class MqttSourceStatistics:
    """A snapshot of an :class:`MqttSource`, for monitoring and tests.

    Attributes:
        received: messages stored in the stream's buffer.
        skipped: bad messages left out (``on_bad_message="skip"``).
        connections: connections made (a reconnection counts).
        pauses: disconnections because the buffer was full.
        connected: subscribed on a connection now.
        paused: disconnected until the buffer has room for the chunk in hand.
    """

    received: int
    skipped: int
    connections: int
    pauses: int
    connected: bool
    paused: bool


def _check_host(host: Any, port: Any) -> None:
    if not isinstance(host, str) or not host:
        raise ConfigurationError(f"host must be a non-empty string, not {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigurationError(f"port must be a whole number from 1 to 65535, not {port!r}")


def _check_qos(qos: Any) -> int:
    if qos not in (0, 1, 2) or isinstance(qos, bool):
        raise ConfigurationError(f"qos must be 0, 1 or 2, not {qos!r}")
    return int(qos)


def _client_options(options: dict[str, Any]) -> dict[str, Any]:
    for key in options:
        if key in _RESERVED:
            raise ConfigurationError(f"{key} cannot be set: {_RESERVED[key]}")
        if key not in _CLIENT_OPTIONS:
            raise ConfigurationError(f"{key!r} is not an aiomqtt.Client option")
    return dict(options)


class MqttSource(Receiver[MqttMessage]):
    """Receives the messages of MQTT topic filters.

    Args:
        topics: a topic filter or several (``+`` one level, ``#`` the rest).
        host, port: the broker.
        qos: the subscriptions' QoS (0, 1 or 2).
        client_id: the client identifier; given, the session is persistent and
            the broker keeps QoS 1 and 2 messages while the source is away (use
            one identifier per job, the same across its restarts). None: a clean
            session with a generated identifier.
        value_deserializer: ``"bytes"`` (the default), ``"str"``, ``"json"`` or a
            function of the payload.
        on_bad_message: ``"fail"`` or ``"skip"`` a message whose payload does not
            decode (see :mod:`streamio.connectors.messaging`); a failed message
            was acknowledged already (it is lost with the source's stop).
        chunk_size: most messages per stored chunk.
        reconnect_backoff, max_backoff: seconds before the first reconnection
            attempt, doubled after each failure up to ``max_backoff``.
        max_reconnects: failed reconnection attempts in a row before ``run``
            raises; None (the default) retries for ever.
        **client_options: other ``aiomqtt.Client`` options (``username``,
            ``password``, ``tls_context``, ``protocol``, ``keepalive``...), never
            logged.

    Raises:
        ConfigurationError: for a wrong argument.
    """

    def __init__(
        self,
        topics: str | Iterable[str],
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        qos: int = 1,
        client_id: str | None = None,
        value_deserializer: str | Deserializer = "bytes",
        on_bad_message: BadMessagePolicy = "fail",
        chunk_size: int = 1000,
        reconnect_backoff: float = 0.1,
        max_backoff: float = 10.0,
        max_reconnects: int | None = None,
        **client_options: Any,
    ) -> None:
        filters = (topics,) if isinstance(topics, str) else tuple(topics)
        if not filters or not all(isinstance(t, str) and t for t in filters):
            raise ConfigurationError(f"topics must be a topic filter or several, not {topics!r}")
        for topic in filters:
            levels = topic.split("/")
            if ("#" in topic and (levels[-1] != "#" or topic.count("#") > 1)) or any(
                "+" in level and level != "+" for level in levels
            ):
                msg = f"{topic!r} is not a topic filter: '+' is a whole level, '#' the last one"
                raise ConfigurationError(msg)
        _check_host(host, port)
        if client_id is not None and (not isinstance(client_id, str) or not client_id):
            raise ConfigurationError(f"client_id must be a non-empty string or None: {client_id!r}")
        self.topics = filters
        self.host = host
        self.port = port
        self.client_id = client_id
        self._qos = _check_qos(qos)
        self._decode = resolve_deserializer(value_deserializer, "value_deserializer")
        self._policy = check_policy(on_bad_message)
        self._chunk = check_whole_number(chunk_size, "chunk_size (messages)")
        self._backoff = ReconnectBackoff(reconnect_backoff, max_backoff, max_reconnects)
        self._options = _client_options(client_options)
        self._client: aiomqtt.Client | None = None
        self._exit: contextlib.AsyncExitStack | None = None
        self._received = 0
        self._skipped = 0
        self._connections = 0
        self._pauses = 0
        self._paused = False
        self._changes = Changes()

    @property
    def broker(self) -> str:
        """``host:port``: what listeners get as ``info.extra["broker"]``."""
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"MqttSource({list(self.topics)!r}, broker={self.broker!r})"

    def stream(
        self,
        ssc: StreamingContext,
        *,
        name: str | None = None,
        buffer_capacity: int | None = None,
        max_rate: float | None = None,
    ) -> DStream[MqttMessage]:
        """The input stream of this source in ``ssc``, named after its topics by default."""
        return attach(
            ssc,
            self,
            name=name,
            default_name=f"mqtt {','.join(self.topics)}",
            buffer_capacity=buffer_capacity,
            max_rate=max_rate,
        )

    def statistics(self) -> MqttSourceStatistics:
        """What the source has received, now."""
        return MqttSourceStatistics(
            received=self._received,
            skipped=self._skipped,
            connections=self._connections,
            pauses=self._pauses,
            connected=self._client is not None,
            paused=self._paused,
        )

    async def wait_until(self, predicate: Any) -> None:
        """Return once ``predicate(self.statistics())`` is true; woken by changes only."""
        await self._changes.wait_until(self.statistics, predicate)

    # -- the receiver contract --------------------------------------------------------

    async def open(self) -> None:
        """Connect and subscribe.

        Raises:
            ConnectorError: (retriable) when the broker cannot be reached or
                refuses the connection or a subscription.
        """
        if self._client is None:
            await self._connect()

    async def run(self, output: ReceiverOutput[MqttMessage]) -> None:
        """Store what arrives in chunks, reconnecting when the broker goes away and
        disconnecting while the buffer is full, until cancelled."""
        while True:
            try:
                if self._client is None:
                    await self._connect()
                assert self._client is not None
                held = await self._receive(self._client, output)
            except (aiomqtt.MqttError, ConnectorError) as exc:
                if isinstance(exc, ConnectorError) and not exc.retriable:
                    raise
                await self._lost(output, exc)
                continue
            # the buffer is full: let the broker hold the messages while it empties
            self._paused = True
            self._pauses += 1
            await self._disconnect()
            try:
                await output.put_many(held)
            finally:
                self._paused = False
                self._changes.notify()

    async def aclose(self) -> None:
        """Disconnect (idempotent). A persistent session's subscriptions stay with
        the broker, which keeps its QoS 1 and 2 messages for the next start."""
        await self._disconnect()

    # -- connecting -------------------------------------------------------------------

    async def _connect(self) -> None:
        stack = contextlib.AsyncExitStack()
        client = aiomqtt.Client(
            self.host,
            self.port,
            identifier=self.client_id,
            clean_session=self.client_id is None,
            **self._options,
        )
        try:
            await _enter(stack, client)
            await client.subscribe([(topic, self._qos) for topic in self.topics])
        except aiomqtt.MqttError as exc:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT):
                await stack.aclose()
            msg = f"cannot connect or subscribe to the MQTT broker at {self.broker}: {exc}"
            raise ConnectorError(msg, retriable=True) from exc
        except BaseException:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT):
                await stack.aclose()
            raise
        self._client, self._exit = client, stack
        self._connections += 1
        self._changes.notify()

    async def _disconnect(self) -> None:
        stack, self._exit = self._exit, None
        self._client = None
        if stack is not None:
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(_CLOSE_TIMEOUT),
                contextlib.suppress(aiomqtt.MqttError, OSError),
            ):
                await stack.aclose()
            self._changes.notify()

    async def _lost(self, output: ReceiverOutput[MqttMessage], exc: BaseException) -> None:
        """Report a lost broker, drop the connection and wait before the next try."""
        await self._disconnect()
        if isinstance(exc, ConnectorError):
            error = exc
        else:
            error = ConnectorError(f"MQTT broker at {self.broker} lost: {exc}", retriable=True)
            error.__cause__ = exc
        logger.info("%r: %s; reconnecting", self, error)
        await output.report_error(error, broker=self.broker)
        if not self._backoff.failed():
            raise error
        await anyio.sleep(self._backoff.next_delay())

    # -- receiving ----------------------------------------------------------------------

    async def _receive(
        self, client: aiomqtt.Client, output: ReceiverOutput[MqttMessage]
    ) -> list[MqttMessage]:
        """Store chunks of what arrives while they fit in the buffer; return the
        chunk (and everything already received) once one does not."""
        messages = client.messages
        while True:
            raw = [await anext(messages)]
            self._backoff.reset()
            while len(messages) and len(raw) < self._chunk:  # arrived already: no wait
                raw.append(await anext(messages))
            chunk = await self._convert(output, raw)
            stats = output.statistics()
            if stats.would_wait(len(chunk)):
                while len(messages):  # received and acknowledged: ours to keep
                    chunk += await self._convert(output, [await anext(messages)])
                return chunk
            await output.put_many(chunk)

    async def _convert(
        self, output: ReceiverOutput[MqttMessage], raw: list[aiomqtt.Message]
    ) -> list[MqttMessage]:
        decode = self._decode
        try:
            if decode is None:
                chunk = [MqttMessage(m.topic.value, m.payload, m.qos, m.retain) for m in raw]
            else:
                chunk = [
                    MqttMessage(m.topic.value, decode(m.payload), m.qos, m.retain) for m in raw
                ]
        except Exception:
            chunk = await self._one_by_one(output, raw)
        self._received += len(chunk)
        self._changes.notify()
        return chunk

    async def _one_by_one(
        self, output: ReceiverOutput[MqttMessage], raw: list[aiomqtt.Message]
    ) -> list[MqttMessage]:
        """The messages that decode; a bad one fails the source or is skipped."""
        decode = self._decode
        assert decode is not None
        good: list[MqttMessage] = []
        for m in raw:
            try:
                payload = decode(m.payload)
            except Exception as exc:
                where = f"a message of topic {m.topic.value!r}"
                if self._policy == "fail":
                    self.restartable = False
                    msg = (
                        f"cannot decode {where}: {type(exc).__name__}: {exc} (choose "
                        "another value_deserializer or on_bad_message='skip')"
                    )
                    raise ConnectorError(msg, retriable=False) from exc
                self._skipped += 1
                # counted in BatchInfo.records_skipped
                refused = MqttMessage(m.topic.value, m.payload, m.qos, m.retain)
                output.reject([(refused, exc)], dead_letter=False)
                error = ConnectorError(
                    f"skipped {where}: {type(exc).__name__}: {exc}", retriable=False
                )
                logger.warning("%r: %s", self, error)
                await output.report_error(error, message=where)
                continue
            good.append(MqttMessage(m.topic.value, payload, m.qos, m.retain))
        return good


def mqtt_stream(
    ssc: StreamingContext,
    topics: str | Iterable[str],
    *,
    name: str | None = None,
    buffer_capacity: int | None = None,
    max_rate: float | None = None,
    **options: Any,
) -> DStream[MqttMessage]:
    """A stream of :class:`MqttMessage` of the topic filters ``topics``.

    ``options`` are :class:`MqttSource`'s (``host``, ``port``, ``qos``,
    ``client_id``...); ``name``, ``buffer_capacity`` and ``max_rate`` are the
    stream's, as in ``ssc.receiver_stream``.
    """
    source = MqttSource(topics, **options)
    return source.stream(ssc, name=name, buffer_capacity=buffer_capacity, max_rate=max_rate)


class MqttPublishSink(Sink[Any]):
    """Publishes each batch's records to an MQTT topic.

    With QoS 1 or 2 the call returns once the broker acknowledged every message
    (at least once: a replayed batch is published again); with QoS 0 once they
    were handed to the connection (at most once). A lost broker is retried with
    capped backoff; after ``max_attempts`` failed attempts the batch fails with a
    retriable :class:`~streamio.ConnectorError`.

    Args:
        topic: where to publish (no wildcards).
        host, port: the broker.
        qos: 0, 1 or 2.
        retain: publish retained messages.
        value_serializer: ``"bytes"`` (bytes as they are, ``str`` as UTF-8),
            ``"str"``, ``"json"`` or a function returning bytes.
        chunk_size: most messages in flight at once.
        max_attempts: attempts of one chunk before the batch fails.
        retry_backoff, max_backoff: seconds before the first retry, doubled up to
            ``max_backoff``.
        **client_options: other ``aiomqtt.Client`` options.

    Raises:
        ConfigurationError: for a wrong argument.
    """

    def __init__(
        self,
        topic: str,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        qos: int = 1,
        retain: bool = False,
        value_serializer: str | Serializer = "bytes",
        chunk_size: int = 1000,
        max_attempts: int = 5,
        retry_backoff: float = 0.1,
        max_backoff: float = 5.0,
        **client_options: Any,
    ) -> None:
        if not isinstance(topic, str) or not topic or "+" in topic or "#" in topic:
            raise ConfigurationError(f"topic must be a topic without wildcards, not {topic!r}")
        _check_host(host, port)
        self.topic = topic
        self.host = host
        self.port = port
        self._qos = _check_qos(qos)
        self._retain = bool(retain)
        self._serialize = resolve_serializer(value_serializer, "value_serializer")
        self._chunk = check_whole_number(chunk_size, "chunk_size (messages)")
        self._attempts = check_whole_number(max_attempts, "max_attempts")
        self._retry = ReconnectBackoff(retry_backoff, max_backoff, None)
        self._options = _client_options(client_options)
        self._client: aiomqtt.Client | None = None
        self._exit: contextlib.AsyncExitStack | None = None
        self._closed = False
        self.written = 0

    def __repr__(self) -> str:
        return f"MqttPublishSink({self.topic!r}, broker='{self.host}:{self.port}')"

    async def __call__(self, batch_time: float, records: list[Any]) -> None:
        """Publish ``records``; with QoS 1 or 2, return once the broker has them all.

        Raises:
            TypeError: for a record the serializer refuses.
            ConnectorError: when the broker stayed unreachable for ``max_attempts``
                attempts (retriable).
        """
        if self._closed:
            raise ConnectorError("MqttPublishSink used after aclose()", retriable=False)
        payloads = [self._serialize(record) for record in records]
        for start in range(0, len(payloads), self._chunk):
            await self._send(payloads[start : start + self._chunk])

    async def _send(self, payloads: list[bytes]) -> None:
        backoff = ReconnectBackoff(self._retry.initial, self._retry.maximum, self._attempts - 1)
        while True:
            failure: BaseException | None = None
            try:
                client = await self._connected()
                async with anyio.create_task_group() as group:
                    for payload in payloads:
                        group.start_soon(self._publish, client, payload)
            except* (aiomqtt.MqttError, ConnectorError) as group_error:
                failure = group_error.exceptions[0]
            if failure is None:
                self.written += len(payloads)
                return
            await self._drop_client()
            if not backoff.failed():
                msg = f"publishing to {self.topic!r} failed {backoff.failures} times: {failure}"
                raise ConnectorError(msg, retriable=True) from failure
            logger.info("%r: %s; retrying", self, failure)
            await anyio.sleep(backoff.next_delay())

    async def _publish(self, client: aiomqtt.Client, payload: bytes) -> None:
        await client.publish(self.topic, payload, qos=self._qos, retain=self._retain)

    async def _connected(self) -> aiomqtt.Client:
        if self._client is not None:
            return self._client
        stack = contextlib.AsyncExitStack()
        client = aiomqtt.Client(self.host, self.port, **self._options)
        try:
            await _enter(stack, client)
        except aiomqtt.MqttError as exc:
            await stack.aclose()
            msg = f"cannot connect to the MQTT broker at {self.host}:{self.port}: {exc}"
            raise ConnectorError(msg, retriable=True) from exc
        self._client, self._exit = client, stack
        return client

    async def _drop_client(self) -> None:
        stack, self._exit = self._exit, None
        self._client = None
        if stack is not None:
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(_CLOSE_TIMEOUT),
                contextlib.suppress(aiomqtt.MqttError, OSError),
            ):
                await stack.aclose()

    async def aclose(self) -> None:
        """Disconnect (idempotent)."""
        self._closed = True
        await self._drop_client()
