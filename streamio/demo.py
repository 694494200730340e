"""The demo job: a live word count over an embedded sentence generator.

Needs no outside service: :class:`SentenceReceiver` makes up lines of text at a
steady rate, the job counts words per batch and stops gracefully after a few
seconds, or at SIGTERM or Ctrl-C (the command runs it with
``stop_on_signals=True``; a second signal stops it at once). In a terminal with
``rich`` installed (``streamio[rich]``) it shows the dashboard's figures live in
one table redrawn at every batch; otherwise it prints the top words of each
batch with Spark's ``pprint`` layout and one line of metrics per batch. With a
dashboard port it also serves the dashboard and prints its address.
"""

from __future__ import annotations

import importlib.util
import operator
import random
import sys
from datetime import datetime
from typing import Any

import anyio

from .context import StreamingContext
from .dstream import DStream
from .errors import ConfigurationError
from .listener import BatchInfo, StreamingListener
from .metrics import MetricsRegistry
from .receiver import Receiver, ReceiverOutput

__all__ = ["SentenceReceiver", "run_demo"]

WORDS = [
    "stream",
    "batch",
    "window",
    "state",
    "kafka",
    "socket",
    "file",
    "async",
    "loop",
    "record",
    "offset",
    "commit",
    "partition",
    "key",
    "value",
    "join",
    "reduce",
    "count",
    "map",
    "filter",
    "scheduler",
    "receiver",
    "buffer",
]


class SentenceReceiver(Receiver[str]):
    """Makes up ``rate`` lines of text per second, in chunks of a tenth of a second."""

    def __init__(self, rate: int, *, words_per_line: int = 8, seed: int = 7) -> None:
        self._rate = rate
        self._words_per_line = words_per_line
        self._random = random.Random(seed)

    async def run(self, output: ReceiverOutput[str]) -> None:
        chunk = max(1, self._rate // 10)
        choices, words, k = self._random.choices, WORDS, self._words_per_line
        while True:
            await output.put_many(" ".join(choices(words, k=k)) for _ in range(chunk))
            await anyio.sleep(0.1)


class _PrintMetrics(StreamingListener):
    def on_batch_completed(self, info: BatchInfo) -> None:
        at = datetime.fromtimestamp(info.batch_time).strftime("%H:%M:%S")
        print(
            f"batch of {at}: {info.num_records:,} lines, "
            f"scheduling delay {1000 * (info.scheduling_delay or 0):.1f} ms, "
            f"processing {1000 * (info.processing_time or 0):.1f} ms\n"
        )


def _top_words(pairs: list[tuple[str, int]]) -> list[tuple[str, int]]:
    return sorted(pairs, key=lambda pair: (-pair[1], pair[0]))


def live_display_available() -> bool:
    """Whether the live table can be drawn: ``rich`` installed, output a terminal."""
    return importlib.util.find_spec("rich") is not None and sys.stdout.isatty()


class _LiveTable(StreamingListener):
    """The dashboard's main figures in the terminal, redrawn at every batch (rich)."""

    def __init__(self, registry: MetricsRegistry, lines: DStream[str], interval: float) -> None:
        from rich.live import Live

        self.registry, self.lines, self.interval = registry, lines, interval
        self.top: list[tuple[str, int]] = []
        self.last: BatchInfo | None = None
        # redrawn from the listener only: no refresh thread
        self.live = Live(self._render(), auto_refresh=False, transient=False)

    def keep_top(self, pairs: list[tuple[str, int]]) -> None:
        self.top = pairs[:5]

    def on_batch_completed(self, info: BatchInfo) -> None:
        self.last = info
        self.live.update(self._render(), refresh=True)

    def _render(self) -> Any:
        from rich.table import Table

        registry, last = self.registry, self.last
        table = Table(title="streamio demo: live word count", show_header=False)
        table.add_column("figure", style="bold")
        table.add_column("value", justify="right")
        stats = self.lines.buffer_statistics()
        table.add_row("batch", "-" if last is None else _when(last.batch_time))
        table.add_row("completed batches", f"{registry.batches_completed:,}")
        table.add_row("records", f"{registry.records_total:,}")
        rate = None if last is None else last.num_records / self.interval
        table.add_row("input rate", "-" if rate is None else f"{rate:,.0f}/s")
        for figure, histogram in (
            ("scheduling delay", registry.scheduling_delay),
            ("processing time", registry.processing_time),
            ("total delay", registry.total_delay),
        ):
            latest = None if last is None else getattr(last, figure.replace(" ", "_"))
            mean = histogram.sum / histogram.count if histogram.count else None
            table.add_row(f"{figure} (last / average)", f"{_ms(latest)} / {_ms(mean)}")
        fill = stats.used_bytes / stats.max_bytes
        table.add_row("buffer fill", f"{stats.used:,} records, {fill:.1%} of its bytes")
        words = ", ".join(f"{word} {count}" for word, count in self.top)
        table.add_row("top words", words or "-")
        return table


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.1f} ms"


def _when(batch_time: float) -> str:
    return datetime.fromtimestamp(batch_time).isoformat(sep=" ", timespec="milliseconds")


async def run_demo(
    seconds: float = 5.0,
    interval: float = 1.0,
    rate: int = 5000,
    *,
    dashboard: int | None = None,
    live: bool | None = None,
) -> None:
    """Run the live word count for ``seconds`` (0: until stopped), then stop gracefully.

    Args:
        dashboard: a port to serve the dashboard on (127.0.0.1), or None.
        live: the live table (needs ``rich``) rather than printed batches; by
            default when ``rich`` is installed and the output is a terminal.

    Raises:
        ConfigurationError: for ``live=True`` without ``rich``, or a dashboard
            port that cannot be served.
    """
    if live is None:
        live = live_display_available()
    elif live and importlib.util.find_spec("rich") is None:
        raise ConfigurationError("the demo's live table needs rich: pip install 'streamio[rich]'")
    async with StreamingContext(batch_interval=interval, dashboard=dashboard) as ssc:
        lines = ssc.receiver_stream(SentenceReceiver(rate), name="sentences")
        counts = (
            lines.flat_map(str.split, name="split")
            .map(lambda word: (word, 1), name="pair")
            .reduce_by_key(operator.add, name="count")
        )
        top = counts.transform(_top_words, name="top")
        if dashboard is not None:
            counts.to_dashboard("top words", kind="bar", top=10)
        table = None
        if live:
            registry = MetricsRegistry()
            table = _LiveTable(registry, lines, interval)
            top.foreach_batch(table.keep_top, name="show")
            ssc.add_listener(registry)
            ssc.add_listener(table)
        else:
            top.pprint(5)
            ssc.add_listener(_PrintMetrics())
        await ssc.start()
        if ssc.dashboard_url is not None:
            print(f"dashboard: {ssc.dashboard_url}")
        how_long = f"for {seconds:g} s" if seconds > 0 else "until SIGTERM or Ctrl-C"
        print(f"counting words {how_long}, one batch every {interval:g} s ...\n")
        timeout = seconds if seconds > 0 else None
        if table is None:
            await ssc.await_termination(timeout=timeout)
        else:
            with table.live:
                await ssc.await_termination(timeout=timeout)
    print("stopped cleanly")
