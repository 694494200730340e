"""The examples that read a message broker: kafka_wordcount against the Kafka test
broker, mqtt_wordcount against Mosquitto, zeromq_wordcount against a ZeroMQ
publisher; run as subprocesses."""

from __future__ import annotations

from collections import Counter

import aiomqtt
import anyio
import pytest
import zmq
import zmq.asyncio
from example_process import HANG_GUARD, example, pprint_blocks, word_totals

from streamio.connectors.kafka.testing import create_topic
from streamio.connectors.testing import free_port

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio"])

LINES = ["to be or not to be", "that is the question", "to be"]
WORDS = Counter(" ".join(LINES).split(" "))


async def test_kafka_wordcount_counts_the_words_of_a_topic(kafka_broker):
    from aiokafka import AIOKafkaProducer

    topic = "kafka-wordcount-example"
    await create_topic(kafka_broker.bootstrap_servers, topic)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    await producer.start()
    try:
        for line in LINES:
            await producer.send_and_wait(topic, line.encode())
    finally:
        await producer.stop()
    async with example("kafka_wordcount", kafka_broker.bootstrap_servers, topic) as run:
        await run.blocks_until(lambda blocks: word_totals(blocks) == WORDS)
        assert await run.stop() == 0
    assert word_totals(pprint_blocks(run.out, whole=True)) == WORDS
    assert "Traceback" not in run.err


async def test_mqtt_wordcount_counts_the_words_published_to_a_topic(mosquitto_server):
    url = f"tcp://127.0.0.1:{mosquitto_server.port}"
    async with example("mqtt_wordcount", url, "example/lines") as run:
        await run.blocks_until(bool)  # the first batch: subscribed
        async with aiomqtt.Client("127.0.0.1", mosquitto_server.port) as client:
            await client.publish("example/other", b"not counted", qos=1)
            for line in LINES:
                await client.publish("example/lines", line.encode(), qos=1)
        await run.blocks_until(lambda blocks: word_totals(blocks) == WORDS)
        assert await run.stop() == 0
    assert word_totals(pprint_blocks(run.out, whole=True)) == WORDS
    assert "Traceback" not in run.err


async def test_zeromq_wordcount_counts_the_words_of_a_topic():
    url = f"tcp://127.0.0.1:{free_port()}"
    context = zmq.asyncio.Context()
    publisher = context.socket(zmq.XPUB)  # an XPUB sees the subscription arrive
    publisher.setsockopt(zmq.LINGER, 0)
    publisher.bind(url)
    try:
        async with example("zeromq_wordcount", url, "foo") as run:
            with anyio.fail_after(HANG_GUARD):
                assert await publisher.recv() == b"\x01foo"
            await publisher.send_multipart([b"foo", b"to be or not to be"])
            await publisher.send_multipart([b"bar", b"not counted"])
            await publisher.send_multipart([b"foo.bar", b" that is the question \n"])
            await publisher.send_multipart([b"foo", b"to  be"])  # split on any whitespace
            await run.blocks_until(lambda blocks: word_totals(blocks) == WORDS)
            assert await run.stop() == 0
    finally:
        context.destroy(linger=0)
    assert word_totals(pprint_blocks(run.out, whole=True)) == WORDS
    assert "Traceback" not in run.err
