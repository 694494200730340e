"""Serving the dashboard from the context's own task group, on 127.0.0.1.

The server is Hypercorn's asyncio worker (``hypercorn.asyncio.serve``), chosen
for an embedded runtime: given a ``shutdown_trigger`` it installs no signal
handler (its source adds SIGINT/SIGTERM handlers only when none is given), it
runs on the caller's loop (asyncio's or uvloop), and its error log is our own
logger (given a logger, it adds no handler). uvicorn's ``Server.serve()``, by
contrast, replaces the process' SIGINT and SIGTERM handlers while it serves,
which would take Ctrl+C away from the application that embeds the job.

The socket is bound here, before anything starts, so that a port in use fails
``ssc.start()`` with an error saying what to change; Hypercorn is handed the
bound socket (its ``fd://`` bind) and closes it when it stops.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from hypercorn.asyncio import serve
from hypercorn.config import Config

from ..errors import ConfigurationError

__all__ = ["HOST", "bind", "serve_app"]

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"

# Seconds open connections get to finish once the job has stopped (the page's
# event stream ends by itself when the job does).
_GRACEFUL_TIMEOUT = 2.0
# Seconds past that for the server's own cleanup (its lifespan shutdown).
_STOP_MARGIN = 1.0


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port`` (0: a free port).

    Raises:
        ConfigurationError: when the port cannot be bound (in use, not allowed).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        msg = (
            f"the dashboard cannot listen on {HOST}:{port} ({exc.strerror or exc}); "
            "pass another dashboard= port, or 0 for a free one"
        )
        raise ConfigurationError(msg) from exc
    sock.setblocking(False)
    return sock


async def serve_app(
    app: Any, sock: socket.socket, shutdown_trigger: Callable[[], Awaitable[Any]]
) -> None:
    """Serve ``app`` on ``sock`` until ``shutdown_trigger()`` returns (or this is
    cancelled), then stop: open connections get a couple of seconds to finish.
    ``sock`` belongs to the server from here on.

    The server runs shielded and is always stopped through its shutdown trigger,
    within that deadline: Hypercorn cleans up after a shutdown, not after a
    cancellation.
    """
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.errorlog = logger
    config.graceful_timeout = _GRACEFUL_TIMEOUT
    stopping = anyio.Event()
    shielded = anyio.CancelScope(shield=True)

    async def server() -> None:
        with shielded:
            await serve(app, config, shutdown_trigger=stopping.wait, mode="asgi")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server)
        try:
            await shutdown_trigger()
        finally:
            stopping.set()
            shielded.deadline = anyio.current_time() + _GRACEFUL_TIMEOUT + _STOP_MARGIN
