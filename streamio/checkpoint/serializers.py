"""How checkpointed values become bytes: pickle by default, pluggable.

The checkpoint directory is local and trusted (it is written by the job itself),
so state values are pickled: any picklable key or value works, and functions or
classes defined in ``__main__`` are pickled by value (cloudpickle) when plain
pickle cannot. Users who want a format readable by other tools pass a
serializer of their own to ``ssc.checkpoint(..., serializer=...)``:
:class:`JsonSerializer`, or any object with ``dumps`` and ``loads``.

Never point a checkpoint at a directory that others can write: loading a
pickle runs code.
"""

from __future__ import annotations

import json
import pickle
from typing import Any, Protocol, runtime_checkable

import cloudpickle

__all__ = ["JsonSerializer", "PickleSerializer", "Serializer"]


@runtime_checkable
class Serializer(Protocol):
    """Turns checkpointed keys, values and positions into bytes and back."""

    def dumps(self, value: Any) -> bytes:
        """The bytes of ``value``."""
        ...

    def loads(self, data: bytes) -> Any:
        """The value of bytes made by :meth:`dumps`."""
        ...


class PickleSerializer:
    """Pickle (protocol 5), falling back to cloudpickle for what pickle refuses
    (lambdas, classes defined in ``__main__``). The default."""

    name = "pickle"

    def dumps(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value, protocol=5)
        except (pickle.PicklingError, AttributeError, TypeError):
            return cloudpickle.dumps(value, protocol=5)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


class JsonSerializer:
    """JSON text: readable by other tools, for state made of JSON values
    (tuples come back as lists, keys must be strings, numbers or None)."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)
