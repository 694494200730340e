"""Checkpoints: a job that survives the death of its process with its state exact.

``ssc.checkpoint(directory)`` turns them on and
``StreamingContext.get_or_create(directory, setup)`` resumes from the latest:
see :mod:`streamio.checkpoint.checkpointer` for what a checkpoint holds and when
it is written, :mod:`streamio.checkpoint.store` for the SQLite store,
:mod:`streamio.checkpoint.wal` for the write-ahead log and
:mod:`streamio.checkpoint.serializers` for how state becomes bytes.
"""

from .serializers import JsonSerializer, PickleSerializer, Serializer

__all__ = ["JsonSerializer", "PickleSerializer", "Serializer"]
