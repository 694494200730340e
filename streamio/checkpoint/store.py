"""The checkpoint store: one SQLite database per checkpoint directory.

SQLite (standard library) gives what a checkpoint needs without a home-made
file format: one transaction per checkpoint, so a crash at any moment, in the
middle of a write included, leaves the previous checkpoint whole (the database
runs in WAL journal mode with ``synchronous=FULL``, so a committed checkpoint is
on disk); and rows, so that a checkpoint writes only what changed since the
last one: the keys of state that changed, the remembered batches that are new,
and deletes for what went away.

Tables:

- ``meta``: the checkpointed batch time, the grid's zero time, the batch
  interval, the graph's shape (JSON) and the format version;
- ``keyed``: one row per key of keyed state (``update_state_by_key``,
  ``map_with_state``), by node name and a row id the node keeps per key;
- ``batches``: the remembered batches of windows, by node name and batch time;
- ``blobs``: the whole state of nodes that keep little (watermarks, open
  event-time windows, models), by node name;
- ``positions``: each input's source position.

Every stored value carries a CRC-32 checked on load, and the database is
checked (``PRAGMA quick_check``) when opened: a damaged store is reported with
:class:`~streamio.CheckpointError`, never read as silently wrong state.

The methods are blocking (file I/O and fsync): the runtime calls them in a
worker thread, one at a time.
"""

from __future__ import annotations

import json
import os
import sqlite3
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CheckpointError

__all__ = ["CheckpointStore", "StoreChanges", "checkpoint_path"]

FORMAT = 1
FILE_NAME = "checkpoint.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keyed (
    node TEXT NOT NULL, id INTEGER NOT NULL, key BLOB NOT NULL, key_crc INTEGER NOT NULL,
    value BLOB NOT NULL, crc INTEGER NOT NULL, PRIMARY KEY (node, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batches (
    node TEXT NOT NULL, time REAL NOT NULL, data BLOB NOT NULL, crc INTEGER NOT NULL,
    PRIMARY KEY (node, time)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (
    node TEXT PRIMARY KEY, data BLOB NOT NULL, crc INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS positions (
    input TEXT PRIMARY KEY, data BLOB NOT NULL, crc INTEGER NOT NULL);
"""


def checkpoint_path(directory: str | os.PathLike[str]) -> Path:
    """The database file of a checkpoint directory."""
    return Path(directory) / FILE_NAME


def _crc(*parts: bytes) -> int:
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    return crc


@dataclass
class StoreChanges:
    """What one checkpoint writes: rows to insert, update and delete.

    Attributes:
        meta: name -> JSON-able value.
        keyed_inserts: (node, id, key bytes, value bytes) for keys new to the store.
        keyed_updates: (node, id, value bytes) for keys whose value changed.
        keyed_deletes: (node, id) for keys that went away.
        batch_inserts: (node, batch time, data bytes).
        batch_deletes: (node, batch time).
        blobs: (node, data bytes) replacing the node's whole blob.
        positions: (input, data bytes).
    """

    meta: dict[str, Any] = field(default_factory=dict)
    keyed_inserts: list[tuple[str, int, bytes, bytes]] = field(default_factory=list)
    keyed_updates: list[tuple[str, int, bytes]] = field(default_factory=list)
    keyed_deletes: list[tuple[str, int]] = field(default_factory=list)
    batch_inserts: list[tuple[str, float, bytes]] = field(default_factory=list)
    batch_deletes: list[tuple[str, float]] = field(default_factory=list)
    blobs: list[tuple[str, bytes]] = field(default_factory=list)
    positions: list[tuple[str, bytes]] = field(default_factory=list)

    def nbytes(self) -> int:
        """Bytes of data this checkpoint writes (keys, values, batches, blobs, positions)."""
        return (
            sum(len(k) + len(v) for _, _, k, v in self.keyed_inserts)
            + sum(len(v) for _, _, v in self.keyed_updates)
            + sum(len(d) for _, _, d in self.batch_inserts)
            + sum(len(d) for _, d in self.blobs)
            + sum(len(d) for _, d in self.positions)
        )

    def keys_written(self) -> int:
        """Keys of keyed state inserted, updated or deleted."""
        return len(self.keyed_inserts) + len(self.keyed_updates) + len(self.keyed_deletes)


class CheckpointStore:
    """A checkpoint directory's SQLite database (see the module's docstring)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = checkpoint_path(directory)
        self._connection: sqlite3.Connection | None = None

    def exists(self) -> bool:
        """Whether the directory holds a checkpoint (a store with one written)."""
        if not self.path.exists():
            return False
        return self.read_meta().get("batch_time") is not None

    @property
    def connection(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._open()
        return self._connection

    def _open(self) -> sqlite3.Connection:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"cannot create the checkpoint directory {str(self.directory)!r}: {exc}"
            raise CheckpointError(msg) from exc
        existed = self.path.exists() and self.path.stat().st_size > 0
        try:
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            if existed:
                result = connection.execute("PRAGMA quick_check").fetchall()
                if result != [("ok",)]:
                    problems = "; ".join(str(row[0]) for row in result[:3])
                    raise sqlite3.DatabaseError(problems)
            connection.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise self.damaged(exc) from exc
        return connection

    def damaged(self, cause: BaseException | str) -> CheckpointError:
        """The error for a store that cannot be read as it was written."""
        msg = (
            f"the checkpoint in {str(self.directory)!r} is damaged ({cause}); it cannot "
            "be resumed: restore the directory from a backup, or start from a new "
            "checkpoint directory (the job then starts with empty state)"
        )
        return CheckpointError(msg)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    # -- writing -----------------------------------------------------------

    def write(self, changes: StoreChanges) -> None:
        """Apply one checkpoint's changes in one transaction (committed, fsynced)."""
        try:
            with self._transaction() as db:
                db.executemany(
                    "INSERT OR REPLACE INTO keyed VALUES (?, ?, ?, ?, ?, ?)",
                    ((n, i, k, _crc(k), v, _crc(v)) for n, i, k, v in changes.keyed_inserts),
                )
                db.executemany(
                    "UPDATE keyed SET value = ?, crc = ? WHERE node = ? AND id = ?",
                    ((v, _crc(v), n, i) for n, i, v in changes.keyed_updates),
                )
                db.executemany(
                    "DELETE FROM keyed WHERE node = ? AND id = ?", changes.keyed_deletes
                )
                db.executemany(
                    "INSERT OR REPLACE INTO batches VALUES (?, ?, ?, ?)",
                    ((n, t, d, _crc(d)) for n, t, d in changes.batch_inserts),
                )
                db.executemany(
                    "DELETE FROM batches WHERE node = ? AND time = ?", changes.batch_deletes
                )
                db.executemany(
                    "INSERT OR REPLACE INTO blobs VALUES (?, ?, ?)",
                    ((n, d, _crc(d)) for n, d in changes.blobs),
                )
                db.executemany(
                    "INSERT OR REPLACE INTO positions VALUES (?, ?, ?)",
                    ((n, d, _crc(d)) for n, d in changes.positions),
                )
                db.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    ((name, json.dumps(value)) for name, value in changes.meta.items()),
                )
        except sqlite3.Error as exc:
            msg = f"writing the checkpoint in {str(self.directory)!r} failed: {exc}"
            raise CheckpointError(msg) from exc

    # -- reading -----------------------------------------------------------

    def read_meta(self) -> dict[str, Any]:
        try:
            rows = self.connection.execute("SELECT name, value FROM meta").fetchall()
            return {name: json.loads(value) for name, value in rows}
        except (sqlite3.DatabaseError, ValueError) as exc:
            raise self.damaged(exc) from exc

    def keyed_rows(self, node: str) -> Iterable[tuple[int, bytes, bytes]]:
        """(id, key bytes, value bytes) of every key of ``node``'s keyed state."""
        rows = self._select(
            "SELECT id, key, key_crc, value, crc FROM keyed WHERE node = ? ORDER BY id", (node,)
        )
        for row_id, key, key_crc, value, crc in rows:
            if _crc(key) != key_crc or _crc(value) != crc:
                raise self.damaged(f"state of {node!r}: a value fails its checksum")
            yield row_id, key, value

    def batch_rows(self, node: str) -> list[tuple[float, bytes]]:
        """(batch time, data) of ``node``'s remembered batches, in time order."""
        found = []
        for time, data, crc in self._select(
            "SELECT time, data, crc FROM batches WHERE node = ? ORDER BY time", (node,)
        ):
            if _crc(data) != crc:
                raise self.damaged(f"a remembered batch of {node!r} fails its checksum")
            found.append((time, data))
        return found

    def blob(self, node: str) -> bytes | None:
        return self._checked_one("SELECT data, crc FROM blobs WHERE node = ?", node)

    def position(self, input_name: str) -> bytes | None:
        return self._checked_one("SELECT data, crc FROM positions WHERE input = ?", input_name)

    def _checked_one(self, query: str, name: str) -> bytes | None:
        rows = self._select(query, (name,))
        if not rows:
            return None
        data, crc = rows[0]
        if _crc(data) != crc:
            raise self.damaged(f"the saved data of {name!r} fails its checksum")
        return bytes(data)

    def _select(self, query: str, args: tuple[Any, ...]) -> list[Any]:
        try:
            return self.connection.execute(query, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self.damaged(exc) from exc
