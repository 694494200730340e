"""The Kinesis source: every shard of a stream, resharding followed, positions kept
in streamio's checkpoint.

Each shard is read by its own task in the source's task group: a shard iterator,
then ``GetRecords`` with ``Limit=chunk_size``, each answer stored as one chunk
(``put_many``) whose position is the sequence number reached in every shard. A
shard that is read to its end (closed by ``SplitShard``, ``MergeShards`` or
``UpdateShardCount``: ``GetRecords`` gives no next iterator) is finished, the shards
are listed again, and a child shard is read only once all its parents are
finished: the records of one partition key keep their order across a reshard.

While the buffer is full, a shard's reader waits to store its chunk and calls
``GetRecords`` no more: records stay in Kinesis, and memory is bounded by the
buffer and one chunk per shard. Chunks are stored one at a time, so that each
chunk's position covers exactly the chunks stored before it. A caught-up shard is polled every
``poll_interval`` seconds (Kinesis allows 5 ``GetRecords`` a second per shard);
a throttled call waits and is retried. A lost endpoint is reported to the
listeners (``on_receiver_error``, with ``info.extra["endpoint"]``) and retried with
capped exponential backoff, each shard resuming after the last record it stored; so
is a stream not found while it is read (deleted, or being created again). A stream
missing at the start fails at once.

Kinesis keeps no consumer offsets (KCL keeps them in a DynamoDB table of its own):
the source's position lives in streamio's checkpoint. With checkpointing on, a job
that resumes calls :meth:`KinesisSource.restore` with the checkpoint's position,
and each shard starts ``AFTER_SEQUENCE_NUMBER`` of it; without a position, shards
start at ``initial_position``. Delivery is at least once: what was read after the
checkpoint is read again after a crash.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import anyio

from streamio import DStream, Receiver, ReceiverOutput, StreamingContext
from streamio.checks import check_number, check_whole_number
from streamio.errors import ConfigurationError, ConnectorError

from ..messaging import (
    BadMessagePolicy,
    Changes,
    Deserializer,
    ReconnectBackoff,
    attach,
    check_policy,
    resolve_deserializer,
)
from .client import KinesisClient, error_code, is_lost, is_refused, is_throttled
from .records import SHARD_END, KinesisPosition, KinesisRecord, KinesisSourceStatistics

__all__ = ["InitialPosition", "KinesisSource", "kinesis_stream"]

logger = logging.getLogger(__name__)

InitialPosition = Literal["LATEST", "TRIM_HORIZON"]

# GetRecords answers at most this many records.
_MAX_LIMIT = 10_000
# How long a close may take before it is abandoned.
_CLOSE_TIMEOUT = 5.0


@dataclass(frozen=True)
class _Shard:
    """A shard as ListShards describes it."""

    parents: tuple[str, ...]
    closed: bool


class KinesisSource(Receiver[KinesisRecord]):
    """Reads every shard of a Kinesis stream.

    Args:
        stream_name: the stream.
        initial_position: where shards start when the job has no position to
            restore: ``"LATEST"`` (records added from now on; shards already
            closed are skipped) or ``"TRIM_HORIZON"`` (the oldest record kept).
            Shards that appear later (children of a reshard), and shards that a
            restored position does not name, start at their oldest record.
        value_deserializer: applied to each record's data: ``"bytes"`` (the
            default), ``"str"``, ``"json"`` or a function of the bytes.
        on_bad_message: ``"fail"`` or ``"skip"`` a record whose data does not
            decode (see :mod:`streamio.connectors.messaging`).
        chunk_size: the ``Limit`` of each ``GetRecords`` (at most 10,000), and so
            the largest chunk stored.
        poll_interval: seconds between two ``GetRecords`` of a shard that is
            caught up.
        reconnect_backoff, max_backoff: seconds before the first retry after the
            endpoint was lost, doubled after each failure up to ``max_backoff``.
        max_reconnects: failed retries in a row before ``run`` raises (the
            context then restarts the receiver or stops); None retries forever.
        region_name, endpoint_url, aws_access_key_id, aws_secret_access_key,
            aws_session_token, connect_timeout, read_timeout: how to reach
            Kinesis (see :class:`~streamio.connectors.kinesis.client.KinesisClient`);
            credentials default to botocore's chain and are never logged.

    Raises:
        ConfigurationError: for a wrong argument (when the graph is built).
    """

    replayable = True

    def __init__(
        self,
        stream_name: str,
        *,
        initial_position: InitialPosition = "LATEST",
        value_deserializer: str | Deserializer = "bytes",
        on_bad_message: BadMessagePolicy = "fail",
        chunk_size: int = 1000,
        poll_interval: float = 0.5,
        reconnect_backoff: float = 0.1,
        max_backoff: float = 10.0,
        max_reconnects: int | None = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
    ) -> None:
        if not isinstance(stream_name, str) or not stream_name:
            raise ConfigurationError(f"stream_name must be a non-empty string, not {stream_name!r}")
        if initial_position not in ("LATEST", "TRIM_HORIZON"):
            msg = f"initial_position must be 'LATEST' or 'TRIM_HORIZON', not {initial_position!r}"
            raise ConfigurationError(msg)
        chunk = check_whole_number(chunk_size, "chunk_size (records)")
        if chunk > _MAX_LIMIT:
            raise ConfigurationError(f"chunk_size must be at most {_MAX_LIMIT:,}, not {chunk:,}")
        self.stream_name = stream_name
        self.initial_position: InitialPosition = initial_position
        self._decode = resolve_deserializer(value_deserializer, "value_deserializer")
        self._policy = check_policy(on_bad_message)
        self._chunk = chunk
        self._poll = check_number(poll_interval, "poll_interval", allow_zero=True)
        self._backoff = ReconnectBackoff(reconnect_backoff, max_backoff, max_reconnects)
        self._kinesis = KinesisClient(
            region_name=region_name,
            endpoint_url=endpoint_url,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        # what has been stored, per shard: the source of every position
        self._read: KinesisPosition = {}
        self._planned = False  # the first listing has given every shard its start
        self._reading: set[str] = set()
        self._storing = anyio.Lock()
        self._committed: KinesisPosition | None = None
        self._received = 0
        self._skipped = 0
        self._calls = 0
        self._throttled = 0
        self._outages = 0
        self._blocked = False
        self._changes = Changes()

    def __repr__(self) -> str:
        return f"KinesisSource({self.stream_name!r}, endpoint={self.where!r})"

    @property
    def where(self) -> str:
        """The endpoint (or region), what listeners get as ``endpoint``."""
        return self._kinesis.where

    def stream(
        self,
        ssc: StreamingContext,
        *,
        name: str | None = None,
        buffer_capacity: int | None = None,
        max_rate: float | None = None,
    ) -> DStream[KinesisRecord]:
        """The input stream of this source in ``ssc``, named ``"kinesis <stream>"``
        by default."""
        return attach(
            ssc,
            self,
            name=name,
            default_name=f"kinesis {self.stream_name}",
            buffer_capacity=buffer_capacity,
            max_rate=max_rate,
        )

    # -- statistics -----------------------------------------------------------------

    def statistics(self) -> KinesisSourceStatistics:
        """What the source has read and committed, now."""
        return KinesisSourceStatistics(
            received=self._received,
            skipped=self._skipped,
            get_records=self._calls,
            reading=len(self._reading),
            finished=sum(value == SHARD_END for value in self._read.values()),
            throttled=self._throttled,
            outages=self._outages,
            waiting_for_space=self._blocked,
            position=dict(self._read),
            committed=None if self._committed is None else dict(self._committed),
        )

    async def wait_until(self, predicate: Callable[[KinesisSourceStatistics], bool]) -> None:
        """Return once ``predicate(self.statistics())`` is true; woken by changes only."""
        await self._changes.wait_until(self.statistics, predicate)

    # -- the receiver contract --------------------------------------------------------

    async def restore(self, position: Any) -> None:
        """Resume after ``position`` (one this source stored, from a checkpoint):
        each shard it names starts after its sequence number (a finished shard is
        not read again), and shards it does not name start at their oldest record.

        Raises:
            ConnectorError: (not retriable) for a position this source did not make.
        """
        if not isinstance(position, Mapping) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in position.items()
        ):
            msg = f"{self!r} cannot restore {position!r}: not a position of a Kinesis source"
            raise ConnectorError(msg, retriable=False)
        self._read = dict(position)
        self._planned = True  # no initial_position: nothing is skipped
        self._changes.notify()

    async def open(self) -> None:
        """Make the client and check that the stream exists.

        Raises:
            ConnectorError: when the endpoint cannot be reached (retriable), the
                stream does not exist, or the call is refused (not retriable).
        """
        if self._client is not None:
            return
        stack = contextlib.AsyncExitStack()
        try:
            client = await self._kinesis.connect(stack)
            await client.describe_stream_summary(StreamName=self.stream_name)
        except BaseException as exc:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT):
                await stack.aclose()
            if error_code(exc) == "ResourceNotFoundException":
                msg = (
                    f"Kinesis stream {self.stream_name!r} not found at {self.where}: "
                    "create it, or fix stream_name (or region_name)"
                )
                raise ConnectorError(msg, retriable=False) from exc
            if is_refused(exc):
                action = f"DescribeStreamSummary of {self.stream_name!r}"
                raise self._kinesis.refused(exc, action) from exc
            if is_lost(exc) or is_throttled(exc):
                raise self._kinesis.lost(exc, "DescribeStreamSummary") from exc
            raise
        self._stack, self._client = stack, client

    async def run(self, output: ReceiverOutput[KinesisRecord]) -> None:
        """Read every shard until cancelled, retrying a lost endpoint with backoff."""
        while True:
            try:
                await self._read_shards(output)
            except ConnectorError:
                raise
            except Exception as exc:
                if is_refused(exc):
                    raise self._kinesis.refused(exc, "a call") from exc
                if not (is_lost(exc) or is_throttled(exc)):
                    raise
                await self._lost(output, exc)
                continue
            # no shard could be read (all finished, children not listed yet)
            await anyio.sleep(self._poll)

    async def commit(self, position: Any) -> None:
        """Record ``position`` as committed (see :attr:`KinesisSourceStatistics.committed`).

        Kinesis keeps no consumer offsets: the position lives in streamio's
        checkpoint, which :meth:`restore` gives back.
        """
        if isinstance(position, dict):
            self._committed = dict(position)
            self._changes.notify()

    async def aclose(self) -> None:
        """Close the client (idempotent)."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT):
                await stack.aclose()

    # -- shards ---------------------------------------------------------------------------

    async def _list_shards(self, client: Any) -> dict[str, _Shard]:
        shards: dict[str, _Shard] = {}
        request: dict[str, Any] = {"StreamName": self.stream_name}
        while True:
            reply = await client.list_shards(**request)
            for shard in reply.get("Shards", []):
                parents = (shard.get("ParentShardId"), shard.get("AdjacentParentShardId"))
                closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
                shards[shard["ShardId"]] = _Shard(tuple(p for p in parents if p), closed)
            token = reply.get("NextToken")
            if not token:
                return shards
            request = {"NextToken": token}

    def _plan(self, shards: Mapping[str, _Shard]) -> list[str]:
        """The shards to start reading now, in listing order.

        At the very first listing (no restored position), every shard gets
        ``initial_position`` (a closed shard under ``"LATEST"`` is finished: it
        will have nothing after now). A shard known to no position starts at its
        oldest record. A shard is ready once each parent is finished or gone.
        """
        if not self._planned:
            for shard_id, shard in shards.items():
                latest_closed = shard.closed and self.initial_position == "LATEST"
                self._read[shard_id] = SHARD_END if latest_closed else self.initial_position
            self._planned = True
        ready = []
        for shard_id, shard in shards.items():
            if shard_id in self._reading or self._read.get(shard_id) == SHARD_END:
                continue
            if all(
                parent not in shards or self._read.get(parent) == SHARD_END
                for parent in shard.parents
            ):
                self._read.setdefault(shard_id, "TRIM_HORIZON")
                ready.append(shard_id)
        return ready

    async def _read_shards(self, output: ReceiverOutput[KinesisRecord]) -> None:
        """Read the ready shards, and their children as they become ready; return
        once none is left to read. The first failure of a shard's reader stops the
        others and is raised as it is."""
        client = self._client
        if client is None:
            raise ConnectorError(f"{self!r} read before open()", retriable=True)
        shards = await self._list_shards(client)
        failure: list[Exception] = []
        async with anyio.create_task_group() as tg:

            def start(ready: Iterable[str]) -> None:
                for shard_id in ready:
                    self._reading.add(shard_id)
                    tg.start_soon(read, shard_id, name=f"{self!r} {shard_id}")
                self._changes.notify()

            async def read(shard_id: str) -> None:
                try:
                    await self._read_shard(client, shard_id, output)
                    self._reading.discard(shard_id)
                    start(self._plan(await self._list_shards(client)))
                except Exception as exc:
                    failure.append(exc)
                    tg.cancel_scope.cancel()
                finally:
                    self._reading.discard(shard_id)
                    self._changes.notify()

            start(self._plan(shards))
        if failure:
            raise failure[0]

    async def _iterator(self, client: Any, shard_id: str) -> str:
        """A shard iterator right after what was stored from the shard."""
        start = self._read[shard_id]
        request: dict[str, Any] = {"StreamName": self.stream_name, "ShardId": shard_id}
        if start in ("LATEST", "TRIM_HORIZON"):
            request["ShardIteratorType"] = start
        else:
            request["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            request["StartingSequenceNumber"] = start
        reply = await client.get_shard_iterator(**request)
        return str(reply["ShardIterator"])

    async def _read_shard(
        self, client: Any, shard_id: str, output: ReceiverOutput[KinesisRecord]
    ) -> None:
        """Read one shard to its end (or until cancelled)."""
        throttle = ReconnectBackoff(max(self._poll, 0.05), 10.0, None)
        iterator: str | None = await self._iterator(client, shard_id)
        while iterator is not None:
            try:
                reply = await client.get_records(ShardIterator=iterator, Limit=self._chunk)
            except Exception as exc:
                if error_code(exc) == "ExpiredIteratorException":  # idle over 5 minutes
                    iterator = await self._iterator(client, shard_id)
                    continue
                if not is_throttled(exc):
                    raise
                self._throttled += 1
                self._changes.notify()
                await anyio.sleep(throttle.next_delay())
                continue
            throttle.reset()
            self._backoff.reset()  # the endpoint answers
            self._calls += 1
            records = reply.get("Records", [])
            if records:
                await self._store(output, shard_id, records)
            iterator = reply.get("NextShardIterator")
            if iterator is None:  # closed and read to its end
                async with self._storing:
                    self._read[shard_id] = SHARD_END
                    await output.put_many([], dict(self._read))  # the position learns it
            elif not records or not reply.get("MillisBehindLatest"):
                await anyio.sleep(self._poll)  # caught up
            self._changes.notify()

    async def _store(
        self, output: ReceiverOutput[KinesisRecord], shard_id: str, records: list[Any]
    ) -> None:
        """Store one answer's records as a chunk, with the position it reaches."""
        decode = self._decode
        try:
            chunk = [
                KinesisRecord(
                    shard_id,
                    record["SequenceNumber"],
                    record["PartitionKey"],
                    record["Data"] if decode is None else decode(record["Data"]),
                    record["ApproximateArrivalTimestamp"].timestamp(),
                )
                for record in records
            ]
        except Exception:
            chunk = await self._one_by_one(output, shard_id, records)
        last = str(records[-1]["SequenceNumber"])
        # one put at a time: each position then holds exactly the chunks stored
        # before it, whichever shard they came from
        async with self._storing:
            position = {**self._read, shard_id: last}
            self._received += len(chunk)
            self._blocked = output.statistics().would_wait(len(chunk))
            if self._blocked:  # the put waits for a batch to free space: visible to tests
                self._changes.notify()
            try:
                await output.put_many(chunk, position)
            finally:  # a cancelled put still stores the chunk
                self._read[shard_id] = last
                self._blocked = False
                self._changes.notify()

    async def _one_by_one(
        self, output: ReceiverOutput[KinesisRecord], shard_id: str, records: list[Any]
    ) -> list[KinesisRecord]:
        """The records that decode; a bad one fails the source or is skipped."""
        decode = self._decode
        assert decode is not None  # bytes always "decode"
        good = []
        for record in records:
            try:
                data = decode(record["Data"])
            except Exception as exc:
                where = f"record {record['SequenceNumber']} of shard {shard_id}"
                if self._policy == "fail":
                    self.restartable = False
                    msg = (
                        f"cannot decode {where} of stream {self.stream_name!r}: "
                        f"{type(exc).__name__}: {exc} (choose another value_deserializer "
                        "or on_bad_message='skip')"
                    )
                    raise ConnectorError(msg, retriable=False) from exc
                self._skipped += 1
                error = ConnectorError(
                    f"skipped {where}: {type(exc).__name__}: {exc}", retriable=False
                )
                logger.warning("%r: %s", self, error)
                await output.report_error(error, message=where)
                continue
            good.append(
                KinesisRecord(
                    shard_id,
                    record["SequenceNumber"],
                    record["PartitionKey"],
                    data,
                    record["ApproximateArrivalTimestamp"].timestamp(),
                )
            )
        return good

    async def _lost(self, output: ReceiverOutput[KinesisRecord], exc: BaseException) -> None:
        """Report a lost endpoint and wait before the next try; raise when the
        reconnection attempts are spent."""
        self._outages += 1
        self._changes.notify()
        error = self._kinesis.lost(exc, f"reading {self.stream_name!r}")
        logger.info("%r: %s; retrying", self, error)
        await output.report_error(error, endpoint=self.where)
        if not self._backoff.failed():
            raise error
        await anyio.sleep(self._backoff.next_delay())


def kinesis_stream(
    ssc: StreamingContext,
    stream_name: str,
    *,
    name: str | None = None,
    buffer_capacity: int | None = None,
    max_rate: float | None = None,
    **options: Any,
) -> DStream[KinesisRecord]:
    """A stream of :class:`KinesisRecord` read from every shard of ``stream_name``
    (Spark's ``KinesisInputDStream``).

    ``options`` are :class:`KinesisSource`'s (``initial_position``, ``region_name``,
    ``endpoint_url``, ``value_deserializer``...); ``name``, ``buffer_capacity`` and
    ``max_rate`` are the stream's, as in ``ssc.receiver_stream``.
    """
    source = KinesisSource(stream_name, **options)
    return source.stream(ssc, name=name, buffer_capacity=buffer_capacity, max_rate=max_rate)
