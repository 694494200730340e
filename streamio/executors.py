"""Where per-partition work runs.

Each partition of a batch is one task. The inline executor runs tasks on the event
loop, yielding between partitions so receivers and other tasks keep flowing while
a large batch is processed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import anyio.lowlevel

__all__ = ["InlineExecutor", "PartitionExecutor"]

P = TypeVar("P")
R = TypeVar("R")


class PartitionExecutor(Protocol):
    """Runs one function over every partition of a batch."""

    async def map_partitions(self, fn: Callable[[P], R], partitions: Sequence[P]) -> list[R]:
        """``[fn(p) for p in partitions]``, in order. Cancellation abandons the rest."""


class InlineExecutor:
    """Runs partition tasks on the event loop, one after the other."""

    async def map_partitions(self, fn: Callable[[P], R], partitions: Sequence[P]) -> list[R]:
        results: list[Any] = []
        for index, partition in enumerate(partitions):
            if index:
                await anyio.lowlevel.checkpoint()
            results.append(fn(partition))
        return results
