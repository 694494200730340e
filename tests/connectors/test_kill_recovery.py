"""Kill -9 recovery: a checkpointed job killed at random moments (some in the middle
of a checkpoint's transaction) and restarted each time ends with exact state."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.text import TextReceiveStream

# the loop of the test process does not matter here: one is enough
pytestmark = pytest.mark.asyncio(loop_factories=["asyncio"])


JOB = Path(__file__).with_name("kill_job.py")
ROOT = Path(__file__).resolve().parents[2]
GUARD = 60  # seconds: only a bug comes near it
KILLS = 12
VOCABULARY = [f"w{i}" for i in range(500)]


def batches_written(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line]


async def start(kafka: Any, topic: str, group: str, directory: Path, out: Path, **env: str):
    command = [
        sys.executable,
        str(JOB),
        kafka.bootstrap_servers,
        topic,
        group,
        str(directory),
        str(out),
    ]
    process = await anyio.open_process(
        command, stdout=subprocess.PIPE, cwd=ROOT, env={**os.environ, **env}
    )
    return process


async def wait_ready(process: Any) -> bool:
    """True once the job printed "ready"; False if it died first."""
    assert process.stdout is not None
    async for text in TextReceiveStream(process.stdout):
        if "ready" in text:
            return True
    return False


async def wait_for_total(out: Path, total: int) -> dict[str, int]:
    """The state once a batch shows ``total`` words counted (polling the sink's file)."""
    with anyio.fail_after(GUARD):
        while True:
            written = await anyio.to_thread.run_sync(batches_written, out)
            if written and sum(written[-1]["state"].values()) >= total:
                return written[-1]["state"]
            await anyio.sleep(0.05)


async def test_killed_at_random_moments_the_job_ends_with_exact_counts(kafka: Any, tmp_path: Path):
    rng = random.Random(20261201)
    topic, group = await kafka.topic(partitions=3), kafka.name("group")
    directory, out = tmp_path / "ckpt", tmp_path / "out.jsonl"
    produced: Counter[str] = Counter()
    in_write = {2, 5, 9}  # rounds whose job dies inside a checkpoint transaction

    async def produce_round() -> None:
        lines = [" ".join(rng.choices(VOCABULARY, k=5)) for _ in range(300)]
        for line in lines:
            produced.update(line.split())
        messages = [{"value": line.encode(), "partition": i % 3} for i, line in enumerate(lines)]
        await kafka.produce(topic, messages)

    for round_number in range(KILLS):
        await produce_round()
        env = (
            {"KILL_IN_CHECKPOINT_WRITE": str(rng.randint(1, 3))} if round_number in in_write else {}
        )
        process = await start(kafka, topic, group, directory, out, **env)
        with anyio.fail_after(GUARD):
            if await wait_ready(process) and not env:
                await anyio.sleep(rng.uniform(0.1, 1.5))  # a random moment of its life
                process.send_signal(signal.SIGKILL)
            code = await process.wait()
        assert code == -signal.SIGKILL, f"round {round_number}: exit {code}"
        if process.stdout is not None:
            await process.stdout.aclose()

    process = await start(kafka, topic, group, directory, out)
    try:
        final = await wait_for_total(out, sum(produced.values()))
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()
    assert final == dict(produced)  # every word counted exactly once, across 12 kills
    times = [batch["time"] for batch in batches_written(out)]
    duplicates = len(times) - len(set(times))
    print(f"plain sink: {duplicates} of {len(times)} batches written again after a kill")
