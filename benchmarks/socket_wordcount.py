"""Word count over a socket: the stream's default buffer against an oversized one, same run.

A server process on 127.0.0.1 sends N lines (10 words each from a 1,000-word
vocabulary, fixed seed) to each connection as fast as TCP allows, in one
``sendall``. Each job connects with ``socket_text_stream``, counts the words of a
sliding window (``count_by_value_and_window``, 5 s window by default, sliding by
the batch interval) and counts the lines it received; it is timed from
``ssc.start()`` until its last line is counted, at a batch cut: the batch interval
bounds the idle time included. The server keeps each connection open until the
job closes it, so a job receives every line once.

Two settings are measured in turns (best of N):

- default: ``StreamingContext(batch_interval)`` with nothing else set;
- oversized: the buffer far larger than any batch (``--oversized`` records and
  ``--oversized-bytes``), so the buffer cannot be what limits the job.

The ratio default / oversized says whether the default buffer holds the stream
back (1.0: it does not). Peak memory is printed for both: the peak resident set
during each job (Linux; the worst run of each), and the peak of Python's
allocations (tracemalloc) in one more run of each setting, untimed, on
``--trace-lines`` lines (tracemalloc slows reading and processing alike, so that
run shows what the job allocates, not the buffer's bound, which the unit tests
check).

    python benchmarks/socket_wordcount.py [--lines N] [--repeat N] [--interval S]
        [--window S] [--oversized N] [--oversized-bytes N] [--trace-lines N]
        [--loop asyncio|uvloop|both]
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import socket
import time
from typing import Any

import anyio
from loops import add_loop_option, on_each_loop
from memory import peak_rss_mib, reset_peak_rss, rss_mib, traced_peak_mib
from wordcount import make_lines

from streamio import StreamingContext, run
from streamio.connectors.socket import socket_text_stream

WORDS_PER_LINE = 10


def serve(listener: socket.socket, lines: int, ready: Any) -> None:
    """The server process: send every line to each connection, keep it open until
    the client closes it."""
    payload = ("\n".join(make_lines(lines)) + "\n").encode()
    ready.set()
    while True:
        conn, _ = listener.accept()
        with conn:
            try:
                conn.sendall(payload)
                while conn.recv(65536):  # until the client closes
                    pass
            except OSError:
                pass


async def job(port: int, lines: int, args: argparse.Namespace, settings: dict[str, Any]) -> float:
    """Seconds from ``ssc.start()`` until ``lines`` lines were counted."""
    finished = anyio.Event()
    seen = 0
    ended = 0.0
    window_words = 0

    def keep_window(records: list[tuple[str, int]]) -> None:
        nonlocal window_words
        if not finished.is_set():  # the window of the batch that counts the last line
            window_words = sum(count for _, count in records)

    def count_lines(records: list[int]) -> None:
        nonlocal seen, ended
        seen += sum(records)
        if seen >= lines and not finished.is_set():
            ended = time.perf_counter()
            finished.set()

    async with StreamingContext(batch_interval=args.interval, **settings) as ssc:
        stream = socket_text_stream(ssc, "127.0.0.1", port)
        words = stream.flat_map(str.split)
        words.count_by_value_and_window(args.window, args.interval).foreach_batch(keep_window)
        stream.count().foreach_batch(count_lines)
        started = time.perf_counter()
        await ssc.start()
        with anyio.fail_after(60 + lines / 2_000):
            await finished.wait()
    assert seen == lines, f"{seen:,} lines counted, {lines:,} sent"
    assert 0 < window_words <= lines * WORDS_PER_LINE, "the window's counts are wrong"
    return ended - started


def start_server(lines: int) -> tuple[multiprocessing.Process, int]:
    """A server process sending ``lines`` lines, and its port, once it is ready to send."""
    processes = multiprocessing.get_context("fork")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    ready = processes.Event()
    server = processes.Process(target=serve, args=(listener, lines, ready), daemon=True)
    server.start()
    listener.close()  # the server process holds its own copy
    if not ready.wait(120):
        server.kill()
        raise RuntimeError("the line server did not start")
    return server, port


def measure(args: argparse.Namespace) -> None:
    loop = "uvloop" if args.uvloop else "asyncio"
    settings: dict[str, dict[str, Any]] = {
        "default": {},
        "oversized": {"buffer_capacity": args.oversized, "buffer_bytes": args.oversized_bytes},
    }
    server, port = start_server(args.lines)
    trace_server, trace_port = start_server(args.trace_lines)
    try:
        times: dict[str, list[float]] = {name: [] for name in settings}
        peaks: dict[str, list[float]] = {name: [] for name in settings}
        before: list[float] = []
        for turn in range(args.repeat):
            order = list(settings) if turn % 2 == 0 else list(settings)[::-1]
            for name in order:
                reset_peak_rss()
                before.append(rss_mib())
                times[name].append(
                    run(job(port, args.lines, args, settings[name]), use_uvloop=args.uvloop)
                )
                peaks[name].append(peak_rss_mib())
        traced: dict[str, float] = {}
        if args.trace_lines:
            for name, values in settings.items():
                traced_job = functools.partial(job, trace_port, args.trace_lines, args, values)
                traced[name] = run(traced_peak_mib(traced_job), use_uvloop=args.uvloop)[0]
    finally:
        server.kill()
        trace_server.kill()
        server.join()
        trace_server.join()

    print(
        f"loop {loop}: {args.lines:,} lines, batch interval {args.interval}s, window "
        f"{args.window}s, best of {args.repeat}; RSS at a job's start "
        f"{min(before):.0f}-{max(before):.0f} MiB"
    )
    print(f"  {'buffer':40} {'lines/s':>10} {'peak RSS MiB':>13} {'traced MiB':>11}")
    best = {name: args.lines / min(values) for name, values in times.items()}
    for name, values in settings.items():
        label = f"{name} ({', '.join(f'{k}={v:,}' for k, v in values.items()) or '-'})"
        trace = f"{traced[name]:.1f}" if name in traced else "-"
        print(f"  {label:40} {best[name]:>10,.0f} {max(peaks[name]):>13.0f} {trace:>11}")
    print(f"  ratio default / oversized: {best['default'] / best['oversized']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs of each")
    parser.add_argument("--interval", type=float, default=0.5, help="batch interval, seconds")
    parser.add_argument("--window", type=float, default=5.0, help="window length, seconds")
    parser.add_argument(
        "--oversized", type=int, default=10_000_000, help="buffer_capacity of the oversized run"
    )
    parser.add_argument(
        "--oversized-bytes", type=int, default=2**34, help="buffer_bytes of the oversized run"
    )
    parser.add_argument(
        "--trace-lines", type=int, default=1_500_000, help="lines of the traced runs (0: none)"
    )
    add_loop_option(parser)
    on_each_loop(parser.parse_args(), measure)


if __name__ == "__main__":
    main()
