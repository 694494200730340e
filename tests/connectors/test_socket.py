"""The TCP socket text source against real servers on 127.0.0.1.

The test servers use raw non-blocking sockets, so a test knows exactly when the
kernel refuses more data (a write that blocks) and can close or reset a
connection in the middle of a stream.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import tracemalloc
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from streamio import (
    ConfigurationError,
    DStream,
    ReceiverError,
    ReceiverInfo,
    StreamingContext,
    StreamingListener,
)
from streamio.connectors.socket import SocketTextSource, socket_text_stream
from streamio.errors import ConnectorError
from streamio.testing import ListSink, ManualClock, step

# Upper bound for a wait that only a bug could make endless.
HANG_GUARD = 10
HOST = "127.0.0.1"


class Connection:
    """One accepted connection; ``send`` counts what the kernel took and when it
    refused more (the receiver is not reading: TCP backpressure)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.sent_bytes = 0
        self.blocked_writes = 0
        self.write_blocked = anyio.Event()

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                count = self.sock.send(view)
            except BlockingIOError:
                self.blocked_writes += 1
                self.write_blocked.set()
                await anyio.wait_writable(self.sock)
                continue
            self.sent_bytes += count
            view = view[count:]
        await anyio.lowlevel.checkpoint()

    def close(self) -> None:
        """Close normally: the receiver reads the end of the stream."""
        self.sock.close()

    def reset(self) -> None:
        """Abort the connection: the receiver gets a connection error (RST)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    async def wait_peer_closed(self) -> None:
        """Return once the receiver has closed its end (reads what is left)."""
        while True:
            try:
                if self.sock.recv(65536) == b"":
                    return
            except BlockingIOError:
                await anyio.wait_readable(self.sock)


class LineServer:
    """A listening socket on 127.0.0.1 whose connections the test accepts one by one."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, port))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.connections: list[Connection] = []

    async def accept(self) -> Connection:
        with anyio.fail_after(HANG_GUARD):
            while True:
                try:
                    sock, _ = self.sock.accept()
                except BlockingIOError:
                    await anyio.wait_readable(self.sock)
                    continue
                connection = Connection(sock)
                self.connections.append(connection)
                return connection

    def close(self) -> None:
        self.sock.close()
        for connection in self.connections:
            connection.sock.close()


@pytest.fixture
def server():
    server = LineServer()
    yield server
    server.close()


class ReceiverEvents(StreamingListener):
    """Keeps the receiver callbacks; a test can wait for the n-th error."""

    def __init__(self) -> None:
        self.started: list[ReceiverInfo] = []
        self.errors: list[ReceiverInfo] = []
        self._changed = anyio.Event()

    def on_receiver_started(self, info: ReceiverInfo) -> None:
        self.started.append(info)

    def on_receiver_error(self, info: ReceiverInfo) -> None:
        self.errors.append(info)
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_errors(self, count: int) -> None:
        with anyio.fail_after(HANG_GUARD):
            while len(self.errors) < count:
                await self._changed.wait()


async def wait_buffered(stream: DStream[Any], count: int) -> None:
    """Return once the stream's buffer holds at least ``count`` records."""
    with anyio.fail_after(HANG_GUARD):
        await stream.wait_for_buffer(lambda stats: stats.used >= count)


def context(**kwargs: Any) -> StreamingContext:
    return StreamingContext(batch_interval=1.0, clock=ManualClock(), **kwargs)


# -- lines ----------------------------------------------------------------------------

# The line tests run row-wise and columnar (lines cut in Arrow): the same records.
columnar = pytest.mark.parametrize("columnar", [False, True], ids=["rows", "columnar"])


@columnar
async def test_each_batch_holds_the_lines_the_server_sent(server, columnar):
    sink = ListSink()
    async with context() as ssc:
        lines = socket_text_stream(ssc, HOST, server.port, columnar=columnar)
        lines.foreach_batch(sink)
        await ssc.start()
        conn = await server.accept()
        await conn.send(b"alpha\nbe")
        rest = "ta\r\ngrüße\n\nlast".encode()
        umlaut = rest.index("ü".encode())
        await conn.send(rest[: umlaut + 1])  # a character split between two reads
        await conn.send(rest[umlaut + 1 :])
        await wait_buffered(lines, 4)
        await step(ssc)
        await conn.send(b"-line\n")  # completes the partial line carried over
        await wait_buffered(lines, 1)
        await step(ssc)
        await step(ssc)
    assert sink.batches == [
        (1.0, ["alpha", "beta", "grüße", ""]),
        (2.0, ["last-line"]),
        (3.0, []),
    ]


async def test_each_read_is_stored_as_one_chunk(server):
    puts: list[int] = []

    class CountingSource(SocketTextSource):
        async def run(self, output):
            put_many = output.put_many

            async def counting_put_many(records, position=None):
                records = list(records)
                puts.append(len(records))
                await put_many(records, position)

            output.put_many = counting_put_many
            await super().run(output)

    sink = ListSink()
    async with context() as ssc:
        lines = ssc.receiver_stream(CountingSource(HOST, server.port))
        lines.foreach_batch(sink)
        await ssc.start()
        conn = await server.accept()
        await conn.send(b"".join(b"line %d\n" % i for i in range(500)))
        await wait_buffered(lines, 500)
        await step(ssc)
    assert sink.records == [f"line {i}" for i in range(500)]
    assert sum(puts) == 500
    assert len(puts) < 500  # lines arrive many per read, not one put per line


async def test_custom_separator_encoding_and_long_lines(server):
    sink = ListSink()
    long_line = "é" * 5000
    async with context() as ssc:
        lines = socket_text_stream(
            ssc, HOST, server.port, separator="||", encoding="latin-1", read_size=7
        )
        lines.foreach_batch(sink)
        await ssc.start()
        conn = await server.accept()
        await conn.send("a\r||b|".encode("latin-1"))  # the separator straddles two reads
        await wait_buffered(lines, 1)
        await conn.send(f"|{long_line}||c".encode("latin-1"))
        await wait_buffered(lines, 3)
        await step(ssc)
    assert sink.batches == [(1.0, ["a\r", "b", long_line])]


@columnar
@pytest.mark.parametrize("read_size", [3, 64])
async def test_lines_longer_than_max_line_length_are_stored_in_pieces_and_counted(
    server, read_size, columnar
):
    listener = ReceiverEvents()
    sink = ListSink()
    source = SocketTextSource(
        HOST, server.port, max_line_length=4, read_size=read_size, columnar=columnar
    )
    async with context() as ssc:
        ssc.add_listener(listener)
        lines = ssc.receiver_stream(source)
        lines.foreach_batch(sink)
        await ssc.start()
        conn = await server.accept()
        # at most 4 characters a line, the line end aside: the same pieces whether
        # a line arrives in one read or in many
        await conn.send(b"abcd\r\nabcdefghij\nxy\n")
        await wait_buffered(lines, 5)
        await conn.send(b"0123456789" * 2)
        await wait_buffered(lines, 9)  # complete pieces are stored before the line ends
        conn.close()  # the end of the stream ends the last line
        await listener.wait_errors(3)
        await step(ssc)
    assert sink.batches == [
        (1.0, ["abcd", "abcd", "efgh", "ij", "xy", "0123", "4567", "8901", "2345", "6789"])
    ]
    assert source.lines_split == 2
    cut = [info for info in listener.errors if "max_line_length" in str(info.error)]
    assert [info.extra["lines_split"] for info in cut] == [1, 2]
    assert all(isinstance(info.error, ConnectorError) for info in cut)
    assert "(4 characters)" in str(cut[0].error)


@columnar
async def test_a_separator_straddling_the_limit_still_ends_its_line(server, columnar):
    sink = ListSink()
    async with context() as ssc:
        lines = socket_text_stream(
            ssc, HOST, server.port, separator="||", max_line_length=3, columnar=columnar
        )
        lines.foreach_batch(sink)
        await ssc.start()
        conn = await server.accept()
        await conn.send(b"abc|")
        await conn.send(b"|d||")  # the line of exactly 3 characters ends here
        await wait_buffered(lines, 2)
        await step(ssc)
    assert sink.batches == [(1.0, ["abc", "d"])]


async def test_a_hostile_server_without_newlines_keeps_memory_bounded(server):
    limit = 1 << 20  # the default max_line_length
    total = 40 * limit  # 40 MiB, no newline
    block = b"x" * 65536
    listener = ReceiverEvents()
    sink = ListSink()

    async def flood(conn: Connection) -> None:
        for _ in range(total // len(block)):
            await conn.send(block)
        conn.close()

    tracemalloc.start()
    try:
        async with context(buffer_capacity=2) as ssc, anyio.create_task_group() as tg:
            ssc.add_listener(listener)
            lines = socket_text_stream(ssc, HOST, server.port)
            lines.map(len).foreach_batch(sink)
            await ssc.start()
            conn = await server.accept()
            tracemalloc.reset_peak()
            tg.start_soon(flood, conn)
            with anyio.fail_after(HANG_GUARD * 6):
                while sum(sink.records) < total:
                    count = min(2, (total - sum(sink.records)) // limit)
                    await lines.wait_for_buffer(lambda stats, count=count: stats.used >= count)
                    await step(ssc)
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sink.records == [limit] * 40  # every character, in pieces of the limit
    # a few pieces (buffer, partial line, its join, reads in flight): about 5 MiB on
    # asyncio's loop, 9 on uvloop (larger reads); the whole line would take 80
    assert peak < 16 * limit
    cut = [info for info in listener.errors if "max_line_length" in str(info.error)]
    assert [info.extra["lines_split"] for info in cut] == [1]


# -- the server goes away ---------------------------------------------------------------


async def test_disconnects_are_reported_and_the_receiver_reconnects(server):
    listener = ReceiverEvents()
    sink = ListSink()
    async with context() as ssc:
        ssc.add_listener(listener)
        lines = socket_text_stream(ssc, HOST, server.port, reconnect_backoff=0.01, name="lines")
        lines.foreach_batch(sink)
        await ssc.start()

        first = await server.accept()
        await first.send(b"one\ntwo\nunfinished")
        await wait_buffered(lines, 2)
        first.close()  # end of stream in the middle of a line
        await listener.wait_errors(1)
        second = await server.accept()  # the receiver came back by itself
        await second.send(b"three\n")
        await wait_buffered(lines, 4)
        await step(ssc)

        second.reset()  # a connection error this time
        await listener.wait_errors(2)
        third = await server.accept()
        await third.send(b"four\n")
        await wait_buffered(lines, 1)
        await step(ssc)

    assert sink.batches == [(1.0, ["one", "two", "unfinished", "three"]), (2.0, ["four"])]
    assert len(listener.errors) == 2
    for info in listener.errors:
        assert info.stream == "lines"
        assert info.attempt == 1  # reported by the receiver, not a restart
        assert info.extra == {"address": (HOST, server.port)}
        assert isinstance(info.error, ConnectorError)
        assert info.error.retriable
    assert "closed the connection" in str(listener.errors[0].error)
    assert "lost" in str(listener.errors[1].error)
    assert [info.attempt for info in listener.started] == [1]


async def test_reconnects_with_backoff_while_the_server_is_down():
    server = LineServer()
    port = server.port
    listener = ReceiverEvents()
    sink = ListSink()
    try:
        async with context() as ssc:
            ssc.add_listener(listener)
            lines = socket_text_stream(ssc, HOST, port, reconnect_backoff=0.005, max_backoff=0.02)
            lines.foreach_batch(sink)
            await ssc.start()
            conn = await server.accept()
            await conn.send(b"before\n")
            await wait_buffered(lines, 1)
            server.close()  # the server is gone: nothing listens on the port
            await listener.wait_errors(4)  # the end of stream, then refused attempts
            server = LineServer(port)  # back on the same port
            conn = await server.accept()
            await conn.send(b"after\n")
            await wait_buffered(lines, 2)
            await step(ssc)
    finally:
        server.close()
    assert sink.batches == [(1.0, ["before", "after"])]
    refused = listener.errors[1:]
    assert all(isinstance(info.error, ConnectorError) for info in refused)
    assert all(isinstance(info.error.__cause__, OSError) for info in refused)
    assert all("cannot connect" in str(info.error) for info in refused)
    assert [info.attempt for info in listener.started] == [1]


async def test_max_reconnects_then_the_error_goes_to_the_supervisor():
    server = LineServer()
    listener = ReceiverEvents()
    with pytest.raises(ReceiverError) as raised, anyio.fail_after(HANG_GUARD):
        async with context(max_receiver_restarts=0) as ssc:
            ssc.add_listener(listener)
            socket_text_stream(
                ssc, HOST, server.port, reconnect_backoff=0.001, max_reconnects=2
            ).foreach_batch(ListSink())
            await ssc.start()
            conn = await server.accept()
            server.close()
            conn.close()
            await anyio.sleep_forever()
    cause = raised.value.__cause__
    assert isinstance(cause, ConnectorError)
    assert cause.retriable
    # end of stream, three refused attempts reported, then the supervisor's report
    assert len(listener.errors) == 5
    assert listener.errors[-1].error is cause


async def test_first_connection_failure_fails_loudly():
    server = LineServer()
    port = server.port
    server.close()  # nothing listens there
    with pytest.raises(ReceiverError) as raised, anyio.fail_after(HANG_GUARD):
        async with context(max_receiver_restarts=1, receiver_restart_backoff=0) as ssc:
            socket_text_stream(ssc, HOST, port).foreach_batch(ListSink())
            ssc.start()
            await anyio.sleep_forever()
    assert raised.value.attempts == 2
    cause = raised.value.__cause__
    assert isinstance(cause, ConnectorError)
    assert f"cannot connect to {HOST}:{port}" in str(cause)


async def test_graceful_stop_delivers_buffered_lines_and_closes_the_connection(server):
    sink = ListSink()
    async with context() as ssc:
        lines = socket_text_stream(ssc, HOST, server.port)
        lines.foreach_batch(sink)
        await ssc.start()
        conn = await server.accept()
        await conn.send(b"x\ny\n")
        await wait_buffered(lines, 2)
    assert sink.batches == [(1.0, ["x", "y"])]
    with anyio.fail_after(HANG_GUARD):
        await conn.wait_peer_closed()


# -- backpressure -----------------------------------------------------------------------


async def test_a_fast_server_is_throttled_by_tcp_and_memory_stays_bounded(server):
    capacity = 1000
    block_lines = 100

    def line(number: int) -> bytes:
        return b"%09d " % number + b"x" * 90 + b"\n"  # 100 bytes

    line_bytes = len(line(0))
    stop = anyio.Event()
    state = {"lines_sent": 0, "done": False}

    async def produce(conn: Connection) -> None:
        """Write as fast as the kernel takes it until told to stop."""
        number = 0
        while not stop.is_set():
            await conn.send(b"".join(line(n) for n in range(number, number + block_lines)))
            number += block_lines
            state["lines_sent"] = number
        conn.close()
        state["done"] = True

    sink = ListSink()
    tracemalloc.start()
    try:
        async with context(buffer_capacity=capacity) as ssc, anyio.create_task_group() as tg:
            lines = socket_text_stream(ssc, HOST, server.port)
            lines.foreach_batch(sink)
            await ssc.start()
            conn = await server.accept()
            tracemalloc.reset_peak()
            tg.start_soon(produce, conn)

            with anyio.fail_after(HANG_GUARD):
                # the buffer is full and the receiver waits in put_many, not reading...
                await lines.wait_for_buffer(
                    lambda stats: stats.used == capacity and stats.waiting_senders == 1
                )
                # ...so the kernel's buffers fill and the server's writes block
                conn.write_blocked = anyio.Event()
                await conn.write_blocked.wait()
            peak = tracemalloc.get_traced_memory()[1]
            stats = lines.buffer_statistics()
            assert stats.used == capacity
            assert stats.waiting_senders == 1
            assert conn.sent_bytes > 2 * capacity * line_bytes  # far more than the buffer
            assert peak < 2_000_000  # yet the process holds about the buffer and one read

            stop.set()
            with anyio.fail_after(HANG_GUARD):
                while not state["done"] or len(sink.records) < state["lines_sent"]:
                    remaining = state["lines_sent"] - len(sink.records)
                    target = max(0, min(capacity, remaining))
                    await lines.wait_for_buffer(lambda stats, target=target: stats.used >= target)
                    await step(ssc)
    finally:
        tracemalloc.stop()
    expected = [line(n)[:-1].decode() for n in range(state["lines_sent"])]
    assert sink.records == expected
    assert max(len(records) for _, records in sink.batches) <= capacity


# -- configuration and lifecycle ------------------------------------------------------


async def test_columnar_lines_are_arrow_batches_and_bad_utf8_is_replaced(server):
    tables: list[Any] = []
    counts = ListSink()
    async with context() as ssc:
        lines = socket_text_stream(ssc, HOST, server.port, columnar=True, separator="||")
        lines.foreach_batch(tables.append, format="arrow")
        lines.sql("SELECT count(*) AS n FROM batch").foreach_batch(counts)
        await ssc.start()
        conn = await server.accept()
        await conn.send(b"ok||bad \xff byte||a\r||")
        await wait_buffered(lines, 3)
        await step(ssc, 2)
    import pyarrow as pa

    assert tables[0].schema == pa.schema([("line", pa.string())])
    assert tables[0].column("line").to_pylist() == ["ok", "bad \ufffd byte", "a\r"]
    assert counts.batches == [(1.0, [3]), (2.0, [0])]  # an empty batch is an empty table


def test_columnar_needs_utf8():
    with pytest.raises(ConfigurationError, match="columnar=True reads UTF-8"):
        SocketTextSource(HOST, 9999, encoding="latin-1", columnar=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 0},
        {"port": 70000},
        {"port": "80"},
        {"host": ""},
        {"encoding": "no-such-codec"},
        {"errors": "no-such-handler"},
        {"separator": ""},
        {"read_size": 0},
        {"reconnect_backoff": -1},
        {"max_backoff": float("inf")},
        {"reconnect_backoff": 2.0, "max_backoff": 1.0},
        {"max_reconnects": -1},
        {"connect_timeout": 0},
        {"max_line_length": 0},
    ],
)
def test_invalid_arguments_raise_configuration_error(kwargs):
    arguments = {"host": HOST, "port": 9999, **kwargs}
    with pytest.raises(ConfigurationError):
        SocketTextSource(**arguments)


def test_streams_are_named_after_the_address_unless_named():
    ssc = StreamingContext(batch_interval=1.0)
    assert socket_text_stream(ssc, HOST, 9999).name == "socket 127.0.0.1:9999"
    assert socket_text_stream(ssc, HOST, 9999).name == "socket 127.0.0.1:9999 2"
    assert socket_text_stream(ssc, "localhost", 9998).name == "socket localhost:9998"
    assert socket_text_stream(ssc, HOST, 9999, name="lines").name == "lines"


async def test_source_works_as_an_async_context_manager(server):
    source = SocketTextSource(HOST, server.port)
    async with source:
        conn = await server.accept()
    await source.aclose()  # idempotent
    with anyio.fail_after(HANG_GUARD):
        await conn.wait_peer_closed()
    assert source.address == (HOST, server.port)
    with contextlib.suppress(OSError):
        conn.close()
