"""The directory source and the text files sink, on real temporary directories.

Files are written elsewhere and renamed in, as writers to a watched directory
must. Noticing a rename is a real wait on the file system watcher, so those waits
are bounded (``anyio.fail_after``) waits on the stream's buffer, never sleeps.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

import streamio.connectors.files as files_module
from streamio import (
    BatchInfo,
    ConfigurationError,
    DStream,
    OperatorError,
    ReceiverError,
    StreamingContext,
)
from streamio.connectors.files import (
    DirectorySource,
    FileId,
    TextFilesSink,
    save_as_text_files,
    text_file_stream,
)
from streamio.errors import ConnectorError
from streamio.testing import ListSink, ManualClock, step

# Upper bound for a wait on the file system watcher or on a bug.
HANG_GUARD = 10


def drop_file(directory: Path, name: str, lines: list[str], staging: Path | None = None) -> None:
    """Write a file under a temporary name, then rename it into ``directory``."""
    temporary = (staging or directory) / f".{name}.{uuid.uuid4().hex}.part"
    temporary.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    os.replace(temporary, directory / name)


async def wait_buffered(stream: DStream[Any], count: int) -> None:
    """Return once the stream's buffer holds at least ``count`` records."""
    with anyio.fail_after(HANG_GUARD):
        await stream.wait_for_buffer(lambda stats: stats.used >= count)


def context(**kwargs: Any) -> StreamingContext:
    kwargs.setdefault("receiver_restart_backoff", 0)
    return StreamingContext(batch_interval=1.0, clock=ManualClock(), **kwargs)


@pytest.fixture
def incoming(tmp_path: Path) -> Path:
    directory = tmp_path / "incoming"
    directory.mkdir()
    return directory


# -- directory source ------------------------------------------------------------------

# Tests of the lines run row-wise and columnar (lines cut in Arrow): the same records.
columnar = pytest.mark.parametrize("columnar", [False, True], ids=["rows", "columnar"])


@columnar
async def test_files_renamed_in_become_records_of_the_next_batch(incoming, columnar):
    sink = ListSink()
    async with context() as ssc:
        # a long rescan interval: only the watcher can notice these files in time
        lines = text_file_stream(
            ssc, incoming, pattern="*.txt", rescan_interval=60.0, columnar=columnar
        )
        lines.foreach_batch(sink)
        await ssc.start()
        (incoming / "notes.log").write_text("not matching\n")
        (incoming / "a.txt.part").write_text("a temporary name\n")
        (incoming / ".b.txt").write_text("hidden\n")
        drop_file(incoming, "a.txt", ["a1", "a2"])
        await wait_buffered(lines, 2)
        await step(ssc)
        drop_file(incoming, "b.txt", ["b1", "", "b3"])
        await wait_buffered(lines, 3)
        await step(ssc)
        await step(ssc)
    assert sink.batches == [(1.0, ["a1", "a2"]), (2.0, ["b1", "", "b3"]), (3.0, [])]


async def test_each_batch_names_the_files_it_holds_in_its_input_metadata(incoming):
    described: list[dict[str, Any]] = []

    class Completed:
        def on_batch_completed(self, info: BatchInfo) -> None:
            described.append(info.input_metadata)

    async with context() as ssc:
        ssc.add_listener(Completed())
        lines = text_file_stream(ssc, incoming, pattern="*.txt", name="in")
        lines.foreach_batch(ListSink())
        await ssc.start()
        drop_file(incoming, "a.txt", ["a1"])
        await wait_buffered(lines, 1)
        drop_file(incoming, "b.txt", ["b1", "b2"])
        await wait_buffered(lines, 3)
        await step(ssc)
        await step(ssc)
    assert described == [{"in": {"files": ["a.txt", "b.txt"]}}, {}]


@pytest.mark.parametrize("include_existing", [False, True])
async def test_files_present_at_start(incoming, include_existing):
    drop_file(incoming, "old.txt", ["old"])
    sink = ListSink()
    async with context() as ssc:
        lines = text_file_stream(ssc, incoming, include_existing=include_existing)
        lines.foreach_batch(sink)
        await ssc.start()
        drop_file(incoming, "new.txt", ["new"])
        expected = ["old", "new"] if include_existing else ["new"]
        await wait_buffered(lines, len(expected))
        await step(ssc)
    assert sink.batches == [(1.0, expected)]


@columnar
async def test_line_ends_and_a_last_line_without_newline(incoming, columnar):
    sink = ListSink()
    async with context() as ssc:
        lines = text_file_stream(ssc, incoming, columnar=columnar)
        lines.foreach_batch(sink)
        await ssc.start()
        staging = incoming.parent
        (staging / "mixed").write_bytes(b"unix\nwindows\r\nold mac\rlast")
        os.replace(staging / "mixed", incoming / "mixed")
        (staging / "empty").write_bytes(b"")
        os.replace(staging / "empty", incoming / "empty")
        await wait_buffered(lines, 4)
        await step(ssc)
    assert sink.records == ["unix", "windows", "old mac", "last"]


async def test_concurrent_writers_every_line_once_per_batch(incoming, tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    writers, files_each, lines_each = 4, 20, 30

    def write(round_: int, writer: int) -> list[str]:
        written = []
        for number in range(files_each):
            name = f"r{round_}-w{writer}-f{number}.csv"
            lines = [f"{name}:{line}" for line in range(lines_each)]
            # half the writers stage in the watched directory under a hidden name
            drop_file(incoming, name, lines, staging if writer % 2 else None)
            written += lines
        return written

    async def write_round(round_: int) -> list[str]:
        results: list[list[str]] = [[] for _ in range(writers)]

        async def run_writer(writer: int) -> None:
            results[writer] = await anyio.to_thread.run_sync(write, round_, writer)

        async with anyio.create_task_group() as tg:
            for writer in range(writers):
                tg.start_soon(run_writer, writer)
        return [line for lines in results for line in lines]

    sink = ListSink()
    async with context() as ssc:
        source = DirectorySource(incoming, pattern="*.csv")
        lines = ssc.receiver_stream(source)
        lines.foreach_batch(sink)
        await ssc.start()
        rounds = []
        for round_ in range(2):
            written = await write_round(round_)
            await wait_buffered(lines, len(written))
            await step(ssc)
            rounds.append(written)
        assert len(source.processed) == 2 * writers * files_each
    assert [time for time, _ in sink.batches] == [1.0, 2.0]
    for (_, received), written in zip(sink.batches, rounds, strict=True):
        assert len(received) == writers * files_each * lines_each
        assert Counter(received) == Counter(written)
        # each file's lines arrive together and in order
        by_file: dict[str, list[int]] = {}
        for record in received:
            name, line = record.split(":")
            by_file.setdefault(name, []).append(int(line))
        assert all(numbers == list(range(lines_each)) for numbers in by_file.values())


@columnar
async def test_a_file_is_committed_when_its_last_line_is_output(incoming, tmp_path, columnar):
    ledger = tmp_path / "ledger.json"
    sink = ListSink()
    async with context(buffer_capacity=10) as ssc:
        source = DirectorySource(incoming, ledger=ledger, columnar=columnar)
        lines = ssc.receiver_stream(source)
        lines.foreach_batch(sink)
        await ssc.start()
        drop_file(incoming, "big", [str(n) for n in range(25)])
        for expected in (10, 10, 5):
            await wait_buffered(lines, expected)
            assert [file.name for file in source.processed] == []
            await step(ssc)
        assert [file.name for file in source.processed] == ["big"]
    assert [len(records) for _, records in sink.batches] == [10, 10, 5]
    assert sink.records == [str(n) for n in range(25)]
    saved = json.loads(ledger.read_text())
    stat = (incoming / "big").stat()
    assert saved["files"] == [["big", stat.st_size, stat.st_mtime_ns]]


async def test_ledger_across_restarts_neither_rereads_nor_skips(incoming, tmp_path):
    ledger = tmp_path / "ledger.json"
    drop_file(incoming, "old", ["old"])  # present at the very first start

    def fail_on_b(records: list[str]) -> None:
        if "b" in records:
            raise RuntimeError("downstream is down")

    # first run: "old" is recorded as ignored, "a" is committed, "b"'s batch fails
    first = ListSink()
    with pytest.raises(OperatorError):
        async with context() as ssc:
            lines = text_file_stream(ssc, incoming, ledger=ledger)
            lines.foreach_batch(first)
            lines.foreach_batch(fail_on_b)
            await ssc.start()
            drop_file(incoming, "a", ["a"])
            await wait_buffered(lines, 1)
            await step(ssc)
            drop_file(incoming, "b", ["b"])
            await wait_buffered(lines, 1)
            await step(ssc)
    assert first.records == ["a", "b"]
    assert {name for name, _, _ in json.loads(ledger.read_text())["files"]} == {"old", "a"}

    drop_file(incoming, "c", ["c"])  # arrives while the program is down

    # second run: "b" (uncommitted) and "c" are read; "old" and "a" are not
    second = ListSink()
    async with context() as ssc:
        lines = text_file_stream(ssc, incoming, ledger=ledger)
        lines.foreach_batch(second)
        await ssc.start()
        await wait_buffered(lines, 2)
        await step(ssc)
    assert sorted(second.records) == ["b", "c"]
    assert {name for name, _, _ in json.loads(ledger.read_text())["files"]} == {
        "old",
        "a",
        "b",
        "c",
    }

    # third run: nothing old again
    third = ListSink()
    async with context() as ssc:
        lines = text_file_stream(ssc, incoming, ledger=ledger)
        lines.foreach_batch(third)
        await ssc.start()
        drop_file(incoming, "d", ["d"])
        await wait_buffered(lines, 1)
        await step(ssc)
    assert third.batches == [(1.0, ["d"])]


async def test_a_ledger_in_the_watched_directory_is_not_read(incoming):
    sink = ListSink()
    async with context() as ssc:
        lines = text_file_stream(ssc, incoming, ledger=incoming / "ledger.json")
        lines.foreach_batch(sink)
        await ssc.start()
        drop_file(incoming, "a", ["a"])
        await wait_buffered(lines, 1)
        await step(ssc)  # commits "a": the ledger is rewritten
        drop_file(incoming, "b", ["b"])
        await wait_buffered(lines, 1)
        await step(ssc)
    assert sink.batches == [(1.0, ["a"]), (2.0, ["b"])]
    assert (incoming / "ledger.json").is_file()


async def test_a_processed_file_is_not_read_again_when_it_changes(incoming, tmp_path):
    ledger = tmp_path / "ledger.json"
    sink = ListSink()
    async with context() as ssc:
        source = DirectorySource(incoming, ledger=ledger)
        lines = ssc.receiver_stream(source)
        lines.foreach_batch(sink)
        await ssc.start()
        drop_file(incoming, "report", ["v1"])
        await wait_buffered(lines, 1)
        await step(ssc)
        with (incoming / "report").open("a") as f:  # appended to in place
            f.write("appended\n")
        drop_file(incoming, "other", ["other"])  # the scan that finds it sees both
        await wait_buffered(lines, 1)
        await step(ssc)
        drop_file(incoming, "report", ["version 2"])  # another file renamed over it
        drop_file(incoming, "third", ["third"])
        await wait_buffered(lines, 1)
        await step(ssc)
        processed = {file.name: file.size for file in source.processed}
    assert sink.batches == [(1.0, ["v1"]), (2.0, ["other"]), (3.0, ["third"])]
    assert processed == {"report": len("v1\n"), "other": 6, "third": 6}  # as read
    saved = {name: size for name, size, _ in json.loads(ledger.read_text())["files"]}
    assert saved == processed

    # after a restart, the ledger still says "report" is done
    again = ListSink()
    async with context() as ssc:
        lines = text_file_stream(ssc, incoming, ledger=ledger)
        lines.foreach_batch(again)
        await ssc.start()
        drop_file(incoming, "fourth", ["fourth"])
        await wait_buffered(lines, 1)
        await step(ssc)
    assert again.batches == [(1.0, ["fourth"])]


async def test_a_name_that_left_the_directory_is_new_when_it_comes_back(incoming):
    sink = ListSink()
    async with context() as ssc:
        source = DirectorySource(incoming)
        lines = ssc.receiver_stream(source)
        lines.foreach_batch(sink)
        await ssc.start()
        drop_file(incoming, "report", ["v1"])
        await wait_buffered(lines, 1)
        await step(ssc)
        (incoming / "report").unlink()
        drop_file(incoming, "other", ["other"])  # a scan after the deletion
        await wait_buffered(lines, 1)
        await step(ssc)
        assert {file.name for file in source.processed} == {"other"}
        drop_file(incoming, "report", ["v2"])
        await wait_buffered(lines, 1)
        await step(ssc)
    assert sink.batches == [(1.0, ["v1"]), (2.0, ["other"]), (3.0, ["v2"])]


@columnar
async def test_undecodable_file_fails_loudly_naming_it(incoming, columnar):
    with pytest.raises(ReceiverError) as raised, anyio.fail_after(HANG_GUARD):
        async with context(max_receiver_restarts=0) as ssc:
            text_file_stream(ssc, incoming, columnar=columnar).foreach_batch(ListSink())
            await ssc.start()
            (incoming.parent / "bad").write_bytes(b"ok\n\xff\xfe\n")
            os.replace(incoming.parent / "bad", incoming / "bad")
            await anyio.sleep_forever()
    cause = raised.value.__cause__
    assert isinstance(cause, ConnectorError)
    assert not cause.retriable
    assert "bad" in str(cause)
    assert "errors='replace'" in str(cause)


@columnar
async def test_undecodable_bytes_replaced_on_request(incoming, columnar):
    sink = ListSink()
    async with context() as ssc:
        lines = text_file_stream(ssc, incoming, errors="replace", columnar=columnar)
        lines.foreach_batch(sink)
        await ssc.start()
        (incoming.parent / "bad").write_bytes(b"ok\n\xff\n")
        os.replace(incoming.parent / "bad", incoming / "bad")
        await wait_buffered(lines, 2)
        await step(ssc)
    assert sink.records == ["ok", "\ufffd"]


async def test_columnar_files_are_queried_as_arrow_batches(incoming):
    counts = ListSink()
    async with context() as ssc:
        lines = text_file_stream(ssc, incoming, columnar=True)
        lines.sql("SELECT count(*) AS n, max(line) AS last FROM batch").foreach_batch(counts)
        await ssc.start()
        drop_file(incoming, "a", ["x", "y"])
        drop_file(incoming, "b", ["z"])
        await wait_buffered(lines, 3)
        await step(ssc, 2)
    assert counts.batches == [(1.0, [{"n": 3, "last": "z"}]), (2.0, [{"n": 0, "last": None}])]


async def test_missing_directory_fails_loudly(tmp_path):
    with pytest.raises(ReceiverError) as raised, anyio.fail_after(HANG_GUARD):
        async with context(max_receiver_restarts=0) as ssc:
            text_file_stream(ssc, tmp_path / "nowhere").foreach_batch(ListSink())
            ssc.start()
            await anyio.sleep_forever()
    assert isinstance(raised.value.__cause__, ConnectorError)
    assert "nowhere" in str(raised.value.__cause__)


async def test_corrupt_ledger_fails_loudly(incoming, tmp_path):
    ledger = tmp_path / "ledger.json"
    ledger.write_text('{"something": "else"}')
    with pytest.raises(ReceiverError) as raised, anyio.fail_after(HANG_GUARD):
        async with context(max_receiver_restarts=0) as ssc:
            text_file_stream(ssc, incoming, ledger=ledger).foreach_batch(ListSink())
            ssc.start()
            await anyio.sleep_forever()
    assert "not a ledger" in str(raised.value.__cause__)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"path": ""},
        {"pattern": ""},
        {"encoding": "no-such-codec"},
        {"errors": "no-such-handler"},
        {"rescan_interval": 0},
        {"rescan_interval": float("nan")},
    ],
)
def test_directory_source_invalid_arguments(kwargs, incoming):
    arguments = {"path": incoming, **kwargs}
    with pytest.raises(ConfigurationError):
        DirectorySource(**arguments)


def test_streams_are_named_after_the_directory_unless_named(incoming):
    ssc = StreamingContext(batch_interval=1.0)
    assert text_file_stream(ssc, incoming).name == f"files {incoming}"
    assert text_file_stream(ssc, str(incoming)).name == f"files {incoming} 2"
    assert text_file_stream(ssc, incoming, name="logs").name == "logs"


def test_file_ids_compare_by_value():
    assert FileId("a", 1, 2) == FileId("a", 1, 2)
    assert FileId("a", 1, 2) != FileId("a", 1, 3)


# -- text files sink ---------------------------------------------------------------------


async def test_each_batch_is_written_to_its_own_file(tmp_path):
    prefix = tmp_path / "out" / "counts"
    async with context() as ssc:
        batches = ssc.queue_stream([[("a", 1), ("b", 2)], ["é"]], default=[])
        sink = save_as_text_files(batches, prefix, "txt")
        await ssc.start()
        await step(ssc, 3)
    out = tmp_path / "out"
    assert sorted(path.name for path in out.iterdir()) == [
        "counts-1000.txt",
        "counts-2000.txt",
        "counts-3000.txt",
    ]
    assert (out / "counts-1000.txt").read_text() == "('a', 1)\n('b', 2)\n"
    assert (out / "counts-2000.txt").read_text(encoding="utf-8") == "é\n"
    assert (out / "counts-3000.txt").read_text() == ""  # an empty batch: an empty file
    assert sink.path_for(1.0) == out / "counts-1000.txt"


def test_file_names_use_the_batch_time_in_milliseconds(tmp_path):
    sink = TextFilesSink(tmp_path / "p")
    assert sink.path_for(0.57).name == "p-570"  # 0.57 * 1000 is 569.99...
    assert sink.path_for(0.3).name == "p-300"
    assert sink.path_for(1_700_000_000.25).name == "p-1700000000250"
    assert TextFilesSink(tmp_path / "p", "csv").path_for(2.0).name == "p-2000.csv"


async def test_skip_empty_and_rewriting_a_batch_replaces_its_file(tmp_path):
    sink = TextFilesSink(tmp_path / "p", "txt", skip_empty=True)
    await sink(1.0, [])
    assert list(tmp_path.iterdir()) == []
    await sink(1.0, ["first"])
    await sink(1.0, ["again"])  # a replayed batch
    assert [path.name for path in tmp_path.iterdir()] == ["p-1000.txt"]
    assert (tmp_path / "p-1000.txt").read_text() == "again\n"


async def test_files_are_written_whole_then_renamed_into_place(tmp_path, monkeypatch):
    replaced: list[tuple[Path, Path, str, bool]] = []
    synced: list[int] = []
    real_replace, real_fsync = os.replace, os.fsync

    def spy_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    def spy_replace(source: Any, target: Any) -> None:
        source, target = Path(source), Path(target)
        replaced.append((source, target, source.read_text(), target.exists()))
        assert synced, "the temporary file is flushed to disk before the rename"
        assert threading.current_thread() is not threading.main_thread()
        real_replace(source, target)

    monkeypatch.setattr(files_module.os, "replace", spy_replace)
    monkeypatch.setattr(files_module.os, "fsync", spy_fsync)
    sink = TextFilesSink(tmp_path / "p", "txt")
    await sink(2.0, ["x", "y"])
    ((source, target, content, existed),) = replaced
    assert source.parent == target.parent == tmp_path
    assert source.name.startswith(".")  # hidden from directory sources
    assert content == "x\ny\n"
    assert not existed
    assert target.read_text() == "x\ny\n"
    assert [path.name for path in tmp_path.iterdir()] == ["p-2000.txt"]


async def test_write_failure_fails_the_batch(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OperatorError) as raised:
        async with context() as ssc:
            save_as_text_files(ssc.queue_stream([["x"]]), tmp_path / "file" / "p")
            await ssc.start()
            await step(ssc)
    assert isinstance(raised.value.__cause__, OSError)
    assert list(tmp_path.iterdir()) == [tmp_path / "file"]


async def test_sink_output_is_a_directory_sources_input(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    sink = ListSink()
    async with context() as ssc:
        produced = ssc.queue_stream([["a", "b"], ["c"]])
        save_as_text_files(produced, out / "batch", "txt", skip_empty=True)
        consumed = text_file_stream(ssc, out, pattern="batch-*.txt")
        consumed.foreach_batch(sink)
        await ssc.start()
        await step(ssc)  # batch 1 is written; the source notices the new file
        await wait_buffered(consumed, 2)
        await step(ssc)
        await wait_buffered(consumed, 1)
        await step(ssc)
    assert sink.batches == [(1.0, []), (2.0, ["a", "b"]), (3.0, ["c"])]


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("",), {}),
        (("p", ".txt"), {}),
        (("p", ""), {}),
        (("p", "a/b"), {}),
        (("p",), {"encoding": "no-such-codec"}),
    ],
)
def test_text_files_sink_invalid_arguments(args, kwargs):
    with pytest.raises(ConfigurationError):
        TextFilesSink(*args, **kwargs)
