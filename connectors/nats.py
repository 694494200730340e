"""NATS JetStream for streamio: a durable pull consumer source and a publish sink (nats-py).

Source — each message of a JetStream stream a :class:`NatsMessage`, fetched by a
durable pull consumer in chunks of ``chunk_size`` (one ``put_many`` each). Every
message is acknowledged only once every output of the batch holding it has
finished, so delivery is **at least once**: what was fetched but not acknowledged
when the job died is delivered again by JetStream (after ``ack_wait``), and a job
restarted under the same durable name resumes where its acknowledgements say.

While the stream's buffer is full, the source fetches nothing: messages stay in
JetStream, and memory stays bounded by the buffer's capacity plus one chunk. A lost
server is reported to the listeners (``on_receiver_error``, with
``info.extra["servers"]``) and reconnected with capped exponential backoff by the
source itself.

    from streamio.connectors.nats import nats_stream

    events = nats_stream(ssc, "events.>", durable="job", servers="nats://127.0.0.1:4222",
                         value_deserializer="json")

Sink — each batch published to JetStream, returning once the server acknowledged
(stored) every message; with ``msg_id=`` JetStream drops the duplicates a replayed
batch would publish (within the stream's duplicate window)::

    async with NatsPublishSink("counts", servers=url, value_serializer="json") as sink, \\
            StreamingContext(batch_interval=1.0) as ssc:
        counts.foreach_batch(sink)

Needs ``pip install 'streamio[nats]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

try:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client as NatsClient
    from nats.js import api
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("the NATS connector needs nats-py: pip install 'streamio[nats]'") from exc

import anyio

from streamio import DStream, Receiver, ReceiverOutput, StreamingContext
from streamio.abc import Sink
from streamio.checks import check_number, check_whole_number
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
    "NatsMessage",
    "NatsPublishSink",
    "NatsSourceStatistics",
    "NatsStreamSource",
    "nats_stream",
]

logger = logging.getLogger(__name__)

# Errors after which a new connection may succeed.
_LOST = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.errors.UnexpectedEOF,
    nats.errors.FlushTimeoutError,
    nats.js.errors.ServiceUnavailableError,
    OSError,
)
# A JetStream acknowledgement (the payload nats-py's Msg.ack() sends).
_ACK = b"+ACK"
# How long a close may take before it is abandoned.
_CLOSE_TIMEOUT = 5.0


class NatsMessage(NamedTuple):
    """One JetStream message.

    Attributes:
        subject: the subject it was published to.
        data: its payload, through the source's ``value_deserializer``.
        headers: its headers, or None.
        sequence: its sequence number in the stream.
    """

    subject: str
    data: Any
    headers: dict[str, str] | None
    sequence: int


@dataclass(frozen=True)
class NatsSourceStatistics:
    """A snapshot of a :class:`NatsStreamSource`, for monitoring and tests.

    Attributes:
        received: messages stored in the stream's buffer.
        acknowledged: messages acknowledged after their batch's outputs.
        unacknowledged: messages fetched and not yet acknowledged.
        skipped: bad messages left out (``on_bad_message="skip"``).
        connections: connections made (a reconnection counts).
        connected: a connection is up now.
        waiting_for_space: the buffer is full and the source waits to store a
            chunk, fetching nothing meanwhile.
    """

    received: int
    acknowledged: int
    unacknowledged: int
    skipped: int
    connections: int
    connected: bool
    waiting_for_space: bool


class NatsStreamSource(Receiver[NatsMessage]):
    """Reads a JetStream stream through a durable pull consumer.

    Args:
        subject: the subject to consume (wildcards ``*`` and ``>`` allowed); a
            JetStream stream must hold it.
        durable: the durable consumer's name: the position survives the job.
            Created when missing (explicit acknowledgements, no cap on the
            messages pending acknowledgement: the buffer bounds them); an
            existing one is used as it is (its ``max_ack_pending`` must exceed the
            buffer's capacity, or fetches wait for acknowledgements).
        stream: the JetStream stream's name; None: the one holding ``subject``.
        servers: the server URL, or several.
        deliver: where a consumer created by the source starts: ``"all"`` (the
            stream's first message, the default) or ``"new"``.
        value_deserializer: ``"bytes"`` (the default), ``"str"``, ``"json"`` or a
            function of the payload.
        on_bad_message: ``"fail"`` or ``"skip"`` a message whose payload does not
            decode (see :mod:`streamio.connectors.messaging`).
        chunk_size: most messages per fetch and so per stored chunk.
        fetch_timeout: seconds one fetch waits for messages.
        ack_wait: seconds JetStream waits for an acknowledgement before delivering
            a message again (for a consumer the source creates): longer than a
            chunk can take from its fetch through its batch's outputs.
        reconnect_backoff, max_backoff: seconds before the first reconnection
            attempt, doubled after each failure up to ``max_backoff``.
        max_reconnects: failed reconnection attempts in a row before ``run``
            raises; None (the default) retries for ever.
        **connect_options: other ``nats.connect`` options (``user``,
            ``password``, ``token``, ``tls``, ``name``...), never logged.

    Raises:
        ConfigurationError: for a wrong argument.
    """

    def __init__(
        self,
        subject: str,
        *,
        durable: str,
        stream: str | None = None,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        deliver: Literal["all", "new"] = "all",
        value_deserializer: str | Deserializer = "bytes",
        on_bad_message: BadMessagePolicy = "fail",
        chunk_size: int = 1000,
        fetch_timeout: float = 1.0,
        ack_wait: float = 30.0,
        reconnect_backoff: float = 0.1,
        max_backoff: float = 10.0,
        max_reconnects: int | None = None,
        **connect_options: Any,
    ) -> None:
        for what, value in (("subject", subject), ("durable", durable)):
            if not isinstance(value, str) or not value or " " in value:
                raise ConfigurationError(f"{what} must be a non-empty name, not {value!r}")
        if stream is not None and (not isinstance(stream, str) or not stream):
            raise ConfigurationError(f"stream must be a stream name or None, not {stream!r}")
        if durable and any(c in durable for c in ".*>"):
            raise ConfigurationError(f"durable must not hold '.', '*' or '>': {durable!r}")
        if deliver not in ("all", "new"):
            raise ConfigurationError(f"deliver must be 'all' or 'new', not {deliver!r}")
        self.subject = subject
        self.durable = durable
        self.stream_name = stream
        self.servers = _check_servers(servers)
        self._deliver = api.DeliverPolicy.ALL if deliver == "all" else api.DeliverPolicy.NEW
        self._decode = resolve_deserializer(value_deserializer, "value_deserializer")
        self._policy = check_policy(on_bad_message)
        self._chunk = check_whole_number(chunk_size, "chunk_size (messages)")
        self._fetch_timeout = check_number(fetch_timeout, "fetch_timeout")
        self._ack_wait = check_number(ack_wait, "ack_wait")
        self._backoff = ReconnectBackoff(reconnect_backoff, max_backoff, max_reconnects)
        self._options = _connect_options(connect_options)

        self._client: NatsClient | None = None
        self._subscription: Any = None
        self._sequence = itertools.count(1)
        # per stored chunk, in order: (position, ack subjects) until acknowledged
        self._unacked: deque[tuple[int, list[str]]] = deque()
        self._output: ReceiverOutput[NatsMessage] | None = None
        self._received = 0
        self._acknowledged = 0
        self._unacked_count = 0
        self._skipped = 0
        self._connections = 0
        self._blocked = False
        self._changes = Changes()

    def __repr__(self) -> str:
        return (
            f"NatsStreamSource({self.subject!r}, durable={self.durable!r}, "
            f"servers={list(self.servers)!r})"
        )

    def stream(
        self,
        ssc: StreamingContext,
        *,
        name: str | None = None,
        buffer_capacity: int | None = None,
        max_rate: float | None = None,
    ) -> DStream[NatsMessage]:
        """The input stream of this source in ``ssc``, named after its subject by default."""
        return attach(
            ssc,
            self,
            name=name,
            default_name=f"nats {self.subject}",
            buffer_capacity=buffer_capacity,
            max_rate=max_rate,
        )

    def statistics(self) -> NatsSourceStatistics:
        """What the source has fetched and acknowledged, now."""
        return NatsSourceStatistics(
            received=self._received,
            acknowledged=self._acknowledged,
            unacknowledged=self._unacked_count,
            skipped=self._skipped,
            connections=self._connections,
            connected=self._client is not None,
            waiting_for_space=self._blocked,
        )

    async def wait_until(self, predicate: Any) -> None:
        """Return once ``predicate(self.statistics())`` is true; woken by changes only."""
        await self._changes.wait_until(self.statistics, predicate)

    # -- the receiver contract --------------------------------------------------------

    async def open(self) -> None:
        """Connect and bind (or create) the durable consumer.

        Raises:
            ConnectorError: when no server can be reached (retriable), or the
                stream is missing or the credentials refused (not retriable).
        """
        if self._client is None:
            await self._connect()

    async def run(self, output: ReceiverOutput[NatsMessage]) -> None:
        """Fetch chunks and store each with its position, reconnecting when the
        server goes away, until cancelled."""
        self._output = output
        while True:
            try:
                if self._client is None:
                    await self._connect()
                assert self._client is not None
                if self._client.is_closed:
                    raise nats.errors.ConnectionClosedError
                try:
                    messages = await self._subscription.fetch(
                        self._chunk, timeout=self._fetch_timeout
                    )
                except nats.errors.TimeoutError:
                    if self._client.is_closed:  # the fetch waited on a dead connection
                        raise nats.errors.ConnectionClosedError from None
                    self._backoff.reset()
                    continue
            except (*_LOST, ConnectorError) as exc:
                if isinstance(exc, ConnectorError) and not exc.retriable:
                    raise
                await self._lost(output, exc)
                continue
            self._backoff.reset()
            await self._store(output, messages)

    async def commit(self, position: Any) -> None:
        """Acknowledge every message of the chunks up to ``position``: their batches'
        outputs have finished.

        Acknowledgements that cannot be sent (the server is away) are reported and
        sent with the next commit.
        """
        if not isinstance(position, int) or not self._unacked:
            return
        done: list[tuple[int, list[str]]] = []
        while self._unacked and self._unacked[0][0] <= position:
            done.append(self._unacked.popleft())
        client = self._client
        try:
            if client is None or client.is_closed:
                raise nats.errors.ConnectionClosedError
            for _, replies in done:
                for reply in replies:
                    await client.publish(reply, _ACK)
            await client.flush(timeout=int(self._fetch_timeout) + 5)
        except (*_LOST, nats.errors.TimeoutError) as exc:
            self._unacked.extendleft(reversed(done))
            error = ConnectorError(f"NATS acknowledgement failed: {exc!r}", retriable=True)
            logger.warning("%r: %s; the next commit retries", self, error)
            if self._output is not None:
                await self._output.report_error(error, servers=list(self.servers))
            return
        count = sum(len(replies) for _, replies in done)
        self._acknowledged += count
        self._unacked_count -= count
        self._changes.notify()

    async def aclose(self) -> None:
        """Close the connection (idempotent). Unacknowledged messages are delivered
        again by JetStream after ``ack_wait``."""
        client, self._client = self._client, None
        self._subscription = None
        if client is not None:
            with anyio.move_on_after(_CLOSE_TIMEOUT), contextlib.suppress(Exception):
                await client.close()
            self._changes.notify()

    # -- connecting -------------------------------------------------------------------

    async def _connect(self) -> None:
        client = await _open_client(self.servers, self._options)
        try:
            config = api.ConsumerConfig(
                durable_name=self.durable,
                ack_policy=api.AckPolicy.EXPLICIT,
                deliver_policy=self._deliver,
                ack_wait=self._ack_wait,
                # no cap of the server's (1,000 by default): the buffer bounds what
                # the source holds unacknowledged, and a cap below it would make
                # every fetch wait for a batch's acknowledgements
                max_ack_pending=-1,
            )
            subscription = await client.jetstream().pull_subscribe(
                self.subject, durable=self.durable, stream=self.stream_name, config=config
            )
        except nats.js.errors.NotFoundError as exc:
            await _close_quietly(client)
            self.restartable = False
            msg = (
                f"no JetStream stream holds subject {self.subject!r}"
                if self.stream_name is None
                else f"JetStream stream {self.stream_name!r} not found"
            )
            raise ConnectorError(
                f"{msg} (create it first; not retriable)", retriable=False
            ) from exc
        except nats.js.errors.BadRequestError as exc:
            await _close_quietly(client)
            self.restartable = False
            msg = f"JetStream refused consumer {self.durable!r} (not retriable): {exc}"
            raise ConnectorError(msg, retriable=False) from exc
        except (*_LOST, nats.errors.TimeoutError) as exc:
            await _close_quietly(client)
            raise ConnectorError(f"NATS JetStream not reachable: {exc!r}", retriable=True) from exc
        except BaseException:
            with anyio.CancelScope(shield=True):
                await _close_quietly(client)
            raise
        self._client, self._subscription = client, subscription
        self._connections += 1
        self._changes.notify()

    async def _lost(self, output: ReceiverOutput[NatsMessage], exc: BaseException) -> None:
        """Report a lost server, drop the connection and wait before the next try."""
        await self.aclose()
        if isinstance(exc, ConnectorError):
            error = exc
        else:
            error = ConnectorError(f"NATS server lost: {exc!r}", retriable=True)
            error.__cause__ = exc
        logger.info("%r: %s; reconnecting", self, error)
        await output.report_error(error, servers=list(self.servers))
        if not self._backoff.failed():
            raise error
        await anyio.sleep(self._backoff.next_delay())

    # -- storing ------------------------------------------------------------------------

    async def _store(self, output: ReceiverOutput[NatsMessage], messages: list[Any]) -> None:
        """Turn fetched messages into one chunk and store it with its position."""
        if not messages:
            return
        decode = self._decode
        try:
            if decode is None:
                records = [
                    NatsMessage(m.subject, m.data, m.headers, _stream_sequence(m.reply))
                    for m in messages
                ]
            else:
                records = [
                    NatsMessage(m.subject, decode(m.data), m.headers, _stream_sequence(m.reply))
                    for m in messages
                ]
        except Exception:
            records = await self._one_by_one(output, messages)
        position = next(self._sequence)
        # counted before the put: a cancelled put still stores the chunk
        self._unacked.append((position, [m.reply for m in messages]))
        self._unacked_count += len(messages)
        self._received += len(records)
        stats = output.statistics()
        self._blocked = stats.would_wait(len(records))
        if self._blocked:
            self._changes.notify()
        try:
            await output.put_many(records, position)
        finally:
            self._blocked = False
            self._changes.notify()

    async def _one_by_one(
        self, output: ReceiverOutput[NatsMessage], messages: list[Any]
    ) -> list[NatsMessage]:
        """The messages that decode; a bad one fails the source or is skipped."""
        decode = self._decode
        good: list[NatsMessage] = []
        for m in messages:
            sequence = _stream_sequence(m.reply)
            try:
                data = m.data if decode is None else decode(m.data)
            except Exception as exc:
                where = f"message {sequence} of {m.subject!r}"
                if self._policy == "fail":
                    self.restartable = False
                    msg = (
                        f"cannot decode {where}: {type(exc).__name__}: {exc} (it stays "
                        "unacknowledged; choose another value_deserializer or "
                        "on_bad_message='skip')"
                    )
                    raise ConnectorError(msg, retriable=False) from exc
                self._skipped += 1
                # counted in BatchInfo.records_skipped
                refused = NatsMessage(m.subject, m.data, m.headers, sequence)
                output.reject([(refused, exc)], dead_letter=False)
                error = ConnectorError(
                    f"skipped {where}: {type(exc).__name__}: {exc}", retriable=False
                )
                logger.warning("%r: %s", self, error)
                await output.report_error(error, message=where)
                continue
            good.append(NatsMessage(m.subject, data, m.headers, sequence))
        return good


def _stream_sequence(reply: str) -> int:
    """A message's stream sequence, read from its acknowledgement subject.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>...`` (9 tokens), or with
    the domain and account hash before the stream (12 or more tokens), as
    JetStream's ADR-15 lays it out: cheaper than nats-py's ``msg.metadata``, which
    also builds a datetime per message.
    """
    tokens = reply.split(".")
    return int(tokens[5] if len(tokens) == 9 else tokens[7])


def nats_stream(
    ssc: StreamingContext,
    subject: str,
    *,
    durable: str,
    name: str | None = None,
    buffer_capacity: int | None = None,
    max_rate: float | None = None,
    **options: Any,
) -> DStream[NatsMessage]:
    """A stream of :class:`NatsMessage` of ``subject``, read by the durable consumer
    ``durable``.

    ``options`` are :class:`NatsStreamSource`'s (``servers``, ``stream``,
    ``value_deserializer``...); ``name``, ``buffer_capacity`` and ``max_rate`` are
    the stream's, as in ``ssc.receiver_stream``.
    """
    source = NatsStreamSource(subject, durable=durable, **options)
    return source.stream(ssc, name=name, buffer_capacity=buffer_capacity, max_rate=max_rate)


class NatsPublishSink(Sink[Any]):
    """Publishes each batch's records to a subject; with JetStream (the default),
    returns once the server stored every message (its publish acknowledgements).

    Delivery is at least once (a replayed batch is published again), exactly once
    within JetStream's duplicate window with ``msg_id``. A lost server is retried
    with capped backoff; after ``max_attempts`` failed attempts the batch fails
    with a retriable :class:`~streamio.ConnectorError`.

    Args:
        subject: where to publish.
        servers: the server URL, or several.
        value_serializer: how a record becomes the payload: ``"bytes"`` (bytes as
            they are, ``str`` as UTF-8), ``"str"`` (``str(record)``), ``"json"``,
            or a function returning bytes.
        msg_id: a function of the record giving its ``Nats-Msg-Id`` (JetStream
            drops a second message with the same id within the duplicate window).
        jetstream: False publishes with core NATS (no acknowledgement: at most once).
        ack_timeout: seconds to wait for the acknowledgements of a chunk.
        chunk_size: most messages in flight at once.
        max_attempts: attempts of one chunk before the batch fails.
        retry_backoff, max_backoff: seconds before the first retry, doubled up to
            ``max_backoff``.
        **connect_options: other ``nats.connect`` options.

    Raises:
        ConfigurationError: for a wrong argument.
    """

    def __init__(
        self,
        subject: str,
        *,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        value_serializer: str | Serializer = "bytes",
        msg_id: Callable[[Any], str] | None = None,
        jetstream: bool = True,
        ack_timeout: float = 10.0,
        chunk_size: int = 1000,
        max_attempts: int = 5,
        retry_backoff: float = 0.1,
        max_backoff: float = 5.0,
        **connect_options: Any,
    ) -> None:
        if not isinstance(subject, str) or not subject or any(c in subject for c in " *>"):
            raise ConfigurationError(f"subject must be a subject without wildcards: {subject!r}")
        if msg_id is not None and not callable(msg_id):
            raise ConfigurationError(f"msg_id must be a function of the record, not {msg_id!r}")
        self.subject = subject
        self.servers = _check_servers(servers)
        self._serialize = resolve_serializer(value_serializer, "value_serializer")
        self._msg_id = msg_id
        self._jetstream = bool(jetstream)
        self._ack_timeout = check_number(ack_timeout, "ack_timeout")
        self._chunk = check_whole_number(chunk_size, "chunk_size (messages)")
        self._attempts = check_whole_number(max_attempts, "max_attempts")
        self._retry = ReconnectBackoff(retry_backoff, max_backoff, None)
        self._options = _connect_options(connect_options)
        self._client: NatsClient | None = None
        self._closed = False
        self.written = 0

    def __repr__(self) -> str:
        return f"NatsPublishSink({self.subject!r})"

    async def __call__(self, batch_time: float, records: list[Any]) -> None:
        """Publish ``records``; return once JetStream stored them all.

        Raises:
            TypeError: for a record the serializer refuses.
            ConnectorError: when the server stayed unreachable for ``max_attempts``
                attempts (retriable), or JetStream refused a message (not retriable).
        """
        if self._closed:
            raise ConnectorError("NatsPublishSink used after aclose()", retriable=False)
        serialize, msg_id = self._serialize, self._msg_id
        payloads = [
            (serialize(r), None if msg_id is None else {"Nats-Msg-Id": msg_id(r)}) for r in records
        ]
        for start in range(0, len(payloads), self._chunk):
            await self._send(payloads[start : start + self._chunk])

    async def _send(self, payloads: list[tuple[bytes, dict[str, str] | None]]) -> None:
        backoff = ReconnectBackoff(self._retry.initial, self._retry.maximum, self._attempts - 1)
        while True:
            try:
                if self._client is None or self._client.is_closed:
                    self._client = await _open_client(self.servers, self._options)
                client = self._client
                if self._jetstream:
                    js = client.jetstream()
                    futures = [
                        await js.publish_async(self.subject, data, headers=headers)
                        for data, headers in payloads
                    ]
                    with anyio.fail_after(self._ack_timeout):
                        await asyncio.gather(*futures)
                else:
                    for data, headers in payloads:
                        await client.publish(self.subject, data, headers=headers)
                    await client.flush(timeout=max(1, round(self._ack_timeout)))
            except (*_LOST, ConnectorError, TimeoutError) as exc:
                if isinstance(exc, ConnectorError) and not exc.retriable:
                    raise
                await self._drop_client()
                if not backoff.failed():
                    msg = f"publishing to {self.subject!r} failed {backoff.failures} times: {exc!r}"
                    raise ConnectorError(msg, retriable=True) from exc
                logger.info("%r: %r; retrying", self, exc)
                await anyio.sleep(backoff.next_delay())
                continue
            except nats.js.errors.APIError as exc:  # after ServiceUnavailableError, in _LOST
                msg = f"JetStream refused a message to {self.subject!r} (not retriable): {exc}"
                raise ConnectorError(msg, retriable=False) from exc
            self.written += len(payloads)
            return

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await _close_quietly(client)

    async def aclose(self) -> None:
        """Close the connection (idempotent)."""
        self._closed = True
        await self._drop_client()


def _check_servers(servers: Any) -> tuple[str, ...]:
    urls = (servers,) if isinstance(servers, str) else tuple(servers)
    if not urls or not all(
        isinstance(url, str) and url.startswith(("nats://", "tls://", "ws://", "wss://"))
        for url in urls
    ):
        raise ConfigurationError(f"servers must be nats:// URLs, not {servers!r}")
    return urls


# Options the connectors set themselves, and why a caller may not.
_RESERVED = {
    "allow_reconnect": "the connector reconnects itself, with capped backoff and reports",
    "max_reconnect_attempts": "the connector reconnects itself (see max_reconnects)",
    "reconnect_time_wait": "the connector reconnects itself (see reconnect_backoff)",
    "servers": "pass servers= to the connector itself",
}
_CONNECT_OPTIONS = frozenset(
    name
    for name in inspect.signature(NatsClient.connect).parameters
    if name not in ("self", "servers")
)


def _connect_options(options: dict[str, Any]) -> dict[str, Any]:
    for key in options:
        if key in _RESERVED:
            raise ConfigurationError(f"{key} cannot be set: {_RESERVED[key]}")
        if key not in _CONNECT_OPTIONS:
            raise ConfigurationError(f"{key!r} is not a nats.connect option")
    return dict(options)


async def _quiet(error: Exception) -> None:
    """nats-py's error callback: the connectors report errors themselves."""
    logger.debug("nats client: %r", error)


async def _open_client(servers: Sequence[str], options: dict[str, Any]) -> NatsClient:
    """A connection that does not reconnect by itself (the connector does)."""
    settings = {"connect_timeout": 5, "error_cb": _quiet, **options}
    try:
        # one attempt per server (nats-py counts the first failure as a reconnect)
        return await nats.connect(
            list(servers),
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=0,
            **settings,
        )
    except (nats.errors.NoServersError, OSError, TimeoutError) as exc:
        msg = f"cannot connect to NATS at {', '.join(servers)}: {exc!r}"
        raise ConnectorError(msg, retriable=True) from exc
    except nats.errors.Error as exc:  # refused credentials, TLS required...
        msg = f"NATS at {', '.join(servers)} refused the connection (not retriable): {exc}"
        raise ConnectorError(msg, retriable=False) from exc


async def _close_quietly(client: NatsClient) -> None:
    with anyio.move_on_after(_CLOSE_TIMEOUT), contextlib.suppress(Exception):
        await client.close()
