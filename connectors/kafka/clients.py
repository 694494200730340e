"""What the Kafka source and sink need around their aiokafka clients: closing them
without letting their shutdown errors escape, and keeping the SASL credentials
they send out of the logs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio
from aiokafka.protocol.admin import SaslAuthenticateRequest_v0, SaslAuthenticateRequest_v1

__all__ = ["close_quietly"]

logger = logging.getLogger(__name__)

_SASL_REQUESTS = (SaslAuthenticateRequest_v0, SaslAuthenticateRequest_v1)


class _RedactSaslTokens(logging.Filter):
    """Replaces the SASL tokens in aiokafka's log records by a placeholder.

    aiokafka logs every request it sends at DEBUG level, SaslAuthenticate
    included, whose token holds the password in clear with PLAIN (and a bearer
    token with OAUTHBEARER). A filter on aiokafka's connection logger changes
    those records before any handler sees them, so turning on DEBUG logging to
    investigate a connection problem never writes credentials to a log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(arg, _SASL_REQUESTS) for arg in args):
            record.args = tuple(
                f"{type(arg).__name__}(<token redacted>)"
                if isinstance(arg, _SASL_REQUESTS)
                else arg
                for arg in args
            )
        return True


# aiokafka's connections log through this logger (aiokafka/conn.py)
_CONNECTION_LOGGER = logging.getLogger("aiokafka.conn")
if not any(isinstance(f, _RedactSaslTokens) for f in _CONNECTION_LOGGER.filters):
    _CONNECTION_LOGGER.addFilter(_RedactSaslTokens())


# How long closing a client may take: a producer flushes what it holds, a consumer
# leaves its group; with the broker gone either would wait for its own timeouts.
CLOSE_TIMEOUT = 10.0


async def close_quietly(client: Any, owner: object, limit: float = CLOSE_TIMEOUT) -> None:
    """``client.stop()`` (an aiokafka consumer or producer), best effort, within
    ``limit`` seconds, shielded from the caller's cancellation.

    With the broker gone, aiokafka's stop() can raise a CancelledError that is not
    a cancellation of the caller (it awaits fetch or send tasks it has just
    cancelled, one of them asleep in a retry backoff). So stop() runs in a task of
    its own, where such an error is told apart from a real cancellation of that
    task (``Task.cancelling()``) and logged rather than passed on. A member that
    could not leave its group is timed out by the broker.
    """

    async def stop() -> None:
        try:
            await client.stop()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            logger.debug("%r: the Kafka client's stop() was interrupted", owner)
        except Exception as exc:
            logger.debug("%r: error while closing the Kafka client: %r", owner, exc)

    with anyio.CancelScope(shield=True), anyio.move_on_after(limit) as deadline:
        async with anyio.create_task_group() as closing:
            closing.start_soon(stop)
    if deadline.cancelled_caught:
        logger.warning("%r: closing the Kafka client took over %ss; abandoned", owner, limit)
