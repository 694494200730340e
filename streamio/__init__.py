"""streamio: an asyncio-native micro-batch streaming runtime, in the model of
Spark Streaming's DStreams."""

from .buffer import BufferStatistics
from .chunk import LazyChunk
from .clock import Clock, ManualClock, SystemClock
from .context import ContextState, StreamingContext
from .dstream import DStream
from .errors import (
    ConfigurationError,
    ConnectorError,
    ContextStateError,
    OperatorError,
    ReceiverError,
    StateError,
    StopTimeoutError,
    StreamioError,
)
from .event_time import EventWindow
from .listener import BatchInfo, ReceiverInfo, StreamingListener
from .receiver import Receiver, ReceiverOutput
from .record_errors import DeadLetter
from .runner import run
from .sources import PushStream
from .state import State, StateSpec

__all__ = [
    "BatchInfo",
    "BufferStatistics",
    "Clock",
    "ConfigurationError",
    "ConnectorError",
    "ContextState",
    "ContextStateError",
    "DStream",
    "DeadLetter",
    "EventWindow",
    "LazyChunk",
    "ManualClock",
    "OperatorError",
    "PushStream",
    "Receiver",
    "ReceiverError",
    "ReceiverInfo",
    "ReceiverOutput",
    "StreamingContext",
    "StreamingListener",
    "StreamioError",
    "State",
    "StateError",
    "StateSpec",
    "StopTimeoutError",
    "SystemClock",
    "run",
]
