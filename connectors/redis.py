"""Redis Streams for streamio: a consumer-group source and an ``XADD`` sink (redis-py).

Source — each entry of the streams a :class:`RedisEntry`, read with ``XREADGROUP``
as one consumer of a consumer group, in chunks of ``chunk_size`` entries (one
``put_many`` each). An entry is acknowledged (``XACK``) only once every output of the
batch holding it has finished, so delivery is **at least once**: entries read but
not acknowledged when the job died stay in the group's pending entries list, and

- a job restarted under the same consumer name reads its own pending entries
  first (``XREADGROUP ... 0``), then new ones;
- entries pending for another consumer longer than ``claim_idle`` seconds (a
  consumer that died) are taken over with ``XAUTOCLAIM``.

While the stream's buffer is full, the source does not read: entries stay in Redis
(not even delivered to the consumer), so memory stays bounded by the buffer's
capacity plus one chunk. A lost server is reported to the listeners
(``on_receiver_error``, with ``info.extra["url"]``) and reconnected with capped
exponential backoff, by the source itself.

    from streamio.connectors.redis import redis_stream

    events = redis_stream(ssc, "events", group="job", url="redis://127.0.0.1:6379")
    events.map(lambda entry: entry.fields["line"]).flat_map(str.split).count_by_value()

Sink — each batch appended with ``XADD`` (pipelined, optionally trimmed with
``MAXLEN``), returning once Redis acknowledged every entry::

    async with RedisStreamSink("counts", url=url, maxlen=100_000) as sink, \\
            StreamingContext(batch_interval=1.0) as ssc:
        counts.map(lambda pair: {"word": pair[0], "n": pair[1]}).foreach_batch(sink)

Needs ``pip install 'streamio[redis]'``.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import logging
import socket
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

try:
    import redis.asyncio as aioredis
    from redis import exceptions as redis_errors
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("the Redis connector needs redis: pip install 'streamio[redis]'") from exc

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
    attach,
    check_policy,
    resolve_deserializer,
)

__all__ = [
    "RedisEntry",
    "RedisStreamSink",
    "RedisStreamSource",
    "RedisStreamStatistics",
    "redis_stream",
]

logger = logging.getLogger(__name__)

# Errors after which a new connection may succeed (the server went away, restarts).
_LOST = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)
# What **client_options may hold.
_CLIENT_OPTIONS = frozenset(inspect.signature(aioredis.Redis.__init__).parameters) - {"self"}
# How long a close may take before it is abandoned.
_CLOSE_TIMEOUT = 5.0


class RedisEntry(NamedTuple):
    """One entry of a Redis stream.

    Attributes:
        stream: the stream's key.
        id: the entry's ID (``"<milliseconds>-<sequence>"``).
        fields: the entry's fields, names as text, values through the source's
            ``value_deserializer``.
    """

    stream: str
    id: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class RedisStreamStatistics:
    """A snapshot of a :class:`RedisStreamSource`, for monitoring and tests.

    Attributes:
        received: entries stored in the stream's buffer.
        acknowledged: entries acknowledged (``XACK``) after their batch's outputs.
        unacknowledged: entries read and not yet acknowledged.
        claimed: entries taken over from other consumers with ``XAUTOCLAIM``.
        skipped: bad entries left out (``on_bad_message="skip"``).
        connections: connections made (a reconnection counts).
        connected: a connection is up now.
        waiting_for_space: the buffer is full and the source waits to store a
            chunk, reading nothing meanwhile.
    """

    received: int
    acknowledged: int
    unacknowledged: int
    claimed: int
    skipped: int
    connections: int
    connected: bool
    waiting_for_space: bool


class RedisStreamSource(Receiver[RedisEntry]):
    """Reads Redis streams as one consumer of a consumer group.

    Args:
        streams: a stream key or several.
        group: the consumer group; created (with ``MKSTREAM``) when missing.
        consumer: this consumer's name in the group, the same across restarts of
            the job so that it gets its own pending entries back; by default the
            host name (give each job on one host its own).
        url: the server, ``redis://[user:password@]host:port/db`` (or
            ``rediss://`` for TLS). Its password is never logged nor shown.
        start: where a group created by the source starts: ``"0"`` (the stream's
            first entry, the default) or ``"$"`` (only entries added from now on).
        value_deserializer: applied to each field's value: ``"str"`` (UTF-8, the
            default), ``"bytes"``, ``"json"`` or a function of the bytes.
        on_bad_message: ``"fail"`` or ``"skip"`` an entry whose fields do not
            decode (see :mod:`streamio.connectors.messaging`).
        chunk_size: most entries per ``XREADGROUP`` and so per stored chunk.
        block: seconds one ``XREADGROUP`` waits for new entries.
        claim_idle: entries pending for another consumer longer than this many
            seconds are taken over with ``XAUTOCLAIM`` (checked at the start and
            then every ``claim_idle`` seconds); longer than any batch takes to be
            output, or live consumers lose entries they still work on. None:
            never claim.
        reconnect_backoff, max_backoff: seconds before the first reconnection
            attempt, doubled after each failure up to ``max_backoff``.
        max_reconnects: failed reconnection attempts in a row before ``run``
            raises (the context then restarts the receiver or stops); None
            (the default) retries for ever.
        **client_options: other ``redis.asyncio.Redis.from_url`` options
            (``ssl_ca_certs``, ``client_name``, ``socket_connect_timeout``...).

    Raises:
        ConfigurationError: for a wrong argument.
    """

    def __init__(
        self,
        streams: str | Iterable[str],
        *,
        group: str,
        consumer: str | None = None,
        url: str = "redis://127.0.0.1:6379",
        start: str = "0",
        value_deserializer: str | Deserializer = "str",
        on_bad_message: BadMessagePolicy = "fail",
        chunk_size: int = 1000,
        block: float = 1.0,
        claim_idle: float | None = 60.0,
        reconnect_backoff: float = 0.1,
        max_backoff: float = 10.0,
        max_reconnects: int | None = None,
        **client_options: Any,
    ) -> None:
        names = (streams,) if isinstance(streams, str) else tuple(streams)
        if not names or not all(isinstance(name, str) and name for name in names):
            msg = f"streams must be a stream key or several, not {streams!r}"
            raise ConfigurationError(msg)
        for what, value in (("group", group), ("consumer", consumer)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigurationError(f"{what} must be a non-empty string, not {value!r}")
        if not isinstance(start, str) or not start:
            raise ConfigurationError(f"start must be an entry ID, '0' or '$', not {start!r}")
        self.streams = names
        self.group = group
        self.consumer = consumer or socket.gethostname()
        self._url = url
        self._start = start
        self._decode = resolve_deserializer(value_deserializer, "value_deserializer")
        self._policy = check_policy(on_bad_message)
        self._chunk = check_whole_number(chunk_size, "chunk_size (entries)")
        self._block_ms = max(1, int(check_number(block, "block") * 1000))
        self._claim_idle = (
            None if claim_idle is None else check_number(claim_idle, "claim_idle", allow_zero=True)
        )
        self._backoff = ReconnectBackoff(reconnect_backoff, max_backoff, max_reconnects)
        self._options = _client_options(url, client_options)

        self._client: aioredis.Redis | None = None
        self._recovered = False  # this consumer's own pending entries were read again
        self._next_claim = 0.0
        self._sequence = itertools.count(1)
        # per stored chunk, in order: (position, {stream: [entry IDs]}) until acknowledged
        self._unacked: deque[tuple[int, dict[str, list[bytes]]]] = deque()
        self._output: ReceiverOutput[RedisEntry] | None = None
        self._received = 0
        self._acknowledged = 0
        self._unacked_count = 0
        self._claimed = 0
        self._skipped = 0
        self._connections = 0
        self._blocked = False
        self._changes = Changes()

    def __repr__(self) -> str:
        return (
            f"RedisStreamSource({list(self.streams)!r}, group={self.group!r}, "
            f"consumer={self.consumer!r}, url={self.where!r})"
        )

    @property
    def where(self) -> str:
        """The server's URL without its credentials (what listeners get as ``url``)."""
        scheme, _, rest = self._url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"

    def stream(
        self,
        ssc: StreamingContext,
        *,
        name: str | None = None,
        buffer_capacity: int | None = None,
        max_rate: float | None = None,
    ) -> DStream[RedisEntry]:
        """The input stream of this source in ``ssc``, named after its streams by default."""
        default = f"redis {','.join(self.streams)}"
        return attach(
            ssc,
            self,
            name=name,
            default_name=default,
            buffer_capacity=buffer_capacity,
            max_rate=max_rate,
        )

    # -- statistics -----------------------------------------------------------------

    def statistics(self) -> RedisStreamStatistics:
        """What the source has read, acknowledged and claimed, now."""
        return RedisStreamStatistics(
            received=self._received,
            acknowledged=self._acknowledged,
            unacknowledged=self._unacked_count,
            claimed=self._claimed,
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
        """Connect and create the group where missing.

        Raises:
            ConnectorError: when the server cannot be reached (retriable), refuses
                the credentials, or a key is not a stream (not retriable).
        """
        if self._client is None:
            self._client = await self._connect()

    async def run(self, output: ReceiverOutput[RedisEntry]) -> None:
        """Read chunks and store each with its position, reconnecting when the
        server goes away, until cancelled."""
        self._output = output
        while True:
            client = self._client
            try:
                if client is None:
                    client = self._client = await self._connect()
                if not self._recovered:
                    await self._read_own_pending(client, output)
                    self._recovered = True
                if self._claim_idle is not None and time.monotonic() >= self._next_claim:
                    await self._claim(client, output)
                    self._next_claim = time.monotonic() + max(self._claim_idle, 1.0)
                reply = await client.xreadgroup(
                    self.group,
                    self.consumer,
                    dict.fromkeys(self.streams, ">"),
                    count=self._chunk,
                    block=self._block_ms,
                )
            except (*_LOST, ConnectorError) as exc:
                if isinstance(exc, ConnectorError) and not exc.retriable:
                    raise
                await self._lost(output, exc)
                continue
            except redis_errors.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise self._refused(exc, "reading") from exc
                # the stream or group was deleted: create it again on reconnection
                await self._lost(output, exc)
                continue
            self._backoff.reset()
            if reply:
                await self._store(output, reply)

    async def commit(self, position: Any) -> None:
        """Acknowledge every entry of the chunks up to ``position``: their batches'
        outputs have finished.

        A failed ``XACK`` is reported to the listeners and retried with the next
        commit; the entries stay pending meanwhile (read again after a crash).
        """
        if not isinstance(position, int) or not self._unacked:
            return
        done: list[tuple[int, dict[str, list[bytes]]]] = []
        while self._unacked and self._unacked[0][0] <= position:
            done.append(self._unacked.popleft())
        ids: dict[str, list[bytes]] = {}
        for _, chunk_ids in done:
            for stream, entry_ids in chunk_ids.items():
                ids.setdefault(stream, []).extend(entry_ids)
        client = self._client
        try:
            if client is None:
                raise redis_errors.ConnectionError("not connected")
            async with client.pipeline(transaction=False) as pipe:
                for stream, entry_ids in ids.items():
                    pipe.xack(stream, self.group, *entry_ids)
                await pipe.execute()
        except (*_LOST, redis_errors.ResponseError) as exc:
            self._unacked.extendleft(reversed(done))  # acknowledged with the next commit
            error = ConnectorError(f"XACK on {self.where} failed: {exc!r}", retriable=True)
            logger.warning("%r: %s; the next commit retries", self, error)
            if self._output is not None:
                await self._output.report_error(error, url=self.where)
            return
        count = sum(len(entry_ids) for entry_ids in ids.values())
        self._acknowledged += count
        self._unacked_count -= count
        self._changes.notify()

    async def aclose(self) -> None:
        """Close the connection (idempotent). Unacknowledged entries stay pending
        in the group, for this consumer's next start or for a claim."""
        client, self._client = self._client, None
        if client is not None:
            with anyio.move_on_after(_CLOSE_TIMEOUT), contextlib.suppress(*_LOST):
                await client.aclose()
            self._changes.notify()

    # -- connecting -------------------------------------------------------------------

    async def _connect(self) -> aioredis.Redis:
        client = aioredis.Redis.from_url(self._url, **self._options)
        try:
            for stream in self.streams:
                try:
                    await client.xgroup_create(stream, self.group, id=self._start, mkstream=True)
                except redis_errors.ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise self._refused(exc, f"creating group {self.group!r}") from exc
        except redis_errors.AuthenticationError as exc:
            await client.aclose()
            raise self._refused(exc, "connecting") from exc
        except _LOST as exc:
            await client.aclose()
            msg = f"cannot connect to Redis at {self.where}: {exc}"
            raise ConnectorError(msg, retriable=True) from exc
        except BaseException:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT):
                await client.aclose()
            raise
        self._connections += 1
        self._changes.notify()
        return client

    async def _lost(self, output: ReceiverOutput[RedisEntry], exc: BaseException) -> None:
        """Report a lost server, drop the connection and wait before the next try."""
        await self.aclose()
        if isinstance(exc, ConnectorError):
            error = exc
        else:
            error = ConnectorError(f"Redis at {self.where} lost: {exc!r}", retriable=True)
            error.__cause__ = exc
        logger.info("%r: %s; reconnecting", self, error)
        await output.report_error(error, url=self.where)
        if not self._backoff.failed():
            raise error
        await anyio.sleep(self._backoff.next_delay())

    def _refused(self, exc: BaseException, action: str) -> ConnectorError:
        self.restartable = False
        return ConnectorError(
            f"Redis at {self.where} refused {action} (not retriable): {exc}", retriable=False
        )

    # -- reading ------------------------------------------------------------------------

    async def _read_own_pending(
        self, client: aioredis.Redis, output: ReceiverOutput[RedisEntry]
    ) -> None:
        """Read again the entries this consumer had and never acknowledged."""
        after: dict[Any, Any] = dict.fromkeys(self.streams, b"0")
        while after:
            reply = await client.xreadgroup(self.group, self.consumer, after, count=self._chunk)
            finished = set(after)
            for stream, entries in _streams_of(reply):
                if entries:
                    after[stream] = entries[-1][0]
                    finished.discard(stream)
            for stream in finished:
                del after[stream]
            if reply:
                await self._store(output, reply)

    async def _claim(self, client: aioredis.Redis, output: ReceiverOutput[RedisEntry]) -> None:
        """Take over the entries other consumers left pending longer than claim_idle."""
        assert self._claim_idle is not None
        idle_ms = int(self._claim_idle * 1000)
        mine = {i for _, chunk_ids in self._unacked for ids in chunk_ids.values() for i in ids}
        for stream in self.streams:
            cursor: bytes | str = "0-0"
            while True:
                reply = await client.xautoclaim(
                    stream, self.group, self.consumer, idle_ms, start_id=cursor, count=self._chunk
                )
                cursor, entries = reply[0], reply[1]
                entries = [entry for entry in entries if entry[0] not in mine]
                if entries:
                    self._claimed += len(entries)
                    await self._store(output, [(stream, entries)])
                if cursor in (b"0-0", "0-0"):
                    break

    async def _store(self, output: ReceiverOutput[RedisEntry], reply: Any) -> None:
        """Turn a reply into one chunk of entries and store it with its position."""
        records: list[RedisEntry] = []
        ids: dict[str, list[bytes]] = {}
        decode = self._decode
        for key, entries in _streams_of(reply):
            stream = key.decode() if isinstance(key, bytes) else key
            ids[stream] = [entry_id for entry_id, _ in entries]
            try:
                if decode is None:
                    records += [
                        RedisEntry(stream, i.decode(), {k.decode(): v for k, v in f.items()})
                        for i, f in entries
                        if f is not None  # an entry deleted while pending
                    ]
                else:
                    records += [
                        RedisEntry(
                            stream, i.decode(), {k.decode(): decode(v) for k, v in f.items()}
                        )
                        for i, f in entries
                        if f is not None
                    ]
            except Exception:
                records += await self._one_by_one(output, stream, entries)
        count = sum(len(entry_ids) for entry_ids in ids.values())
        if not count:
            return
        position = next(self._sequence)
        # counted before the put: a cancelled put still stores the chunk
        self._unacked.append((position, ids))
        self._unacked_count += count
        self._received += len(records)
        stats = output.statistics()
        self._blocked = stats.would_wait(len(records))
        if self._blocked:  # the put waits for a batch to free space: visible to tests
            self._changes.notify()
        try:
            await output.put_many(records, position)
        finally:
            self._blocked = False
            self._changes.notify()

    async def _one_by_one(
        self,
        output: ReceiverOutput[RedisEntry],
        stream: str,
        entries: Sequence[tuple[bytes, Mapping[bytes, bytes] | None]],
    ) -> list[RedisEntry]:
        """The entries of ``stream`` that decode; a bad one fails or is skipped."""
        decode = self._decode
        good: list[RedisEntry] = []
        for entry_id, fields in entries:
            if fields is None:
                continue
            try:
                good.append(
                    RedisEntry(
                        stream,
                        entry_id.decode(),
                        {k.decode(): v if decode is None else decode(v) for k, v in fields.items()},
                    )
                )
            except Exception as exc:
                where = f"entry {entry_id.decode(errors='replace')} of stream {stream!r}"
                if self._policy == "fail":
                    self.restartable = False
                    msg = (
                        f"cannot decode {where}: {type(exc).__name__}: {exc} (it stays "
                        "pending; choose another value_deserializer or on_bad_message='skip')"
                    )
                    raise ConnectorError(msg, retriable=False) from exc
                self._skipped += 1
                # counted in BatchInfo.records_skipped
                raw = {k.decode(): v for k, v in fields.items()}
                refused = RedisEntry(stream, entry_id.decode(), raw)
                output.reject([(refused, exc)], dead_letter=False)
                error = ConnectorError(
                    f"skipped {where}: {type(exc).__name__}: {exc}", retriable=False
                )
                logger.warning("%r: %s", self, error)
                await output.report_error(error, message=where)
        return good


def _streams_of(reply: Any) -> list[tuple[Any, list[tuple[bytes, Any]]]]:
    """``[(stream, entries)]`` of an XREADGROUP reply (a list in RESP2, a dict in RESP3)."""
    if not reply:
        return []
    if isinstance(reply, Mapping):
        return [
            (key, value[0] if value and isinstance(value[0], list) else value)
            for key, value in reply.items()
        ]
    return [(key, entries) for key, entries in reply]


def _client_options(url: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` when they are redis-py client options and ``url`` parses, so that a
    mistake fails when the source or sink is made, not at its first connection."""
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(f"url must be a redis://, rediss:// or unix:// URL, not {url!r}")
    for key in options:
        if key not in _CLIENT_OPTIONS or key == "decode_responses":
            why = "the source decodes values itself" if key == "decode_responses" else ""
            raise ConfigurationError(f"{key!r} is not a Redis client option {why}".rstrip())
    try:
        aioredis.Redis.from_url(url, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"Redis URL or client options: {exc}") from exc
    return dict(options)


def redis_stream(
    ssc: StreamingContext,
    streams: str | Iterable[str],
    *,
    group: str,
    name: str | None = None,
    buffer_capacity: int | None = None,
    max_rate: float | None = None,
    **options: Any,
) -> DStream[RedisEntry]:
    """A stream of :class:`RedisEntry` read from ``streams`` as a member of ``group``.

    ``options`` are :class:`RedisStreamSource`'s (``url``, ``consumer``,
    ``value_deserializer``, ``claim_idle``...); ``name``, ``buffer_capacity`` and
    ``max_rate`` are the stream's, as in ``ssc.receiver_stream``.
    """
    source = RedisStreamSource(streams, group=group, **options)
    return source.stream(ssc, name=name, buffer_capacity=buffer_capacity, max_rate=max_rate)


class RedisStreamSink(Sink[Any]):
    """Appends each batch's records to a Redis stream with ``XADD``.

    A record is a mapping of field names to values (``str``, ``bytes``, ``int`` or
    ``float``), or, with ``field`` set, any such value stored under that one field.
    Each batch is sent in pipelines of ``chunk_size`` commands; the call returns
    once Redis acknowledged every entry. A lost connection is retried with capped
    backoff (the pipeline that failed is sent again: delivery is at least once, and
    so is a replayed batch); after ``max_attempts`` failed attempts in a row the
    batch fails with a retriable :class:`~streamio.ConnectorError`.

    Args:
        stream: the stream key.
        url: the server (see :class:`RedisStreamSource`).
        field: store each record under this field name; None: records are mappings.
        maxlen: trim the stream to about this many entries at each ``XADD``
            (``MAXLEN ~``; exactly, with ``approximate=False``); None: no trim.
        approximate: trim with ``~`` (much cheaper, may keep a few more entries).
        chunk_size: most ``XADD`` commands per pipeline.
        max_attempts: attempts of one pipeline before the batch fails.
        retry_backoff, max_backoff: seconds before the first retry, doubled up to
            ``max_backoff``.
        **client_options: other ``redis.asyncio.Redis.from_url`` options.

    Raises:
        ConfigurationError: for a wrong argument.
    """

    def __init__(
        self,
        stream: str,
        *,
        url: str = "redis://127.0.0.1:6379",
        field: str | None = None,
        maxlen: int | None = None,
        approximate: bool = True,
        chunk_size: int = 1000,
        max_attempts: int = 5,
        retry_backoff: float = 0.1,
        max_backoff: float = 5.0,
        **client_options: Any,
    ) -> None:
        if not isinstance(stream, str) or not stream:
            raise ConfigurationError(f"stream must be a non-empty key, not {stream!r}")
        if field is not None and (not isinstance(field, str) or not field):
            raise ConfigurationError(f"field must be a non-empty string or None, not {field!r}")
        if maxlen is not None:
            check_whole_number(maxlen, "maxlen (entries, or None)")
        self.stream = stream
        self._url = url
        self._field = field
        self._maxlen = maxlen
        self._approximate = bool(approximate)
        self._chunk = check_whole_number(chunk_size, "chunk_size (commands)")
        self._attempts = check_whole_number(max_attempts, "max_attempts")
        self._retry = ReconnectBackoff(retry_backoff, max_backoff, None)  # checked here
        options = _client_options(url, client_options)
        self._client: aioredis.Redis | None = aioredis.Redis.from_url(url, **options)
        self.written = 0

    def __repr__(self) -> str:
        return f"RedisStreamSink({self.stream!r})"

    async def __call__(self, batch_time: float, records: list[Any]) -> None:
        """Append ``records``; return once Redis has them all.

        Raises:
            TypeError: for a record that is not a mapping (with ``field`` unset).
            ConnectorError: when the server stayed unreachable for ``max_attempts``
                attempts (retriable), or refused a command (not retriable).
        """
        client = self._client
        if client is None:
            raise ConnectorError("RedisStreamSink used after aclose()", retriable=False)
        rows = [self._fields(record) for record in records]
        for start in range(0, len(rows), self._chunk):
            await self._send(client, rows[start : start + self._chunk])

    def _fields(self, record: Any) -> Mapping[Any, Any]:
        if self._field is not None:
            return {self._field: record}
        if isinstance(record, Mapping):
            return record
        msg = (
            f"RedisStreamSink({self.stream!r}) needs mappings of fields, not "
            f"{type(record).__name__}: map the records to dicts, or pass field='...'"
        )
        raise TypeError(msg)

    async def _send(self, client: aioredis.Redis, rows: list[Mapping[Any, Any]]) -> None:
        backoff = ReconnectBackoff(self._retry.initial, self._retry.maximum, self._attempts - 1)
        while True:
            try:
                async with client.pipeline(transaction=False) as pipe:
                    for fields in rows:
                        pipe.xadd(
                            self.stream,
                            fields,  # type: ignore[arg-type]
                            maxlen=self._maxlen,
                            approximate=self._approximate,
                        )
                    await pipe.execute()
            except _LOST as exc:
                if not backoff.failed():
                    msg = f"XADD to {self.stream!r} failed {backoff.failures} times: {exc!r}"
                    raise ConnectorError(msg, retriable=True) from exc
                logger.info("%r: %r; retrying", self, exc)
                await anyio.sleep(backoff.next_delay())
                continue
            except redis_errors.ResponseError as exc:
                msg = f"Redis refused XADD to {self.stream!r} (not retriable): {exc}"
                raise ConnectorError(msg, retriable=False) from exc
            self.written += len(rows)
            return

    async def aclose(self) -> None:
        """Close the connections (idempotent)."""
        client, self._client = self._client, None
        if client is not None:
            with anyio.move_on_after(_CLOSE_TIMEOUT), contextlib.suppress(*_LOST):
                await client.aclose()
