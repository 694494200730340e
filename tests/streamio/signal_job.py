"""A job the signal tests run as a subprocess and stop with SIGTERM.

    python signal_job.py DIRECTORY [--hold]

Its receiver stores 1, 2, 3, ... (each record its own position) as fast as the
buffer takes them; the output appends each batch's records to
``DIRECTORY/records`` and the receiver appends each committed position to
``DIRECTORY/commits`` (and writes the last record it stored to
``DIRECTORY/stored`` when it stops). It prints ``ready`` once started and ``batch`` after each
batch. With ``--hold``, a batch that starts once ``DIRECTORY/hold`` exists never
finishes (it prints ``held`` first), so only a hard stop ends the job.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from streamio import Receiver, ReceiverOutput, StreamingContext, run


class Counting(Receiver[int]):
    def __init__(self, commits: Path) -> None:
        self._commits = commits

    async def run(self, output: ReceiverOutput[int]) -> None:
        count = 0
        try:
            while True:
                count += 1  # a put_many that is cancelled still stores its chunk
                await output.put_many([count], position=count)
                await anyio.sleep(0.001)
        finally:  # stopped: the last record stored
            (self._commits.parent / "stored").write_text(f"{count}\n")

    async def commit(self, position: int) -> None:
        with self._commits.open("a") as file:
            file.write(f"{position}\n")


async def main(directory: Path, hold: bool) -> None:
    records = directory / "records"

    async def write(records_of_batch: list[int]) -> None:
        if hold and (directory / "hold").exists():
            print("held", flush=True)
            await anyio.sleep_forever()
        with records.open("a") as file:
            file.writelines(f"{record}\n" for record in records_of_batch)
        print("batch", flush=True)

    async with StreamingContext(batch_interval=0.5, stop_timeout=120) as ssc:
        ssc.receiver_stream(Counting(directory / "commits")).foreach_batch(write)
        await ssc.start()
        print("ready", flush=True)
        await ssc.await_termination()
    print("stopped", flush=True)


if __name__ == "__main__":
    run(main(Path(sys.argv[1]), "--hold" in sys.argv), stop_on_signals=True)
