"""The real sources the examples' tests run against, on loopback.

A TCP server that the network examples connect to (the test sends it lines), the
Kafka test broker (Tansu) and Mosquitto, from the connectors' testing kits. A
missing server or extra is an error, never a skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketListener, SocketStream
from example_process import HANG_GUARD


class LineServer:
    """A listening TCP socket on 127.0.0.1 (Netcat's ``nc -lk`` in Spark's
    instructions) whose connections the test accepts."""

    def __init__(self, listener: SocketListener) -> None:
        self._listener = listener
        self.port: int = listener.extra(SocketAttribute.local_port)

    async def accept(self) -> SocketStream:
        """The next connection (the example's source connecting)."""
        with anyio.fail_after(HANG_GUARD):
            return await self._listener.accept()


@pytest.fixture
async def line_server() -> AsyncIterator[LineServer]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    (socket_listener,) = listener.listeners
    async with listener:
        yield LineServer(socket_listener)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Any]:
    """A Kafka broker for the session; killed (by pid) at the end."""
    from streamio.connectors.kafka.testing import start_broker

    with start_broker() as broker:
        yield broker


@pytest.fixture(scope="session")
def mosquitto_server() -> Iterator[Any]:
    """A ``mosquitto`` broker for the session; killed by pid at the end."""
    from streamio.connectors.testing import mosquitto_server

    with mosquitto_server() as server:
        yield server
