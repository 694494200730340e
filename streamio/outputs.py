"""Output operations: the jobs that run on every batch (foreach_batch, pprint)."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from typing import Any

from .functions import operator_failures
from .graph import Node

__all__ = ["OutputOperation"]


class OutputOperation:
    """An output job: a function called with each batch's time and records."""

    def __init__(
        self,
        node: Node,
        fn: Callable[[float, list[Any]], Any],
        kind: str,
        name: str | None,
        user_fn: Callable[..., Any] | None = None,
    ) -> None:
        self.node = node
        self.fn = fn
        self.user_fn = user_fn or fn
        self.graph = node.graph
        self.kind = kind
        self.name = node.graph.register_output(self, kind, name)

    def state_to_save(self) -> Any:
        """Plain data a checkpoint must save to resume this output (None: nothing;
        an output that trains a model returns the model)."""
        return None

    def restore_saved(self, saved: Any) -> None:
        """Resume from what :meth:`state_to_save` returned at the checkpoint."""

    async def run(self, time: float) -> None:
        parts = await self.node.partitions(time)
        if parts is None:
            return
        records = list(itertools.chain.from_iterable(parts))
        with operator_failures(self.name, time, ((self.name, self.user_fn),)):
            result = self.fn(time, records)
            if inspect.isawaitable(result):
                await result
