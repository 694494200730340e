"""Counts the words of the messages a ZeroMQ publisher sends on a topic, in 1-second batches.

The twin of Spark's examples/src/main/python/streaming/zeromq_wordcount.py.

Usage: zeromq_wordcount <zeroMQurl> <topic>

Given a PUB socket bound at ``tcp://127.0.0.1:1234``, run::

    python -m streamio example zeromq_wordcount tcp://127.0.0.1:1234 foo

The job subscribes to the topic (a prefix: ``foo`` also takes ``foo.bar``) and
counts the words of each message's last frame, the text, as sent by a publisher
of ``[topic, text]`` messages (Spark's SimpleZeroMQPublisher). Needs
``pip install 'streamio[zeromq]'``.
"""

from __future__ import annotations

import operator

import streamio
from streamio import StreamingContext
from streamio.connectors.zeromq import zmq_stream

from .running import example_parser, until_stopped


async def zeromq_wordcount(url: str, topic: str, batch_interval: float = 1.0) -> None:
    async with StreamingContext(batch_interval=batch_interval) as ssc:
        messages = zmq_stream(ssc, url, kind="sub", topics=[topic], value_deserializer="str")
        lines = messages.map(lambda message: message.value)
        counts = (
            lines.flat_map(lambda line: line.strip().split())
            .map(lambda word: (word, 1))
            .reduce_by_key(operator.add)
        )
        counts.pprint()
        await ssc.start()
        await until_stopped(ssc)


def main(argv: list[str] | None = None) -> None:
    parser = example_parser(__name__, __doc__, batch_interval=1.0)
    parser.add_argument("url", metavar="zeroMQurl")
    parser.add_argument("topic")
    args = parser.parse_args(argv)
    streamio.run(zeromq_wordcount(args.url, args.topic, args.interval), use_uvloop=args.uvloop)


if __name__ == "__main__":
    main()
