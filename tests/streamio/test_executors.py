"""Stages off the event loop: the process pool, any Executor, and Dask."""

from __future__ import annotations

import ast
import concurrent.futures
import multiprocessing
import operator
import os
import random
import traceback
import uuid
from collections import Counter
from pathlib import Path

import pytest

from streamio import ConfigurationError, ManualClock, OperatorError, StreamingContext
from streamio.testing import ListSink, step

LINES = [["a b", "b c c", "d"], ["c a", "e e e e"], [], ["f"]]

GRAPHS = {
    "word count": lambda s: s.flat_map(str.split).map(lambda w: (w, 1)).reduce_by_key(operator.add),
    "count by value": lambda s: s.flat_map(str.split).count_by_value(),
    "filter and map": lambda s: s.filter(lambda line: "c" in line).map(len),
    "group by key": lambda s: s.map(lambda line: (len(line), line)).group_by_key(),
    "count": lambda s: s.flat_map(str.split).count(),
    "running count": lambda s: s.flat_map(str.split)
    .map(lambda w: (w, 1))
    .update_state_by_key(lambda counts, old: sum(counts, old or 0)),
}


async def run_graph(build, batches, **context_options):
    sink = ListSink()
    async with StreamingContext(
        batch_interval=1.0, clock=ManualClock(), partition_size=2, **context_options
    ) as ssc:
        build(ssc.queue_stream([list(b) for b in batches])).foreach_batch(sink)
        ssc.start()
        await step(ssc, len(batches))
    return [(time, sorted(map(repr, records))) for time, records in sink.batches]


@pytest.fixture(scope="module")
def pool():
    with concurrent.futures.ProcessPoolExecutor(2) as executor:
        yield executor


@pytest.mark.parametrize("graph", GRAPHS)
@pytest.mark.parametrize("where", ["context pool", "operator marked", "given executor"])
async def test_stages_in_worker_processes_give_the_inline_results(graph, where, pool):
    build = GRAPHS[graph]
    expected = await run_graph(build, LINES)
    if where == "context pool":
        got = await run_graph(build, LINES, executor="process", max_workers=2)
    elif where == "given executor":
        got = await run_graph(build, LINES, executor=pool)
    else:
        marked = lambda s: build(s.map(lambda line: line, executor="process"))  # noqa: E731
        got = await run_graph(marked, LINES, max_workers=2)
    assert got == expected


def worker_pid(_record):
    return os.getpid()


async def test_marked_stages_run_in_other_processes_and_unmarked_ones_inline():
    async def pids(executor):
        sink = ListSink()
        async with StreamingContext(batch_interval=1.0, clock=ManualClock(), max_workers=2) as ssc:
            ssc.queue_stream([[1, 2, 3]]).map(worker_pid, executor=executor).foreach_batch(sink)
            ssc.start()
            await step(ssc)
        return set(sink.records)

    assert await pids(None) == {os.getpid()}
    assert os.getpid() not in await pids("process")


async def test_closures_and_lambdas_travel_to_the_workers():
    factor = 7
    offset = {"value": 3}

    def scale(x):
        return x * factor + offset["value"]

    got = await run_graph(
        lambda s: s.map(scale, executor="process").filter(lambda x: x % 2 == 0),
        [[1, 2, 3, 4]],
        max_workers=2,
    )
    assert got == [(1.0, ["10", "24"])]


def explode(x):
    if x == 13:
        raise ValueError(f"bad record {x}")
    return x


async def test_an_error_in_a_worker_names_the_operator_and_keeps_the_worker_traceback():
    with pytest.raises(OperatorError) as info:
        await run_graph(
            lambda s: s.map(lambda x: x + 1, name="inc", executor="process").map(
                explode, name="check"
            ),
            [[1, 2], [12]],
            max_workers=2,
        )
    error = info.value
    assert error.operator == "check"
    assert error.batch_time == 2.0
    assert isinstance(error.__cause__, ValueError)
    remote = "".join(traceback.format_exception(error.__cause__))
    assert "in explode" in remote and "bad record 13" in remote
    assert "_RemoteTraceback" in remote or "Traceback" in str(error.__cause__.__cause__)


def kill_worker_once(marker: str):
    def fn(x):
        path = Path(marker)
        if x == 2 and not path.exists():
            path.write_text("killed")
            os._exit(1)  # the worker dies in the middle of the batch
        return x * 10

    return fn


async def test_a_killed_worker_is_replaced_and_the_batch_retried(tmp_path):
    marker = tmp_path / "killed"
    got = await run_graph(
        lambda s: s.map(kill_worker_once(str(marker)), executor="process"),
        [[1, 2, 3], [4]],
        max_workers=2,
    )
    assert marker.exists()  # a worker did die
    assert got == [(1.0, ["10", "20", "30"]), (2.0, ["40"])]


async def test_no_worker_process_is_left_after_the_context_stops():
    before = {child.pid for child in multiprocessing.active_children()}
    async with StreamingContext(
        batch_interval=1.0, clock=ManualClock(), executor="process", max_workers=2
    ) as ssc:
        ssc.queue_stream([[1, 2, 3, 4]]).map(lambda x: x + 1).foreach_batch(ListSink())
        ssc.start()
        await step(ssc)
        during = {child.pid for child in multiprocessing.active_children()}
        assert during - before  # the context's own workers
    assert {child.pid for child in multiprocessing.active_children()} == before


async def test_a_given_executor_is_used_and_left_open():
    with concurrent.futures.ProcessPoolExecutor(1) as single:
        worker = single.submit(os.getpid).result()  # the pool's one worker process
        expected = await run_graph(GRAPHS["word count"], LINES)
        assert await run_graph(GRAPHS["word count"], LINES, executor=single) == expected
        pids = await run_graph(lambda s: s.map(worker_pid), [[1, 2, 3]], executor=single)
        assert pids == [(1.0, [str(worker)] * 3)]  # the stages ran in the given pool
        assert single.submit(operator.add, 1, 2).result() == 3  # still usable: not shut down


UNPICKLED: Counter[str] = Counter()  # in each process: unpicklings of each counter


class CountsItsUnpickling:
    """A stage function that counts, in the worker process, how often it was unpickled."""

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__dict__.update(state)
        UNPICKLED[self.token] += 1

    def __call__(self, record: int) -> tuple[int, int]:
        return (os.getpid(), UNPICKLED[self.token])


async def test_a_stage_is_unpickled_once_per_worker_process():
    counter = CountsItsUnpickling()
    batches = [list(range(8)), list(range(8))]  # partition_size=2: four partitions each
    got = await run_graph(
        lambda s: s.map(counter, executor="process"), batches, max_workers=2
    )
    seen = [ast.literal_eval(record) for _, records in got for record in records]
    assert len(seen) == 16
    assert {unpicklings for _, unpicklings in seen} == {1}  # every worker: once


@pytest.mark.parametrize("executor", ["threads", 3, None])
def test_wrong_executor_settings_fail_when_the_context_is_built(executor):
    with pytest.raises(ConfigurationError, match="executor= must be"):
        StreamingContext(batch_interval=1.0, executor=executor)


async def test_wrong_operator_executor_fails_when_the_graph_is_built():
    async with StreamingContext(batch_interval=1.0, clock=ManualClock()) as ssc:
        with pytest.raises(ConfigurationError, match=r'map\(\): executor= must be "inline"'):
            ssc.queue_stream([[1]]).map(str, executor="thread")


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


async def test_stages_run_on_a_dask_cluster(dask_client):
    expected = await run_graph(GRAPHS["word count"], LINES)
    got = await run_graph(GRAPHS["word count"], LINES, executor=dask_client)
    assert got == expected
    pids = await run_graph(lambda s: s.map(worker_pid), [[1, 2, 3, 4]], executor=dask_client)
    worker_pids = {int(p) for p in pids[0][1]}
    assert os.getpid() not in worker_pids


def draw(_: int) -> float:
    return random.random()


async def test_equal_partitions_are_separate_dask_tasks(dask_client):
    # a stage may draw random numbers or call a service: Dask must not merge the
    # tasks of two partitions that happen to hold the same records
    [(_, draws)] = await run_graph(lambda s: s.map(draw), [[7, 7, 7, 7]], executor=dask_client)
    assert len(set(draws)) == 4
