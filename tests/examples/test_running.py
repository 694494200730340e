"""What the examples share: the stop on Ctrl-C, in this process, with signals sent
to it once they are caught."""

from __future__ import annotations

import os
import signal

import anyio
import pytest

from streamio import StreamingContext
from streamio.examples.running import until_stopped

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])

# Far below the context's stop_timeout (30 s): only a hard stop ends the job in time.
HANG_GUARD = 10


async def test_a_second_signal_stops_a_job_whose_graceful_stop_cannot_end():
    in_output = anyio.Event()
    cancelled = False

    async def stuck(records: list[int]) -> None:
        nonlocal cancelled
        in_output.set()
        try:
            await anyio.sleep_forever()  # a sink that never answers
        except anyio.get_cancelled_exc_class():
            cancelled = True
            raise

    with anyio.fail_after(HANG_GUARD):
        async with StreamingContext(batch_interval=0.01) as ssc:
            ssc.queue_stream([[1]]).foreach_batch(stuck)
            await ssc.start()
            async with anyio.create_task_group() as tasks:
                await tasks.start(until_stopped, ssc)
                await in_output.wait()
                os.kill(os.getpid(), signal.SIGINT)  # graceful: waits for the batch
                os.kill(os.getpid(), signal.SIGTERM)  # at once
    assert cancelled


async def test_the_job_ending_by_itself_ends_the_wait():
    async with StreamingContext(batch_interval=0.01) as ssc:
        ssc.queue_stream([[1]]).foreach_batch(lambda records: ssc.stop())
        await ssc.start()
        with anyio.fail_after(HANG_GUARD):
            await until_stopped(ssc)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back
