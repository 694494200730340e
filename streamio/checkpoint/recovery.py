"""Whether a checkpoint directory holds something to resume."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .store import CheckpointStore, checkpoint_path
from .wal import FILE_NAME as WAL_FILE

__all__ = ["has_checkpoint"]


def has_checkpoint(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` holds a written checkpoint, or a write-ahead log with
    records (a job that died before its first checkpoint). Blocking, and quick:
    it reads one row of each store."""
    if checkpoint_path(directory).exists():
        store = CheckpointStore(directory)
        try:
            if store.exists():
                return True
        finally:
            store.close()
    wal = Path(directory) / WAL_FILE
    if not wal.exists():
        return False
    with sqlite3.connect(wal) as connection:
        try:
            return connection.execute("SELECT 1 FROM log LIMIT 1").fetchone() is not None
        except sqlite3.OperationalError:  # no log table: nothing was ever logged
            return False
