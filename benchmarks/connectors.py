"""Word count through each message-broker source against a raw loop with the same
client library, in the same run.

For each chosen connector, this script starts its server (Debian's package, on a
free loopback port, see ``streamio.connectors.testing``), writes N lines (those of
benchmarks/wordcount.py: 10 words each from a 1,000-word vocabulary, fixed seed),
then measures, in turns, best of ``--repeat``:

- baseline: the client library's own read loop (acknowledging what it reads, as
  the source does), decoding, splitting and counting words in a
  ``collections.Counter``: the floor for any word count over that broker in Python;
- streamio: the connector's source -> ``flat_map`` (the record's line, split) ->
  ``count_by_value()`` ->
  an output adding each batch's counts to a total, on the system clock.

Each path is timed from its first read until every word is counted; the counts of
both must agree. The job's time ends at the first tick after the last record
arrived: the batch interval (0.05 s by default) bounds the idle time included.

    python benchmarks/connectors.py [--only redis,...] [--lines N] [--repeat N]
                                    [--interval S] [--buffer N] [--loop asyncio|uvloop|both]

Prints lines/s of both and the ratio (streamio / baseline; 1.0 means no overhead;
the target is 0.85), per connector and loop. Kinesis runs against moto's server,
which answers about 2,000 records/s here: it reads 20,000 lines at most (said on
its line), and its ratio measures little more than that both paths wait on moto.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import random
import string
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio

from streamio import DStream, StreamingContext, run

WORDS_PER_LINE = 10

Counts = collections.Counter[str]


def make_lines(count: int, seed: int = 42) -> list[str]:
    """The lines of benchmarks/wordcount.py: 10 words from a 1,000-word vocabulary."""
    rng = random.Random(seed)
    vocabulary = [
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(1000)
    ]
    return [" ".join(rng.choices(vocabulary, k=WORDS_PER_LINE)) for _ in range(count)]


async def count_through(
    attach: Callable[[StreamingContext], DStream[str]],
    lines: int,
    interval: float,
    buffer: int,
) -> tuple[float, Counts]:
    """Run the streamio word count over the words ``attach`` gives (the source's
    records split by one ``flat_map``); time to the last word."""
    total: Counts = collections.Counter()
    words = lines * WORDS_PER_LINE
    counted = anyio.Event()
    timing: list[float] = []

    def add(records: list[tuple[str, int]]) -> None:
        if not timing:
            timing.append(time.perf_counter())
        total.update(dict(records))
        if sum(total.values()) >= words:
            timing.append(time.perf_counter())
            counted.set()

    async with StreamingContext(batch_interval=interval, buffer_capacity=buffer) as ssc:
        attach(ssc).count_by_value().foreach_batch(add)
        started = time.perf_counter()
        await ssc.start()
        with anyio.fail_after(600):
            await counted.wait()
    return timing[-1] - started, total


@dataclass
class Connector:
    """How to benchmark one source: its server, how to fill it, both read paths.

    ``baseline`` and ``engine`` take the server, the line count and a run number
    (fresh consumer names per run) and return (seconds, word counts).
    """

    server: Callable[[], contextlib.AbstractContextManager[Any]]
    fill: Callable[[Any, list[str]], Awaitable[None]]
    baseline: Callable[[Any, int, int], Awaitable[tuple[float, Counts]]]
    engine: Callable[[Any, int, int, float, int], Awaitable[tuple[float, Counts]]]
    max_lines: int | None = None  # a server too slow for more (said in the output)


# -- Redis Streams ------------------------------------------------------------------------


def redis_connector() -> Connector:
    import redis.asyncio as aioredis

    from streamio.connectors.redis import RedisStreamSource
    from streamio.connectors.testing import redis_server

    key = "lines"

    async def fill(server: Any, lines: list[str]) -> None:
        async with aioredis.Redis.from_url(server.url) as client:
            for start in range(0, len(lines), 10_000):
                async with client.pipeline(transaction=False) as pipe:
                    for line in lines[start : start + 10_000]:
                        pipe.xadd(key, {"line": line})
                    await pipe.execute()

    async def baseline(server: Any, lines: int, run_id: int) -> tuple[float, Counts]:
        group = f"raw-{run_id}"
        counts: Counts = collections.Counter()
        seen = 0
        async with aioredis.Redis.from_url(server.url) as client:
            await client.xgroup_create(key, group, id="0")
            started = time.perf_counter()
            while seen < lines:
                reply = await client.xreadgroup(group, "c", {key: ">"}, count=1000, block=1000)
                for _, entries in reply:
                    seen += len(entries)
                    counts.update(
                        itertools.chain.from_iterable(
                            fields[b"line"].decode().split() for _, fields in entries
                        )
                    )
                    await client.xack(key, group, *(entry_id for entry_id, _ in entries))
            return time.perf_counter() - started, counts

    async def engine(
        server: Any, lines: int, run_id: int, interval: float, buffer: int
    ) -> tuple[float, Counts]:
        def attach(ssc: StreamingContext) -> DStream[str]:
            source = RedisStreamSource(key, group=f"job-{run_id}", consumer="c", url=server.url)
            return source.stream(ssc).flat_map(lambda entry: entry.fields["line"].split())

        return await count_through(attach, lines, interval, buffer)

    return Connector(lambda: redis_server(durable=False), fill, baseline, engine)


# -- NATS JetStream ---------------------------------------------------------------------


def nats_connector() -> Connector:
    import nats
    from nats.js import api

    from streamio.connectors.nats import NatsStreamSource
    from streamio.connectors.testing import nats_server

    async def fill(server: Any, lines: list[str]) -> None:
        client = await nats.connect(server.url)
        try:
            js = client.jetstream()
            await js.add_stream(name="LINES", subjects=["lines"])
            for start in range(0, len(lines), 10_000):
                futures = [
                    await js.publish_async("lines", line.encode())
                    for line in lines[start : start + 10_000]
                ]
                for future in futures:
                    await future
        finally:
            await client.close()

    async def baseline(server: Any, lines: int, run_id: int) -> tuple[float, Counts]:
        counts: Counts = collections.Counter()
        seen = 0
        client = await nats.connect(server.url)
        try:
            config = api.ConsumerConfig(ack_policy=api.AckPolicy.EXPLICIT)
            sub = await client.jetstream().pull_subscribe(
                "lines", durable=f"raw{run_id}", config=config
            )
            started = time.perf_counter()
            while seen < lines:
                try:
                    messages = await sub.fetch(1000, timeout=1.0)
                except nats.errors.TimeoutError:
                    continue
                seen += len(messages)
                counts.update(
                    itertools.chain.from_iterable(m.data.decode().split() for m in messages)
                )
                for m in messages:
                    await client.publish(m.reply, b"+ACK")
            await client.flush()
            return time.perf_counter() - started, counts
        finally:
            await client.close()

    async def engine(
        server: Any, lines: int, run_id: int, interval: float, buffer: int
    ) -> tuple[float, Counts]:
        def attach(ssc: StreamingContext) -> DStream[str]:
            source = NatsStreamSource(
                "lines", durable=f"job{run_id}", servers=server.url, value_deserializer="str"
            )
            return source.stream(ssc).flat_map(lambda message: message.data.split())

        return await count_through(attach, lines, interval, buffer)

    return Connector(nats_server, fill, baseline, engine)


# -- MQTT -------------------------------------------------------------------------------


def mqtt_connector() -> Connector:
    import aiomqtt

    from streamio.connectors.mqtt import MqttSource
    from streamio.connectors.testing import mosquitto_server

    kept: list[str] = []

    async def fill(server: Any, lines: list[str]) -> None:
        kept[:] = lines  # queued for each run's own session, before it is timed

    async def queue_for(server: Any, client_id: str) -> None:
        """Subscribe a persistent session, leave, publish the lines: the broker
        queues them for the session (MQTT keeps no history)."""
        async with aiomqtt.Client(
            "127.0.0.1", server.port, identifier=client_id, clean_session=False
        ) as client:
            await client.subscribe("lines", qos=1)
        async with aiomqtt.Client("127.0.0.1", server.port) as client:
            client.pending_calls_threshold = 1000  # 100 publishes in flight are expected
            for start in range(0, len(kept), 100):
                async with anyio.create_task_group() as group:
                    for line in kept[start : start + 100]:
                        group.start_soon(client.publish, "lines", line.encode(), 1)

    async def baseline(server: Any, lines: int, run_id: int) -> tuple[float, Counts]:
        client_id = f"raw-{run_id}"
        await queue_for(server, client_id)
        counts: Counts = collections.Counter()
        seen = 0
        started = time.perf_counter()
        async with aiomqtt.Client(
            "127.0.0.1", server.port, identifier=client_id, clean_session=False
        ) as client:
            messages = client.messages
            while seen < lines:
                # what has arrived, counted at once (as the source stores a chunk)
                chunk = [await anext(messages)]
                while len(messages) and len(chunk) < 1000:
                    chunk.append(await anext(messages))
                seen += len(chunk)
                counts.update(
                    itertools.chain.from_iterable(
                        m.payload.decode().split()  # type: ignore[union-attr]
                        for m in chunk
                    )
                )
        return time.perf_counter() - started, counts

    async def engine(
        server: Any, lines: int, run_id: int, interval: float, buffer: int
    ) -> tuple[float, Counts]:
        client_id = f"job-{run_id}"
        await queue_for(server, client_id)

        def attach(ssc: StreamingContext) -> DStream[str]:
            source = MqttSource(
                "lines", port=server.port, client_id=client_id, value_deserializer="str"
            )
            return source.stream(ssc).flat_map(lambda message: message.payload.split())

        return await count_through(attach, lines, interval, buffer)

    return Connector(lambda: mosquitto_server(max_queued=0), fill, baseline, engine)


# -- ZeroMQ -------------------------------------------------------------------------------


def _push_lines(address: str, lines: list[str]) -> None:  # runs in a child process
    import zmq

    context = zmq.Context()
    socket = context.socket(zmq.PUSH)
    socket.bind(address)
    for line in lines:
        socket.send(line.encode())
    socket.close(linger=-1)  # until every line is taken
    context.term()


def zeromq_connector() -> Connector:
    import multiprocessing

    import zmq
    import zmq.asyncio

    from streamio.connectors.testing import free_port
    from streamio.connectors.zeromq import ZmqSource

    kept: list[str] = []

    @contextlib.contextmanager
    def pushers() -> Iterator[Any]:
        yield None  # each run starts its own pushing process

    async def fill(server: Any, lines: list[str]) -> None:
        kept[:] = lines

    def start_pusher() -> tuple[str, Any]:
        address = f"tcp://127.0.0.1:{free_port()}"
        process = multiprocessing.get_context("fork").Process(
            target=_push_lines, args=(address, kept)
        )
        process.start()
        return address, process

    async def baseline(server: Any, lines: int, run_id: int) -> tuple[float, Counts]:
        address, process = start_pusher()
        context = zmq.asyncio.Context()
        socket = context.socket(zmq.PULL)
        counts: Counts = collections.Counter()
        seen = 0
        started = time.perf_counter()
        socket.connect(address)
        ready = zmq.Socket.shadow(socket)  # what has arrived, without a future per call
        while seen < lines:
            chunk = [await socket.recv()]
            with contextlib.suppress(zmq.Again):
                while len(chunk) < 1000:
                    chunk.append(ready.recv(zmq.NOBLOCK))
            seen += len(chunk)
            counts.update(itertools.chain.from_iterable(f.decode().split() for f in chunk))
        elapsed = time.perf_counter() - started
        context.destroy(linger=0)
        process.join()
        return elapsed, counts

    async def engine(
        server: Any, lines: int, run_id: int, interval: float, buffer: int
    ) -> tuple[float, Counts]:
        address, process = start_pusher()

        def attach(ssc: StreamingContext) -> DStream[str]:
            source = ZmqSource(address, kind="pull", value_deserializer="str")
            return source.stream(ssc).flat_map(lambda message: message.value.split())

        try:
            return await count_through(attach, lines, interval, buffer)
        finally:
            process.join()

    return Connector(pushers, fill, baseline, engine)


# -- Kinesis (moto's server) ------------------------------------------------------------

# moto's Kinesis answers about 2,000 records/s on this machine (both paths wait on it
# alike) and takes its records at about 700/s: a million would take hours to load.
KINESIS_LINES = 20_000
KINESIS_SHARDS = 4


def kinesis_connector() -> Connector:
    from aiobotocore.session import get_session

    from streamio.connectors.kinesis import KinesisSource
    from streamio.connectors.testing import moto_server

    options = {"region_name": "us-east-1", "aws_access_key_id": "bench",
               "aws_secret_access_key": "bench"}  # fmt: skip

    def client(server: Any) -> Any:
        return get_session().create_client("kinesis", endpoint_url=server.url, **options)

    async def fill(server: Any, lines: list[str]) -> None:
        async with client(server) as kinesis:
            await kinesis.create_stream(StreamName="lines", ShardCount=KINESIS_SHARDS)
            for start in range(0, len(lines), 500):
                records = [
                    {"Data": line.encode(), "PartitionKey": str(start + i)}
                    for i, line in enumerate(lines[start : start + 500])
                ]
                await kinesis.put_records(StreamName="lines", Records=records)

    async def baseline(server: Any, lines: int, run_id: int) -> tuple[float, Counts]:
        counts: Counts = collections.Counter()
        seen = 0
        async with client(server) as kinesis:
            started = time.perf_counter()
            shards = (await kinesis.list_shards(StreamName="lines"))["Shards"]

            async def read(shard_id: str) -> None:  # each shard to the end of the lines
                nonlocal seen
                iterator = (
                    await kinesis.get_shard_iterator(
                        StreamName="lines", ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                    )
                )["ShardIterator"]
                while seen < lines:
                    reply = await kinesis.get_records(ShardIterator=iterator, Limit=10_000)
                    records = reply["Records"]
                    if not records:
                        return
                    seen += len(records)
                    counts.update(
                        itertools.chain.from_iterable(r["Data"].decode().split() for r in records)
                    )
                    iterator = reply["NextShardIterator"]

            async with anyio.create_task_group() as group:
                for shard in shards:
                    group.start_soon(read, shard["ShardId"])
            return time.perf_counter() - started, counts

    async def engine(
        server: Any, lines: int, run_id: int, interval: float, buffer: int
    ) -> tuple[float, Counts]:
        def attach(ssc: StreamingContext) -> DStream[str]:
            source = KinesisSource(
                "lines",
                endpoint_url=server.url,
                initial_position="TRIM_HORIZON",
                value_deserializer="str",
                chunk_size=10_000,
                **options,
            )
            return source.stream(ssc).flat_map(lambda record: record.data.split())

        return await count_through(attach, lines, interval, buffer)

    return Connector(moto_server, fill, baseline, engine, max_lines=KINESIS_LINES)


CONNECTORS: dict[str, Callable[[], Connector]] = {
    "redis": redis_connector,
    "nats": nats_connector,
    "mqtt": mqtt_connector,
    "zeromq": zeromq_connector,
    "kinesis": kinesis_connector,
}


def measure(
    connector: Connector, server: Any, args: argparse.Namespace, runs: Iterator[int], count: int
) -> tuple[float, float]:
    """Best times of the baseline and of streamio over ``count`` lines, in turns."""
    raw_times, job_times = [], []
    for _ in range(args.repeat):
        raw, raw_counts = run(connector.baseline(server, count, next(runs)), use_uvloop=args.uvloop)
        job_run = connector.engine(server, count, next(runs), args.interval, args.buffer)
        job, job_counts = run(job_run, use_uvloop=args.uvloop)
        assert job_counts == raw_counts, "the two word counts differ"
        assert sum(raw_counts.values()) == count * WORDS_PER_LINE
        raw_times.append(raw)
        job_times.append(job)
    return min(raw_times), min(job_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(CONNECTORS), help="connectors, comma-separated")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs of each")
    parser.add_argument("--interval", type=float, default=0.05, help="batch interval, seconds")
    parser.add_argument("--buffer", type=int, default=200_000, help="buffer capacity, records")
    parser.add_argument("--loop", choices=("asyncio", "uvloop", "both"), default="both")
    args = parser.parse_args()
    loops = ("asyncio", "uvloop") if args.loop == "both" else (args.loop,)
    lines = make_lines(args.lines)
    print(
        f"{args.lines:,} lines; best of {args.repeat}; batch interval {args.interval}s; "
        f"buffer {args.buffer:,} records"
    )
    print(f"{'connector':10} {'loop':8} {'streamio':>12} {'raw client':>12} {'ratio':>6}")
    for name in args.only.split(","):
        connector = CONNECTORS[name]()
        count = min(args.lines, connector.max_lines or args.lines)
        with connector.server() as server:
            run(connector.fill(server, lines[:count]), use_uvloop=False)
            runs = itertools.count()
            for loop in loops:
                args.uvloop = loop == "uvloop"
                raw, job = measure(connector, server, args, runs, count)
                scaled = "" if count == args.lines else f"  ({count:,} lines: a slow server)"
                print(
                    f"{name:10} {loop:8} {count / job:>12,.0f} {count / raw:>12,.0f} "
                    f"{raw / job:>6.2f}{scaled}"
                )


if __name__ == "__main__":
    main()
