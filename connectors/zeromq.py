"""ZeroMQ for streamio: SUB and PULL sources, PUB and PUSH sinks (pyzmq's asyncio API).

Each side ``connect``s to endpoints or ``bind``s them; messages may be multipart.
Delivery is **at most once**: ZeroMQ keeps no log to replay, so what is in the
stream's buffer when the job dies is lost (a job that must survive a crash writes
what it receives to its own log first).

Flow control is ZeroMQ's high-water marks. While the stream's buffer is full the
source does not receive; messages then wait in the socket's queue up to ``hwm``,
and beyond it a PUSH peer blocks (PULL: nothing lost) while a PUB peer drops them
(SUB: ZeroMQ's own at most once). Memory stays bounded by the buffer, one chunk and
the high-water mark.

Peers come and go: ZeroMQ reconnects by itself, waiting ``reconnect_backoff``
seconds, doubled after each failure up to ``max_backoff`` (``ZMQ_RECONNECT_IVL``
and ``ZMQ_RECONNECT_IVL_MAX``). A source reports each lost peer to the listeners
(``on_receiver_error``, with ``info.extra["endpoint"]``).

    from streamio.connectors.zeromq import zmq_stream

    ticks = zmq_stream(ssc, "tcp://127.0.0.1:5556", kind="sub", topics=["prices."],
                       value_deserializer="json")

A PUB sink is an XPUB socket, so that it can wait for ``subscribers`` subscriptions
before its first send (ZeroMQ's "slow joiner": a PUB drops what it sends before a
subscriber's subscription arrived)::

    async with ZmqSink("tcp://127.0.0.1:5557", kind="push", bind=True) as sink, \\
            StreamingContext(batch_interval=1.0) as ssc:
        results.foreach_batch(sink)

Needs ``pip install 'streamio[zeromq]'``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

try:
    import zmq
    import zmq.asyncio
    from zmq.utils.monitor import recv_monitor_message
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("the ZeroMQ connector needs pyzmq: pip install 'streamio[zeromq]'") from exc

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

__all__ = ["ZmqMessage", "ZmqSink", "ZmqSource", "ZmqSourceStatistics", "zmq_stream"]

logger = logging.getLogger(__name__)


class ZmqMessage(NamedTuple):
    """One ZeroMQ message.

    Attributes:
        parts: every frame, as bytes (for SUB, the first is the topic).
        value: the last frame through the source's ``value_deserializer``.
    """

    parts: tuple[bytes, ...]
    value: Any


@dataclass(frozen=True)
class ZmqSourceStatistics:
    """A snapshot of a :class:`ZmqSource`, for monitoring and tests.

    Attributes:
        received: messages stored in the stream's buffer.
        skipped: bad messages left out (``on_bad_message="skip"``).
        connections: peers connected (``connect``) or accepted (``bind``) so far.
        disconnections: peers lost so far.
        waiting_for_space: the buffer is full and the source receives nothing.
    """

    received: int
    skipped: int
    connections: int
    disconnections: int
    waiting_for_space: bool


def _endpoints(endpoints: Any) -> tuple[str, ...]:
    urls = (endpoints,) if isinstance(endpoints, str) else tuple(endpoints)
    if not urls or not all(isinstance(u, str) and "://" in u for u in urls):
        msg = (
            f"endpoints must be ZeroMQ endpoints such as 'tcp://127.0.0.1:5555', not {endpoints!r}"
        )
        raise ConfigurationError(msg)
    return urls


def _topic_bytes(topics: Any) -> tuple[bytes, ...]:
    items = (topics,) if isinstance(topics, (str, bytes)) else tuple(topics)
    if not items or not all(isinstance(t, (str, bytes)) for t in items):
        raise ConfigurationError(f"topics must be prefixes (str or bytes), not {topics!r}")
    return tuple(t.encode() if isinstance(t, str) else t for t in items)


def _open_socket(
    context: zmq.asyncio.Context,
    socket_type: int,
    endpoints: Sequence[str],
    *,
    bind: bool,
    hwm: int,
    backoff: ReconnectBackoff,
) -> zmq.asyncio.Socket:
    socket = context.socket(socket_type)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVHWM, hwm)
    socket.setsockopt(zmq.SNDHWM, hwm)
    socket.setsockopt(zmq.RECONNECT_IVL, max(1, int(backoff.initial * 1000)))
    socket.setsockopt(zmq.RECONNECT_IVL_MAX, max(1, int(backoff.maximum * 1000)))
    try:
        for endpoint in endpoints:
            (socket.bind if bind else socket.connect)(endpoint)
    except zmq.ZMQError as exc:
        socket.close(linger=0)
        how = "bind" if bind else "connect to"
        msg = f"cannot {how} {', '.join(endpoints)}: {exc} (not retriable)"
        raise ConnectorError(msg, retriable=False) from exc
    return socket


class ZmqSource(Receiver[ZmqMessage]):
    """Receives ZeroMQ messages on a SUB or a PULL socket.

    Args:
        endpoints: an endpoint (``"tcp://host:port"``, ``"ipc://path"``...) or several.
        kind: ``"sub"`` (subscribe to a PUB) or ``"pull"`` (from a PUSH).
        topics: for SUB, the topic prefixes to subscribe to (``""``: everything,
            the default).
        bind: bind the endpoints instead of connecting to them.
        value_deserializer: applied to each message's last frame: ``"bytes"``
            (the default), ``"str"``, ``"json"`` or a function.
        on_bad_message: ``"fail"`` or ``"skip"`` a message that does not decode
            (see :mod:`streamio.connectors.messaging`).
        chunk_size: most messages per stored chunk.
        hwm: the socket's high-water mark (messages queued before ZeroMQ blocks
            a PUSH peer or drops a PUB peer's messages).
        reconnect_backoff, max_backoff: ZeroMQ's reconnection interval and its cap.

    Raises:
        ConfigurationError: for a wrong argument.
    """

    restartable = True

    def __init__(
        self,
        endpoints: str | Iterable[str],
        *,
        kind: Literal["sub", "pull"],
        topics: str | bytes | Iterable[str | bytes] = "",
        bind: bool = False,
        value_deserializer: str | Deserializer = "bytes",
        on_bad_message: BadMessagePolicy = "fail",
        chunk_size: int = 1000,
        hwm: int = 1000,
        reconnect_backoff: float = 0.1,
        max_backoff: float = 10.0,
    ) -> None:
        if kind not in ("sub", "pull"):
            raise ConfigurationError(f"kind must be 'sub' or 'pull', not {kind!r}")
        self.endpoints = _endpoints(endpoints)
        self.kind = kind
        self.topics = _topic_bytes(topics)
        if kind == "pull" and self.topics != (b"",):
            raise ConfigurationError("topics are for kind='sub'; a PULL socket has none")
        self.bind = bool(bind)
        self._decode = resolve_deserializer(value_deserializer, "value_deserializer")
        self._policy = check_policy(on_bad_message)
        self._chunk = check_whole_number(chunk_size, "chunk_size (messages)")
        self._hwm = check_whole_number(hwm, "hwm (messages)")
        self._backoff = ReconnectBackoff(reconnect_backoff, max_backoff, None)
        self._context: zmq.asyncio.Context | None = None
        self._socket: zmq.asyncio.Socket | None = None
        self._received = 0
        self._skipped = 0
        self._connections = 0
        self._disconnections = 0
        self._blocked = False
        self._changes = Changes()

    def __repr__(self) -> str:
        return f"ZmqSource({list(self.endpoints)!r}, kind={self.kind!r}, bind={self.bind})"

    def stream(
        self,
        ssc: StreamingContext,
        *,
        name: str | None = None,
        buffer_capacity: int | None = None,
        max_rate: float | None = None,
    ) -> DStream[ZmqMessage]:
        """The input stream of this source in ``ssc``, named after its endpoints by default."""
        return attach(
            ssc,
            self,
            name=name,
            default_name=f"zmq {self.kind} {','.join(self.endpoints)}",
            buffer_capacity=buffer_capacity,
            max_rate=max_rate,
        )

    def statistics(self) -> ZmqSourceStatistics:
        """What the source has received and how its peers came and went, now."""
        return ZmqSourceStatistics(
            received=self._received,
            skipped=self._skipped,
            connections=self._connections,
            disconnections=self._disconnections,
            waiting_for_space=self._blocked,
        )

    async def wait_until(self, predicate: Any) -> None:
        """Return once ``predicate(self.statistics())`` is true; woken by changes only."""
        await self._changes.wait_until(self.statistics, predicate)

    async def open(self) -> None:
        """Create the socket, subscribe, and connect or bind.

        Raises:
            ConnectorError: (not retriable) when an endpoint is malformed or
                cannot be bound.
        """
        if self._socket is not None:
            return
        self._context = zmq.asyncio.Context()
        socket_type = zmq.SUB if self.kind == "sub" else zmq.PULL
        try:
            self._socket = _open_socket(
                self._context,
                socket_type,
                self.endpoints,
                bind=self.bind,
                hwm=self._hwm,
                backoff=self._backoff,
            )
        except ConnectorError:
            self.restartable = False
            self._context.destroy(linger=0)
            self._context = None
            raise
        if self.kind == "sub":
            for topic in self.topics:
                self._socket.setsockopt(zmq.SUBSCRIBE, topic)

    async def run(self, output: ReceiverOutput[ZmqMessage]) -> None:
        """Receive chunks and store them until cancelled; report lost peers."""
        socket = self._socket
        if socket is None:
            raise ConnectorError("ZmqSource.run() before open()", retriable=True)
        monitor = socket.get_monitor_socket(
            zmq.EVENT_CONNECTED | zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED
        )
        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._watch, monitor, output)
                try:
                    await self._receive(socket, output)
                except Exception as exc:  # raised as it is, not in an exception group
                    failure = exc
                    group.cancel_scope.cancel()
            if failure is not None:
                raise failure
        finally:
            socket.disable_monitor()
            monitor.close(linger=0)

    async def aclose(self) -> None:
        """Close the socket (idempotent); what its queue held is dropped."""
        socket, self._socket = self._socket, None
        context, self._context = self._context, None
        if socket is not None:
            socket.close(linger=0)
        if context is not None:
            context.destroy(linger=0)

    async def _watch(self, monitor: zmq.asyncio.Socket, output: ReceiverOutput[ZmqMessage]) -> None:
        """Count peers coming and going; report each one lost."""
        while True:
            event = await recv_monitor_message(monitor)
            endpoint = event["endpoint"].decode(errors="replace")
            if event["event"] == zmq.EVENT_DISCONNECTED:
                self._disconnections += 1
                self._changes.notify()
                error = ConnectorError(f"ZeroMQ peer at {endpoint} lost", retriable=True)
                logger.info("%r: %s; ZeroMQ reconnects", self, error)
                await output.report_error(error, endpoint=endpoint)
            else:
                self._connections += 1
                self._changes.notify()

    async def _receive(
        self, socket: zmq.asyncio.Socket, output: ReceiverOutput[ZmqMessage]
    ) -> None:
        chunk_size = self._chunk
        # the same socket, without a future per call: what has arrived is taken at once
        ready: Any = zmq.Socket.shadow(socket)
        while True:
            raw = [await socket.recv_multipart()]
            with contextlib.suppress(zmq.Again):
                while len(raw) < chunk_size:
                    raw.append(ready.recv_multipart(zmq.NOBLOCK))
            chunk = await self._convert(output, raw)
            self._received += len(chunk)
            stats = output.statistics()
            self._blocked = stats.would_wait(len(chunk))
            self._changes.notify()
            try:
                await output.put_many(chunk)
            finally:
                if self._blocked:
                    self._blocked = False
                    self._changes.notify()

    async def _convert(
        self, output: ReceiverOutput[ZmqMessage], raw: list[list[bytes]]
    ) -> list[ZmqMessage]:
        decode = self._decode
        try:
            if decode is None:
                return [ZmqMessage(tuple(parts), parts[-1]) for parts in raw]
            return [ZmqMessage(tuple(parts), decode(parts[-1])) for parts in raw]
        except Exception:
            pass
        good: list[ZmqMessage] = []
        for parts in raw:
            try:
                good.append(ZmqMessage(tuple(parts), decode(parts[-1])))  # type: ignore[misc]
            except Exception as exc:
                where = f"a message of {len(parts)} part(s) starting {parts[0][:32]!r}"
                if self._policy == "fail":
                    self.restartable = False
                    msg = (
                        f"cannot decode {where}: {type(exc).__name__}: {exc} (choose "
                        "another value_deserializer or on_bad_message='skip')"
                    )
                    raise ConnectorError(msg, retriable=False) from exc
                self._skipped += 1
                # counted in BatchInfo.records_skipped
                refused = ZmqMessage(tuple(parts), parts[-1])
                output.reject([(refused, exc)], dead_letter=False)
                error = ConnectorError(
                    f"skipped {where}: {type(exc).__name__}: {exc}", retriable=False
                )
                logger.warning("%r: %s", self, error)
                await output.report_error(error, message=where)
        return good


def zmq_stream(
    ssc: StreamingContext,
    endpoints: str | Iterable[str],
    *,
    kind: Literal["sub", "pull"],
    name: str | None = None,
    buffer_capacity: int | None = None,
    max_rate: float | None = None,
    **options: Any,
) -> DStream[ZmqMessage]:
    """A stream of :class:`ZmqMessage` from a SUB or PULL socket.

    ``options`` are :class:`ZmqSource`'s (``topics``, ``bind``,
    ``value_deserializer``...); ``name``, ``buffer_capacity`` and ``max_rate`` are
    the stream's, as in ``ssc.receiver_stream``.
    """
    source = ZmqSource(endpoints, kind=kind, **options)
    return source.stream(ssc, name=name, buffer_capacity=buffer_capacity, max_rate=max_rate)


class ZmqSink(Sink[Any]):
    """Sends each batch's records on a PUB or a PUSH socket.

    A record becomes one message: its frame through ``value_serializer``, after
    ``topic`` for PUB when given. A record that is a tuple or list of bytes is a
    multipart message, sent as it is. Delivery is at most once: the call returns
    once ZeroMQ has queued the messages (a PUSH waits while every peer is at its
    high-water mark, which is the backpressure to the job; a PUB drops for a slow
    subscriber).

    Args:
        endpoints: an endpoint or several.
        kind: ``"pub"`` or ``"push"``.
        bind: bind the endpoints instead of connecting to them.
        topic: for PUB, a first frame put before each message's (None: none).
        value_serializer: ``"bytes"`` (bytes as they are, ``str`` as UTF-8),
            ``"str"``, ``"json"`` or a function returning bytes.
        subscribers: for PUB, how many subscriptions to wait for before the first
            send (the sink is an XPUB socket that sees them).
        subscribe_timeout: seconds to wait for them before the first batch fails.
        hwm: the socket's high-water mark.
        reconnect_backoff, max_backoff: ZeroMQ's reconnection interval and its cap.

    Raises:
        ConfigurationError: for a wrong argument.
    """

    def __init__(
        self,
        endpoints: str | Iterable[str],
        *,
        kind: Literal["pub", "push"],
        bind: bool = False,
        topic: str | bytes | None = None,
        value_serializer: str | Serializer = "bytes",
        subscribers: int = 0,
        subscribe_timeout: float = 10.0,
        hwm: int = 1000,
        reconnect_backoff: float = 0.1,
        max_backoff: float = 10.0,
    ) -> None:
        if kind not in ("pub", "push"):
            raise ConfigurationError(f"kind must be 'pub' or 'push', not {kind!r}")
        if kind == "push" and (topic is not None or subscribers):
            raise ConfigurationError("topic and subscribers are for kind='pub'")
        self.endpoints = _endpoints(endpoints)
        self.kind = kind
        self.bind = bool(bind)
        self._topic = None if topic is None else _topic_bytes(topic)[0]
        self._serialize = resolve_serializer(value_serializer, "value_serializer")
        self._subscribers = check_whole_number(subscribers, "subscribers", minimum=0)
        self._subscribe_timeout = check_number(subscribe_timeout, "subscribe_timeout")
        self._hwm = check_whole_number(hwm, "hwm (messages)")
        self._backoff = ReconnectBackoff(reconnect_backoff, max_backoff, None)
        self._context: zmq.asyncio.Context | None = None
        self._socket: zmq.asyncio.Socket | None = None
        self._closed = False
        self.written = 0

    def __repr__(self) -> str:
        return f"ZmqSink({list(self.endpoints)!r}, kind={self.kind!r}, bind={self.bind})"

    async def __aenter__(self) -> ZmqSink:
        self._connect()
        return self

    def _connect(self) -> zmq.asyncio.Socket:
        if self._socket is None:
            self._context = zmq.asyncio.Context()
            socket_type = zmq.XPUB if self.kind == "pub" else zmq.PUSH
            self._socket = _open_socket(
                self._context,
                socket_type,
                self.endpoints,
                bind=self.bind,
                hwm=self._hwm,
                backoff=self._backoff,
            )
        return self._socket

    async def __call__(self, batch_time: float, records: list[Any]) -> None:
        """Queue ``records`` for sending; a PUSH waits while its peers are full.

        Raises:
            TypeError: for a record the serializer refuses.
            ConnectorError: when ``subscribers`` did not subscribe in time.
        """
        if self._closed:
            raise ConnectorError("ZmqSink used after aclose()", retriable=False)
        socket = self._connect()
        if self._subscribers:
            await self._wait_for_subscribers(socket)
        serialize, topic = self._serialize, self._topic
        for record in records:
            if isinstance(record, (tuple, list)) and all(isinstance(p, bytes) for p in record):
                parts = list(record)
            else:
                parts = [serialize(record)]
            if topic is not None:
                parts.insert(0, topic)
            await socket.send_multipart(parts)
        self.written += len(records)

    async def _wait_for_subscribers(self, socket: zmq.asyncio.Socket) -> None:
        try:
            with anyio.fail_after(self._subscribe_timeout):
                while self._subscribers:
                    frame = await socket.recv()
                    if frame[:1] == b"\x01":  # a subscription (b"\x00": one withdrawn)
                        self._subscribers -= 1
        except TimeoutError as exc:
            msg = (
                f"{self!r}: {self._subscribers} subscriber(s) still missing after "
                f"{self._subscribe_timeout}s"
            )
            raise ConnectorError(msg, retriable=True) from exc

    async def aclose(self) -> None:
        """Close the socket (idempotent); unsent messages are dropped."""
        self._closed = True
        socket, self._socket = self._socket, None
        context, self._context = self._context, None
        if socket is not None:
            socket.close(linger=0)
        if context is not None:
            context.destroy(linger=0)
