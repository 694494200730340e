"""The demo job: a live word count over an embedded sentence generator.

Needs no outside service: :class:`SentenceReceiver` makes up lines of text at a
steady rate, the job counts words per batch, prints the top words of each batch
with Spark's ``pprint`` layout and one line of metrics per batch, and stops
gracefully after a few seconds, or at SIGTERM or Ctrl-C (the command runs it with
``stop_on_signals=True``; a second signal stops it at once).
"""

from __future__ import annotations

import operator
import random
from datetime import datetime

import anyio

from .context import StreamingContext
from .listener import BatchInfo, StreamingListener
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


async def run_demo(seconds: float = 5.0, interval: float = 1.0, rate: int = 5000) -> None:
    """Run the live word count for ``seconds`` (0: until stopped), then stop gracefully."""
    async with StreamingContext(batch_interval=interval) as ssc:
        lines = ssc.receiver_stream(SentenceReceiver(rate), name="sentences")
        counts = (
            lines.flat_map(str.split, name="split")
            .map(lambda word: (word, 1), name="pair")
            .reduce_by_key(operator.add, name="count")
        )
        counts.transform(_top_words, name="top").pprint(5)
        ssc.add_listener(_PrintMetrics())
        await ssc.start()
        how_long = f"for {seconds:g} s" if seconds > 0 else "until SIGTERM or Ctrl-C"
        print(f"counting words {how_long}, one batch every {interval:g} s ...\n")
        await ssc.await_termination(timeout=seconds if seconds > 0 else None)
    print("stopped cleanly")
