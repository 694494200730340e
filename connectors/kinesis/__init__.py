"""Amazon Kinesis Data Streams for streamio: a source over every shard and a
``PutRecords`` sink (aiobotocore).

Source — a stream of :class:`KinesisRecord`, every shard read in chunks, resharding
followed (a child shard once its parents are read to their end), positions
(sequence numbers per shard) kept in streamio's checkpoint::

    from streamio.connectors.kinesis import KinesisSink, kinesis_stream

    records = kinesis_stream(ssc, "events", region_name="eu-west-1",
                             initial_position="TRIM_HORIZON", value_deserializer="str")

Sink — every batch written and acknowledged before the output returns, the
records Kinesis failed retried::

    async with KinesisSink("counts", value_serializer="json",
                           partition_key=lambda pair: pair[0]) as sink, \\
            StreamingContext(batch_interval=1.0) as ssc:
        counts.foreach_batch(sink)

Needs ``pip install 'streamio[kinesis]'``.
"""

from __future__ import annotations

from .records import SHARD_END, KinesisPosition, KinesisRecord, KinesisSourceStatistics
from .sink import KinesisSink
from .source import InitialPosition, KinesisSource, kinesis_stream

__all__ = [
    "SHARD_END",
    "InitialPosition",
    "KinesisPosition",
    "KinesisRecord",
    "KinesisSink",
    "KinesisSource",
    "KinesisSourceStatistics",
    "kinesis_stream",
]
