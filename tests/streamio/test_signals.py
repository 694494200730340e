"""Graceful stop on signals: ``streamio.run(main, stop_on_signals=True)``,
``ssc.stop_on_signals()`` and ``python -m streamio demo``, in real subprocesses."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import anyio
import anyio.abc
import pytest
from anyio.streams.text import TextReceiveStream

from streamio import ContextStateError, ManualClock, StreamingContext

JOB = Path(__file__).with_name("signal_job.py")

# Upper bound for a wait that only a bug could make endless.
HANG_GUARD = 60


class Output:
    """The merged stdout and stderr of a subprocess, read line by line."""

    def __init__(self, process: anyio.abc.Process) -> None:
        assert process.stdout is not None
        self._stream = TextReceiveStream(process.stdout)
        self._buffer = ""
        self.lines: list[str] = []

    async def wait_for(self, wanted: str) -> None:
        """Read until a line starts with ``wanted``."""
        with anyio.fail_after(HANG_GUARD):
            while not any(line.startswith(wanted) for line in self.lines):
                try:
                    self._buffer += await self._stream.receive()
                except anyio.EndOfStream:
                    raise AssertionError(f"no {wanted!r} in {self.lines}") from None
                *complete, self._buffer = self._buffer.split("\n")
                self.lines += complete

    async def rest(self) -> list[str]:
        """Every line up to the end of the output."""
        with anyio.fail_after(HANG_GUARD):
            async for text in self._stream:
                self._buffer += text
        self.lines += [line for line in self._buffer.split("\n") if line]
        self._buffer = ""
        return self.lines


def numbers(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


async def start_job(*args: str) -> anyio.abc.Process:
    return await anyio.open_process(
        [sys.executable, *args], stdout=-1, stderr=-2, start_new_session=True
    )


async def test_sigterm_stops_gracefully_after_the_final_commit(tmp_path):
    async with await start_job(str(JOB), str(tmp_path)) as process:
        output = Output(process)
        await output.wait_for("ready")
        await output.wait_for("batch")
        process.send_signal(signal.SIGTERM)
        lines = await output.rest()
        with anyio.fail_after(HANG_GUARD):
            code = await process.wait()
    assert code == 0, lines
    assert "stopped" in lines
    assert not any("Traceback" in line for line in lines)
    written = numbers(tmp_path / "records")
    commits = numbers(tmp_path / "commits")
    # everything received, up to what was buffered at the signal, was output in
    # order, and its last position committed
    assert written == list(range(1, len(written) + 1))
    assert commits[-1] == written[-1] == numbers(tmp_path / "stored")[0]
    assert any(line.startswith("SIGTERM received: stopping gracefully") for line in lines)


async def test_a_second_signal_stops_at_once(tmp_path):
    async with await start_job(str(JOB), str(tmp_path), "--hold") as process:
        output = Output(process)
        await output.wait_for("ready")
        await output.wait_for("batch")
        (tmp_path / "hold").touch()
        await output.wait_for("held")  # a batch that never finishes
        process.send_signal(signal.SIGTERM)
        await output.wait_for("SIGTERM received: stopping gracefully")
        started = anyio.current_time()
        process.send_signal(signal.SIGTERM)  # the graceful stop would wait 120 s
        lines = await output.rest()
        with anyio.fail_after(HANG_GUARD):
            code = await process.wait()
        assert anyio.current_time() - started < HANG_GUARD
    assert code == 0, lines
    assert any(line.startswith("SIGTERM received again: stopping at once") for line in lines)
    assert "stopped" in lines
    # the held batch was neither output nor committed
    assert numbers(tmp_path / "commits")[-1] == numbers(tmp_path / "records")[-1]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_the_demo_stops_cleanly_on_sigterm_and_ctrl_c(signum):
    args = ("-m", "streamio", "demo", "--seconds", "0", "--interval", "0.1", "--rate", "500")
    async with await start_job(*args) as process:
        output = Output(process)
        await output.wait_for("batch of")
        process.send_signal(signum)
        lines = await output.rest()
        with anyio.fail_after(HANG_GUARD):
            code = await process.wait()
    assert code == 0, lines
    assert lines[-1] == "stopped cleanly"
    assert not any("Traceback" in line for line in lines)


async def test_stop_on_signals_needs_the_block():
    ssc = StreamingContext(batch_interval=1.0, clock=ManualClock())
    with pytest.raises(ContextStateError, match="inside `async with`"):
        ssc.stop_on_signals()


async def test_the_signal_watcher_ends_with_a_context_that_never_started():
    with anyio.fail_after(HANG_GUARD):
        async with StreamingContext(batch_interval=1.0, clock=ManualClock()) as ssc:
            await ssc.stop_on_signals()
            await ssc.stop_on_signals()  # once is enough
