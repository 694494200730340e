"""The examples without a server: hdfs_wordcount on a real directory that receives
files, queue_stream on its own queue; run as subprocesses."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from example_process import example, pprint_blocks, word_totals

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio"])


def drop_file(directory: Path, name: str, text: str) -> None:
    """Write a file under a hidden name, then rename it in, as writers should."""
    temporary = directory / f".{name}.part"
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, directory / name)


async def test_hdfs_wordcount_counts_the_words_of_new_files(tmp_path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "old.txt").write_text("there before the start\n")  # left alone, as in Spark
    async with example("hdfs_wordcount", str(incoming)) as run:
        await run.blocks_until(bool)  # the first batch: the directory is watched
        drop_file(incoming, "a.txt", "one two\ntwo three three\n")
        drop_file(incoming, "b.txt", "three\n")
        expected = Counter(one=1, two=2, three=3)
        await run.blocks_until(lambda blocks: word_totals(blocks) == expected)
        assert await run.stop() == 0
    assert word_totals(pprint_blocks(run.out, whole=True)) == expected
    assert "Traceback" not in run.err


async def test_queue_stream_prints_five_batches_and_stops_by_itself():
    async with example("queue_stream", interval="0.1") as run:
        assert await run.finish() == 0
    blocks = pprint_blocks(run.out, whole=True)
    assert len(blocks) == 5
    for block in blocks:  # 1..1000 by last digit: 100 each
        assert sorted(block.records) == [(digit, 100) for digit in range(10)]
    times = [block.time for block in blocks]
    assert times == sorted(set(times))
    assert run.err == ""
