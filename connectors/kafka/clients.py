"""What the Kafka source and sink need around their aiokafka clients: closing them
without letting their shutdown errors escape, and keeping the SASL credentials
they send out of the logs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

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
