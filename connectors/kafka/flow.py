"""The Kafka source's flow control: which partitions are fetched, and the
backpressure of a full buffer turned into paused partitions.

A partition is paused while it used its rate budget (until the next batch cut),
while the stream's buffer is full (every partition, until a batch frees space),
and once ``run`` ended (every partition, while the final batches are committed).
Whatever the wait, the member keeps polling, or its group would drop it as idle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import anyio
import anyio.lowlevel
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka import errors as kafka_errors

from streamio.abc import ReceiverOutput

from .errors import to_connector_error
from .rate import PartitionRateLimit
from .records import KafkaChunk, KafkaPosition, KafkaRecord

__all__ = ["FlowControl"]


class FlowControl:
    """The paused partitions of a consumer, and the waits that keep it a member.

    Args:
        rate: the rate limit per partition, if any.
        keepalive: seconds between two polls while the source waits.
        notify: called when what :attr:`paused` or :attr:`blocked` say changed.

    Attributes:
        paused: the partitions not fetched now.
        blocked: the buffer is full and the source waits to store a chunk.
        stopped: ``run`` ended: nothing is fetched until the consumer closes.
        carry: records a keep-alive poll fetched (of a partition assigned
            meanwhile), to be stored before the next fetch.
    """

    def __init__(
        self, rate: PartitionRateLimit | None, keepalive: float, notify: Callable[[], None]
    ) -> None:
        self._rate = rate
        self._keepalive = keepalive
        self._notify = notify
        self.paused: frozenset[TopicPartition] = frozenset()
        self.blocked = False
        self.stopped = False
        self.carry: dict[TopicPartition, list[Any]] = {}

    def apply(self, consumer: AIOKafkaConsumer) -> None:
        """Pause the partitions that must not be fetched now, resume the others."""
        try:
            held = consumer.assignment()
            if self.blocked or self.stopped:
                wanted = set(held)
            elif self._rate is not None:
                wanted = self._rate.exhausted & held
            else:
                wanted = set()
            paused = consumer.paused()
            if wanted - paused:
                consumer.pause(*(wanted - paused))
            if paused - wanted:
                consumer.resume(*(paused - wanted))
        except kafka_errors.IllegalStateError:  # no subscription (closing)
            return
        if wanted != self.paused:
            self.paused = frozenset(wanted)
            self._notify()

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """``partitions`` were revoked."""
        for tp in partitions:
            self.carry.pop(tp, None)
        self.paused = self.paused.difference(partitions)

    def clear(self) -> None:
        """The consumer is gone."""
        self.carry.clear()
        self.paused = frozenset()

    async def store(
        self,
        consumer: AIOKafkaConsumer,
        output: ReceiverOutput[KafkaRecord],
        records: KafkaChunk,
        position: KafkaPosition,
        still_current: Callable[[], bool],
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Put the chunk (with its ``metadata``) in the buffer; while it is full,
        pause every partition.

        ``still_current()`` says whether ``consumer`` is still the source's (and
        fetching), so the partitions are resumed only then.
        """
        try:
            output.put_many_nowait(records, position=position, metadata=metadata)
        except anyio.WouldBlock:
            pass
        else:
            await anyio.lowlevel.checkpoint()
            return
        # Backpressure: the put waits for a batch to free space. Pause fetching
        # meanwhile and keep polling, or the group would drop an idle member.
        self.blocked = True
        self._notify()
        self.apply(consumer)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._keep_alive, consumer)
                await output.put_many(records, position=position, metadata=metadata)
                group.cancel_scope.cancel()
        finally:
            self.blocked = False
            if still_current() and not self.stopped:
                self.apply(consumer)
            self._notify()

    async def wait_for_refill(self, consumer: AIOKafkaConsumer, rate: PartitionRateLimit) -> None:
        """Every held partition used its rate budget: wait for the next batch cut
        (polling, if it takes longer than the keep-alive interval)."""
        with anyio.move_on_after(self._keepalive):
            await rate.wait_for_refill()
            return
        await self.poll_paused(consumer)

    async def _keep_alive(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            await anyio.sleep(self._keepalive)
            await self.poll_paused(consumer)

    async def poll_paused(self, consumer: AIOKafkaConsumer) -> None:
        """A getmany on paused partitions: tells the group this member is alive.

        Raises:
            ConnectorError: when aiokafka raises.
        """
        self.apply(consumer)
        try:
            fetched = await consumer.getmany(timeout_ms=0)
        except kafka_errors.KafkaError as exc:
            raise to_connector_error(exc, "polling") from exc
        for tp, messages in fetched.items():  # a partition assigned meanwhile
            self.carry.setdefault(tp, []).extend(messages)
