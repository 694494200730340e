"""The binary records source (Spark's ``binaryRecordsStream``) on real temporary
directories: files renamed in are cut into fixed-length records; a file whose size
is not a multiple of the record length is skipped whole, reported and counted,
and the job goes on."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from streamio import (
    ConfigurationError,
    ConnectorError,
    DStream,
    ReceiverInfo,
    StreamingContext,
    StreamingListener,
)
from streamio.connectors.files import BinaryRecordsSource, FileId, binary_records_stream
from streamio.testing import ListSink, ManualClock, step

# Upper bound for a wait on the file system watcher or on a bug.
HANG_GUARD = 10


def drop_bytes(directory: Path, name: str, data: bytes) -> None:
    """Write a file under a temporary name, then rename it into ``directory``."""
    temporary = directory / f".{name}.{uuid.uuid4().hex}.part"
    temporary.write_bytes(data)
    os.replace(temporary, directory / name)


async def wait_buffered(stream: DStream[Any], count: int) -> None:
    with anyio.fail_after(HANG_GUARD):
        await stream.wait_for_buffer(lambda stats: stats.used >= count)


def context() -> StreamingContext:
    return StreamingContext(batch_interval=1.0, clock=ManualClock(), receiver_restart_backoff=0)


class ReceiverErrors(StreamingListener):
    def __init__(self) -> None:
        self.infos: list[ReceiverInfo] = []
        self.reported = anyio.Event()

    def on_receiver_error(self, info: ReceiverInfo) -> None:
        self.infos.append(info)
        self.reported.set()


@pytest.fixture
def incoming(tmp_path: Path) -> Path:
    directory = tmp_path / "incoming"
    directory.mkdir()
    return directory


async def test_each_new_file_is_cut_into_fixed_length_records(incoming):
    sink: ListSink[bytes] = ListSink()
    async with context() as ssc:
        records = binary_records_stream(ssc, incoming, 4, pattern="*.bin")
        records.foreach_batch(sink)
        await ssc.start()
        drop_bytes(incoming, "a.bin", b"aaaabbbbcccc")
        drop_bytes(incoming, "notes.txt", b"not matching")
        await wait_buffered(records, 3)
        await step(ssc)
        drop_bytes(incoming, "b.bin", b"\x00\x01\x02\x03")
        drop_bytes(incoming, "empty.bin", b"")
        await wait_buffered(records, 1)
        await step(ssc)
    assert sink.batches == [(1.0, [b"aaaa", b"bbbb", b"cccc"]), (2.0, [b"\x00\x01\x02\x03"])]
    assert records.name == f"binary files {incoming}"


async def test_a_file_of_the_wrong_size_is_skipped_reported_and_counted(incoming):
    source = BinaryRecordsSource(incoming, 4)
    listener = ReceiverErrors()
    sink: ListSink[bytes] = ListSink()
    async with context() as ssc:
        ssc.add_listener(listener)
        stream = ssc.receiver_stream(source)
        stream.foreach_batch(sink)
        await ssc.start()
        drop_bytes(incoming, "a-bad.bin", b"aaaabbbbcc")
        with anyio.fail_after(HANG_GUARD):
            await listener.reported.wait()
        await step(ssc)
        (rejected,) = source.rejected
        assert (rejected.name, rejected.size) == ("a-bad.bin", 10)
        assert rejected in source.processed  # with its batch, though it gave no record
        drop_bytes(incoming, "b-good.bin", b"ddddeeee")
        await wait_buffered(stream, 2)
        await step(ssc)
    assert sink.records == [b"dddd", b"eeee"]
    assert source.rejected == (rejected,)  # not read again
    (info,) = listener.infos
    assert isinstance(info.error, ConnectorError) and not info.error.retriable
    assert f"{incoming / 'a-bad.bin'} is 10 bytes, not a multiple of record_length=4" in str(
        info.error
    )
    assert info.extra["path"] == str(incoming / "a-bad.bin")


async def test_committed_files_are_kept_in_the_ledger(incoming, tmp_path):
    ledger = tmp_path / "ledger.json"
    drop_bytes(incoming, "a.bin", b"xy")
    first = BinaryRecordsSource(incoming, 2, include_existing=True, ledger=ledger)
    sink: ListSink[bytes] = ListSink()
    async with context() as ssc:
        stream = ssc.receiver_stream(first)
        stream.foreach_batch(sink)
        await ssc.start()
        await wait_buffered(stream, 1)
        await step(ssc)
    assert sink.records == [b"xy"]
    again = BinaryRecordsSource(incoming, 2, ledger=ledger)
    await again.open()
    assert {file.name for file in again.processed} == {"a.bin"}
    assert all(isinstance(file, FileId) for file in again.processed)


@pytest.mark.parametrize("length", [0, -4, 2.5, "4", True])
async def test_a_wrong_record_length_fails_when_the_stream_is_made(incoming, length):
    async with context() as ssc:
        with pytest.raises(ConfigurationError, match="record_length"):
            binary_records_stream(ssc, incoming, length)
