"""State across batches: ``update_state_by_key`` and ``map_with_state``.

State lives in the runtime, in the state nodes (``state`` dicts keyed by record
key), never in user globals: the checkpoint step saves and restores exactly these
dicts, together with the source positions of the same batch. Each state node
computes its batches in time order; a batch time that nothing asked for is still
computed before the next one, so no update is skipped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

from .batch import (
    Batch,
    group_mapped,
    group_partition,
    merge_by_key,
    private_copy,
    split_records,
)
from .checkpoint.keyed import unchanged
from .checks import check_number
from .errors import ConfigurationError, StateError
from .functions import Ops, check_function, operator_failures
from .graph import Node
from .nodes import NarrowNode
from .times import snap

__all__ = ["State", "StateSpec"]

S = TypeVar("S")

_MISSING = object()


def initial_pairs(initial_state: Any, operator: str) -> dict[Any, Any]:
    """``initial_state`` (an iterable of ``(key, state)`` pairs) as a dict."""
    if initial_state is None:
        return {}
    try:
        return dict(initial_state)
    except (TypeError, ValueError) as exc:
        msg = f"{operator}(): initial_state must be an iterable of (key, state) pairs: {exc}"
        raise ConfigurationError(msg) from exc


class State(Generic[S]):
    """The state of one key, as ``map_with_state``'s function sees it."""

    __slots__ = ("_removed", "_timing_out", "_updated", "_value")

    def __init__(self, value: Any = _MISSING, *, timing_out: bool = False) -> None:
        self._value = value
        self._timing_out = timing_out
        self._updated = False
        self._removed = False

    def exists(self) -> bool:
        """Whether the key has a state."""
        return self._value is not _MISSING

    def get(self) -> S:
        """The state. Raises StateError when there is none (check ``exists()``)."""
        if self._value is _MISSING:
            raise StateError("the key has no state; check state.exists() before state.get()")
        return self._value

    def get_option(self, default: Any = None) -> S | Any:
        """The state, or ``default`` when there is none."""
        return default if self._value is _MISSING else self._value

    def update(self, value: S) -> None:
        """Set the key's new state. Not allowed on a key that is timing out."""
        if self._timing_out:
            raise StateError("a state that is timing out cannot be updated")
        self._value = value
        self._updated = True
        self._removed = False

    def remove(self) -> None:
        """Remove the key's state. Not allowed on a key that is timing out."""
        if self._timing_out:
            raise StateError("a state that is timing out is removed already; do not remove it")
        if self._value is _MISSING:
            raise StateError("the key has no state to remove")
        self._value = _MISSING
        self._removed = True
        self._updated = False

    def is_timing_out(self) -> bool:
        """True in the last call for a key that received nothing for ``timeout`` seconds."""
        return self._timing_out

    def __repr__(self) -> str:
        shown = "absent" if self._value is _MISSING else repr(self._value)
        return f"State({shown}{', timing out' if self._timing_out else ''})"


@dataclass(frozen=True)
class StateSpec:
    """What ``map_with_state`` needs.

    Args:
        function: ``function(batch_time, key, value, state)`` called for every
            ``(key, value)`` record; what it returns is emitted (None emits nothing).
        initial_state: ``(key, state)`` pairs the state starts with.
        timeout: seconds without records after which a key gets a last call
            (``value`` None, ``state.is_timing_out()`` True) and its state is dropped.
    """

    function: Callable[[float, Any, Any, State[Any]], Any]
    initial_state: Iterable[tuple[Any, Any]] | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        check_function(self.function, "StateSpec", 4)
        if self.timeout is not None:
            check_number(self.timeout, "StateSpec timeout")


class StatefulNode(Node):
    """A node whose batches depend on its previous one: computed in time order.

    ``update`` may also leave a second output per batch in ``side`` (state
    snapshots, late records), which a :class:`SideOutputNode` turns into a stream.
    """

    def __init__(self, parent: Node, num_partitions: int | None, name: str | None) -> None:
        super().__init__(parent.graph, (parent,), name)
        self.num_partitions = num_partitions
        self.state_time: float | None = None  # the batch the state reflects
        self.side: dict[float, list[Any]] = {}
        self.side_wanted = False  # set by a SideOutputNode: keep ``side`` up to date

    async def compute(self, time: float) -> Batch[Any] | None:
        previous = snap(time - self.slide, self.graph.batch_interval)
        if (
            self.state_time is not None
            and previous > self.state_time
            and self.is_valid_time(previous)
        ):
            await self.get(previous)  # catch up on a batch nothing asked for
        parts = await self.read(time)
        if parts is None:
            return None
        with operator_failures(self.label, time, self.user_functions()):
            pairs = self.update(time, parts)
        self.state_time = time
        return Batch(time, self.partition(pairs, len(parts)))

    user_fn: Callable[..., Any]

    def user_functions(self) -> Ops:
        """The user functions ``update`` calls, named for errors."""
        return ((self.label, self.user_fn),)

    async def read(self, time: float) -> list[Any] | None:
        """The parent's batch as ``update`` takes it: by default its partitions."""
        return await self.parents[0].partitions(time)

    def update(self, time: float, parts: list[Any]) -> list[Any]:
        """Apply one batch (what :meth:`read` gave) to the state; the batch's output."""
        raise NotImplementedError

    def partition(self, records: list[Any], parent_partitions: int) -> list[list[Any]]:
        return split_records(records, self.graph.partition_size)

    def forget(self, before: float) -> None:
        super().forget(before)
        for time in [t for t in self.side if t <= before]:
            del self.side[time]

    def state_to_save(self) -> Any:
        return {"state_time": self.state_time}

    def restore_saved(self, saved: Any) -> None:
        self.state_time = saved["state_time"]


def _keep_first(first: Any, second: Any) -> Any:
    return first


class UpdateStateNode(StatefulNode):
    """``update_state_by_key``: ``update_fn(new_values, old_state)`` for every key."""

    kind = "update_state_by_key"

    def __init__(
        self,
        parent: Node,
        update_fn: Callable[[list[Any], Any], Any],
        initial_state: dict[Any, Any],
        num_partitions: int | None,
        name: str | None,
    ) -> None:
        super().__init__(parent, num_partitions, name)
        self.user_fn = update_fn
        self.state: dict[Any, Any] = dict(initial_state)

    def partition(self, records: list[Any], parent_partitions: int) -> list[list[Any]]:
        count = self.num_partitions or parent_partitions
        if count == 1:
            return [records]
        return merge_by_key([dict(records)], _keep_first, count)

    async def read(self, time: float) -> list[dict[Any, list[Any]]] | None:
        # The fused stage groups each partition's values by key as it goes: its
        # records are never gathered into lists first. A fused map(f) right before
        # this node is applied by the grouping loop itself (see group_mapped).
        parent = self.parents[0]
        if (
            isinstance(parent, NarrowNode)
            and parent.kind == "map"
            and parent.on_error == "fail"
            and not parent.materialized
        ):
            assert parent.user_fn is not None
            grouping = partial(group_mapped, parent.user_fn)
            return await self.graph.evaluate(
                parent.parents[0], time, grouping, self.label, parent.ops(), parent.executor
            )
        return await self.graph.evaluate(parent, time, group_partition, self.label)

    def update(self, time: float, parts: list[dict[Any, list[Any]]]) -> list[Any]:
        new_values: dict[Any, list[Any]] = {}
        for grouped in parts:  # lists grouped for this batch: extended in place
            if not new_values:
                new_values = grouped
                continue
            for key, values in grouped.items():
                if key in new_values:
                    new_values[key].extend(values)
                else:
                    new_values[key] = values
        update_fn, state, changes = self.user_fn, self.state, self.keyed_changes
        keys = list(state)
        keys.extend(key for key in new_values if key not in state)
        for key in keys:
            # the old state was emitted with the previous batch: the function gets a
            # copy it may change in place (PySpark's updaters extend their state)
            kept = state.get(key)
            new_state = update_fn(new_values.get(key, []), private_copy(kept))
            if new_state is None:
                if key in state:
                    del state[key]
                    if changes is not None:
                        changes.touch(key)
            else:
                state[key] = new_state
                if changes is not None and not unchanged(new_state, kept):
                    changes.touch(key)
        return list(state.items())

    def keyed_state(self) -> tuple[dict[Any, Any], Callable[[Any], Any]]:
        return self.state, self.state.__getitem__

    def restore_keyed(self, items: list[tuple[Any, Any]]) -> None:
        self.state = dict(items)


class MapWithStateNode(StatefulNode):
    """``map_with_state``: a function of each record and its key's state.

    A batch costs what its records and the keys timing out in it cost, whatever
    the number of keys held: with a timeout, ``active`` holds each key's last
    active time in time order (a key that gets a record moves to the end), so the
    keys timing out are found at its front; a snapshot of the whole state is taken
    only when ``state_snapshots()`` is used.
    """

    kind = "map_with_state"

    def __init__(self, parent: Node, spec: StateSpec, name: str | None) -> None:
        super().__init__(parent, None, name)
        self.user_fn = spec.function
        self.timeout = spec.timeout
        self.state: dict[Any, Any] = initial_pairs(spec.initial_state, "map_with_state")
        self.active: OrderedDict[Any, float] = OrderedDict()

    def update(self, time: float, parts: list[Sequence[Any]]) -> list[Any]:
        function, state, active = self.user_fn, self.state, self.active
        timeout, changes = self.timeout, self.keyed_changes
        if self.state_time is None and timeout is not None:
            # the initial state counts as active at the first batch
            active.update(dict.fromkeys(state, time))
            if changes is not None:
                changes.touch_all(state)
        mapped: list[Any] = []
        for partition in parts:
            for key, value in partition:
                current: State[Any] = State(state.get(key, _MISSING))
                result = function(time, key, value, current)
                if current._removed:
                    state.pop(key, None)
                    if timeout is not None:
                        active.pop(key, None)
                elif current._updated:
                    state[key] = current._value
                if timeout is not None and current.exists():
                    # Spark: any record of a key that keeps its state makes it active
                    active[key] = time
                    active.move_to_end(key)
                if changes is not None and (
                    current._removed or current._updated or timeout is not None
                ):
                    changes.touch(key)  # its value, or its last active time, changed
                if result is not None:
                    mapped.append(result)
        if timeout is not None:
            self._time_out(time, time - timeout, mapped)
        if self.side_wanted:  # the state snapshot, in copies later batches cannot change
            self.side[time] = [(key, private_copy(value)) for key, value in state.items()]
        return mapped

    def _time_out(self, time: float, threshold: float, mapped: list[Any]) -> None:
        """The last call of every key not active since ``threshold``, oldest first."""
        function, state, active = self.user_fn, self.state, self.active
        while active:
            key, last = next(iter(active.items()))
            if last > threshold + 1e-9:
                return
            result = function(time, key, None, State(state[key], timing_out=True))
            del state[key]
            del active[key]
            if self.keyed_changes is not None:
                self.keyed_changes.touch(key)
            if result is not None:
                mapped.append(result)


    def keyed_state(self) -> tuple[dict[Any, Any], Callable[[Any], Any]]:
        state, active = self.state, self.active
        return state, lambda key: (state[key], active.get(key))

    def restore_keyed(self, items: list[tuple[Any, Any]]) -> None:
        self.state = {key: value for key, (value, _) in items}
        timed = sorted(
            ((last, key) for key, (_, last) in items if last is not None), key=lambda e: e[0]
        )
        self.active = OrderedDict((key, last) for last, key in timed)


class SideOutputNode(Node):
    """The second output of a stateful node (state snapshots, late records)."""

    def __init__(self, owner: StatefulNode, kind: str, name: str | None) -> None:
        self.kind = kind
        super().__init__(owner.graph, (owner,), name)
        owner.side_wanted = True

    async def compute(self, time: float) -> Batch[Any] | None:
        owner = self.parents[0]
        assert isinstance(owner, StatefulNode)
        if await owner.get(time) is None:
            return None
        return Batch(time, split_records(owner.side[time], self.graph.partition_size))
