"""Serving an application's own ASGI app under uvicorn on loopback, for the tests that
mount the dashboard or the exporter in it."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import uvicorn


@asynccontextmanager
async def serve_with_uvicorn(app: Any) -> AsyncIterator[str]:
    """Run ``app`` under uvicorn (lifespan on) and give its base URL; shut down after.

    The socket listens before the server starts: requests wait in its backlog until
    the app has started, so nothing is polled.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, lifespan="on", log_config=None, log_level="warning")
        server = uvicorn.Server(config)
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True  # uvicorn's way to shut down
