"""The Kafka source's watch over its brokers.

aiokafka retries its connections by itself, silently and for ever: a consumer
whose broker went away just fetches nothing. After a while without records the
watch asks a broker for metadata, and raises when none answers.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from aiokafka import AIOKafkaConsumer
from aiokafka import errors as kafka_errors

from streamio.errors import ConnectorError

__all__ = ["BrokerWatch"]


class BrokerWatch:
    """When to check that a broker answers.

    Args:
        check_interval: seconds without records before a check; None: never check.
        servers: the bootstrap servers, for messages.
    """

    def __init__(self, check_interval: float | None, servers: Any) -> None:
        self._interval = check_interval
        self._servers = servers
        self._next = time.monotonic() + (check_interval or 0.0)

    def reset(self) -> None:
        """Records came or the consumer started: the next check after
        ``check_interval`` without records."""
        self._next = time.monotonic() + (self._interval or 0.0)

    def due(self) -> bool:
        """Whether a check is due now."""
        return self._interval is not None and time.monotonic() >= self._next

    async def check(self, consumer: AIOKafkaConsumer) -> None:
        """Ask a broker for metadata.

        Raises:
            ConnectorError: (retriable) when no broker answers.
        """
        assert self._interval is not None
        self.reset()
        try:
            with anyio.fail_after(max(self._interval, 1.0)):
                await consumer.topics()
        except (kafka_errors.KafkaError, OSError, TimeoutError) as exc:
            msg = f"Kafka broker unreachable ({self._servers!r}): {type(exc).__name__}: {exc}"
            raise ConnectorError(msg, retriable=True) from exc
