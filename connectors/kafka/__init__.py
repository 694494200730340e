"""Kafka for streamio: a consumer-group source and a producer sink (aiokafka).

Source — a stream of :class:`KafkaRecord`, offsets committed once each batch's
outputs have finished (at-least-once)::

    from streamio.connectors.kafka import KafkaSink, kafka_stream

    records = kafka_stream(ssc, "events", group_id="job", bootstrap_servers="kafka:9092",
                           auto_offset_reset="earliest", value_deserializer="json")

Sink — every batch sent and acknowledged before the output returns::

    async with KafkaSink("counts", value_serializer="json") as sink, \\
            StreamingContext(batch_interval=1.0) as ssc:
        counts.foreach_batch(sink)

Needs ``pip install 'streamio[kafka]'``.
"""

from __future__ import annotations

try:
    import aiokafka  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("the Kafka connector needs aiokafka: pip install 'streamio[kafka]'") from exc

from .records import KafkaPosition, KafkaRecord, OffsetRange, TopicPartition
from .serde import (
    Deserializer,
    Serializer,
    deserialize_bytes,
    deserialize_json,
    deserialize_str,
    serialize_bytes,
    serialize_json,
    serialize_str,
)
from .sink import KafkaSink, kafka_sink
from .source import KafkaSource, KafkaSourceStatistics, kafka_stream

__all__ = [
    "Deserializer",
    "KafkaPosition",
    "KafkaRecord",
    "KafkaSink",
    "KafkaSource",
    "KafkaSourceStatistics",
    "OffsetRange",
    "Serializer",
    "TopicPartition",
    "deserialize_bytes",
    "deserialize_json",
    "deserialize_str",
    "kafka_sink",
    "kafka_stream",
    "serialize_bytes",
    "serialize_json",
    "serialize_str",
]
