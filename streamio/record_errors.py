"""What a record that a function refuses does: fail the batch, be skipped, or be
dead-lettered.

Record-wise operators (``map``, ``flat_map``, ``filter``, ``map_values``,
``flat_map_values``) take ``on_error="fail" | "skip" | "dead_letter"``. The
error-free path is the same fused chain of C-level iterators as without a
policy: a stage with a policy is run by :class:`GuardedStage`, which calls the
fused function once per partition and only when that raises runs the partition
again, stage by stage and record by record, to leave out the records that fail
in a stage with a policy. A record skipped is counted in
``BatchInfo.records_skipped``; one dead-lettered is also kept, as a
:class:`DeadLetter`, for the operator's ``dead_letters()`` stream (and counted in
``BatchInfo.records_dead_lettered``). Receivers that decode records (the Kafka
source's ``on_deserialize_error=``) report theirs through
:meth:`~streamio.ReceiverOutput.reject`. Nothing is dropped without a count.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .batch import PartitionFn
from .checks import OnError
from .errors import ConfigurationError

__all__ = ["DeadLetter", "OnError"]

logger = logging.getLogger(__name__)



class DeadLetter(NamedTuple):
    """A record that an operator (or a source's deserializer) refused.

    Attributes:
        record: the record as the operator got it (for a source: the raw record,
            such as a Kafka record with its key and value bytes, topic, partition
            and offset).
        error: the exception the function raised.
        operator: the name of the operator (or input stream) that refused it.
        batch_time: the batch it was part of.
    """

    record: Any
    error: BaseException
    operator: str
    batch_time: float


@dataclass(frozen=True)
class Stage:
    """One step of a fused stage: its partition function and its record policy.

    ``fn`` of a stage with a policy other than "fail" is record-wise: applied to
    a one-record sequence it gives that record's output.
    """

    fn: PartitionFn
    policy: OnError = "fail"


@dataclass
class Rejected:
    """What one partition's run left out: per stage index, records skipped and
    ``(record, error)`` dead-lettered."""

    skipped: Counter[int] = field(default_factory=Counter)
    dead: dict[int, list[tuple[Any, BaseException]]] = field(default_factory=dict)


class GuardedStage:
    """A fused stage some of whose steps have a record policy.

    Called with a partition, it returns ``(result, rejected)``: ``rejected`` is
    None when the fused function ran through (the path without any cost but this
    tuple). When it raised, the partition is run again step by step, each step
    with a policy record by record, leaving out (and reporting) the records that
    fail there; an error in a step without a policy is raised as before. The
    records before the failing one thus go through the functions twice. A plain
    module-level class, so the process pool ships it with its stage.
    """

    __slots__ = ("_fused", "_last", "_stages")

    def __init__(self, fused: PartitionFn, stages: Sequence[Stage]) -> None:
        self._fused = fused
        self._stages = tuple(stages)
        self._last = max(i for i, stage in enumerate(self._stages) if stage.policy != "fail")

    def __call__(self, partition: Iterable[Any]) -> tuple[Any, Rejected | None]:
        try:
            return self._fused(partition), None
        except Exception:
            pass  # isolate the failing records below, outside the except block
        return self._isolate(partition)

    def _isolate(self, partition: Iterable[Any]) -> tuple[Any, Rejected]:
        rejected = Rejected()
        records: Iterable[Any] = partition
        for index, stage in enumerate(self._stages[: self._last + 1]):
            if stage.policy == "fail":
                records = list(stage.fn(records))
                continue
            kept: list[Any] = []
            fn = stage.fn
            for record in records:
                try:
                    kept += list(fn((record,)))
                except Exception as exc:
                    if stage.policy == "skip":
                        rejected.skipped[index] += 1
                    else:
                        rejected.dead.setdefault(index, []).append((record, exc))
            records = kept
        result: Any = records
        for stage in self._stages[self._last + 1 :]:
            result = stage.fn(result)
        return result, rejected


class Drops:
    """The records left out during one batch, by operator, for its BatchInfo."""

    def __init__(self) -> None:
        self.skipped: Counter[str] = Counter()
        self.dead_lettered: Counter[str] = Counter()

    def take(self) -> tuple[dict[str, int], dict[str, int]]:
        """Skipped and dead-lettered counts since the last call, and start over."""
        counts = (dict(self.skipped), dict(self.dead_lettered))
        self.skipped.clear()
        self.dead_lettered.clear()
        return counts


class RejectedRecords:
    """The records a receiver refused (could not decode) since the last batch cut:
    how many it skipped, and those it dead-lettered with their errors."""

    __slots__ = ("dead", "skipped")

    def __init__(self) -> None:
        self.skipped = 0
        self.dead: list[tuple[Any, BaseException]] = []

    def take(self) -> tuple[int, list[tuple[Any, BaseException]]]:
        """What was refused since the last call, and start over."""
        taken = (self.skipped, self.dead)
        self.skipped, self.dead = 0, []
        return taken


class DeadLetterOwner:
    """A node whose refused records may go to a ``dead_letters()`` stream: an
    operator with ``on_error="dead_letter"``, or an input whose receiver rejects
    records. It keeps them by batch time until the batch is forgotten."""

    dead_letters: dict[float, list[DeadLetter]]
    dead_letter_streams: list[Any]  # its DeadLetterNodes

    def init_dead_letters(self) -> None:
        self.dead_letters = {}
        self.dead_letter_streams = []

    def sends_dead_letters(self) -> bool:
        """Whether this node may refuse records into its dead letters."""
        raise NotImplementedError

    def add_dead_letters(self, letters: list[DeadLetter]) -> None:
        for letter in letters:
            self.dead_letters.setdefault(letter.batch_time, []).append(letter)

    def forget_dead_letters(self, before: float) -> None:
        if self.dead_letters:
            for time in [t for t in self.dead_letters if t <= before]:
                del self.dead_letters[time]

    def check_dead_letters_read(self, name: str) -> None:
        """Fail at start when this node dead-letters records that no stream reads."""
        if not self.sends_dead_letters():
            return
        if not any(stream.consumers for stream in self.dead_letter_streams):
            msg = (
                f"{name!r} sends the records it refuses to its dead letters, but "
                "nothing reads them: add an output to its stream's dead_letters() "
                '(.dead_letters().foreach_batch(store)), or skip them (on_error="skip")'
            )
            raise ConfigurationError(msg)


def record_rejected(
    drops: Drops, time: float, owners: Sequence[Any], rejected: Rejected
) -> None:
    """Count (and keep, for the dead letters) what a partition's run left out.

    ``owners`` are the nodes of the stage's steps, by index.
    """
    for index, count in rejected.skipped.items():
        label = owners[index].label
        drops.skipped[label] += count
        logger.warning("operator %r skipped %d record(s) in batch %s", label, count, time)
    for index, pairs in rejected.dead.items():
        owner = owners[index]
        drops.dead_lettered[owner.label] += len(pairs)
        owner.add_dead_letters(
            [DeadLetter(record, error, owner.label, time) for record, error in pairs]
        )
