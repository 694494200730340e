"""Scale-out by consumer groups: two processes run the same job with one group id.

While both run they share the topic's partitions and each record is processed by
exactly one of them. When one is killed, the other takes over its partitions from
their committed offsets: records after the last commit may be processed twice
(at-least-once; the test counts them), none is lost.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import anyio
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

JOB = Path(__file__).with_name("scale_out_job.py")
ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
GUARD = 60  # seconds; only a bug (or a broker that never rebalances) comes near it


class Member:
    """One job process and what it printed."""

    def __init__(self, name: str, process: Process) -> None:
        self.name = name
        self.process = process
        self.ready = anyio.Event()
        self.seen: list[tuple[int, int, str]] = []  # (partition, offset, value)
        self.progress = anyio.Event()

    async def read(self) -> None:
        assert self.process.stdout is not None
        pending = ""
        async for text in TextReceiveStream(self.process.stdout):
            pending += text
            *lines, pending = pending.split("\n")
            for line in lines:
                if line == "ready":
                    self.ready.set()
                elif line.startswith("record "):
                    _, partition, offset, value = line.split(" ", 3)
                    self.seen.append((int(partition), int(offset), value))
            self.progress.set()
            self.progress = anyio.Event()


async def wait_for_all(values: set[str], *members: Member) -> None:
    """Return once the members together printed every value (woken by their output)."""
    while True:
        printed = {value for member in members for _, _, value in member.seen}
        if values <= printed:
            return
        waiters = [member.progress for member in members]
        async with anyio.create_task_group() as tg:

            async def first(event: anyio.Event, scope: anyio.CancelScope = tg.cancel_scope):
                await event.wait()
                scope.cancel()

            for event in waiters:
                tg.start_soon(first, event)


async def test_two_processes_share_a_topic_and_one_takes_over_when_the_other_dies(kafka):
    topic = await kafka.topic(partitions=PARTITIONS)
    group = kafka.name("group")
    command = [sys.executable, str(JOB), kafka.bootstrap_servers, topic, group]
    members: list[Member] = []
    async with anyio.create_task_group() as tg:
        try:
            for name in ("a", "b"):
                process = await anyio.open_process(
                    command, stdout=subprocess.PIPE, cwd=ROOT, env=None
                )
                member = Member(name, process)
                members.append(member)
                tg.start_soon(member.read)
            a, b = members
            with anyio.fail_after(GUARD):
                await a.ready.wait()
                await b.ready.wait()

            # Phase 1: rounds of records until both members have processed some
            # (the second member's join may trigger a rebalance after the first round).
            sent: set[str] = set()
            for round_number in range(20):
                values = [f"r{round_number}-{i}" for i in range(2 * PARTITIONS)]
                await kafka.produce(
                    topic,
                    [
                        {"value": v.encode(), "partition": i % PARTITIONS}
                        for i, v in enumerate(values)
                    ],
                )
                sent.update(values)
                with anyio.fail_after(GUARD):
                    await wait_for_all(set(values), a, b)
                if a.seen and b.seen:
                    break
            assert a.seen and b.seen, "the second member never got a partition"

            # While both run, every record is processed by exactly one of them.
            by_a = {value for _, _, value in a.seen}
            by_b = {value for _, _, value in b.seen}
            assert by_a | by_b == sent
            assert not by_a & by_b
            partitions_of_b = {partition for partition, _, _ in b.seen}

            # Phase 2: b dies without a goodbye; a takes over b's partitions.
            b.process.send_signal(signal.SIGKILL)
            after = [f"late-{i}" for i in range(4 * PARTITIONS)]
            await kafka.produce(
                topic,
                [{"value": v.encode(), "partition": i % PARTITIONS} for i, v in enumerate(after)],
            )
            with anyio.fail_after(GUARD):
                await wait_for_all(set(after), a)
            taken_over = {partition for partition, _, value in a.seen if value in after}
            assert partitions_of_b <= taken_over  # a now holds b's partitions too

            # None lost; what b processed but had not committed is processed again by a.
            everything = {value for member in members for _, _, value in member.seen}
            assert everything == sent | set(after)
            seen_twice = {value for _, _, value in a.seen} & by_b
            print(f"records processed twice after the takeover: {len(seen_twice)}")
            assert all(
                partition in partitions_of_b
                for partition, _, value in a.seen
                if value in seen_twice
            )
        finally:
            for member in members:
                if member.process.returncode is None:
                    member.process.kill()
            with anyio.move_on_after(10, shield=True):
                for member in members:
                    await member.process.wait()
            tg.cancel_scope.cancel()
