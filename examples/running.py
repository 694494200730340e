"""What every example shares: its command line, and a stop on Ctrl-C.

An example's options, besides Spark's positional arguments:

- ``--interval SECONDS``: the batch interval (default: the Spark example's own);
  the tests shorten it to stay fast.
- ``--uvloop`` / ``--no-uvloop``: run on uvloop or on asyncio's loop (default:
  uvloop when installed), as ``streamio.run`` does.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import AsyncIterator

import anyio
from anyio.abc import TaskStatus

from streamio import StreamingContext

__all__ = ["example_parser", "until_stopped"]


def example_parser(module: str, doc: str | None, batch_interval: float) -> argparse.ArgumentParser:
    """A parser for the command line of example ``module`` (its ``__name__``), with
    ``--interval`` (``batch_interval`` by default) and ``--uvloop``; the example
    adds its positional arguments."""
    name = module.rsplit(".", 1)[-1]
    parser = argparse.ArgumentParser(
        prog=f"streamio example {name}",
        description=(doc or "").strip().splitlines()[0] if doc else None,
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=batch_interval,
        metavar="SECONDS",
        help=f"batch interval (default: {batch_interval:g}, as in Spark's example)",
    )
    parser.add_argument(
        "--uvloop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run on uvloop (default: when installed)",
    )
    return parser


async def until_stopped(
    ssc: StreamingContext, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    """Wait until ``ssc`` terminates: the first Ctrl-C (SIGINT) or SIGTERM stops it
    gracefully (what was received is processed and printed), a second one at once.

    ``await task_group.start(until_stopped, ssc)`` returns once the signals are
    caught.

    Raises:
        the error that stopped the context, as ``ssc.await_termination()`` does.
    """
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_stop_on_signals, ssc, signals)
            task_status.started()
            try:
                await ssc.await_termination()
            finally:
                tasks.cancel_scope.cancel()


async def _stop_on_signals(ssc: StreamingContext, signals: AsyncIterator[signal.Signals]) -> None:
    graceful = True
    async for _ in signals:
        if graceful:
            print("stopping: finishing the batches received (again: at once)", file=sys.stderr)
        ssc.stop(graceful=graceful)
        graceful = False
