"""The Kafka source's bookkeeping of partitions: what this member holds (and since
which assignment), what it has delivered to the stream, and what it committed.

Every assignment of a partition gets a new *epoch*. A position records the epoch
of each offset, so an offset read under an assignment that a rebalance has since
taken away (even if the partition came back) is never committed by this member:
the partition's next owner reads those records again.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping

import anyio
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka import errors as kafka_errors

from streamio.errors import ConnectorError

from .errors import to_connector_error
from .records import KafkaPosition

__all__ = ["PartitionOffsets"]

logger = logging.getLogger(__name__)

# Errors of a commit that only mean "this member lost its partitions": expected
# during rebalances, and the next owner reads the uncommitted records again.
_LOST_MEMBERSHIP = (
    kafka_errors.CommitFailedError,
    kafka_errors.IllegalStateError,
    kafka_errors.RebalanceInProgressError,
    kafka_errors.IllegalGenerationError,
    kafka_errors.UnknownMemberIdError,
)


class PartitionOffsets:
    """Held partitions with their assignment epochs, delivered and committed offsets.

    Args:
        commit_timeout: seconds a commit may take.

    Attributes:
        assignments: how many partition assignments this member received.
    """

    def __init__(self, commit_timeout: float) -> None:
        self._commit_timeout = commit_timeout
        self._epoch_counter = itertools.count(1)
        self._epochs: dict[TopicPartition, int] = {}  # held partition -> assignment epoch
        self._delivered: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        # where each held partition's assignment began reading, when known
        self._starts: dict[TopicPartition, int] = {}
        self.assignments = 0

    # -- the assignment ---------------------------------------------------------------

    @property
    def held(self) -> frozenset[TopicPartition]:
        return frozenset(self._epochs)

    def holds(self, tp: TopicPartition) -> bool:
        return tp in self._epochs

    def assigned(self, partitions: Iterable[TopicPartition], *, count: bool = True) -> None:
        """``partitions`` were assigned: each starts a new epoch, nothing delivered.

        ``count``: a new assignment (False when aiokafka delivered records of a
        partition before its rebalance callback ran).
        """
        for tp in partitions:
            self._epochs[tp] = next(self._epoch_counter)
            self._delivered.pop(tp, None)
            self._committed.pop(tp, None)
            self._starts.pop(tp, None)
        if count:
            self.assignments += 1

    def sought(self, tp: TopicPartition, offset: int) -> None:
        """``tp``, just assigned, is read from ``offset`` (a restored offset)."""
        self._starts[tp] = offset

    def started(self, tp: TopicPartition, offset: int) -> None:
        """The first record read of ``tp`` under its assignment is at ``offset``:
        where the assignment began, unless it was sought to a known offset."""
        if tp not in self._delivered:
            self._starts.setdefault(tp, offset)

    def revoked(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._epochs.pop(tp, None)
            self._delivered.pop(tp, None)
            self._committed.pop(tp, None)
            self._starts.pop(tp, None)

    def clear(self) -> None:
        """The consumer is gone: nothing is held or delivered any more."""
        self._epochs.clear()
        self._delivered.clear()
        self._starts.clear()

    # -- delivering and committing ----------------------------------------------------------

    def deliver(self, offsets: Mapping[TopicPartition, int]) -> KafkaPosition:
        """Records up to ``offsets`` (the next offset per partition) are being stored:
        the position of their chunk, covering every partition delivered so far."""
        self._delivered.update(offsets)
        epochs = self._epochs
        return KafkaPosition(
            {tp: (offset, epochs[tp]) for tp, offset in self._delivered.items()}, self._starts
        )

    def delivered(self) -> dict[TopicPartition, int]:
        """Per held partition, the offset after the last record delivered."""
        return {tp: off for tp, off in self._delivered.items() if tp in self._epochs}

    def committed(self) -> dict[TopicPartition, int]:
        """Per held partition, the offset this member last committed."""
        return {tp: off for tp, off in self._committed.items() if tp in self._epochs}

    def to_commit(self, position: KafkaPosition) -> dict[TopicPartition, int]:
        """The offsets of ``position`` this member may commit and has not yet:
        read under the current assignment, beyond what it committed."""
        return {
            tp: offset
            for tp, (offset, epoch) in position.entries().items()
            if self._epochs.get(tp) == epoch and offset > self._committed.get(tp, -1)
        }

    async def commit(
        self,
        consumer: AIOKafkaConsumer,
        offsets: dict[TopicPartition, int],
        position: KafkaPosition,
        *,
        owner: object,
    ) -> ConnectorError | None:
        """Commit ``offsets`` (taken from ``position``) for the consumer's group.

        Returns the failure to report, never raises it: a commit refused after a
        rebalance leaves the records to the next owner, and any other failure is
        covered by the next batch's commit, since each position holds every
        partition's offset. ``owner`` names the source in the log.
        """
        timeout = self._commit_timeout
        try:
            with anyio.fail_after(timeout):
                await consumer.commit(offsets)
        except _LOST_MEMBERSHIP as exc:
            logger.info(
                "%r: commit refused after a rebalance, left to the next owner: %r", owner, exc
            )
            return to_connector_error(exc, "committing")
        except TimeoutError:
            logger.warning("%r: commit took over %ss, the next batch's covers it", owner, timeout)
            return ConnectorError(f"Kafka commit took over {timeout}s", retriable=True)
        except (kafka_errors.KafkaError, OSError) as exc:
            logger.warning("%r: commit failed, the next batch's commit covers it: %r", owner, exc)
            return to_connector_error(exc, "committing")
        entries = position.entries()
        for tp, offset in offsets.items():
            if self._epochs.get(tp) == entries[tp][1]:
                self._committed[tp] = max(offset, self._committed.get(tp, -1))
        return None
