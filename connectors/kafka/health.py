"""The Kafka source's watch over its brokers: noticing an outage, pacing the checks.

aiokafka retries its connections by itself, silently and for ever: a consumer
whose broker went away just fetches nothing, and carries on where it stopped once
a broker answers again. The watch makes an outage visible. After a while without
records it asks a broker for metadata (which makes aiokafka connect to one); while
none answers, each failed check is handed back to be reported, and the checks
come after a backoff that doubles up to a cap.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
from aiokafka import AIOKafkaConsumer
from aiokafka import errors as kafka_errors

from streamio.errors import ConnectorError

__all__ = ["BrokerWatch"]

logger = logging.getLogger(__name__)


class BrokerWatch:
    """When to check that a broker answers, and how the checks went.

    Args:
        check_interval: seconds without records before a check; None: never check.
        backoff: seconds from a failed check (or fetch) to the next attempt.
        max_backoff: the longest of those waits (each failure in a row doubles it).
        max_failures: failures in a row after which :attr:`gave_up` is true;
            None: never.
        servers: the bootstrap servers, for messages.

    Attributes:
        failures: failed checks or fetches in a row (0: no outage).
    """

    def __init__(
        self,
        *,
        check_interval: float | None,
        backoff: float,
        max_backoff: float,
        max_failures: int | None,
        servers: Any,
    ) -> None:
        self._interval = check_interval
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._max_failures = max_failures
        self._servers = servers
        self.failures = 0
        self._delay = backoff
        self._next = time.monotonic() + (check_interval or 0.0)

    @property
    def gave_up(self) -> bool:
        """More failures in a row than ``max_failures``."""
        return self._max_failures is not None and self.failures > self._max_failures

    def reset(self) -> None:
        """Records came, a broker answered or the consumer started: no outage, and
        the next check after ``check_interval`` without records."""
        if self.failures:
            logger.info("Kafka broker %r answers again", self._servers)
        self.failures = 0
        self._delay = self._backoff
        self._next = time.monotonic() + (self._interval or 0.0)

    def due(self) -> bool:
        """Whether a check is due now."""
        return self._interval is not None and time.monotonic() >= self._next

    async def check(self, consumer: AIOKafkaConsumer) -> ConnectorError | None:
        """Ask a broker for metadata; the failure (retriable) when none answers."""
        assert self._interval is not None
        try:
            with anyio.fail_after(max(self._interval, 1.0)):
                await consumer.topics()
        except (kafka_errors.KafkaError, OSError, TimeoutError) as exc:
            error = ConnectorError(
                f"Kafka broker unreachable ({self._servers!r}): {type(exc).__name__}: {exc}",
                retriable=True,
            )
            error.__cause__ = exc
            self.failed()
            return error
        self.reset()
        return None

    def failed(self) -> None:
        """A check or a fetch failed: the next attempt waits out the backoff."""
        self.failures += 1
        self._next = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, self._max_backoff)

    async def wait(self) -> None:
        """Sleep until the next attempt is due."""
        await anyio.sleep(max(0.0, self._next - time.monotonic()))
