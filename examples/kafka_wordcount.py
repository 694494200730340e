"""Counts the words of the messages of a Kafka topic, in 1-second batches.

The twin of Spark's examples/src/main/python/streaming/kafka_wordcount.py.

Usage: kafka_wordcount <bootstrap-servers> <topic>

Run::

    python -m streamio example kafka_wordcount localhost:9092 test

and produce lines to the topic (``kafka-console-producer.sh --bootstrap-server
localhost:9092 --topic test``). Spark's receiver took ZooKeeper's address
(``localhost:2181``) and its direct stream the brokers' (``localhost:9092``);
today's Kafka clients talk to the brokers only, so the first argument is the
brokers' ``host:port`` list, comma separated. The job reads as consumer group
``streamio-kafka-wordcount``: the first time from the start of the topic, then
from where its offsets were last committed (after each batch). Needs
``pip install 'streamio[kafka]'``.
"""

from __future__ import annotations

import operator

import streamio
from streamio import StreamingContext
from streamio.connectors.kafka import kafka_stream

from .running import example_parser, until_stopped


async def kafka_wordcount(bootstrap_servers: str, topic: str, batch_interval: float = 1.0) -> None:
    async with StreamingContext(batch_interval=batch_interval) as ssc:
        records = kafka_stream(
            ssc,
            topic,
            group_id="streamio-kafka-wordcount",
            bootstrap_servers=bootstrap_servers.split(","),
            auto_offset_reset="earliest",
            value_deserializer="str",
        )
        lines = records.map(lambda record: record.value)
        counts = (
            lines.flat_map(lambda line: line.split(" "))
            .map(lambda word: (word, 1))
            .reduce_by_key(operator.add)
        )
        counts.pprint()
        await ssc.start()
        await until_stopped(ssc)


def main(argv: list[str] | None = None) -> None:
    parser = example_parser(__name__, __doc__, batch_interval=1.0)
    parser.add_argument("bootstrap_servers", metavar="bootstrap-servers")
    parser.add_argument("topic")
    args = parser.parse_args(argv)
    job = kafka_wordcount(args.bootstrap_servers, args.topic, args.interval)
    streamio.run(job, use_uvloop=args.uvloop)


if __name__ == "__main__":
    main()
