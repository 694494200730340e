"""A TCP socket text source: Spark's ``socketTextStream`` for streamio.

The receiver connects to a server, reads what it sends in large chunks, cuts it
into lines and stores the lines of each read with one ``put_many``. While the
stream's buffer is full, ``put_many`` waits and the receiver does not read, so the
kernel's socket buffers fill up and TCP makes a fast server wait: memory stays
bounded by the buffer's capacity plus one read.

When the server goes away (end of stream or a connection error), the receiver
tells the listeners (``on_receiver_error``, with ``info.extra["address"]``) and
reconnects with exponential backoff by itself; it does not raise, so a lost
connection does not use up the context's receiver restarts. Only the first
connection, in ``open()``, raises when it fails, so that a wrong address fails
loudly instead of retrying for ever.

Like Spark's socket source this one cannot replay: records a server sent are
delivered at most once. The bytes are decoded as text and nothing else is done
with them (no unpickling).

    from streamio.connectors.socket import socket_text_stream

    lines = socket_text_stream(ssc, "127.0.0.1", 9999)
    lines.flat_map(str.split).count_by_value().pprint()

With ``columnar=True`` the lines stay bytes until Arrow makes them a string
column (``line``): ``lines.sql("SELECT count(*) FROM batch")`` never builds a
Python object per line.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
from typing import Any

import anyio
import anyio.abc

from streamio import DStream, Receiver, ReceiverOutput, StreamingContext
from streamio.checks import check_number, check_whole_number
from streamio.errors import ConfigurationError, ConnectorError

from .text import arrow_lines, check_columnar_encoding, check_encoding

__all__ = ["SocketTextSource", "socket_text_stream"]

logger = logging.getLogger(__name__)


class SocketTextSource(Receiver[str]):
    """Receives the lines a TCP server sends (Spark's ``socketTextStream``).

    Args:
        host: the server's host name or address.
        port: the server's port.
        encoding: how the bytes are decoded.
        errors: what to do with bytes that do not decode (Python's codec error
            handlers); ``"replace"`` by default, as Spark's reader does, so one
            bad byte does not end the stream.
        separator: what ends a line. With the default ``"\\n"``, a ``"\\r"``
            before it is removed too (``"\\r\\n"`` line ends).
        read_size: most bytes read from the socket at once.
        reconnect_backoff: seconds before the first reconnection attempt after
            the server went away; doubled after each failed attempt.
        max_backoff: the longest wait between two reconnection attempts.
        max_reconnects: how many reconnection attempts in a row may fail before
            ``run`` raises (the context then restarts the receiver, or stops once
            its restarts are used up); ``None`` (the default) retries for ever.
        connect_timeout: seconds one connection attempt may take.
        max_line_length: the longest line, in characters (1 Mi by default); see
            below.
        columnar: store each read's lines as an Arrow record batch of one
            string column, ``line``, cut from the bytes in Arrow: no Python
            object per line (``streamio[arrow]``; the text must be UTF-8). Columnar
            operators (``sql``, ``map_batches``) then get the receiver's buffers;
            row-wise ones read the same lines as ``str``.

    A line is complete when its separator arrives; a partial line is kept for
    the next read. When the server closes the connection, the last partial line
    is stored as a line (the server finished it by closing); when the context
    stops, a partial line in hand is dropped.

    A line longer than ``max_line_length`` is stored in pieces of that length,
    each as soon as it is complete (the separator and a ``"\r"`` before it do not
    count): a server that never sends a separator cannot make the receiver hold
    more than about one piece and one read. Nothing is dropped, but such a line
    is no longer one record, so each one is counted in :attr:`lines_split` and
    reported to the listeners (``on_receiver_error``: a ConnectorError naming
    the option, with ``info.extra["lines_split"]``, the count so far).

    Attributes:
        lines_split: how many lines were longer than ``max_line_length`` and
            stored in pieces, since the source was made.

    Raises:
        ConfigurationError: for an invalid argument.
    """

    restartable = True

    def __init__(
        self,
        host: str,
        port: int,
        *,
        encoding: str = "utf-8",
        errors: str = "replace",
        separator: str = "\n",
        read_size: int = 65536,
        reconnect_backoff: float = 0.1,
        max_backoff: float = 10.0,
        max_reconnects: int | None = None,
        connect_timeout: float = 10.0,
        max_line_length: int = 1 << 20,
        columnar: bool = False,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise ConfigurationError(f"host must be a non-empty string, not {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigurationError(f"port must be a whole number from 1 to 65535, not {port!r}")
        check_encoding(encoding, errors)
        if not isinstance(separator, str) or not separator:
            raise ConfigurationError(f"separator must be a non-empty string, not {separator!r}")
        check_whole_number(read_size, "read_size (bytes)")
        check_number(reconnect_backoff, "reconnect_backoff", allow_zero=True)
        check_number(max_backoff, "max_backoff", allow_zero=True)
        if max_backoff < reconnect_backoff:
            raise ConfigurationError(
                f"max_backoff ({max_backoff}) must not be less than "
                f"reconnect_backoff ({reconnect_backoff})"
            )
        if max_reconnects is not None:
            check_whole_number(max_reconnects, "max_reconnects (or None)", minimum=0)
        check_number(connect_timeout, "connect_timeout")
        check_whole_number(max_line_length, "max_line_length (characters)")
        self._columnar = bool(columnar)
        if self._columnar:
            pa = check_columnar_encoding(encoding, "SocketTextSource")
            self.schema = pa.schema([("line", pa.string())])
        self.host = host
        self.port = port
        self._encoding = encoding
        self._errors = errors
        self._separator = separator
        self._read_size = read_size
        self._backoff = float(reconnect_backoff)
        self._max_backoff = float(max_backoff)
        self._max_reconnects = max_reconnects
        self._connect_timeout = float(connect_timeout)
        self._max_line = max_line_length
        self._stream: anyio.abc.SocketStream | None = None
        self.lines_split = 0

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``: what listeners get as ``info.extra["address"]``."""
        return (self.host, self.port)

    def __repr__(self) -> str:
        return f"SocketTextSource({self.host!r}, {self.port!r})"

    async def open(self) -> None:
        """Connect to the server.

        Raises:
            ConnectorError: (retriable) when the server cannot be reached.
        """
        if self._stream is None:
            self._stream = await self._connect()

    async def run(self, output: ReceiverOutput[str]) -> None:
        """Read lines until cancelled, reconnecting whenever the server goes away."""
        delay = self._backoff
        failures = 0
        while True:
            if self._stream is None:
                try:
                    self._stream = await self._connect()
                except ConnectorError as exc:
                    failures += 1
                    await output.report_error(exc, address=self.address)
                    if self._max_reconnects is not None and failures > self._max_reconnects:
                        raise
                    await anyio.sleep(delay)
                    delay = min(delay * 2, self._max_backoff)
                    continue
            failures = 0
            error, received = await self._receive_lines(self._stream, output)
            await self._close_stream()
            logger.info("%s: %s; reconnecting", self, error)
            await output.report_error(error, address=self.address)
            if received:  # a healthy connection: the next reconnection starts afresh
                delay = self._backoff
            await anyio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)

    async def aclose(self) -> None:
        """Close the connection (idempotent)."""
        await self._close_stream()

    async def _connect(self) -> anyio.abc.SocketStream:
        try:
            with anyio.fail_after(self._connect_timeout):
                return await anyio.connect_tcp(self.host, self.port)
        except TimeoutError as exc:
            msg = (
                f"cannot connect to {self.host}:{self.port}: "
                f"no answer within {self._connect_timeout}s"
            )
            raise ConnectorError(msg, retriable=True) from exc
        except OSError as exc:
            msg = f"cannot connect to {self.host}:{self.port}: {exc}"
            raise ConnectorError(msg, retriable=True) from exc

    async def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(OSError, anyio.BrokenResourceError):
                await stream.aclose()

    async def _receive_lines(
        self, stream: anyio.abc.SocketStream, output: ReceiverOutput[str]
    ) -> tuple[ConnectorError, bool]:
        """Store the lines of one connection until it ends.

        Returns the error that ended it and whether anything was received.
        """
        lines: _Lines | _ArrowLines
        if self._columnar:
            lines = _ArrowLines(self._separator.encode(), self._max_line, self._errors)
        else:
            lines = _Lines(self._separator, self._max_line, self._encoding, self._errors)
        received = False
        try:
            while True:
                data = await stream.receive(self._read_size)
                received = True
                complete = lines.feed(data)
                if complete:
                    await self._store(output, complete, lines)
        except anyio.EndOfStream:
            error = ConnectorError(f"{self.host}:{self.port} closed the connection", retriable=True)
        except (OSError, anyio.BrokenResourceError) as exc:
            error = ConnectorError(
                f"connection to {self.host}:{self.port} lost: {exc!r}", retriable=True
            )
            error.__cause__ = exc
        last = lines.finish()
        if last:
            await self._store(output, last, lines)
        return error, received

    async def _store(
        self, output: ReceiverOutput[Any], chunk: Any, lines: _Lines | _ArrowLines
    ) -> None:
        """Store a chunk of lines; count and report the lines that were cut."""
        for _ in range(lines.take_cut()):
            self.lines_split += 1
            error = ConnectorError(
                f"a line from {self.host}:{self.port} is longer than max_line_length "
                f"({self._max_line} characters): it is stored in pieces of that length "
                "(raise max_line_length to keep such lines whole)",
                retriable=True,
            )
            logger.warning("%s: %s", self, error)
            await output.report_error(error, address=self.address, lines_split=self.lines_split)
        await output.put_many(chunk)


class _LineCutter:
    """What both line splitters share: lines longer than ``limit`` are cut into
    pieces of that length, and counted."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._cutting = False  # the current line is being stored in pieces
        self._cut = 0

    def take_cut(self) -> int:
        """How many lines were cut since the last call."""
        cut, self._cut = self._cut, 0
        return cut

    def _cut_long(self, lines: list[str]) -> list[str]:
        """``lines`` with each one longer than the limit cut into pieces."""
        limit = self._limit
        pieces: list[str] = []
        for number, line in enumerate(lines):
            if len(line) <= limit:
                pieces.append(line)
                continue
            pieces.extend(line[start : start + limit] for start in range(0, len(line), limit))
            if number or not self._cutting:  # the first may be counted already
                self._cut += 1
        return pieces


class _Lines(_LineCutter):
    """Cuts the text of one connection into lines: decodes the bytes, keeps the
    partial line between reads, and cuts a line longer than ``limit`` into pieces
    of that length."""

    def __init__(self, separator: str, limit: int, encoding: str, errors: str) -> None:
        super().__init__(limit)
        self._decoder = codecs.getincrementaldecoder(encoding)(errors)
        self._separator = separator
        self._strip_cr = separator == "\n"  # "\r\n" line ends too
        self._probe_length = len(separator) - 1  # a separator may straddle two reads
        # what a partial line may hold beyond the limit: the start of a separator
        # (and a "\r") that may still end it
        self._allowance = self._probe_length + self._strip_cr
        self._pending: list[str] = []  # the text of the current partial line, in pieces
        self._pending_length = 0
        self._tail = ""  # its last probe_length characters

    def feed(self, data: bytes) -> list[str]:
        """The lines (or pieces of lines) that ``data``, the next read, completes."""
        text = self._decoder.decode(data)
        separator, probe_length = self._separator, self._probe_length
        probe = self._tail + text if probe_length else text
        if separator not in probe:
            if text:
                self._pending.append(text)
                self._pending_length += len(text)
                self._tail = probe[-probe_length:] if probe_length else ""
                if self._pending_length > self._limit + self._allowance:
                    return self._pieces_of_pending()
            return []
        if self._pending:
            self._pending.append(text)
            text = "".join(self._pending)
        lines = text.split(separator)
        last = lines.pop()
        self._pending = [last] if last else []
        self._pending_length = len(last)
        self._tail = last[-probe_length:] if probe_length else ""
        if self._strip_cr:
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        # a line is never longer than the text it is part of
        if len(text) > self._limit and max(map(len, lines)) > self._limit:
            lines = self._cut_long(lines)
        self._cutting = False
        return lines

    def finish(self) -> list[str]:
        """The partial line, ended by the end of the stream."""
        last = "".join(self._pending) + self._decoder.decode(b"", final=True)
        self._pending, self._pending_length, self._tail = [], 0, ""
        if self._strip_cr and last.endswith("\r"):
            last = last[:-1]
        lines = [last] if last else []
        if len(last) > self._limit:
            lines = self._cut_long(lines)
        self._cutting = False
        return lines

    def _pieces_of_pending(self) -> list[str]:
        """The complete pieces of the partial line, which is too long: it keeps
        what may still be followed by its separator."""
        limit, keep = self._limit, self._limit + self._allowance
        rest = "".join(self._pending)
        pieces = []
        while len(rest) > keep:
            pieces.append(rest[:limit])
            rest = rest[limit:]
        self._pending, self._pending_length = [rest], len(rest)
        if not self._cutting:
            self._cutting = True
            self._cut += 1
        return pieces


class _ArrowLines(_LineCutter):
    """The columnar :class:`_Lines`: cuts the UTF-8 bytes of one connection into
    record batches of one column, ``line``, in Arrow; same rules for partial and
    long lines. Only the pieces of a line longer than ``limit`` are made in Python."""

    def __init__(self, separator: bytes, limit: int, errors: str) -> None:
        super().__init__(limit)
        self._separator = separator
        self._strip_cr = separator == b"\n"
        self._errors = errors
        # what a partial line may hold beyond the limit (see _Lines)
        self._allowance = len(separator) - 1 + self._strip_cr
        self._pending = b""  # the partial line

    def feed(self, data: bytes) -> Any:
        """The record batch of the lines that ``data``, the next read, completes (or None)."""
        pending = self._pending + data if self._pending else data
        end = pending.rfind(self._separator)
        if end < 0:
            self._pending = pending
            if len(pending) > self._limit + self._allowance:  # bytes: maybe too many characters
                return self._pieces_of_pending()
            return None
        self._pending = pending[end + len(self._separator) :]
        return self._batch(pending[:end])

    def finish(self) -> Any:
        """The partial line, ended by the end of the stream, as a batch (or None)."""
        last, self._pending = self._pending, b""
        if self._strip_cr and last.endswith(b"\r"):
            last = last[:-1]
        return self._batch(last) if last else None

    def _batch(self, data: bytes) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        lines = arrow_lines(data, self._separator, self._errors, self._strip_cr)
        limit = self._limit
        # bytes first (from the offsets alone): a line has at least as many bytes as characters
        if (
            len(data) > limit
            and pc.max(pc.binary_length(lines)).as_py() > limit
            and pc.max(pc.utf8_length(lines)).as_py() > limit
        ):
            lines = pa.array(self._cut_long(lines.to_pylist()), pa.string())
        self._cutting = False
        return pa.record_batch([lines], names=["line"])

    def _pieces_of_pending(self) -> Any:
        """The complete pieces of the partial line when it is too long in characters."""
        import pyarrow as pa

        decoder = codecs.getincrementaldecoder("utf-8")(self._errors)
        rest = decoder.decode(self._pending)
        held = decoder.getstate()[0]  # a character's first bytes, its end still to come
        limit, keep = self._limit, self._limit + self._allowance
        pieces = []
        while len(rest) > keep:
            pieces.append(rest[:limit])
            rest = rest[limit:]
        self._pending = rest.encode("utf-8", "replace") + held
        if not pieces:
            return None
        if not self._cutting:
            self._cutting = True
            self._cut += 1
        return pa.record_batch([pa.array(pieces, pa.string())], names=["line"])


def socket_text_stream(
    ssc: StreamingContext,
    host: str,
    port: int,
    *,
    encoding: str = "utf-8",
    errors: str = "replace",
    separator: str = "\n",
    read_size: int = 65536,
    reconnect_backoff: float = 0.1,
    max_backoff: float = 10.0,
    max_reconnects: int | None = None,
    connect_timeout: float = 10.0,
    max_line_length: int = 1 << 20,
    columnar: bool = False,
    name: str | None = None,
    buffer_capacity: int | None = None,
    max_rate: float | None = None,
) -> DStream[str]:
    """A stream of the lines a TCP server sends (Spark's ``ssc.socketTextStream``).

    The receiver's options are :class:`SocketTextSource`'s; ``name``,
    ``buffer_capacity`` and ``max_rate`` are ``ssc.receiver_stream``'s. The stream
    is called ``"socket <host>:<port>"`` unless ``name`` says otherwise (numbered
    when taken: ``"socket 127.0.0.1:9999 2"``).
    """
    source = SocketTextSource(
        host,
        port,
        encoding=encoding,
        errors=errors,
        separator=separator,
        read_size=read_size,
        reconnect_backoff=reconnect_backoff,
        max_backoff=max_backoff,
        max_reconnects=max_reconnects,
        connect_timeout=connect_timeout,
        max_line_length=max_line_length,
        columnar=columnar,
    )
    return ssc.receiver_stream(
        source,
        name=name,
        buffer_capacity=buffer_capacity,
        max_rate=max_rate,
        default_name=f"socket {host}:{port}",
    )
