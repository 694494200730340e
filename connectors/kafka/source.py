"""The Kafka source: a streamio receiver over an aiokafka consumer group member.

Delivery is at least once. Records go to the stream's buffer in chunks (one
``getmany`` each) together with a :class:`~streamio.connectors.kafka.KafkaPosition`; once
every output of the batch holding a chunk has finished, the runtime calls
:meth:`KafkaSource.commit` with that position and the source commits those
offsets for its consumer group. A batch whose output fails is never committed:
after a restart its records are read again.
"""

from __future__ import annotations

import inspect
import itertools
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka import errors as kafka_errors

from streamio.abc import BatchInfo, Receiver, ReceiverOutput, StreamingListener
from streamio.checks import check_number, check_whole_number
from streamio.errors import ConfigurationError, ConnectorError

from .clients import close_quietly
from .errors import to_connector_error
from .records import KafkaChunk, KafkaPosition, KafkaRecord
from .serde import (
    Deserializer,
    deserialize_bytes,
    deserialize_json,
    deserialize_str,
    resolve_deserializer,
)

if TYPE_CHECKING:
    from streamio import DStream, StreamingContext

__all__ = ["KafkaSource", "KafkaSourceStatistics", "kafka_stream"]

logger = logging.getLogger(__name__)

# Options the source sets itself, and why a caller may not.
_RESERVED_OPTIONS = {
    "enable_auto_commit": "offsets are committed by the source once each batch's outputs "
    "finished; auto-commit would commit records that were never processed",
    "key_deserializer": "pass key_deserializer to KafkaSource itself",
    "value_deserializer": "pass value_deserializer to KafkaSource itself",
    "loop": "the consumer is created in the running event loop",
}
_CONSUMER_OPTIONS = frozenset(inspect.signature(AIOKafkaConsumer.__init__).parameters) - {
    "self",
    "topics",
}

# Errors of a commit that only mean "this member lost its partitions": expected
# during rebalances, and the next owner reads the uncommitted records again.
_LOST_MEMBERSHIP = (
    kafka_errors.CommitFailedError,
    kafka_errors.IllegalStateError,
    kafka_errors.RebalanceInProgressError,
    kafka_errors.IllegalGenerationError,
    kafka_errors.UnknownMemberIdError,
)

# The same as the built-in deserializers, called without a Python frame in between.
_FAST_DESERIALIZERS: dict[Any, Deserializer | None] = {
    deserialize_bytes: None,
    deserialize_str: bytes.decode,  # UTF-8, strict
    deserialize_json: json.loads,
}

# How long getmany waits for data before the source looks at its other duties.
_POLL_TIMEOUT_MS = 1000


@dataclass(frozen=True)
class KafkaSourceStatistics:
    """A snapshot of a :class:`KafkaSource`, for monitoring and tests.

    Attributes:
        received: records stored in the stream's buffer since the source was made.
        assignment: the partitions this member holds now.
        delivered: per held partition, the offset after the last record stored.
        committed: per held partition, the offset this member last committed.
        assignments: how many partition assignments this member received (one per
            group join or rebalance).
        paused: the partitions not fetched now (rate budget used, buffer full,
            or ``run`` ended and the final batches are being committed).
        waiting_for_space: the buffer is full and the source waits to store a chunk.
        closed: True while the source has no consumer: before ``open`` and after
            ``aclose``.
    """

    received: int
    assignment: frozenset[TopicPartition]
    delivered: Mapping[TopicPartition, int]
    committed: Mapping[TopicPartition, int]
    assignments: int
    paused: frozenset[TopicPartition]
    waiting_for_space: bool
    closed: bool


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Forwards aiokafka's rebalance callbacks to the source (runs on aiokafka's task)."""

    def __init__(self, source: KafkaSource, consumer: AIOKafkaConsumer) -> None:
        self._source = source
        self._consumer = consumer

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._source._revoked(self._consumer, revoked)

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._source._assigned(self._consumer, assigned)


class _BatchCuts(StreamingListener):
    """Tells a source of its context's batch cuts (runs on the scheduler's task)."""

    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    def on_batch_submitted(self, info: BatchInfo) -> None:
        self._source._batch_cut()


class KafkaSource(Receiver[KafkaRecord]):
    """Consumes Kafka topics as a member of a consumer group.

    Attach it with :meth:`stream` (or use :func:`kafka_stream`), which also lets it
    see the context's batch cuts (needed by ``max_rate_per_partition``).

    Args:
        topics: a topic name, several names, or a compiled ``re.Pattern`` to
            subscribe to every matching topic (a plain string is a name, never a
            pattern).
        group_id: the consumer group. Offsets are committed for it after each
            batch's outputs finished; None consumes without a group (every
            partition, nothing committed: a restart begins at ``auto_offset_reset``).
        bootstrap_servers: ``"host:port"`` or a list of them.
        auto_offset_reset: where to start a partition without a committed offset:
            ``"earliest"``, ``"latest"`` or ``"none"`` (fail).
        key_deserializer, value_deserializer: ``"bytes"`` (the default),
            ``"str"``, ``"json"`` or a function of the bytes; never applied to None.
        max_rate_per_partition: most records per second per partition. Each batch
            takes at most ``rate * batch_interval`` records of a partition: the
            source counts what it stores of each partition between two batch cuts
            and pauses a partition that reached its share until the next cut
            (records beyond it stay in Kafka). The source learns the interval and
            the cuts when attached with :meth:`stream` (or :func:`kafka_stream`).
        max_chunk_records: most records per ``getmany`` and so per stored chunk.
        broker_check_interval: after this many seconds without data, the source
            asks the broker for metadata; if no broker answers, it raises a
            retriable ConnectorError so the runtime restarts it with backoff
            (aiokafka itself retries silently forever). None: never check.
        commit_timeout: seconds a commit may take; a commit that fails or times
            out is reported to the listeners (``on_receiver_error``) and covered by
            the next one, since each position holds every partition's offset.
        **consumer_config: any other ``aiokafka.AIOKafkaConsumer`` option, passed
            through: ``security_protocol``, ``ssl_context``, ``sasl_mechanism``,
            ``sasl_plain_username``, ``sasl_plain_password``, ``session_timeout_ms``,
            ``isolation_level``, ``client_id``... Their values are never logged nor
            shown in ``repr``.

    Raises:
        ConfigurationError: for a wrong argument, an unknown consumer option, or
            ``enable_auto_commit`` (the source commits, after each batch).
    """

    def __init__(
        self,
        topics: str | Iterable[str] | re.Pattern[str],
        *,
        group_id: str | None,
        bootstrap_servers: str | list[str] = "localhost:9092",
        auto_offset_reset: Literal["earliest", "latest", "none"] = "latest",
        key_deserializer: str | Deserializer = "bytes",
        value_deserializer: str | Deserializer = "bytes",
        max_rate_per_partition: float | None = None,
        max_chunk_records: int = 10_000,
        broker_check_interval: float | None = 10.0,
        commit_timeout: float = 10.0,
        **consumer_config: Any,
    ) -> None:
        self._topics, self._pattern = _subscription(topics)
        if group_id is not None and (not isinstance(group_id, str) or not group_id):
            msg = f"group_id must be a non-empty string or None, not {group_id!r}"
            raise ConfigurationError(msg)
        if auto_offset_reset not in ("earliest", "latest", "none"):
            msg = (
                "auto_offset_reset must be 'earliest', 'latest' or 'none', "
                f"not {auto_offset_reset!r}"
            )
            raise ConfigurationError(msg)
        _check_options(consumer_config)
        self._group_id = group_id
        self._bootstrap_servers = bootstrap_servers
        self._auto_offset_reset = auto_offset_reset
        key_fn = resolve_deserializer(key_deserializer, "key_deserializer")
        value_fn = resolve_deserializer(value_deserializer, "value_deserializer")
        # the C functions behind the built-in ones, without a Python frame per record;
        # None: the bytes stay as they are
        self._key_fn = _FAST_DESERIALIZERS.get(key_fn, key_fn)
        self._value_fn = _FAST_DESERIALIZERS.get(value_fn, value_fn)
        self._rate = (
            None
            if max_rate_per_partition is None
            else check_number(
                max_rate_per_partition, "max_rate_per_partition", unit="records per second"
            )
        )
        self._batch_interval: float | None = None  # known once attached: stream()
        self._max_chunk = check_whole_number(max_chunk_records, "max_chunk_records")
        self._check_interval = (
            None
            if broker_check_interval is None
            else check_number(broker_check_interval, "broker_check_interval")
        )
        self._commit_timeout = check_number(commit_timeout, "commit_timeout")
        self._config = dict(consumer_config)
        max_poll = self._config.get("max_poll_interval_ms", 300_000) / 1000
        # a poll at least this often keeps the member alive while the source waits
        self._keepalive = max(0.05, min(10.0, max_poll / 3))

        self._consumer: AIOKafkaConsumer | None = None
        self._output: ReceiverOutput[KafkaRecord] | None = None
        self._epoch_counter = itertools.count(1)
        self._epochs: dict[TopicPartition, int] = {}  # held partition -> assignment epoch
        self._delivered: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._budget: dict[TopicPartition, int] = {}  # rate limit: what is left until the cut
        self._exhausted: set[TopicPartition] = set()
        self._blocked = False  # waiting for buffer space: every partition paused
        self._paused: set[TopicPartition] = set()
        self._carry: dict[TopicPartition, list[Any]] = {}
        self._received = 0
        self._assignments = 0
        self._stopped_receiving = False  # run() ended: every partition paused until aclose
        self._refilled: anyio.Event | None = None
        self._changed: anyio.Event | None = None
        self._idle_since = time.monotonic()

    def __repr__(self) -> str:
        what = (
            f"pattern={self._pattern!r}"
            if self._pattern is not None
            else f"topics={list(self._topics)!r}"
        )
        return (
            f"KafkaSource({what}, group_id={self._group_id!r}, "
            f"bootstrap_servers={self._bootstrap_servers!r})"
        )

    # -- attaching ------------------------------------------------------------------

    def stream(
        self,
        ssc: StreamingContext,
        *,
        name: str | None = None,
        buffer_capacity: int | None = None,
    ) -> DStream[KafkaRecord]:
        """The input stream of this source in ``ssc``.

        The source takes ``ssc``'s batch interval and listens to its batch cuts
        (for ``max_rate_per_partition``).
        """
        self._batch_interval = ssc.batch_interval
        ssc.add_listener(_BatchCuts(self))
        return ssc.receiver_stream(self, name=name, buffer_capacity=buffer_capacity)

    def _batch_cut(self) -> None:
        """A batch was cut: every partition gets its rate budget back."""
        if self._rate is None:
            return
        self._budget.clear()
        self._exhausted.clear()
        if self._refilled is not None:
            self._refilled.set()
            self._refilled = None
        if self._consumer is not None and not self._stopped_receiving:
            self._apply_pauses(self._consumer)

    # -- statistics -----------------------------------------------------------------

    def statistics(self) -> KafkaSourceStatistics:
        """What the source has received, holds and committed, now."""
        held = self._epochs
        return KafkaSourceStatistics(
            received=self._received,
            assignment=frozenset(held),
            delivered={tp: off for tp, off in self._delivered.items() if tp in held},
            committed={tp: off for tp, off in self._committed.items() if tp in held},
            assignments=self._assignments,
            paused=frozenset(self._paused),
            waiting_for_space=self._blocked,
            closed=self._consumer is None,
        )

    async def wait_until(self, predicate: Callable[[KafkaSourceStatistics], bool]) -> None:
        """Return once ``predicate(self.statistics())`` is true.

        Woken by each change (records stored, a commit, a rebalance, the close),
        never by a timer: bound it with ``anyio.fail_after`` where needed.
        """
        while not predicate(self.statistics()):
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # -- the receiver contract --------------------------------------------------------

    async def open(self) -> None:
        """Create the consumer, connect and subscribe (the group join follows in run)."""
        if self._consumer is not None:
            # left open by an earlier attempt whose close did not finish: it must
            # not stay in the group beside the new member
            await self._stop_consumer(self._consumer)
        self.restartable = True
        if self._rate is not None and self._batch_interval is None:
            self.restartable = False
            msg = (
                "max_rate_per_partition needs the batch interval and the batch cuts: "
                "attach the source with source.stream(ssc) (or use kafka_stream()) "
                "rather than ssc.receiver_stream(source)"
            )
            raise ConfigurationError(msg)
        try:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap_servers,
                group_id=self._group_id,
                auto_offset_reset=self._auto_offset_reset,
                enable_auto_commit=False,
                **self._config,
            )
        except Exception as exc:
            raise self._fail(exc, "consumer configuration") from exc
        self._consumer = consumer
        self._stopped_receiving = False
        try:
            await consumer.start()
            listener = _Rebalance(self, consumer)
            if self._pattern is not None:
                consumer.subscribe(pattern=self._pattern, listener=listener)
            else:
                consumer.subscribe(topics=list(self._topics), listener=listener)
        except Exception as exc:
            raise self._fail(exc, "connecting the consumer") from exc
        self._idle_since = time.monotonic()
        self._notify()

    async def run(self, output: ReceiverOutput[KafkaRecord]) -> None:
        """Fetch chunks with ``getmany`` and store each with its position, until cancelled."""
        consumer = self._consumer
        if consumer is None:
            raise ConnectorError("KafkaSource.run() before open()", retriable=True)
        self._output = output
        try:
            await self._receive(consumer, output)
        finally:
            # Stopped (a graceful stop commits the buffered batches before aclose):
            # fetch nothing more, but stay in the group for those commits.
            self._stopped_receiving = True
            if self._consumer is consumer:
                self._apply_pauses(consumer)

    async def _receive(
        self, consumer: AIOKafkaConsumer, output: ReceiverOutput[KafkaRecord]
    ) -> None:
        while True:
            if self._group_id is None:
                self._follow_assignment(consumer)
            if self._carry:
                fetched, self._carry = self._carry, {}
            elif self._rate is not None and self._epochs and self._exhausted >= self._epochs.keys():
                await self._wait_for_refill(consumer)
                continue
            else:
                try:
                    fetched = await consumer.getmany(
                        timeout_ms=_POLL_TIMEOUT_MS, max_records=self._max_chunk
                    )
                except kafka_errors.KafkaError as exc:
                    raise self._fail(exc, "fetching") from exc
                if not fetched:
                    await self._check_broker(consumer)
                    continue
            self._idle_since = time.monotonic()
            records, delivered = self._convert(consumer, fetched)
            # aiokafka's records die now, before the put lets batches run: kept
            # across it, each would outlive collections and burden the GC's old
            # generation (the chunk holds plain tuples, which the GC soon stops scanning)
            del fetched
            if not records:
                continue
            # counted as delivered before the put: a cancelled put still stores the chunk
            self._delivered.update(delivered)
            position = KafkaPosition(
                {tp: (offset, self._epochs[tp]) for tp, offset in self._delivered.items()}
            )
            count = len(records)
            await self._store(consumer, output, records, position)
            del records  # the buffer holds them now, as long as needed
            self._received += count
            self._notify()

    async def commit(self, position: Any) -> None:
        """Commit the offsets of ``position`` for the group: every output of the
        batches up to it has finished.

        Partitions this member no longer holds, or lost and got back since the
        position was taken, are left out: their next owner reads those records
        again. A failed commit is logged and reported to the listeners, never
        raised: the next batch's position covers the same offsets.
        """
        consumer = self._consumer
        if consumer is None or self._group_id is None or not isinstance(position, KafkaPosition):
            return
        offsets = {
            tp: offset
            for tp, (offset, epoch) in position.entries().items()
            if self._epochs.get(tp) == epoch and offset > self._committed.get(tp, -1)
        }
        if offsets:
            await self._commit_offsets(consumer, offsets, position)

    async def aclose(self) -> None:
        """Leave the group and close the consumer. Idempotent.

        On a graceful stop the runtime calls it once the final batches are
        committed; after a hard stop or a failure, the records stored but not
        committed are read again by the partitions' next owner.
        """
        consumer = self._consumer
        if consumer is not None:
            await self._stop_consumer(consumer)

    # -- fetching -----------------------------------------------------------------------

    def _convert(
        self, consumer: AIOKafkaConsumer, fetched: Mapping[TopicPartition, list[Any]]
    ) -> tuple[KafkaChunk, dict[TopicPartition, int]]:
        """The records of a getmany (rate limits applied), as one chunk, and the
        next offset per partition."""
        rows: list[tuple[Any, ...]] = []
        delivered: dict[TopicPartition, int] = {}
        key_fn, value_fn = self._key_fn, self._value_fn
        for tp, fetched_messages in fetched.items():
            messages = fetched_messages  # the rate limit may keep only a part
            if not messages:
                continue
            if tp not in self._epochs:  # aiokafka delivered before our callback ran
                self._assigned(consumer, [tp], count=False)
            if self._rate is not None:
                messages = self._limit(consumer, tp, messages)
                if not messages:
                    continue
            topic, partition = tp.topic, tp.partition
            # the hot loop of the source: one comprehension per case, a tuple of
            # the record's fields each, no call but the deserializers
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
                self.restartable = False
                raise self._deserialization_error(tp, messages) from exc
            delivered[tp] = messages[-1].offset + 1
        return KafkaChunk(rows), delivered

    def _deserialization_error(self, tp: TopicPartition, messages: list[Any]) -> ConnectorError:
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

    def _limit(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, messages: list[Any]
    ) -> list[Any]:
        """The part of ``messages`` within the partition's budget; the rest stays in Kafka."""
        assert self._rate is not None and self._batch_interval is not None
        cap = max(1, int(self._rate * self._batch_interval))
        allowed = self._budget.get(tp, cap)
        if len(messages) > allowed:
            consumer.seek(tp, messages[allowed].offset)  # read again after the next cut
            messages = messages[:allowed]
        left = allowed - len(messages)
        self._budget[tp] = left
        if left <= 0:
            self._exhausted.add(tp)
            self._apply_pauses(consumer)
        return messages

    def _apply_pauses(self, consumer: AIOKafkaConsumer) -> None:
        """Pause the partitions that must not be fetched now, resume the others."""
        try:
            held = consumer.assignment()
            wanted = (
                set(held) if self._blocked or self._stopped_receiving else self._exhausted & held
            )
            paused = consumer.paused()
            if wanted - paused:
                consumer.pause(*(wanted - paused))
            if paused - wanted:
                consumer.resume(*(paused - wanted))
        except kafka_errors.IllegalStateError:  # no subscription (closing)
            return
        if wanted != self._paused:
            self._paused = wanted
            self._notify()

    async def _wait_for_refill(self, consumer: AIOKafkaConsumer) -> None:
        """Every held partition used its rate budget: wait for the next batch cut."""
        if self._refilled is None:
            self._refilled = anyio.Event()
        with anyio.move_on_after(self._keepalive):
            await self._refilled.wait()
            return
        await self._poll_paused(consumer)

    async def _store(
        self,
        consumer: AIOKafkaConsumer,
        output: ReceiverOutput[KafkaRecord],
        records: KafkaChunk,
        position: KafkaPosition,
    ) -> None:
        """Put the chunk in the buffer; while it is full, pause every partition."""
        stats = output.statistics()
        if stats.used + len(records) <= stats.capacity:
            await output.put_many(records, position=position)
            return
        # Backpressure: the put waits for a batch to free space. Pause fetching
        # meanwhile and keep polling, or the group would drop an idle member.
        self._blocked = True
        self._notify()
        self._apply_pauses(consumer)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._keep_alive, consumer)
                await output.put_many(records, position=position)
                group.cancel_scope.cancel()
        finally:
            self._blocked = False
            if self._consumer is consumer and not self._stopped_receiving:
                self._apply_pauses(consumer)
            self._notify()

    async def _keep_alive(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            await anyio.sleep(self._keepalive)
            await self._poll_paused(consumer)

    async def _poll_paused(self, consumer: AIOKafkaConsumer) -> None:
        """A getmany on paused partitions: tells the group this member is alive."""
        self._apply_pauses(consumer)
        try:
            fetched = await consumer.getmany(timeout_ms=0)
        except kafka_errors.KafkaError as exc:
            raise self._fail(exc, "polling") from exc
        for tp, messages in fetched.items():  # a partition assigned meanwhile
            self._carry.setdefault(tp, []).extend(messages)

    async def _check_broker(self, consumer: AIOKafkaConsumer) -> None:
        """No data for a while: raise if no broker answers a metadata request."""
        if self._check_interval is None:
            return
        now = time.monotonic()
        if now - self._idle_since < self._check_interval:
            return
        self._idle_since = now
        try:
            with anyio.fail_after(max(self._check_interval, 1.0)):
                await consumer.topics()
        except (kafka_errors.KafkaError, OSError, TimeoutError) as exc:
            msg = (
                f"Kafka broker unreachable ({self._bootstrap_servers!r}): "
                f"{type(exc).__name__}: {exc}"
            )
            raise ConnectorError(msg, retriable=True) from exc

    def _fail(self, exc: BaseException, action: str) -> ConnectorError:
        error = to_connector_error(exc, action)
        if not error.retriable:
            self.restartable = False
        return error

    # -- assignment ----------------------------------------------------------------------

    def _assigned(
        self, consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition], count: bool = True
    ) -> None:
        if consumer is not self._consumer:
            return
        for tp in partitions:
            self._epochs[tp] = next(self._epoch_counter)
            self._delivered.pop(tp, None)
            self._committed.pop(tp, None)
            self._budget.pop(tp, None)
            self._exhausted.discard(tp)
        if count:
            self._assignments += 1
        self._notify()

    def _revoked(self, consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition]) -> None:
        if consumer is not self._consumer:
            return
        for tp in partitions:
            self._epochs.pop(tp, None)
            self._delivered.pop(tp, None)
            self._committed.pop(tp, None)
            self._budget.pop(tp, None)
            self._exhausted.discard(tp)
            self._carry.pop(tp, None)
            self._paused.discard(tp)
        self._notify()

    def _follow_assignment(self, consumer: AIOKafkaConsumer) -> None:
        """Without a group aiokafka calls no rebalance listener: compare instead."""
        held = consumer.assignment()
        if held != self._epochs.keys():
            gone = self._epochs.keys() - held
            if gone:
                self._revoked(consumer, gone)
            new = held - self._epochs.keys()
            if new:
                self._assigned(consumer, new)

    # -- committing and closing ------------------------------------------------------------

    async def _commit_offsets(
        self,
        consumer: AIOKafkaConsumer,
        offsets: dict[TopicPartition, int],
        position: KafkaPosition,
    ) -> None:
        try:
            with anyio.fail_after(self._commit_timeout):
                await consumer.commit(offsets)
        except _LOST_MEMBERSHIP as exc:
            logger.info(
                "%r: commit refused after a rebalance, left to the next owner: %r", self, exc
            )
            await self._report(to_connector_error(exc, "committing"), offsets)
        except (kafka_errors.KafkaError, OSError, TimeoutError) as exc:
            logger.warning("%r: commit failed, the next batch's commit covers it: %r", self, exc)
            error = to_connector_error(exc, "committing")
            if isinstance(exc, TimeoutError):
                error = ConnectorError(
                    f"Kafka commit took over {self._commit_timeout}s", retriable=True
                )
            await self._report(error, offsets)
        else:
            entries = position.entries()
            for tp, offset in offsets.items():
                if self._epochs.get(tp) == entries[tp][1]:
                    self._committed[tp] = max(offset, self._committed.get(tp, -1))
            self._notify()

    async def _report(self, error: ConnectorError, offsets: Mapping[TopicPartition, int]) -> None:
        if self._output is not None:
            partitions = {f"{tp.topic}[{tp.partition}]": offset for tp, offset in offsets.items()}
            await self._output.report_error(error, offsets=partitions)

    async def _stop_consumer(self, consumer: AIOKafkaConsumer) -> None:
        """Leave the group and close ``consumer``; forget what it held. Idempotent."""
        if self._consumer is consumer:
            self._consumer = None
            self._epochs.clear()
            self._delivered.clear()
            self._budget.clear()
            self._exhausted.clear()
            self._carry.clear()
            self._paused.clear()
        await close_quietly(consumer, self)
        self._notify()


def kafka_stream(
    ssc: StreamingContext,
    topics: str | Iterable[str] | re.Pattern[str],
    *,
    group_id: str | None,
    name: str | None = None,
    buffer_capacity: int | None = None,
    **options: Any,
) -> DStream[KafkaRecord]:
    """A stream of :class:`KafkaRecord` from ``topics`` (names or a ``re.Pattern``).

    ``options`` are :class:`KafkaSource`'s (``bootstrap_servers``,
    ``auto_offset_reset``, deserializers, ``max_rate_per_partition``, aiokafka
    consumer options...). ``name`` and ``buffer_capacity`` are the stream's, as in
    ``ssc.receiver_stream``.
    """
    source = KafkaSource(topics, group_id=group_id, **options)
    return source.stream(ssc, name=name, buffer_capacity=buffer_capacity)


def _subscription(topics: Any) -> tuple[tuple[str, ...], str | None]:
    """(topic names, None) or ((), pattern) for what ``topics`` asks for."""
    if isinstance(topics, re.Pattern):
        return (), topics.pattern
    names = (topics,) if isinstance(topics, str) else tuple(topics)
    if not names or not all(isinstance(name, str) and name for name in names):
        msg = f"topics must be a topic name, names or a re.Pattern, not {topics!r}"
        raise ConfigurationError(msg)
    return names, None


def _check_options(consumer_config: Mapping[str, Any]) -> None:
    for key in consumer_config:
        if key in _RESERVED_OPTIONS:
            raise ConfigurationError(f"{key} cannot be set: {_RESERVED_OPTIONS[key]}")
        if key not in _CONSUMER_OPTIONS:
            raise ConfigurationError(f"{key!r} is not an aiokafka consumer option")
