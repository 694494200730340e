"""streamio: an asyncio-native micro-batch streaming runtime, in the model of
Spark Streaming's DStreams."""

from .buffer import BufferStatistics
from .bus import ListenerStatistics
from .chunk import LazyChunk
from .clock import Clock, ManualClock, SystemClock
from .context import ContextState, StreamingContext
from .dstream import DStream
from .errors import (
    CheckpointError,
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
from .inputs import SourceRange
from .listener import (
    BatchInfo,
    CheckpointInfo,
    OutputOperationInfo,
    ReceiverInfo,
    StreamingListener,
    StreamingStartedInfo,
)
from .receiver import Receiver, ReceiverOutput
from .record_errors import DeadLetter
from .runner import run
from .sources import PushStream
from .state import State, StateSpec

__all__ = [
    "BatchInfo",
    "BufferStatistics",
    "CheckpointError",
    "CheckpointInfo",
    "Clock",
    "ConfigurationError",
    "ConnectorError",
    "ContextState",
    "ContextStateError",
    "DStream",
    "DeadLetter",
    "EventWindow",
    "LazyChunk",
    "ListenerStatistics",
    "ManualClock",
    "OperatorError",
    "OutputOperationInfo",
    "PushStream",
    "Receiver",
    "ReceiverError",
    "ReceiverInfo",
    "ReceiverOutput",
    "SourceRange",
    "StreamingContext",
    "StreamingListener",
    "StreamingStartedInfo",
    "StreamioError",
    "State",
    "StateError",
    "StateSpec",
    "StopTimeoutError",
    "SystemClock",
    "run",
]
