"""An async callback sink: send each batch to a database or a web service.

:class:`AsyncCallbackSink` wraps an ``async def fn(batch_time, records)`` as an
output function for ``foreach_batch``: it calls ``fn`` once per batch, or once
per chunk of ``chunk_size`` records with at most ``concurrency`` calls in flight,
and retries a call that raises with exponential backoff. When a call still fails
after ``max_attempts`` attempts its error propagates: the batch fails, the
context stops with :class:`~streamio.OperatorError`, and the positions of the
batch's sources are not committed, so a source that can replay gives the records
again after a restart. Delivery is therefore at least once: chunks that
succeeded before another one failed are sent again after a replay, so make
``fn`` idempotent (an upsert, a request with an idempotency key).

Example with aiosqlite (any async driver works the same way; asyncpg's
``pool.executemany`` or an ``httpx.AsyncClient.post`` fit in ``fn`` too)::

    import aiosqlite
    from streamio.connectors.sinks import AsyncCallbackSink

    async with aiosqlite.connect("counts.db") as db, StreamingContext(1.0) as ssc:
        await db.execute(
            "CREATE TABLE IF NOT EXISTS counts (batch REAL, word TEXT, n INTEGER, "
            "PRIMARY KEY (batch, word))"
        )

        async def save(batch_time, pairs):
            await db.executemany(
                "INSERT OR REPLACE INTO counts VALUES (?, ?, ?)",
                [(batch_time, word, n) for word, n in pairs],
            )
            await db.commit()

        counts.foreach_batch(AsyncCallbackSink(save, chunk_size=500, concurrency=1))
        ...
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

import anyio

from streamio.abc import Sink
from streamio.checks import check_number, check_whole_number
from streamio.errors import ConfigurationError, ConnectorError

__all__ = ["AsyncCallbackSink"]

logger = logging.getLogger(__name__)

# Where the backoff waits happen (tests replace it to record the delays).
_sleep = anyio.sleep


class AsyncCallbackSink(Sink[Any]):
    """An output function calling ``fn(batch_time, records)`` with retries.

    Args:
        fn: ``async def fn(batch_time, records)``; ``records`` is a list (the
            batch, or one chunk of it). A plain function works too but runs on
            the event loop.
        concurrency: most calls of this sink in flight at once (over every
            batch and every stream that uses this sink object).
        max_attempts: attempts per call, the first included; then its error
            propagates.
        backoff: seconds before the second attempt, doubled before each next one.
        max_backoff: the longest wait between two attempts.
        chunk_size: records per call; None calls ``fn`` once with the whole batch.
        retry_on: the exception types that are retried; others propagate at
            once, and so does a :class:`~streamio.ConnectorError` whose
            ``retriable`` is False.

    A batch without records makes no call. A call keeps its slot of
    ``concurrency`` while it waits to retry, so a struggling service is not sent
    more calls meanwhile.

    Attributes:
        calls: calls of ``fn`` made so far (retries included).
        retries: attempts that failed and were retried.

    Raises:
        ConfigurationError: for an invalid argument.
    """

    def __init__(
        self,
        fn: Callable[[float, list[Any]], Any],
        *,
        concurrency: int = 4,
        max_attempts: int = 3,
        backoff: float = 0.1,
        max_backoff: float = 10.0,
        chunk_size: int | None = None,
        retry_on: type[Exception] | Sequence[type[Exception]] = Exception,
    ) -> None:
        if not callable(fn):
            raise ConfigurationError(f"AsyncCallbackSink needs a function, not {fn!r}")
        check_whole_number(concurrency, "concurrency")
        check_whole_number(max_attempts, "max_attempts")
        if chunk_size is not None:
            check_whole_number(chunk_size, "chunk_size")
        check_number(backoff, "backoff", allow_zero=True)
        check_number(max_backoff, "max_backoff", allow_zero=True)
        retry_types = (retry_on,) if isinstance(retry_on, type) else tuple(retry_on)
        if not retry_types or not all(
            isinstance(kind, type) and issubclass(kind, Exception) for kind in retry_types
        ):
            msg = f"retry_on must be Exception subclasses, not {retry_on!r}"
            raise ConfigurationError(msg)
        self.fn = fn
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.chunk_size = chunk_size
        self.retry_on = retry_types
        self.calls = 0
        self.retries = 0
        self._slots = anyio.Semaphore(concurrency)

    def __repr__(self) -> str:
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        return f"AsyncCallbackSink({name})"

    async def __call__(self, batch_time: float, records: list[Any]) -> None:
        """Deliver one batch; returns once every chunk was delivered.

        Raises the error of the first chunk that failed every attempt (the other
        calls of the batch in flight are then cancelled).
        """
        records = list(records)
        if not records:
            return
        size = self.chunk_size
        if size is None or len(records) <= size:
            async with self._slots:
                await self._deliver(batch_time, records)
            return
        failure: BaseException | None = None

        async def deliver(chunk: list[Any]) -> None:
            nonlocal failure
            try:
                await self._deliver(batch_time, chunk)
            except Exception as exc:
                if failure is None:
                    failure = exc
                tg.cancel_scope.cancel()
            finally:
                self._slots.release()

        async with anyio.create_task_group() as tg:
            for start in range(0, len(records), size):
                await self._slots.acquire()
                tg.start_soon(deliver, records[start : start + size])
        if failure is not None:
            raise failure

    async def _deliver(self, batch_time: float, records: list[Any]) -> None:
        """One call with its retries."""
        attempt = 1
        while True:
            self.calls += 1
            try:
                result = self.fn(batch_time, records)
                if inspect.isawaitable(result):
                    await result
                return
            except self.retry_on as exc:
                if isinstance(exc, ConnectorError) and not exc.retriable:
                    raise
                if attempt >= self.max_attempts:
                    raise
                delay = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
                logger.warning(
                    "%r: attempt %d/%d for batch %s failed (%r); retrying in %.3fs",
                    self,
                    attempt,
                    self.max_attempts,
                    batch_time,
                    exc,
                    delay,
                )
                self.retries += 1
                attempt += 1
                await _sleep(delay)
