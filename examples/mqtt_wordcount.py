"""Counts the words of the messages published to an MQTT topic, in 1-second batches.

The twin of Spark's examples/src/main/python/streaming/mqtt_wordcount.py.

Usage: mqtt_wordcount <broker url> <topic>

Start a broker (Mosquitto), then run::

    python -m streamio example mqtt_wordcount tcp://localhost:1883 foo

and publish lines to the topic (``mosquitto_pub -t foo -m "hello world"``). The
topic may be a filter (``sensors/+/log``, ``logs/#``). Messages are taken with
QoS 1 in a clean session, as Spark's receiver does. Needs
``pip install 'streamio[mqtt]'``.
"""

from __future__ import annotations

import argparse
import operator
import urllib.parse

import streamio
from streamio import StreamingContext
from streamio.connectors.mqtt import mqtt_stream

from .running import example_parser, until_stopped


def broker_address(url: str) -> tuple[str, int]:
    """``tcp://host:port`` (or ``mqtt://``; the port 1883 by default) as host and port."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("tcp", "mqtt") or not parts.hostname:
        msg = f"expected a broker url such as tcp://localhost:1883, not {url!r}"
        raise argparse.ArgumentTypeError(msg)
    return parts.hostname, parts.port or 1883


async def mqtt_wordcount(host: str, port: int, topic: str, batch_interval: float = 1.0) -> None:
    async with StreamingContext(batch_interval=batch_interval) as ssc:
        messages = mqtt_stream(ssc, topic, host=host, port=port, value_deserializer="str")
        lines = messages.map(lambda message: message.payload)
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
    parser.add_argument("broker", metavar="broker url", type=broker_address)
    parser.add_argument("topic")
    args = parser.parse_args(argv)
    (host, port), topic = args.broker, args.topic
    streamio.run(mqtt_wordcount(host, port, topic, args.interval), use_uvloop=args.uvloop)


if __name__ == "__main__":
    main()
