"""The write-ahead log after kill -9: a socket job killed between its checkpoints
replays what it had received from its log, so no line is lost or counted twice."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketStream
from test_kill_recovery import ROOT, batches_written, wait_for_total, wait_ready

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio"])

JOB = Path(__file__).with_name("wal_job.py")
GUARD = 60


class LineServer:
    """A TCP server on loopback that sends every connection the lines not sent yet."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.sent = 0
        self.connections = 0
        self._added = anyio.Event()
        self._connected = anyio.Event()

    async def wait_connections(self, count: int) -> None:
        """Return once ``count`` connections have been accepted (the live job's last)."""
        while self.connections < count:
            await self._connected.wait()

    def add(self, lines: list[str]) -> None:
        self.lines.extend(lines)
        self._added.set()
        self._added = anyio.Event()

    async def handle(self, connection: SocketStream) -> None:
        self.connections += 1
        mine = self.connections  # only the newest connection (the live job) gets lines
        self._connected.set()
        self._connected = anyio.Event()
        async with connection:
            while mine == self.connections:
                if self.sent < len(self.lines):
                    new = self.lines[self.sent :]
                    self.sent = len(self.lines)
                    await connection.send("".join(f"{line}\n" for line in new).encode())
                else:
                    await self._added.wait()


async def test_a_killed_socket_job_replays_its_log(tmp_path: Path) -> None:
    rng = random.Random(7)
    server = LineServer()
    directory, out = tmp_path / "ckpt", tmp_path / "out.jsonl"
    produced: Counter[str] = Counter()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, server.handle)

        async def job_round(lines: int, kill: bool) -> None:
            connections = server.connections
            command = [sys.executable, str(JOB), str(port), str(directory), str(out)]
            process = await anyio.open_process(command, stdout=subprocess.PIPE, cwd=ROOT)
            try:
                with anyio.fail_after(GUARD):
                    assert await wait_ready(process)
                    # lines go to this job's connection, not a dead one's
                    await server.wait_connections(connections + 1)
                new = [" ".join(rng.choices("abcdefghij", k=4)) for _ in range(lines)]
                for line in new:
                    produced.update(line.split())
                server.add(new)
                await wait_for_total(out, sum(produced.values()))  # read, logged, counted
                if kill:
                    await anyio.sleep(rng.uniform(0.0, 0.5))
            finally:
                process.send_signal(signal.SIGKILL)
                await process.wait()
                if process.stdout is not None:
                    await process.stdout.aclose()

        for _ in range(4):
            await job_round(200, kill=True)
        await job_round(0, kill=False)  # the last run only replays and resumes
        final = batches_written(out)[-1]["state"]
        tg.cancel_scope.cancel()
    assert final == dict(produced)
