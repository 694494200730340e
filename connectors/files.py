"""Files: directory sources (Spark's ``textFileStream`` and ``binaryRecordsStream``)
and a text files sink (Spark's ``saveAsTextFiles``).

Directory source
    :class:`DirectorySource` (or :func:`text_file_stream`) watches one directory
    (not its subdirectories). Every file that appears in it and matches
    ``pattern`` is read once, whole, and its lines become records of the next
    batch. Writers must make files appear complete, as Spark requires: write the
    file elsewhere (another directory of the same file system, or a name starting
    with ``"."``, which the source always ignores) and rename it in with
    ``os.replace``. A file written in place may be read half-written.

    As in Spark's ``textFileStream``, a file is processed once: later changes to
    a processed file (an append, a rewrite, another file renamed over it) are
    ignored, so nothing is read twice. Give every new file a new name. A name is
    forgotten once a scan finds it gone, so a file that is deleted and later
    created again under that name is read as a new file.

    A processed file is recorded as ``FileId(name, size, mtime_ns)``, as it was
    when read. It is *committed* once every output of the batch holding its last
    line has finished. Give ``ledger=`` (the path of a small JSON file) to keep
    the committed files across restarts of your program: on start, every file of
    the directory whose name the ledger does not list is read, so files whose
    batches did not finish before a crash are read again (at least once) and
    committed files are never read twice. ``include_existing`` only decides what
    happens to the files present at the very first start (no ledger file yet, or
    no ledger at all): read them, or record them as done without reading them.

    With checkpointing on, the checkpoint keeps the files done instead (the
    ledger, if given, is still written after each checkpoint): a job resumed
    from a checkpoint reads every file of the directory the checkpoint does not
    list as done.

    The source wakes up when ``watchfiles`` (the ``files`` extra) reports a
    change in the directory, and also rescans it every ``rescan_interval``
    seconds, which catches what file system notifications miss (network file
    systems, a watcher still starting).

Binary records
    :class:`BinaryRecordsSource` (or :func:`binary_records_stream`) watches a
    directory the same way, and splits each new file into ``bytes`` records of
    ``record_length`` bytes (Spark's ``binaryRecordsStream``). A file whose size is
    not a multiple of ``record_length`` cannot be split: it is skipped whole (none
    of its records is stored, since a short last record means a half-written file
    or another format), reported to the listeners (``on_receiver_error``, a
    non-retriable :class:`~streamio.ConnectorError` naming the file, with
    ``info.extra["path"]``), counted in :attr:`BinaryRecordsSource.rejected`, and
    recorded as processed with its batch like any file, so the job goes on. To
    have a fixed file read, rename it in under a new name.

Text files sink
    :class:`TextFilesSink` (or :func:`save_as_text_files`) writes each batch to
    the file ``f"{prefix}-{batch time in ms}.{suffix}"``, one record per line
    (``str(record)``). Spark writes a directory of part files per batch; here each
    batch is one file. The file is written to a temporary name in the same
    directory (starting with ``"."``), flushed to disk and renamed into place, so
    a reader sees the whole batch or nothing; writing the same batch again (after
    a replay) replaces the file. Blocking file I/O runs in a worker thread.

Example::

    from streamio.connectors.files import save_as_text_files, text_file_stream

    lines = text_file_stream(ssc, "incoming", pattern="*.log", ledger="incoming.ledger.json")
    save_as_text_files(lines.filter(lambda line: "ERROR" in line), "out/errors", "txt")
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from streamio import DStream, Receiver, ReceiverOutput, StreamingContext
from streamio.abc import Sink
from streamio.checks import check_number, check_whole_number
from streamio.errors import ConfigurationError, ConnectorError

from .text import arrow_lines, check_columnar_encoding, check_encoding

__all__ = [
    "BinaryRecordsSource",
    "DirectorySource",
    "FileId",
    "FilesPosition",
    "TextFilesSink",
    "binary_records_stream",
    "save_as_text_files",
    "text_file_stream",
]

logger = logging.getLogger(__name__)

_LEDGER_VERSION = 1

T = TypeVar("T")


class FileId(NamedTuple):
    """A file of a watched directory as it was when read. The source reads each
    name once: a later change to the file gives another ``FileId`` but is ignored."""

    name: str
    size: int
    mtime_ns: int


class FilesPosition:
    """How far a directory source has read: its files up to a sequence number.
    What a checkpoint saves of it is the set of files done by then (those of the
    batches the checkpoint covers), taken when it is saved."""

    __slots__ = ("_source", "files", "sequence")

    def __init__(
        self,
        sequence: int,
        source: _WatchedDirectory[Any] | None = None,
        files: frozenset[FileId] = frozenset(),
    ) -> None:
        self.sequence = sequence
        self._source = source
        self.files = files

    def done(self) -> frozenset[FileId]:
        """The files done with once every batch up to this position is finished."""
        if self._source is None:
            return self.files
        return self._source.done_through(self.sequence)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FilesPosition, (self.sequence, None, self.done()))

    def __repr__(self) -> str:
        return f"FilesPosition({self.sequence})"


class _Wake:
    """The watcher's signal to the reading loop: something may have changed."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        if self._event.is_set():
            self._event = anyio.Event()

    async def wait(self) -> None:
        await self._event.wait()


class _Rejected(Exception):
    """A file read whole that cannot become records: skipped, reported, counted."""

    def __init__(self, file: FileId, message: str) -> None:
        super().__init__(message)
        self.file = file


class _WatchedDirectory(Receiver[T]):
    """What the directory sources share: watching, scanning, reading each new file
    once, and the ledger of committed files. A subclass says how a file's content
    becomes records (:meth:`_load`)."""

    restartable = True

    replayable = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        pattern: str,
        include_existing: bool,
        ledger: str | os.PathLike[str] | None,
        rescan_interval: float,
    ) -> None:
        try:
            import watchfiles
        except ImportError:
            msg = f"{type(self).__name__} needs watchfiles: pip install 'streamio[files]'"
            raise ConfigurationError(msg) from None
        self._watchfiles = watchfiles
        self.path = Path(_check_path(path, "path"))
        if not isinstance(pattern, str) or not pattern:
            raise ConfigurationError(f"pattern must be a non-empty glob, not {pattern!r}")
        check_number(rescan_interval, "rescan_interval")
        self.pattern = pattern
        self.include_existing = bool(include_existing)
        self.ledger = None if ledger is None else Path(_check_path(ledger, "ledger"))
        self._directory = os.path.abspath(self.path)
        # a ledger kept in the watched directory is not data
        ledger_directory = None if ledger is None else os.path.dirname(os.path.abspath(ledger))
        self._ledger_name = (
            self.ledger.name
            if self.ledger is not None and ledger_directory == self._directory
            else None
        )
        self._rescan_ms = max(1, round(rescan_interval * 1000))
        self._opened = False
        # by name: committed, or ignored at the first start
        self._done: dict[str, FileId] = {}
        self._queued: set[str] = set()  # stored, waiting for their batch's commit
        self._pending: dict[int, FileId] = {}  # position -> file, in storing order
        self._sequence = 0
        self._rejected: list[FileId] = []
        self._ledger_lock = anyio.Lock()
        self._restored = False  # a checkpoint said which files are done

    def _load(self, path: Path) -> tuple[list[T], os.stat_result]:
        """The records of the file at ``path`` and its status as read (in a worker
        thread). Raises OSError as ``open`` does, :class:`ConnectorError` for a file
        that stops the source, :class:`_Rejected` for one to skip."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, pattern={self.pattern!r})"

    def done_through(self, sequence: int) -> frozenset[FileId]:
        """The files done with once every file stored up to ``sequence`` is committed."""
        done = set(self._done.values())
        done.update(file for seq, file in self._pending.items() if seq <= sequence)
        return frozenset(done)

    async def restore(self, position: Any) -> None:
        """Resume from a checkpoint: the files it lists are done (not read again),
        every other file of the directory is read, whatever the ledger says."""
        if isinstance(position, FilesPosition):
            self._done = {file.name: file for file in position.done()}
            self._sequence = position.sequence
            self._restored = True

    @property
    def processed(self) -> frozenset[FileId]:
        """The files done with (as they were when read): committed, or ignored at
        the first start."""
        return frozenset(self._done.values())

    def matches(self, name: str) -> bool:
        """Whether a file of this name is one to read: it matches, it is not hidden
        and it is not the ledger."""
        return (
            not name.startswith(".")
            and name != self._ledger_name
            and fnmatch.fnmatch(name, self.pattern)
        )

    async def open(self) -> None:
        """Check the directory; at the first start, load the ledger and settle the
        files already there (see ``include_existing``)."""
        if not await anyio.to_thread.run_sync(self.path.is_dir):
            msg = f"{self.path} is not a directory; create it before starting the stream"
            raise ConnectorError(msg, retriable=False)
        if self._opened:
            return
        fresh = not self._restored
        if self.ledger is not None and not self._restored:
            loaded = await anyio.to_thread.run_sync(self._load_ledger)
            if loaded is not None:
                fresh = False
                self._done.update((file.name, file) for file in loaded)
        if fresh and not self.include_existing:
            existing = await anyio.to_thread.run_sync(self._scan)
            self._done.update((file.name, file) for file in existing)
            if self.ledger is not None:
                await self._save_ledger()
        self._opened = True

    async def run(self, output: ReceiverOutput[T]) -> None:
        """Store the lines of every new file, scanning whenever the watcher wakes up."""
        stop = anyio.Event()
        wake = _Wake()
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch, stop, wake, output)
            try:
                # let the watcher subscribe before the first scan, so a file renamed
                # in after that scan is reported (the periodic rescan is the backstop)
                await anyio.lowlevel.checkpoint()
                while True:
                    wake.clear()
                    await self._store_new_files(output)
                    await wake.wait()
            except Exception as exc:
                failure = exc  # raised below, not wrapped in an exception group
            finally:
                # before the task group waits for the watcher: its thread checks this
                stop.set()
        if failure is not None:
            raise failure

    async def commit(self, position: Any) -> None:
        """Every file stored up to ``position`` is in finished batches: record them
        (and rewrite the ledger)."""
        if isinstance(position, FilesPosition):
            position = position.sequence
        finished = [seq for seq in self._pending if seq <= position]
        if not finished:
            return
        for seq in finished:
            file = self._pending.pop(seq)
            self._queued.discard(file.name)
            self._done[file.name] = file
        if self.ledger is not None:
            await self._save_ledger()

    # -- watching and reading ------------------------------------------------------

    async def _watch(self, stop: anyio.Event, wake: _Wake, output: ReceiverOutput[T]) -> None:
        """Wake the reading loop on every relevant change, and at least every
        ``rescan_interval``; if the watcher fails (no more inotify watches, say),
        report it and keep rescanning on the interval alone."""
        watchfiles = self._watchfiles
        deleted = watchfiles.Change.deleted

        def relevant(change: Any, path: str) -> bool:
            return change != deleted and self.matches(os.path.basename(path))

        try:
            async for _ in watchfiles.awatch(
                self.path,
                watch_filter=relevant,
                stop_event=stop,
                step=20,
                rust_timeout=self._rescan_ms,
                yield_on_timeout=True,
                recursive=False,
            ):
                wake.set()
        except Exception as exc:
            interval = self._rescan_ms / 1000
            error = ConnectorError(
                f"watching {self.path} failed ({exc!r}); rescanning every {interval}s instead",
                retriable=True,
            )
            error.__cause__ = exc
            logger.warning("%s", error)
            await output.report_error(error, path=str(self.path))
            while not stop.is_set():
                with anyio.move_on_after(interval):
                    await stop.wait()
                wake.set()

    async def _store_new_files(self, output: ReceiverOutput[T]) -> None:
        listing = await anyio.to_thread.run_sync(self._scan)
        # forget the names that left the directory: the ledger only ever lists
        # what is there, and a file created again under such a name is new
        present = {file.name for file in listing}
        for name in self._done.keys() - present:
            del self._done[name]
        for listed in listing:
            name = listed.name
            if name in self._done or name in self._queued:
                continue  # processed: a later change is ignored
            try:
                read = await anyio.to_thread.run_sync(self._read, name)
            except _Rejected as rejected:
                await self._reject(output, rejected)
                continue
            if read is None:  # gone since the scan
                continue
            file, records = read  # as it was when read (a writer may still be at it)
            self._sequence += 1
            self._pending[self._sequence] = file
            self._queued.add(name)
            logger.debug("%s: %d records from %s", self, len(records), file.name)
            await output.put_many(
                records,
                position=FilesPosition(self._sequence, self),
                metadata={"files": [file.name]},
            )

    async def _reject(self, output: ReceiverOutput[T], rejected: _Rejected) -> None:
        """Skip a file that cannot become records: report it, count it, and record
        it as processed with the next batch (an empty chunk carries its position)."""
        file = rejected.file
        self._rejected.append(file)
        self._sequence += 1
        self._pending[self._sequence] = file
        self._queued.add(file.name)
        error = ConnectorError(str(rejected), retriable=False)
        logger.warning("%r: %s", self, error)
        await output.report_error(error, path=str(self.path / file.name))
        await output.put_many([], position=FilesPosition(self._sequence, self))

    def _scan(self) -> list[FileId]:
        """The matching regular files, oldest first."""
        files = []
        try:
            with os.scandir(self.path) as entries:
                for entry in entries:
                    if not self.matches(entry.name):
                        continue
                    try:
                        if not entry.is_file():
                            continue
                        stat = entry.stat()
                    except FileNotFoundError:
                        continue
                    files.append(FileId(entry.name, stat.st_size, stat.st_mtime_ns))
        except OSError as exc:
            raise ConnectorError(f"cannot list {self.path}: {exc}", retriable=True) from exc
        files.sort(key=lambda file: (file.mtime_ns, file.name))
        return files

    def _read(self, name: str) -> tuple[FileId, list[T]] | None:
        """The file's records (None: it is gone), in a worker thread."""
        path = self.path / name
        try:
            records, stat = self._load(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConnectorError(f"cannot read {path}: {exc}", retriable=True) from exc
        return FileId(name, stat.st_size, stat.st_mtime_ns), records

    # -- the ledger ----------------------------------------------------------------------

    def _load_ledger(self) -> set[FileId] | None:
        assert self.ledger is not None
        try:
            data = json.loads(self.ledger.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            msg = f"cannot read the ledger {self.ledger}: {exc}"
            raise ConnectorError(msg, retriable=False) from exc
        try:
            if data["version"] != _LEDGER_VERSION:
                raise ValueError(f"unknown version {data['version']!r}")
            return {FileId(str(name), int(size), int(mtime)) for name, size, mtime in data["files"]}
        except (KeyError, TypeError, ValueError) as exc:
            msg = (
                f"{self.ledger} is not a ledger of {type(self).__name__} ({exc!r}); "
                "remove it to start afresh"
            )
            raise ConnectorError(msg, retriable=False) from exc

    async def _save_ledger(self) -> None:
        async with self._ledger_lock:
            files = sorted(self._done.values())
            data = {
                "version": _LEDGER_VERSION,
                "directory": self._directory,
                "files": [list(file) for file in files],
            }
            assert self.ledger is not None
            path = self.ledger

            def write(f: IO[str]) -> None:
                json.dump(data, f, indent=0)

            await anyio.to_thread.run_sync(_replace_atomically, path, write, "utf-8")


class DirectorySource(_WatchedDirectory[str]):
    """Reads the files that appear in a directory, line by line (Spark's
    ``textFileStream``).

    Args:
        path: the directory to watch; it must exist.
        pattern: a glob (``fnmatch``) on file names; other files are ignored, and
            so are names starting with ``"."`` (temporary files by convention).
        include_existing: at the first start, read the files already in the
            directory (True) or record them as done without reading them (False).
            With a ledger that already exists, every file it does not list is read.
        ledger: the path of a JSON file where committed files are recorded (written
            atomically after each batch that completed files); None keeps them in
            memory only, for the life of this object.
        encoding: how files are decoded. Line ends are ``\\n``, ``\\r\\n`` or ``\\r``.
        errors: what to do with bytes that do not decode (Python's codec error
            handlers). With ``"strict"`` (the default) such a file makes the
            receiver raise :class:`~streamio.ConnectorError`, naming the file,
            before any of its lines is stored.
        rescan_interval: seconds between two scans of the directory when no
            change was reported.
        columnar: store each file's lines as an Arrow record batch of one string
            column, ``line``, cut from the file's bytes in Arrow: no Python object
            per line (``streamio[arrow]``; the files must be UTF-8). Row-wise
            operators read the same lines as ``str``.

    Each file is read whole into memory, then stored with one ``put_many``; the
    stream's buffer bounds how many lines wait for batches. Each name is read
    once, as Spark does: later changes to a processed file are ignored.

    Raises:
        ConfigurationError: for an invalid argument, or when ``watchfiles`` is
            not installed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        pattern: str = "*",
        include_existing: bool = False,
        ledger: str | os.PathLike[str] | None = None,
        encoding: str = "utf-8",
        errors: str = "strict",
        rescan_interval: float = 1.0,
        columnar: bool = False,
    ) -> None:
        check_encoding(encoding, errors)
        self._columnar = bool(columnar)
        if self._columnar:
            pa = check_columnar_encoding(encoding, "DirectorySource")
            self.schema = pa.schema([("line", pa.string())])
        super().__init__(
            path,
            pattern=pattern,
            include_existing=include_existing,
            ledger=ledger,
            rescan_interval=rescan_interval,
        )
        self._encoding = encoding
        self._errors = errors

    def _load(self, path: Path) -> tuple[Any, os.stat_result]:
        """The file's lines: a list of ``str``, or with ``columnar`` a record batch
        of one string column, ``line``."""
        try:
            if self._columnar:
                with open(path, "rb") as f:
                    data = f.read()
                    stat = os.fstat(f.fileno())
                return self._arrow_lines(data), stat
            with open(path, encoding=self._encoding, errors=self._errors, newline=None) as f:
                text = f.read()
                stat = os.fstat(f.fileno())
        except UnicodeDecodeError as exc:
            msg = (
                f"{path} is not valid {self._encoding} text ({exc.reason} at byte "
                f"{exc.start}); fix or remove the file, or pass errors='replace'"
            )
            raise ConnectorError(msg, retriable=False) from exc
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        return lines, stat

    def _arrow_lines(self, data: bytes) -> Any:
        """The lines of a file's bytes as a record batch, cut in Arrow (universal
        line ends, as text mode reads them)."""
        import pyarrow as pa

        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if data.endswith(b"\n"):
            data = data[:-1]
        elif not data:
            return pa.record_batch([pa.array([], pa.string())], names=["line"])
        lines = arrow_lines(data, b"\n", self._errors, strip_cr=False)
        return pa.record_batch([lines], names=["line"])


class BinaryRecordsSource(_WatchedDirectory[bytes]):
    """Reads the files that appear in a directory as fixed-length ``bytes``
    records (Spark's ``binaryRecordsStream``).

    Args:
        path, pattern, include_existing, ledger, rescan_interval: as for
            :class:`DirectorySource`.
        record_length: the bytes of every record; each file is cut into
            ``size // record_length`` records, in order.

    A file whose size is not a multiple of ``record_length`` is skipped whole,
    reported to the listeners, counted in :attr:`rejected` and recorded as
    processed (see the module's docstring); an empty file gives no record.

    Raises:
        ConfigurationError: for an invalid argument, or when ``watchfiles`` is
            not installed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        record_length: int,
        *,
        pattern: str = "*",
        include_existing: bool = False,
        ledger: str | os.PathLike[str] | None = None,
        rescan_interval: float = 1.0,
    ) -> None:
        self.record_length = check_whole_number(record_length, "record_length (bytes)")
        super().__init__(
            path,
            pattern=pattern,
            include_existing=include_existing,
            ledger=ledger,
            rescan_interval=rescan_interval,
        )

    @property
    def rejected(self) -> tuple[FileId, ...]:
        """The files skipped because their size is not a multiple of
        ``record_length``, in the order they were found (their bytes are in
        :attr:`FileId.size`)."""
        return tuple(self._rejected)

    def _load(self, path: Path) -> tuple[list[bytes], os.stat_result]:
        with open(path, "rb") as f:
            data = f.read()
            stat = os.fstat(f.fileno())
        length = self.record_length
        if len(data) % length:
            file = FileId(path.name, len(data), stat.st_mtime_ns)
            msg = (
                f"{path} is {len(data):,} bytes, not a multiple of record_length={length}: "
                f"skipped whole ({len(data) // length:,} records and {len(data) % length} "
                "bytes); rename a fixed file in under a new name to have it read"
            )
            raise _Rejected(file, msg)
        return [data[start : start + length] for start in range(0, len(data), length)], stat


def text_file_stream(
    ssc: StreamingContext,
    path: str | os.PathLike[str],
    *,
    pattern: str = "*",
    include_existing: bool = False,
    ledger: str | os.PathLike[str] | None = None,
    encoding: str = "utf-8",
    errors: str = "strict",
    rescan_interval: float = 1.0,
    columnar: bool = False,
    name: str | None = None,
    buffer_capacity: int | None = None,
    max_rate: float | None = None,
) -> DStream[str]:
    """A stream of the lines of the files that appear in ``path`` (Spark's
    ``ssc.textFileStream``).

    The receiver's options are :class:`DirectorySource`'s; ``name``,
    ``buffer_capacity`` and ``max_rate`` are ``ssc.receiver_stream``'s. The stream
    is called ``"files <path>"`` unless ``name`` says otherwise (numbered when
    taken: ``"files incoming 2"``).
    """
    source = DirectorySource(
        path,
        pattern=pattern,
        include_existing=include_existing,
        ledger=ledger,
        encoding=encoding,
        errors=errors,
        rescan_interval=rescan_interval,
        columnar=columnar,
    )
    return ssc.receiver_stream(
        source,
        name=name,
        buffer_capacity=buffer_capacity,
        max_rate=max_rate,
        default_name=f"files {os.fspath(path)}",
    )


def binary_records_stream(
    ssc: StreamingContext,
    path: str | os.PathLike[str],
    record_length: int,
    *,
    pattern: str = "*",
    include_existing: bool = False,
    ledger: str | os.PathLike[str] | None = None,
    rescan_interval: float = 1.0,
    name: str | None = None,
    buffer_capacity: int | None = None,
    max_rate: float | None = None,
) -> DStream[bytes]:
    """A stream of the ``record_length``-byte records of the files that appear in
    ``path`` (Spark's ``ssc.binaryRecordsStream``).

    The receiver's options are :class:`BinaryRecordsSource`'s; ``name``,
    ``buffer_capacity`` and ``max_rate`` are ``ssc.receiver_stream``'s. The stream
    is called ``"binary files <path>"`` unless ``name`` says otherwise.
    """
    source = BinaryRecordsSource(
        path,
        record_length,
        pattern=pattern,
        include_existing=include_existing,
        ledger=ledger,
        rescan_interval=rescan_interval,
    )
    return ssc.receiver_stream(
        source,
        name=name,
        buffer_capacity=buffer_capacity,
        max_rate=max_rate,
        default_name=f"binary files {os.fspath(path)}",
    )


class TextFilesSink(Sink[Any]):
    """Writes each batch to its own text file (Spark's ``saveAsTextFiles``).

    Use it as an output function: ``stream.foreach_batch(TextFilesSink("out/counts",
    "txt"))`` writes ``out/counts-1000.txt`` for the batch at 1.0 s, and so on;
    missing directories are created.

    Args:
        prefix: the path of the files, before ``-<batch time in ms>``.
        suffix: the extension, without its dot; None for none.
        encoding: how lines are encoded.
        skip_empty: write no file for a batch without records (by default an
            empty file is written, as Spark writes an empty output).

    Raises:
        ConfigurationError: for an invalid argument.
    """

    def __init__(
        self,
        prefix: str | os.PathLike[str],
        suffix: str | None = None,
        *,
        encoding: str = "utf-8",
        skip_empty: bool = False,
    ) -> None:
        self.prefix = _check_path(prefix, "prefix")
        if suffix is not None:
            if not isinstance(suffix, str) or not suffix:
                raise ConfigurationError(f"suffix must be None or a non-empty string: {suffix!r}")
            if suffix.startswith("."):
                msg = f"give the suffix without its dot: {suffix[1:]!r}, not {suffix!r}"
                raise ConfigurationError(msg)
            if "/" in suffix or os.sep in suffix:
                raise ConfigurationError(f"suffix must not contain a path separator: {suffix!r}")
        self.suffix = suffix
        check_encoding(encoding, "strict")
        self.encoding = encoding
        self.skip_empty = bool(skip_empty)

    def __repr__(self) -> str:
        return f"TextFilesSink({self.prefix!r}, {self.suffix!r})"

    def path_for(self, batch_time: float) -> Path:
        """The file of the batch at ``batch_time``: ``prefix-<ms>[.suffix]``."""
        name = f"{self.prefix}-{round(batch_time * 1000)}"
        return Path(name if self.suffix is None else f"{name}.{self.suffix}")

    async def __call__(self, batch_time: float, records: list[Any]) -> None:
        """Write the batch's file (in a worker thread); returns once it is in place."""
        if self.skip_empty and not records:
            return
        path = self.path_for(batch_time)

        def write(f: IO[str]) -> None:
            f.writelines(f"{record}\n" for record in records)

        await anyio.to_thread.run_sync(_replace_atomically, path, write, self.encoding)


def save_as_text_files(
    stream: DStream[Any],
    prefix: str | os.PathLike[str],
    suffix: str | None = None,
    *,
    encoding: str = "utf-8",
    skip_empty: bool = False,
    name: str | None = None,
) -> TextFilesSink:
    """Write every batch of ``stream`` to ``prefix-<batch time in ms>[.suffix]``
    (Spark's ``saveAsTextFiles``); returns the sink (see :class:`TextFilesSink`)."""
    sink = TextFilesSink(prefix, suffix, encoding=encoding, skip_empty=skip_empty)
    stream.foreach_batch(sink, name=name)
    return sink


# -- helpers ----------------------------------------------------------------------------


def _replace_atomically(path: Path, write: Callable[[IO[str]], None], encoding: str) -> None:
    """Write a file under a temporary name in its directory, flush it to disk and
    rename it into place: readers see the old file or the whole new one."""
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(fd, "w", encoding=encoding, newline="\n") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    # make the rename itself durable; not every platform can open a directory
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _check_path(value: Any, what: str) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{what} must be a non-empty path, not {value!r}")
    return value
