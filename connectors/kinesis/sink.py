"""The Kinesis sink: each batch written with ``PutRecords``, partial failures retried."""

from __future__ import annotations

import collections
import contextlib
import logging
import secrets
from collections.abc import Callable, Iterator
from typing import Any, Self

import anyio

from streamio.abc import Sink
from streamio.checks import check_whole_number
from streamio.errors import ConfigurationError, ConnectorError

from ..messaging import ReconnectBackoff, Serializer, resolve_serializer
from .client import KinesisClient, error_code, is_lost, is_refused, is_throttled

__all__ = ["KinesisSink"]

logger = logging.getLogger(__name__)

# Kinesis's limits of one PutRecords call and of one record (data + partition key).
_MAX_RECORDS = 500
_MAX_REQUEST_BYTES = 5 * 2**20
_MAX_RECORD_BYTES = 2**20
_CLOSE_TIMEOUT = 5.0

PartitionKey = str | Callable[[Any], str] | None


class KinesisSink(Sink[Any]):
    """Writes each batch's records to a Kinesis stream with ``PutRecords``.

    A batch is sent in calls of at most 500 records and 5 MiB. Kinesis may accept
    some records of a call and fail others (``FailedRecordCount``: a shard over its
    throughput limit, an internal failure): the failed ones are sent again, after a
    backoff doubling from ``retry_backoff`` up to ``max_backoff``, and so is a call
    that failed whole on the way (a lost endpoint, throttling). After
    ``max_attempts`` attempts with records still not written, the batch fails with
    a retriable :class:`~streamio.ConnectorError` that says how many records were
    left and why; the source's positions then stay uncommitted and the batch is
    replayed. Delivery is at least once: a retried or replayed record may be
    written twice, and a retried record lands after later ones of its shard.

    Args:
        stream_name: the stream.
        partition_key: the records' partition key: a function of the record, one
            string for every record (one shard, in order), or None (a random key
            per record, spreading records over the shards).
        value_serializer: how a record becomes the data: ``"bytes"`` (bytes as
            they are, ``str`` as UTF-8; the default), ``"str"``, ``"json"`` or a
            function returning bytes.
        max_attempts: attempts of one call (the first included) before the batch
            fails.
        retry_backoff, max_backoff: seconds before the first retry, doubled up to
            ``max_backoff``.
        region_name, endpoint_url, aws_access_key_id, aws_secret_access_key,
            aws_session_token, connect_timeout, read_timeout: as for the source.

    Enter the sink (``async with``) before the StreamingContext, so that it
    outlives the context's last batches.

    Raises:
        ConfigurationError: for a wrong argument.
    """

    def __init__(
        self,
        stream_name: str,
        *,
        partition_key: PartitionKey = None,
        value_serializer: str | Serializer = "bytes",
        max_attempts: int = 5,
        retry_backoff: float = 0.1,
        max_backoff: float = 5.0,
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
        if partition_key is not None and not (
            callable(partition_key) or (isinstance(partition_key, str) and partition_key)
        ):
            msg = (
                "partition_key must be a function, a non-empty string or None, "
                f"not {partition_key!r}"
            )
            raise ConfigurationError(msg)
        self.stream_name = stream_name
        self._key = partition_key
        self._serialize = resolve_serializer(value_serializer, "value_serializer")
        self._attempts = check_whole_number(max_attempts, "max_attempts")
        self._retry = ReconnectBackoff(retry_backoff, max_backoff, None)  # checked here
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
        self._closed = False
        self.written = 0
        """Records Kinesis has accepted."""
        self.retried = 0
        """Records sent again after Kinesis failed them (or their whole call)."""

    def __repr__(self) -> str:
        return f"KinesisSink({self.stream_name!r}, endpoint={self._kinesis.where!r})"

    async def __aenter__(self) -> Self:
        await self._connect()
        return self

    async def _connect(self) -> Any:
        if self._closed:
            raise ConnectorError(f"{self!r} used after aclose()", retriable=False)
        if self._client is None:
            stack = contextlib.AsyncExitStack()
            self._client = await self._kinesis.connect(stack)
            self._stack = stack
        return self._client

    async def __call__(self, batch_time: float, records: list[Any]) -> None:
        """Write ``records``; return once Kinesis has accepted them all.

        Raises:
            ValueError: for a record over Kinesis's 1 MiB limit (none is sent).
            TypeError: for a record the serializer refuses.
            ConnectorError: records still failed after ``max_attempts`` attempts
                (retriable), or Kinesis refused the call (not retriable).
        """
        client = await self._connect()
        entries = [self._entry(index, record) for index, record in enumerate(records)]
        for request in _requests(entries):
            await self._put(client, request)

    def _entry(self, index: int, record: Any) -> dict[str, Any]:
        data = self._serialize(record)
        key = self._key
        partition_key = (
            secrets.token_hex(16) if key is None else key if isinstance(key, str) else key(record)
        )
        if not isinstance(partition_key, str) or not 1 <= len(partition_key) <= 256:
            msg = f"partition_key gave {partition_key!r} for record {index}: a string of 1 to 256"
            raise ValueError(msg)
        size = len(data) + len(partition_key.encode())
        if size > _MAX_RECORD_BYTES:
            msg = (
                f"record {index} of the batch is {size:,} bytes with its partition key: "
                f"Kinesis takes at most {_MAX_RECORD_BYTES:,}"
            )
            raise ValueError(msg)
        return {"Data": data, "PartitionKey": partition_key}

    async def _put(self, client: Any, entries: list[dict[str, Any]]) -> None:
        """One ``PutRecords`` of ``entries``, its failed records retried."""
        backoff = ReconnectBackoff(self._retry.initial, self._retry.maximum, self._attempts - 1)
        pending = entries
        while True:
            reasons: collections.Counter[str] = collections.Counter()
            try:
                reply = await client.put_records(StreamName=self.stream_name, Records=pending)
            except Exception as exc:
                if is_refused(exc) or error_code(exc) == "ResourceNotFoundException":
                    raise self._kinesis.refused(exc, f"PutRecords to {self.stream_name!r}") from exc
                if not (is_lost(exc) or is_throttled(exc)):
                    raise
                reasons[error_code(exc) or type(exc).__name__] = len(pending)
                last_error: BaseException | None = exc
            else:
                last_error = None
                failed = [
                    entry
                    for entry, result in zip(pending, reply["Records"], strict=True)
                    if result.get("ErrorCode")
                ]
                reasons.update(
                    result["ErrorCode"] for result in reply["Records"] if result.get("ErrorCode")
                )
                self.written += len(pending) - len(failed)
                if not failed:
                    return
                pending = failed
            if not backoff.failed():
                why = ", ".join(f"{count} {code}" for code, count in reasons.most_common())
                msg = (
                    f"PutRecords to {self.stream_name!r} at {self._kinesis.where}: {len(pending)} "
                    f"of {len(entries)} records still not written after {self._attempts} "
                    f"attempts ({why}); raise max_attempts, or add shards for more throughput"
                )
                raise ConnectorError(msg, retriable=True) from last_error
            self.retried += len(pending)
            logger.info("%r: %d records failed (%s); retrying", self, len(pending), dict(reasons))
            await anyio.sleep(backoff.next_delay())

    async def aclose(self) -> None:
        """Close the client (idempotent)."""
        self._closed = True
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT):
                await stack.aclose()


def _requests(entries: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """``entries`` in calls of at most 500 records and 5 MiB."""
    request: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        entry_size = len(entry["Data"]) + len(entry["PartitionKey"].encode())
        if request and (len(request) == _MAX_RECORDS or size + entry_size > _MAX_REQUEST_BYTES):
            yield request
            request, size = [], 0
        request.append(entry)
        size += entry_size
    if request:
        yield request
