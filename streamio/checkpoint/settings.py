"""What ``ssc.checkpoint()`` accepts, checked when the graph is built."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checks import check_number
from ..errors import ConfigurationError
from .serializers import PickleSerializer, Serializer

__all__ = ["CheckpointSettings", "check_checkpointable", "checkpoint_settings", "same_directory"]

# Spark's default checkpoint interval floor: the larger of this and the batch interval.
DEFAULT_MIN_INTERVAL = 10.0


@dataclass(frozen=True)
class CheckpointSettings:
    """What ``ssc.checkpoint()`` asked for."""

    directory: Path
    interval: float
    serializer: Serializer
    write_ahead_log: bool


def checkpoint_settings(
    directory: str | os.PathLike[str],
    interval: float | None,
    batch_interval: float,
    write_ahead_log: bool,
    serializer: Serializer | None,
) -> CheckpointSettings:
    """Checked settings: ``interval`` a multiple of the batch interval (default
    the larger of 10 s and the batch interval, rounded up to the grid)."""
    if not isinstance(directory, (str, os.PathLike)) or not str(directory):
        raise ConfigurationError(f"checkpoint() needs a directory path, not {directory!r}")
    if interval is None:
        interval = batch_interval * math.ceil(DEFAULT_MIN_INTERVAL / batch_interval - 1e-9)
        interval = max(interval, batch_interval)
    else:
        interval = check_number(interval, "checkpoint interval")
        steps = round(interval / batch_interval)
        if steps < 1 or not math.isclose(steps * batch_interval, interval, rel_tol=1e-9):
            msg = (
                f"checkpoint interval {interval:g}s must be a multiple of the batch interval "
                f"({batch_interval:g}s), such as {max(1, steps) * batch_interval:g}"
            )
            raise ConfigurationError(msg)
    if serializer is None:
        serializer = PickleSerializer()
    elif not isinstance(serializer, Serializer):
        msg = f"serializer= needs dumps(value) -> bytes and loads(bytes), not {serializer!r}"
        raise ConfigurationError(msg)
    return CheckpointSettings(Path(directory), interval, serializer, bool(write_ahead_log))


def same_directory(first: str | os.PathLike[str], second: str | os.PathLike[str]) -> bool:
    return Path(first).resolve() == Path(second).resolve()


def check_checkpointable(node: Any, write_ahead_log: bool) -> None:
    """Refuse inputs a checkpoint cannot resume (as Spark refuses queue streams)."""
    from ..inputs import QueueInputNode, ReceiverInputNode
    from ..sources import AsyncIterableReceiver, PushReceiver

    if isinstance(node, QueueInputNode):
        msg = (
            f"queue_stream {node.name!r} cannot be checkpointed: its queue lives in this "
            "process and cannot be replayed after a restart (Spark refuses queue streams "
            "with checkpointing too). Use streamio.testing.MemorySource in tests, or a "
            "source that can replay (Kafka, files)"
        )
        raise ConfigurationError(msg)
    if not isinstance(node, ReceiverInputNode) or write_ahead_log:
        return
    receiver = node.receiver
    if isinstance(receiver, (AsyncIterableReceiver, PushReceiver)) and not receiver.replayable:
        what = "from_async_iterable" if isinstance(receiver, AsyncIterableReceiver) else "push"
        msg = (
            f"the {what} stream {node.name!r} cannot be checkpointed: what it received "
            "lives in this process and cannot be replayed after a restart. Turn on the "
            "write-ahead log (ssc.checkpoint(directory, write_ahead_log=True)), or read "
            "from a source that can replay"
        )
        raise ConfigurationError(msg)
