"""The Kafka source: a streamio receiver over an aiokafka consumer group member.

Delivery is at least once. Records go to the stream's buffer in chunks (one
``getmany`` each) together with a :class:`~streamio.connectors.kafka.KafkaPosition`; once
every output of the batch holding a chunk has finished, the runtime calls
:meth:`KafkaSource.commit` with that position and the source commits those
offsets for its consumer group. A batch whose output fails is never committed:
after a restart its records are read again.

This module holds the receiver: its lifecycle and the fetch loop. Each of the
loop's other jobs has a module of its own: :mod:`.decoding` (messages into
chunks), :mod:`.rate` (``max_rate_per_partition``), :mod:`.flow` (paused
partitions, backpressure), :mod:`.offsets` (assignments, delivered and committed
offsets, commits), :mod:`.health` (broker outages) and :mod:`.options`
(configuration checks).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka import errors as kafka_errors

from streamio.abc import BatchInfo, Receiver, ReceiverOutput, StreamingListener
from streamio.checks import OnError, check_number, check_on_error, check_whole_number
from streamio.errors import ConfigurationError, ConnectorError

from .clients import close_quietly
from .decoding import ColumnDecoder, RecordDecoder
from .errors import to_connector_error
from .flow import FlowControl
from .health import BrokerWatch
from .offsets import PartitionOffsets
from .options import check_consumer_options, subscription
from .rate import PartitionRateLimit
from .records import KafkaChunk, KafkaPosition, KafkaRecord
from .serde import Deserializer

if TYPE_CHECKING:
    from streamio import DStream, StreamingContext

__all__ = ["KafkaSource", "KafkaSourceStatistics", "kafka_stream"]

logger = logging.getLogger(__name__)

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
        broker_failures: failed broker checks (or fetches) in a row: 0 unless no
            broker answers now.
        rejected: records left out because a deserializer refused them
            (``on_deserialize_error`` "skip" or "dead_letter").
    """

    received: int
    assignment: frozenset[TopicPartition]
    delivered: Mapping[TopicPartition, int]
    committed: Mapping[TopicPartition, int]
    assignments: int
    paused: frozenset[TopicPartition]
    waiting_for_space: bool
    closed: bool
    broker_failures: int = 0
    rejected: int = 0


class _Rebalance(ConsumerRebalanceListener):
    """Forwards aiokafka's rebalance callbacks to the source (runs on aiokafka's task)."""

    def __init__(self, source: KafkaSource, consumer: AIOKafkaConsumer) -> None:
        self._source = source
        self._consumer = consumer

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._source._revoked(self._consumer, revoked)

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._source._assigned(self._consumer, assigned)


class _BatchCuts(StreamingListener):
    """Tells a source of its context's batch cuts: an inline listener, called on
    the scheduler's task right after the cut, before the source stores anything
    more, so each partition's count of records covers exactly one batch."""

    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    def on_batch_submitted(self, info: BatchInfo) -> None:
        self._source._batch_cut()


class KafkaSource(Receiver[KafkaRecord]):
    """Consumes Kafka topics as a member of a consumer group.

    ``start_offsets`` starts partitions at offsets stored elsewhere (with the
    results, by :class:`~streamio.connectors.database.TransactionalSink`), as a
    checkpoint's restore does. Without a group, a restarted source resumes after
    the records it had stored. Each position knows where each partition's reading
    began (:meth:`KafkaPosition.offset_ranges`).

    With checkpointing on (``ssc.checkpoint(directory)``), offsets are committed
    for the group once a checkpoint covers them, and a job resumed from a
    checkpoint reads each partition from the checkpoint's offset, not the
    group's: the state built from the records is then exactly once.

    Attach it with :meth:`stream` (or use :func:`kafka_stream`), which also lets it
    see the context's batch cuts (needed by ``max_rate_per_partition``).

    A broker that goes away does not stop the source: aiokafka reconnects by
    itself, the source reports the outage to the listeners
    (``on_receiver_error``, with ``info.extra["bootstrap_servers"]``) and checks
    again with capped exponential backoff, and once a broker answers the records
    come from where they stopped, without a receiver restart. Only the first
    connection, in ``open()``, raises when no broker answers, so that a wrong
    address fails loudly.

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
        on_deserialize_error: what a record whose key or value a deserializer
            refuses does. ``"fail"`` (the default): the source stops with a
            non-retriable ConnectorError naming the record, uncommitted.
            ``"skip"``: it is left out and counted in ``BatchInfo.records_skipped``
            (under the stream's name). ``"dead_letter"``: left out, counted in
            ``records_dead_lettered`` and sent to the stream's ``dead_letters()``
            as a :class:`~streamio.DeadLetter` whose record is the raw
            :class:`KafkaRecord` (key and value bytes, topic, partition, offset).
            Either way its offset is committed with its batch.
        max_rate_per_partition: most records per second per partition. Each batch
            takes at most ``rate * batch_interval`` records of a partition: the
            source counts what it stores of each partition between two batch cuts
            and pauses a partition that reached its share until the next cut
            (records beyond it stay in Kafka). The source learns the interval and
            the cuts when attached with :meth:`stream` (or :func:`kafka_stream`).
            For a cap on the whole stream, give ``max_rate`` to :meth:`stream`.
        max_chunk_records: most records per ``getmany`` and so per stored chunk.
        broker_check_interval: after this many seconds without records, the source
            asks a broker for metadata; when none answers, it reports a retriable
            ConnectorError to the listeners and asks again after
            ``reconnect_backoff`` seconds (aiokafka itself would retry silently for
            ever). None: never check.
        reconnect_backoff: seconds from a failed check to the next one; doubled
            after each failure in a row.
        max_backoff: the longest wait between two checks.
        max_reconnects: how many checks in a row may fail before ``run`` raises the
            retriable ConnectorError (the context then restarts the receiver, or
            stops once its restarts are used up); None (the default) rides out an
            outage of any length.
        commit_timeout: seconds a commit may take; a commit that fails or times
            out is reported to the listeners (``on_receiver_error``) and covered by
            the next one, since each position holds every partition's offset.
        start_offsets: where to start reading partitions, overriding the group's
            committed offsets and ``auto_offset_reset``: ``{TopicPartition(topic,
            partition): next offset}`` (or ``(topic, partition)`` keys), as a
            restore does (:meth:`restore`); others start as usual. Give it the
            offsets stored with the results, as
            :meth:`~streamio.connectors.database.TransactionalSink.stored_offsets`
            returns them (Spark's "your own data store" recipe).
        columnar: store each fetch as one Arrow record batch with the columns
            ``key``, ``value``, ``topic``, ``partition``, ``offset`` and
            ``timestamp`` (``streamio[arrow]``; see
            :class:`~streamio.connectors.kafka.decoding.ColumnDecoder`): no
            :class:`KafkaRecord` is built, and ``stream.sql(...)`` queries the
            batch as it came (quote ``"offset"`` there: a keyword of SQL).
            Row-wise operators read each record as a dict.
        **consumer_config: any other ``aiokafka.AIOKafkaConsumer`` option, passed
            through: ``security_protocol``, ``ssl_context``, ``sasl_mechanism``,
            ``sasl_plain_username``, ``sasl_plain_password``, ``session_timeout_ms``,
            ``isolation_level``, ``client_id``... Their values are never logged nor
            shown in ``repr``.

    Raises:
        ConfigurationError: for a wrong argument, an unknown consumer option, or
            ``enable_auto_commit`` (the source commits, after each batch).
    """

    replayable = True

    def __init__(
        self,
        topics: str | Iterable[str] | re.Pattern[str],
        *,
        group_id: str | None,
        bootstrap_servers: str | list[str] = "localhost:9092",
        auto_offset_reset: Literal["earliest", "latest", "none"] = "latest",
        key_deserializer: str | Deserializer = "bytes",
        value_deserializer: str | Deserializer = "bytes",
        on_deserialize_error: OnError = "fail",
        max_rate_per_partition: float | None = None,
        max_chunk_records: int = 10_000,
        broker_check_interval: float | None = 10.0,
        reconnect_backoff: float = 1.0,
        max_backoff: float = 30.0,
        max_reconnects: int | None = None,
        commit_timeout: float = 10.0,
        start_offsets: Mapping[tuple[str, int], int] | None = None,
        columnar: bool = False,
        **consumer_config: Any,
    ) -> None:
        self._topics, self._pattern = subscription(topics)
        if group_id is not None and (not isinstance(group_id, str) or not group_id):
            msg = f"group_id must be a non-empty string or None, not {group_id!r}"
            raise ConfigurationError(msg)
        if auto_offset_reset not in ("earliest", "latest", "none"):
            msg = (
                "auto_offset_reset must be 'earliest', 'latest' or 'none', "
                f"not {auto_offset_reset!r}"
            )
            raise ConfigurationError(msg)
        check_consumer_options(consumer_config)
        self._group_id = group_id
        self._bootstrap_servers = bootstrap_servers
        self._auto_offset_reset = auto_offset_reset
        policy = check_on_error(on_deserialize_error, "on_deserialize_error")
        self._dead_letter = policy == "dead_letter"
        self.sends_dead_letters = self._dead_letter
        self._decoder = RecordDecoder(key_deserializer, value_deserializer, policy)
        if columnar and policy != "fail":
            msg = (
                "columnar=True fails on a record it cannot decode; use "
                'on_deserialize_error="fail" with it, or columnar=False to skip records'
            )
            raise ConfigurationError(msg)
        self._columns = (
            ColumnDecoder(key_deserializer, value_deserializer) if columnar else None
        )
        if self._columns is not None:
            self.schema = self._columns.schema
        self._rate = (
            None
            if max_rate_per_partition is None
            else PartitionRateLimit(
                check_number(
                    max_rate_per_partition, "max_rate_per_partition", unit="records per second"
                )
            )
        )
        self._max_chunk = check_whole_number(max_chunk_records, "max_chunk_records")
        check_interval = (
            None
            if broker_check_interval is None
            else check_number(broker_check_interval, "broker_check_interval")
        )
        backoff = check_number(reconnect_backoff, "reconnect_backoff")
        cap = check_number(max_backoff, "max_backoff")
        if cap < backoff:
            msg = f"max_backoff ({cap}) must not be less than reconnect_backoff ({backoff})"
            raise ConfigurationError(msg)
        if max_reconnects is not None:
            check_whole_number(max_reconnects, "max_reconnects (or None)", minimum=0)
        self._watch = BrokerWatch(
            check_interval=check_interval,
            backoff=backoff,
            max_backoff=cap,
            max_failures=max_reconnects,
            servers=bootstrap_servers,
        )
        self._offsets = PartitionOffsets(check_number(commit_timeout, "commit_timeout"))
        self._config = dict(consumer_config)
        max_poll = self._config.get("max_poll_interval_ms", 300_000) / 1000
        # a poll at least this often keeps the member alive while the source waits
        self._flow = FlowControl(self._rate, max(0.05, min(10.0, max_poll / 3)), self._notify)

        self._consumer: AIOKafkaConsumer | None = None
        self._output: ReceiverOutput[KafkaRecord] | None = None
        self._received = 0
        # Offsets a checkpoint restored, per partition: read from there, not from the
        # group's offsets, until a commit has stored them (or later ones) for the group.
        self._restored: dict[TopicPartition, int] = {}
        if start_offsets is not None:
            self._restored.update(self._checked_offsets(start_offsets, ConfigurationError))
        self._rejected = 0
        self._changed: anyio.Event | None = None

    def _checked_offsets(
        self, offsets: Any, error: Callable[[str], Exception]
    ) -> dict[TopicPartition, int]:
        """``offsets`` as ``TopicPartition -> offset``, or ``error`` saying what is wrong."""
        if not isinstance(offsets, Mapping):
            msg = f"start offsets must map (topic, partition) to an offset, not {offsets!r}"
            raise error(msg)
        checked = {}
        for key, offset in offsets.items():
            if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str)
                    and isinstance(key[1], int) and not isinstance(key[1], bool)):  # fmt: skip
                msg = f"a start offset's key must be (topic, partition), not {key!r}"
                raise error(msg)
            if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
                msg = f"the start offset of {key[0]}[{key[1]}] must be an int >= 0, not {offset!r}"
                raise error(msg)
            if self._pattern is None and key[0] not in self._topics:
                msg = (
                    f"a start offset names topic {key[0]!r}, which this source does not "
                    f"read (topics {list(self._topics)!r})"
                )
                raise error(msg)
            checked[TopicPartition(key[0], key[1])] = offset
        return checked

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
        max_rate: float | None = None,
    ) -> DStream[KafkaRecord]:
        """The input stream of this source in ``ssc``.

        The source takes ``ssc``'s batch interval and listens to its batch cuts
        (for ``max_rate_per_partition``).

        Args:
            ssc: the context.
            name: the stream's name; by default ``"kafka <topics>"`` (the topics
                joined by commas, or the pattern), numbered when taken
                (``"kafka lines 2"``).
            buffer_capacity: records its buffer holds before the source waits
                (and pauses fetching).
            max_rate: most records per second a batch takes from the stream as a
                whole, as in ``ssc.receiver_stream``; with
                ``max_rate_per_partition`` both caps hold.
        """
        if self._rate is not None:
            self._rate.attach(ssc.batch_interval)
        ssc.add_listener(_BatchCuts(self), inline=True)
        what = self._pattern if self._pattern is not None else ",".join(self._topics)
        return ssc.receiver_stream(
            self,
            name=name,
            buffer_capacity=buffer_capacity,
            max_rate=max_rate,
            default_name=f"kafka {what}",
        )

    def _batch_cut(self) -> None:
        """A batch was cut: every partition gets its rate budget back."""
        if self._rate is None:
            return
        self._rate.refill()
        if self._consumer is not None and not self._flow.stopped:
            self._flow.apply(self._consumer)

    # -- statistics -----------------------------------------------------------------

    def statistics(self) -> KafkaSourceStatistics:
        """What the source has received, holds and committed, now."""
        offsets = self._offsets
        return KafkaSourceStatistics(
            received=self._received,
            assignment=offsets.held,
            delivered=offsets.delivered(),
            committed=offsets.committed(),
            assignments=offsets.assignments,
            paused=self._flow.paused,
            waiting_for_space=self._flow.blocked,
            closed=self._consumer is None,
            broker_failures=self._watch.failures,
            rejected=self._rejected,
        )

    async def wait_until(self, predicate: Callable[[KafkaSourceStatistics], bool]) -> None:
        """Return once ``predicate(self.statistics())`` is true.

        Woken by each change (records stored, a commit, a rebalance, a failed
        broker check, the close), never by a timer: bound it with
        ``anyio.fail_after`` where needed.
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
        if self._rate is not None and not self._rate.attached:
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
        self._flow.stopped = False
        try:
            await consumer.start()
            listener = _Rebalance(self, consumer)
            if self._pattern is not None:
                consumer.subscribe(pattern=self._pattern, listener=listener)
            else:
                consumer.subscribe(topics=list(self._topics), listener=listener)
        except Exception as exc:
            raise self._fail(exc, "connecting the consumer") from exc
        self._watch.reset()
        self._notify()

    async def run(self, output: ReceiverOutput[KafkaRecord]) -> None:
        """Fetch chunks with ``getmany`` and store each with its position, until
        cancelled; a broker outage is reported and ridden out (see the class)."""
        consumer = self._consumer
        if consumer is None:
            raise ConnectorError("KafkaSource.run() before open()", retriable=True)
        self._output = output
        try:
            await self._receive(consumer, output)
        finally:
            # Stopped (a graceful stop commits the buffered batches before aclose):
            # fetch nothing more, but stay in the group for those commits.
            self._flow.stopped = True
            if self._consumer is consumer:
                self._flow.apply(consumer)

    async def _receive(
        self, consumer: AIOKafkaConsumer, output: ReceiverOutput[KafkaRecord]
    ) -> None:
        rate, watch, flow = self._rate, self._watch, self._flow
        while True:
            if self._group_id is None:
                self._follow_assignment(consumer)
            if flow.carry:
                fetched, flow.carry = flow.carry, {}
            elif rate is not None and rate.all_used(self._offsets.held):
                await flow.wait_for_refill(consumer, rate)
                continue
            else:
                try:
                    fetched = await consumer.getmany(
                        timeout_ms=_POLL_TIMEOUT_MS, max_records=self._max_chunk
                    )
                except kafka_errors.KafkaError as exc:
                    error = self._fail(exc, "fetching")
                    error.__cause__ = exc
                    if not error.retriable:
                        raise error from exc
                    watch.failed()
                    await self._report_outage(output, error)
                    await watch.wait()
                    continue
                if not fetched:
                    if watch.due():
                        failure = await watch.check(consumer)
                        if failure is None:
                            self._notify()
                        else:
                            await self._report_outage(output, failure)
                    continue
            watch.reset()
            records, delivered, refused, ranges = self._convert(consumer, fetched)
            # aiokafka's records die now, before the put lets batches run: kept
            # across it, each would outlive collections and burden the GC's old
            # generation (the chunk holds plain tuples, which the GC soon stops scanning)
            del fetched
            self._report_refused(output, refused)
            if not records and not refused:
                continue
            # (a chunk of refused records only is stored empty: its position commits them)
            # counted as delivered before the put: a cancelled put still stores the chunk
            position = self._offsets.deliver(delivered)
            count = len(records)
            await flow.store(
                consumer,
                output,
                records,
                position,
                lambda: self._consumer is consumer,
                metadata={"offsets": ranges},
            )
            del records  # the buffer holds them now, as long as needed
            self._received += count
            self._notify()

    def _report_refused(
        self, output: ReceiverOutput[KafkaRecord], refused: list[tuple[KafkaRecord, Exception]]
    ) -> None:
        """Count the records the deserializers refused (skipped or dead-lettered)
        with the next batch; the position of the chunk stored next covers them."""
        if not refused:
            return
        output.reject(refused, dead_letter=self._dead_letter)
        self._rejected += len(refused)
        first, error = refused[0]
        logger.warning(
            "%r: left out %d record(s) its deserializers refused, the first at %s[%d] "
            "offset %d: %r",
            self,
            len(refused),
            first.topic,
            first.partition,
            first.offset,
            error,
        )

    async def _report_outage(
        self, output: ReceiverOutput[KafkaRecord], error: ConnectorError
    ) -> None:
        """Tell the listeners no broker answers; raise once ``max_reconnects`` is used up."""
        logger.info("%r: %s", self, error)
        self._notify()
        await output.report_error(error, bootstrap_servers=self._bootstrap_servers)
        if self._watch.gave_up:
            raise error

    async def restore(self, position: Any) -> None:
        """Resume from a checkpoint: each partition of ``position`` (a
        :class:`KafkaPosition`, or any mapping of ``(topic, partition)`` to the next
        offset) is read from its offset there (the next record after the
        checkpoint's batch) when it is assigned, whatever the group committed.

        Raises:
            ConnectorError: (not retriable) for a position that is not such a
                mapping, or names a topic this source does not read.
        """
        self._restored.update(
            self._checked_offsets(position, lambda msg: ConnectorError(msg, retriable=False))
        )

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
        offsets = self._offsets.to_commit(position)
        if not offsets:
            return
        failure = await self._offsets.commit(consumer, offsets, position, owner=self)
        if failure is None:
            for tp in offsets:  # the group's offset is the checkpoint's, or later
                self._restored.pop(tp, None)
            self._notify()
        elif self._output is not None:
            partitions = {f"{tp.topic}[{tp.partition}]": offset for tp, offset in offsets.items()}
            await self._output.report_error(failure, offsets=partitions)

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
    ) -> tuple[
        Any,
        dict[TopicPartition, int],
        list[tuple[KafkaRecord, Exception]],
        dict[str, dict[int, range]],
    ]:
        """The records of a getmany (rate limits applied), as one chunk (a
        KafkaChunk, or a record batch when columnar), the next offset per
        partition, the raw records the deserializers refused, and the offsets the
        chunk holds, per topic and partition (the chunk's metadata: a batch's
        ranges are merged from them)."""
        rows: list[tuple[Any, ...]] = []
        columns: list[list[Any]] = []
        refused: list[tuple[KafkaRecord, Exception]] = []
        delivered: dict[TopicPartition, int] = {}
        ranges: dict[str, dict[int, range]] = {}
        offsets, rate, decoder = self._offsets, self._rate, self._decoder
        for tp, fetched_messages in fetched.items():
            messages = fetched_messages  # the rate limit may keep only a part
            if not messages:
                continue
            # aiokafka delivered before our callback ran: if the partition was then
            # sought to a checkpoint's offset, these records came from the group's
            if not offsets.holds(tp) and self._assigned(consumer, [tp], count=False):
                continue
            if rate is not None:
                messages = rate.take(tp, messages)
                if len(messages) < len(fetched_messages):
                    # the rest is read again after the next cut
                    consumer.seek(tp, fetched_messages[len(messages)].offset)
                if tp in rate.exhausted:
                    self._flow.apply(consumer)
                if not messages:
                    continue
            if self._columns is not None:
                columns.append(self._columns.arrays(tp, messages))
            else:
                refused += decoder.extend(rows, tp, messages)
            offsets.started(tp, messages[0].offset)
            delivered[tp] = messages[-1].offset + 1
            ranges.setdefault(tp.topic, {})[tp.partition] = range(
                messages[0].offset, delivered[tp]
            )
        if self._columns is not None:
            chunk = self._columns.batch(columns) if columns else KafkaChunk([])
            return chunk, delivered, refused, ranges
        return KafkaChunk(rows), delivered, refused, ranges

    def _fail(self, exc: BaseException, action: str) -> ConnectorError:
        error = to_connector_error(exc, action)
        if not error.retriable:
            self.restartable = False
        return error

    # -- assignment ----------------------------------------------------------------------

    def _assigned(
        self, consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition], count: bool = True
    ) -> bool:
        """Take on ``partitions``; True when one was sought to a restored offset."""
        if self._consumer is None or consumer is not self._consumer:
            return False
        partitions = list(partitions)
        self._offsets.assigned(partitions, count=count)
        if self._rate is not None:
            for tp in partitions:
                self._rate.forget(tp)
        sought = self._seek_restored(consumer, partitions)
        self._notify()
        return sought

    def _seek_restored(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> bool:
        """Seek the partitions a checkpoint restored (or ``start_offsets`` named) to
        their offsets, where their reading now begins; whether any was."""
        restored = [tp for tp in partitions if tp in self._restored]
        for tp in restored:
            consumer.seek(tp, self._restored[tp])
            self._offsets.sought(tp, self._restored[tp])
        return bool(restored)

    def _revoked(self, consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition]) -> None:
        if consumer is not self._consumer:
            return
        partitions = list(partitions)
        self._offsets.revoked(partitions)
        if self._rate is not None:
            for tp in partitions:
                self._rate.forget(tp)
        self._flow.forget(partitions)
        self._notify()

    def _follow_assignment(self, consumer: AIOKafkaConsumer) -> None:
        """Without a group aiokafka calls no rebalance listener: compare instead."""
        held = consumer.assignment()
        known = self._offsets.held
        if held != known:
            gone = known - held
            if gone:
                self._revoked(consumer, gone)
            new = held - known
            if new:
                self._assigned(consumer, new)

    # -- closing -------------------------------------------------------------------------

    async def _stop_consumer(self, consumer: AIOKafkaConsumer) -> None:
        """Leave the group and close ``consumer``; forget what it held. Idempotent."""
        if self._consumer is consumer:
            self._consumer = None
            if self._group_id is None:
                # nobody else reads these partitions: a restart goes on from here
                self._restored.update(self._offsets.delivered())
            self._offsets.clear()
            if self._rate is not None:
                self._rate.clear()
            self._flow.clear()
        await close_quietly(consumer, self)
        self._notify()


def kafka_stream(
    ssc: StreamingContext,
    topics: str | Iterable[str] | re.Pattern[str],
    *,
    group_id: str | None,
    name: str | None = None,
    buffer_capacity: int | None = None,
    max_rate: float | None = None,
    **options: Any,
) -> DStream[KafkaRecord]:
    """A stream of :class:`KafkaRecord` from ``topics`` (names or a ``re.Pattern``).

    ``options`` are :class:`KafkaSource`'s (``bootstrap_servers``,
    ``auto_offset_reset``, deserializers, ``max_rate_per_partition``, aiokafka
    consumer options...). ``name``, ``buffer_capacity`` and ``max_rate`` (records
    per second of the whole stream) are the stream's, as in
    :meth:`KafkaSource.stream`.
    """
    source = KafkaSource(topics, group_id=group_id, **options)
    return source.stream(ssc, name=name, buffer_capacity=buffer_capacity, max_rate=max_rate)
