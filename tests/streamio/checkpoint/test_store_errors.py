"""What a checkpoint refuses: a damaged store, a changed program, a changed interval."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from streamio import StreamingContext
from streamio.errors import CheckpointError
from streamio.testing import ListSink, ManualClock, MemorySource


def add(new: list[int], old: int | None) -> int:
    return sum(new) + (old or 0)


def setup_for(
    directory: Path,
    *,
    extra_output: bool = False,
    interval: float = 1.0,
    source: MemorySource[str] | None = None,
):
    def setup() -> StreamingContext:
        ssc = StreamingContext(interval, clock=ManualClock())
        ssc.checkpoint(directory, interval)
        words = ssc.receiver_stream(source or MemorySource(), name="words")
        counts = words.map(lambda w: (w, 1), name="pairs").update_state_by_key(add, name="counts")
        counts.foreach_batch(ListSink(), name="out")
        if extra_output:
            words.count(name="line count").pprint(name="show")
        return ssc

    return setup


async def checkpointed(directory: Path) -> None:
    """Run a job long enough to write a checkpoint with state."""
    source: MemorySource[str] = MemorySource()
    ssc = setup_for(directory, source=source)()
    async with ssc:
        await ssc.start()
        await source.send(["a", "b"] * 50)
        await ssc.clock.advance(1.0)  # type: ignore[attr-defined]


async def start(directory: Path, setup: Any) -> None:
    async with StreamingContext.get_or_create(directory, setup) as ssc:
        await ssc.start()


def replace_with_garbage(directory: Path) -> None:
    for leftover in directory.glob("checkpoint.sqlite-*"):
        leftover.unlink()
    (directory / "checkpoint.sqlite").write_bytes(b"not a database at all" * 100)


def scribble_over_pages(database: Path) -> None:
    with sqlite3.connect(database) as db:  # fold SQLite's own WAL into the file first
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(database.read_bytes())
    for offset in range(4096 + 100, len(data), 97):  # every page but the first
        data[offset] ^= 0x5A
    database.write_bytes(bytes(data))


async def test_a_changed_program_fails_at_start_naming_what_changed(tmp_path: Path) -> None:
    await checkpointed(tmp_path)
    with pytest.raises(CheckpointError) as caught:
        await start(tmp_path, setup_for(tmp_path, extra_output=True))
    message = str(caught.value)
    assert "streams added: line count (count)" in message
    assert "outputs added: show (pprint)" in message
    assert "name=" in message and "new checkpoint directory" in message


async def test_a_changed_batch_interval_fails_at_start(tmp_path: Path) -> None:
    await checkpointed(tmp_path)
    with pytest.raises(CheckpointError, match="batch_interval=1, this program uses 2"):
        await start(tmp_path, setup_for(tmp_path, interval=2.0))


async def test_a_file_that_is_not_a_database_is_reported_damaged(tmp_path: Path) -> None:
    await checkpointed(tmp_path)
    replace_with_garbage(tmp_path)
    with pytest.raises(CheckpointError, match="is damaged"):
        await start(tmp_path, setup_for(tmp_path))


async def test_a_damaged_page_is_reported(tmp_path: Path) -> None:
    await checkpointed(tmp_path)
    scribble_over_pages(tmp_path / "checkpoint.sqlite")
    with pytest.raises(CheckpointError, match="is damaged"):
        await start(tmp_path, setup_for(tmp_path))


async def test_a_value_that_fails_its_checksum_is_reported(tmp_path: Path) -> None:
    await checkpointed(tmp_path)
    with sqlite3.connect(tmp_path / "checkpoint.sqlite") as db:
        changed = db.execute(  # a valid pickle of another number: only the CRC can tell
            "UPDATE keyed SET value = ? WHERE id = (SELECT min(id) FROM keyed)",
            (b"\x80\x05K\x07.",),
        )
        assert changed.rowcount == 1
    with pytest.raises(CheckpointError, match="checksum"):
        await start(tmp_path, setup_for(tmp_path))


async def test_get_active_is_the_running_context(tmp_path: Path) -> None:
    ssc = setup_for(tmp_path)()
    async with ssc:
        await ssc.start()
        assert StreamingContext.get_active() is ssc
        again = StreamingContext.get_active_or_create(tmp_path, setup_for(tmp_path))
        assert again is ssc
    assert StreamingContext.get_active() is None
    created = StreamingContext.get_active_or_create(None, setup_for(tmp_path))
    assert created is not ssc and not created.resumed


async def test_has_checkpoint(tmp_path: Path) -> None:
    assert not StreamingContext.has_checkpoint(tmp_path / "none")
    await checkpointed(tmp_path)
    assert StreamingContext.has_checkpoint(tmp_path)
