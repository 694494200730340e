"""Runs an example as users do, ``python -m streamio example NAME ARGS...``, in a
subprocess, and reads what it prints as it prints it.

Waits are on the example's own output (a block printed), bounded by a guard that
only a bug can reach. ``pprint_blocks`` parses Spark's ``pprint`` layout strictly,
with the batch time printed as seconds or as a datetime (``Time: 2026-12-01
18:16:13``, as PySpark does).
"""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
from anyio.abc import Process

# Upper bound for a wait that only a bug (or a stuck server) could make endless.
HANG_GUARD = 30
# The tests' batch interval: short, so that tests stay fast.
INTERVAL = "0.2"

DASHES = "-" * 43
TIME = re.compile(r"Time: (?P<time>\d+(?:\.\d+)?|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)")


@dataclass(frozen=True)
class Block:
    """One batch as ``pprint`` printed it: its time (seconds) and records."""

    time: float
    records: list[Any]


def _seconds(text: str) -> float:
    return float(text) if " " not in text else datetime.fromisoformat(text).timestamp()


def pprint_blocks(text: str, *, whole: bool = False) -> list[Block]:
    """The complete blocks at the start of ``text``: a dashed line, ``Time: ...``,
    a dashed line, one record per line (Python literals), ``...`` when there were
    more, and an empty line. ``whole``: ``text`` must hold nothing else."""
    lines = text.split("\n")
    blocks: list[Block] = []
    at = 0
    while at + 3 < len(lines) and "" in lines[at + 3 :]:
        dashes, time, dashes_again = lines[at : at + 3]
        match = TIME.fullmatch(time)
        assert dashes == dashes_again == DASHES and match, f"not a pprint block: {lines[at:]}"
        end = lines.index("", at + 3)
        body = lines[at + 3 : end]
        assert "..." not in body[:-1], f"'...' before the last line: {body}"
        records = [ast.literal_eval(line) for line in body if line != "..."]
        blocks.append(Block(_seconds(match["time"]), records))
        at = end + 1
    if whole:
        assert lines[at:] == [""], f"not a pprint block: {lines[at:]}"
    return blocks


def word_totals(blocks: list[Block]) -> Counter[str]:
    """Per-batch ``(word, count)`` pairs added up over the batches, checking that
    no batch has a word twice (the counts of a batch are reduced by key)."""
    totals: Counter[str] = Counter()
    for block in blocks:
        words = [word for word, _ in block.records]
        assert len(words) == len(set(words)), f"a word twice in one batch: {block}"
        totals.update(dict(block.records))
    return totals


class ExampleProcess:
    """A running example: ``out`` is what it printed so far."""

    def __init__(self, process: Process, stderr: Any) -> None:
        self.process = process
        self.out = ""
        self._stderr = stderr
        self._err: str | None = None  # kept once the process is gone

    @property
    def err(self) -> str:
        """What it printed on stderr so far."""
        if self._err is not None:
            return self._err
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def keep_err(self) -> None:
        self._err = self.err

    async def read_until(self, predicate: Callable[[str], bool]) -> str:
        """Read its output until ``predicate(output so far)`` holds; fail if it exits first."""
        assert self.process.stdout is not None
        with anyio.fail_after(HANG_GUARD):
            while not predicate(self.out):
                try:
                    self.out += (await self.process.stdout.receive()).decode()
                except anyio.EndOfStream:
                    await self.process.wait()
                    msg = f"exited ({self.process.returncode}) first:\n{self.out}\n{self.err}"
                    raise AssertionError(msg) from None
        return self.out

    async def blocks_until(self, predicate: Callable[[list[Block]], bool]) -> list[Block]:
        """Read until the complete ``pprint`` blocks so far satisfy ``predicate``."""
        await self.read_until(lambda out: predicate(pprint_blocks(out)))
        return pprint_blocks(self.out)

    async def finish(self) -> int:
        """Read the rest of its output and wait for its exit; its exit code."""
        assert self.process.stdout is not None
        with anyio.fail_after(HANG_GUARD):
            async for data in self.process.stdout:
                self.out += data.decode()
            return await self.process.wait()

    async def stop(self, signum: int = signal.SIGINT) -> int:
        """Send ``signum`` (Ctrl-C by default), then :meth:`finish`."""
        self.process.send_signal(signum)
        return await self.finish()


@asynccontextmanager
async def example(
    name: str, *args: str, interval: str | None = INTERVAL
) -> AsyncIterator[ExampleProcess]:
    """Start ``python -m streamio example name [--interval ...] args``; kill it (by
    its pid) if it is still running when the block ends."""
    options = [] if interval is None else ["--interval", interval]
    command = [sys.executable, "-m", "streamio", "example", name, *options, *args]
    with tempfile.TemporaryFile() as stderr:
        process = await anyio.open_process(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            # not unbuffered: the command itself flushes each line it prints
            env={key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"},
        )
        run = ExampleProcess(process, stderr)
        try:
            yield run
        finally:
            if process.returncode is None:
                process.kill()
            with anyio.CancelScope(shield=True), anyio.move_on_after(HANG_GUARD):
                await process.wait()
                await process.aclose()
            run.keep_err()
