"""Keyed state that knows which keys changed since the last checkpoint.

A checkpoint of ``update_state_by_key`` or ``map_with_state`` writes only the
keys that changed since the previous checkpoint, so its cost follows the keys a
batch touched, not the keys held. Each key gets a row id the first time it is
written (the store's rows are addressed by id, so a key need not pickle to the
same bytes twice), kept in memory beside the state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["KeyedChanges", "unchanged"]


def unchanged(new: Any, old: Any) -> bool:
    """Whether a key's new state is the old one (same object, or equal).

    Values whose comparison fails or is not a plain truth value (numpy arrays)
    count as changed.
    """
    if new is old:
        return True
    try:
        return bool(new == old)
    except Exception:
        return False


class KeyedChanges:
    """The changed keys of one node's keyed state, and every key's row id."""

    def __init__(self) -> None:
        self.ids: dict[Any, int] = {}
        self.changed: set[Any] = set()
        self._next_id = 1

    def touch(self, key: Any) -> None:
        """``key``'s value changed, or it was removed."""
        self.changed.add(key)

    def touch_all(self, keys: Iterable[Any]) -> None:
        self.changed.update(keys)

    def take(
        self, node: str, value_of: Callable[[Any], Any], present: Mapping[Any, Any],
        dumps: Callable[[Any], bytes],
    ) -> tuple[
        list[tuple[str, int, bytes, bytes]], list[tuple[str, int, bytes]], list[tuple[str, int]]
    ]:
        """The rows to write for the keys changed since the last call: inserts
        (new keys), updates and deletes; the changes are then forgotten.

        ``present`` holds the keys the state has now; ``value_of(key)`` gives what
        is saved for a present key.
        """
        inserts, updates, deletes = [], [], []
        ids = self.ids
        for key in self.changed:
            row_id = ids.get(key)
            if key in present:
                value = dumps(value_of(key))
                if row_id is None:
                    row_id = ids[key] = self._next_id
                    self._next_id += 1
                    inserts.append((node, row_id, dumps(key), value))
                else:
                    updates.append((node, row_id, value))
            elif row_id is not None:
                del ids[key]
                deletes.append((node, row_id))
        self.changed = set()
        return inserts, updates, deletes

    def restored(self, rows: Iterable[tuple[int, Any]]) -> None:
        """Keys read back from a checkpoint, with their row ids: none changed."""
        for row_id, key in rows:
            self.ids[key] = row_id
            self._next_id = max(self._next_id, row_id + 1)
        self.changed = set()
