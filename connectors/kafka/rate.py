"""The Kafka source's rate limit per partition (``max_rate_per_partition``).

Each batch may take at most ``rate * batch_interval`` records of a partition. The
source counts what it stores of each partition between two batch cuts; a
partition that used its share is paused until the next cut, and the records
beyond it stay in Kafka (the source seeks back to the first one it did not keep).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import anyio
from aiokafka import TopicPartition

__all__ = ["PartitionRateLimit"]


class PartitionRateLimit:
    """What each partition may still store until the next batch cut.

    Args:
        rate: most records per second per partition.

    Attributes:
        exhausted: the partitions that used their share of the current batch.
    """

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._cap: int | None = None  # records per batch, known once attached
        self._left: dict[TopicPartition, int] = {}
        self.exhausted: set[TopicPartition] = set()
        self._refilled: anyio.Event | None = None

    @property
    def attached(self) -> bool:
        """Whether the batch interval is known (:meth:`attach` was called)."""
        return self._cap is not None

    def attach(self, batch_interval: float) -> None:
        """The stream's batch interval: a batch takes ``rate * interval`` records."""
        self._cap = max(1, int(self._rate * batch_interval))

    def take(self, tp: TopicPartition, messages: list[Any]) -> list[Any]:
        """The first messages of ``tp`` that fit in its share; the caller seeks back
        to the first one left out, if any, and pauses ``tp`` once it is exhausted."""
        assert self._cap is not None, "attach() first"
        allowed = self._left.get(tp, self._cap)
        kept = messages[:allowed] if len(messages) > allowed else messages
        left = allowed - len(kept)
        self._left[tp] = left
        if left <= 0:
            self.exhausted.add(tp)
        return kept

    def all_used(self, held: Collection[TopicPartition]) -> bool:
        """Whether every partition of ``held`` (not none) used its share."""
        return bool(held) and self.exhausted.issuperset(held)

    def refill(self) -> None:
        """A batch was cut: every partition gets its share back."""
        self._left.clear()
        self.exhausted.clear()
        if self._refilled is not None:
            self._refilled.set()
            self._refilled = None

    async def wait_for_refill(self) -> None:
        """Return at the next :meth:`refill`."""
        if self._refilled is None:
            self._refilled = anyio.Event()
        await self._refilled.wait()

    def forget(self, tp: TopicPartition) -> None:
        """``tp`` was assigned afresh or revoked: its count starts over."""
        self._left.pop(tp, None)
        self.exhausted.discard(tp)

    def clear(self) -> None:
        """The consumer is gone: no partition is counted."""
        self._left.clear()
        self.exhausted.clear()
