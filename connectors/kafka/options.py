"""The Kafka source's configuration checks: what it subscribes to, and which
aiokafka consumer options a caller may pass through."""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer

from streamio.errors import ConfigurationError

__all__ = ["check_consumer_options", "subscription"]

# Options the source sets itself, and why a caller may not.
_RESERVED_OPTIONS = {
    "enable_auto_commit": "offsets are committed by the source once each batch's outputs "
    "finished; auto-commit would commit records that were never processed",
    "key_deserializer": "pass key_deserializer to KafkaSource itself",
    "value_deserializer": "pass value_deserializer to KafkaSource itself",
    "loop": "the consumer is created in the running event loop",
}
_CONSUMER_OPTIONS = frozenset(inspect.signature(AIOKafkaConsumer.__init__).parameters) - {
    "self",
    "topics",
}


def subscription(topics: Any) -> tuple[tuple[str, ...], str | None]:
    """(topic names, None) or ((), pattern) for what ``topics`` asks for."""
    if isinstance(topics, re.Pattern):
        return (), topics.pattern
    names = (topics,) if isinstance(topics, str) else tuple(topics)
    if not names or not all(isinstance(name, str) and name for name in names):
        msg = f"topics must be a topic name, names or a re.Pattern, not {topics!r}"
        raise ConfigurationError(msg)
    return names, None


def check_consumer_options(consumer_config: Mapping[str, Any]) -> None:
    """Refuse the options the source sets itself and the ones aiokafka does not know."""
    for key in consumer_config:
        if key in _RESERVED_OPTIONS:
            raise ConfigurationError(f"{key} cannot be set: {_RESERVED_OPTIONS[key]}")
        if key not in _CONSUMER_OPTIONS:
            raise ConfigurationError(f"{key!r} is not an aiokafka consumer option")
