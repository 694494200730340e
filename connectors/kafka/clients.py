"""Closing aiokafka clients without letting their shutdown errors escape."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

__all__ = ["close_quietly"]

logger = logging.getLogger(__name__)


async def close_quietly(client: Any, owner: object) -> None:
    """``client.stop()`` (an aiokafka consumer or producer), best effort.

    With the broker gone, aiokafka's stop() can raise a CancelledError that is not
    a cancellation of the caller (it awaits fetch or send tasks it has just
    cancelled, one of them asleep in a retry backoff), and then skips closing its
    connections. So stop() runs in a task of its own, whose error cannot pass for
    the caller's, and the connections are closed after it in that case. A member
    that could not leave its group is timed out by the broker.
    """
    stopping = asyncio.ensure_future(client.stop())
    await asyncio.wait([stopping])
    if stopping.cancelled() or stopping.exception() is not None:
        error = "cancelled" if stopping.cancelled() else repr(stopping.exception())
        logger.debug("%r: error while closing the Kafka client: %s", owner, error)
        connections = getattr(client, "_client", None)  # aiokafka's AIOKafkaClient
        if connections is not None:
            with contextlib.suppress(Exception):
                await connections.close()
