"""The examples that read a TCP server (network_wordcount, stateful_network_wordcount,
network_wordjoinsentiments), run as subprocesses against a loopback server that
sends known lines."""

from __future__ import annotations

import ast
import re
import signal
from collections import Counter

import pytest
from example_process import Block, example, pprint_blocks, word_totals

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio"])

LINES = b"to be or not to be\nthat is the question\nto be\n"
WORDS = Counter(["to", "be", "or", "not", "to", "be", "that", "is", "the", "question", "to", "be"])


def check_batches(out: str) -> list[Block]:
    """The whole output is pprint blocks, one per batch, in time order."""
    blocks = pprint_blocks(out, whole=True)
    times = [block.time for block in blocks]
    assert times == sorted(set(times))
    return blocks


async def test_network_wordcount_counts_the_words_of_each_batch(line_server):
    # Spark's arguments: "localhost" (the server listens on 127.0.0.1 only)
    async with example("network_wordcount", "localhost", str(line_server.port)) as run:
        connection = await line_server.accept()
        await connection.send(LINES)
        await run.blocks_until(lambda blocks: word_totals(blocks) == WORDS)
        assert await run.stop() == 0  # Ctrl-C: a graceful stop
    blocks = check_batches(run.out)
    assert word_totals(blocks) == WORDS
    assert "Traceback" not in run.err


async def test_network_wordcount_splits_on_spaces_as_spark_does(line_server):
    # line.split(" "): two spaces make an empty word, an empty line is one too
    async with example("network_wordcount", "127.0.0.1", str(line_server.port)) as run:
        connection = await line_server.accept()
        await connection.send(b"a  b\n\n")
        await run.blocks_until(lambda blocks: word_totals(blocks) == {"a": 1, "b": 1, "": 2})
        assert await run.stop(signal.SIGTERM) == 0
    assert word_totals(check_batches(run.out)) == {"a": 1, "b": 1, "": 2}


async def test_stateful_network_wordcount_keeps_running_counts(line_server):
    initial = {"hello": 1, "world": 1}
    port = str(line_server.port)
    async with example("stateful_network_wordcount", "127.0.0.1", port) as run:
        connection = await line_server.accept()
        start = (await run.blocks_until(bool))[0]  # before any line: the initial state
        assert dict(start.records) == initial
        await connection.send(b"hello spark\n")
        first = {"hello": 2, "world": 1, "spark": 1}
        await run.blocks_until(lambda blocks: dict(blocks[-1].records) == first)
        await connection.send(b"spark streams\n")
        second = {"hello": 2, "world": 1, "spark": 2, "streams": 1}
        await run.blocks_until(lambda blocks: dict(blocks[-1].records) == second)
        assert await run.stop() == 0
    states = [dict(block.records) for block in check_batches(run.out)]
    # every batch prints the whole state, even with no new words
    assert all(state in (initial, first, second) for state in states)
    assert states.index(second) > states.index(first)


HAPPY_LINES = b"happy happy sad good love\nwonderful terrible zebra happy\n"


async def test_network_wordjoinsentiments_prints_the_five_happiest_words(line_server):
    port = str(line_server.port)
    async with example("network_wordjoinsentiments", "127.0.0.1", port) as run:
        connection = await line_server.accept()
        await connection.send(HAPPY_LINES)
        await run.read_until(lambda out: "(6 total)" in out)
        assert await run.stop() == 0
    batches = re.split(r"(?m)^(?=Happiest topics)", run.out)[1:]
    assert batches, run.out
    # every batch prints its header; empty batches have no words
    for batch in batches:
        assert re.fullmatch(
            r"Happiest topics in the last 0\.2 seconds \(\d+ total\):\n(.+ \(-?\d+ happiness\)\n)*",
            batch,
        ), batch
    (scored,) = [batch for batch in batches if "(6 total)" in batch]
    # happiness = sentiment x count; zebra has no sentiment; sad and terrible are
    # negative, the fifth place goes to sad (-2)
    assert scored.splitlines()[1:] == [
        "happy (12 happiness)",
        "wonderful (5 happiness)",
        "love (4 happiness)",
        "good (2 happiness)",
        "sad (-2 happiness)",
    ]
    assert "Traceback" not in run.err


async def test_network_wordcount_runs_on_sparks_one_second_grid_by_default(line_server):
    async with example(
        "network_wordcount", "localhost", str(line_server.port), interval=None
    ) as run:
        connection = await line_server.accept()
        await connection.send(b"one second\n")
        await run.blocks_until(lambda blocks: word_totals(blocks) == {"one": 1, "second": 1})
        assert await run.stop() == 0
    times = [block.time for block in check_batches(run.out)]
    assert all(time == round(time) for time in times)  # whole seconds: 1 s batches


COUNTS = re.compile(r"(?m)^Counts at time \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? (\[.*\])$")


def counted(text: str) -> Counter[str]:
    totals: Counter[str] = Counter()
    for listed in COUNTS.findall(text):
        totals.update(dict(ast.literal_eval(listed)))
    return totals


async def test_recoverable_network_wordcount_resumes_after_kill_9(line_server, tmp_path):
    checkpoint, output = tmp_path / "ckpt", tmp_path / "out.txt"
    args = ("localhost", str(line_server.port), str(checkpoint), str(output))
    async with example("recoverable_network_wordcount", *args) as run:
        connection = await line_server.accept()
        await connection.send(b"to be or not to be a b\n")
        await run.read_until(lambda out: counted(out) == {"to": 2, "be": 2, "or": 1, "not": 1})
        await run.read_until(lambda out: "Dropped 2 word(s) totally" in out)
        run.process.send_signal(signal.SIGKILL)
        assert await run.finish() == -signal.SIGKILL
    assert run.out.startswith("Creating new context\n")
    first_output = output.read_text()

    async with example("recoverable_network_wordcount", *args) as run:
        connection = await line_server.accept()
        await connection.send(b"to c\n")
        await run.read_until(lambda out: "Dropped 3 word(s) totally" in out)  # resumed state
        assert await run.stop() == 0
    assert "Creating new context" not in run.out
    # the state is exact (3 dropped, not 5); a batch output after the last checkpoint
    # is output again (at least once), as in Spark
    assert counted(run.out) in ({"to": 1}, {"to": 3, "be": 2, "or": 1, "not": 1})
    assert output.read_text().startswith(first_output)  # appended to, not replaced


SHOW_ROW = re.compile(r"(?m)^\|\s*(\S*)\|\s*(\d+)\|$")


async def test_sql_network_wordcount_prints_each_batch_as_a_table(line_server):
    async with example("sql_network_wordcount", "localhost", str(line_server.port)) as run:
        connection = await line_server.accept()
        await connection.send(LINES)

        def all_counted(out: str) -> bool:
            found: Counter[str] = Counter()
            for word, n in SHOW_ROW.findall(out):
                if n.isdigit():
                    found[word] += int(n)
            return found == WORDS

        await run.read_until(all_counted)
        assert await run.stop() == 0
    tables = re.findall(
        r"(?m)^========= \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? =========\n"
        r"(\+[-+]+\+\n\|\s*word\|total\|\n\+[-+]+\+\n(?:\|.*\|\n)*\+[-+]+\+\n)",
        run.out,
    )
    assert tables, run.out
    assert "Traceback" not in run.err
