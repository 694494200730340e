"""Writing checkpoints between batches, and resuming a job from the latest one.

A checkpoint holds what a job needs to resume exactly: the last batch time it
covers (the grid resumes right after it, running the batches of the time the
job was down, as Spark does), the grid's zero time (so windows keep their
alignment), every input's source position, the state of every stateful node
(keyed state row by row, remembered batches of windows batch by batch, the
rest whole) and what outputs keep (models). It is written after every output
of a due batch has finished; the inputs' positions are committed to their
sources only once it is written. So after a crash, state is exactly once, and
outputs at least once (exactly once with an idempotent or transactional sink).

A snapshot is taken on the event loop, between two batches (so it is
consistent with one batch): only what changed since the previous checkpoint is
serialized. The database transaction and its fsync then run in a worker
thread, while the receivers go on receiving.
"""

from __future__ import annotations

import math
import time as time_module
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from ..batch import Batch
from ..chunk import LazyChunk
from ..errors import CheckpointError
from ..inputs import ReceiverInputNode
from ..listener import CheckpointInfo
from .keyed import KeyedChanges
from .serializers import PickleSerializer, Serializer
from .settings import CheckpointSettings
from .store import FORMAT, CheckpointStore, StoreChanges
from .wal import StreamLog, WriteAheadLog

if TYPE_CHECKING:
    from ..graph import Graph, Node

__all__ = ["Checkpointer", "Resume"]


@dataclass(frozen=True)
class Resume:
    """Where a restored job goes on: after ``batch_time``, on the grid of ``zero_time``."""

    batch_time: float
    zero_time: float


def graph_shape(graph: Graph) -> dict[str, list[list[str]]]:
    """The names and kinds of the streams and outputs, which a checkpoint must match."""
    return {
        "streams": [[node.name, node.kind] for node in graph.nodes],
        "outputs": [[output.name, output.kind] for output in graph.outputs],
    }


def _describe_change(saved: dict[str, Any], now: dict[str, Any]) -> str:
    parts = []
    for what in ("streams", "outputs"):
        before = {name: kind for name, kind in saved.get(what, [])}
        after = {name: kind for name, kind in now[what]}
        added = [f"{n} ({k})" for n, k in after.items() if n not in before]
        removed = [f"{n} ({k})" for n, k in before.items() if n not in after]
        changed = [
            f"{n} ({before[n]} -> {k})" for n, k in after.items() if n in before and before[n] != k
        ]
        for label, names in (("added", added), ("removed", removed), ("changed", changed)):
            if names:
                parts.append(f"{what} {label}: {', '.join(names)}")
    return "; ".join(parts) or "the order of the streams changed"


def _materialized(batch: Batch[Any] | None) -> list[Any] | None:
    """A batch's partitions as saved: lazy chunks built into lists."""
    if batch is None:
        return None
    return [list(p) if isinstance(p, LazyChunk) else p for p in batch.partitions]


class Checkpointer:
    """Writes one job's checkpoints and restores it from its latest one."""

    def __init__(self, settings: CheckpointSettings, graph: Graph) -> None:
        self.settings = settings
        self.graph = graph
        self.store = CheckpointStore(settings.directory)
        self.wal = WriteAheadLog(settings.directory) if settings.write_ahead_log else None
        self.inputs = [node for node in graph.nodes if isinstance(node, ReceiverInputNode)]
        self.logs = {
            node.name: StreamLog(self.wal, node.name, node.buffer)
            for node in self.inputs
            if self.wal is not None and not node.receiver.replayable
        }
        self._internal = PickleSerializer()
        self._saved_batches: dict[str, set[float]] = {}
        self._every = round(settings.interval / graph.batch_interval)
        self.last_time: float | None = None  # the batch the latest checkpoint covers
        self._count = 0

    async def flush_logs(self) -> None:
        """Return once every chunk the logged receivers stored is in its buffer."""
        for log in self.logs.values():
            await log.flushed()

    # -- start -------------------------------------------------------------

    async def open(self, restore: bool) -> Resume | None:
        """Open the store; with ``restore``, load the latest checkpoint into the
        graph (receivers get their positions, the log is replayed into the
        buffers). Returns where the grid resumes, or None for a fresh start."""
        meta = await anyio.to_thread.run_sync(self.store.read_meta)
        found = meta.get("batch_time") is not None
        resume = None
        if found and not restore:
            msg = (
                f"{str(self.settings.directory)!r} holds the checkpoint of an earlier run "
                "(batch time "
                f"{meta['batch_time']}): resume it with StreamingContext.get_or_create("
                "directory, setup), or remove the directory (or pick another) to start over"
            )
            raise CheckpointError(msg)
        positions: dict[str, Any] = {}
        if found:
            self._check_compatible(meta)
            positions = await self._load()
            resume = Resume(meta["batch_time"], meta["zero_time"])
            self.last_time = resume.batch_time
            self._count = meta.get("checkpoints", 0)
        self._track_keyed_changes(fresh=not found)
        if self.wal is not None:
            after = {name: pos for name, pos in positions.items() if name in self.logs}
            await anyio.to_thread.run_sync(self.wal.open, after)
            if not restore and await anyio.to_thread.run_sync(self.wal.has_entries):
                msg = (
                    f"the write-ahead log in {str(self.settings.directory)!r} holds records "
                    "an earlier run received: resume it with StreamingContext.get_or_create("
                    "directory, setup), or remove the directory to start over"
                )
                raise CheckpointError(msg)
        for node in self.inputs:
            position = positions.get(node.name)
            if node.name in self.logs:
                if restore:  # what was logged after the checkpoint (all of it without one)
                    await self._replay(node, position or 0)
            elif position is not None:
                await node.receiver.restore(position)
        return resume

    def _check_compatible(self, meta: dict[str, Any]) -> None:
        where = repr(str(self.settings.directory))
        if meta.get("format") != FORMAT:
            raise self.store.damaged(f"unknown format {meta.get('format')!r}")
        if not math.isclose(meta["batch_interval"], self.graph.batch_interval):
            msg = (
                f"the checkpoint in {where} was written with batch_interval="
                f"{meta['batch_interval']:g}, this program uses {self.graph.batch_interval:g}: "
                "keep the batch interval, or start from a new checkpoint directory"
            )
            raise CheckpointError(msg)
        shape = graph_shape(self.graph)
        if meta.get("graph") != shape:
            msg = (
                f"the program changed since the checkpoint in {where} was written: "
                f"{_describe_change(meta.get('graph', {}), shape)}. A checkpoint resumes "
                "only the graph that wrote it: keep streams and outputs (and their "
                "names: give them name=... so that adding one does not renumber the "
                "others), or start from a new checkpoint directory"
            )
            raise CheckpointError(msg)

    async def _load(self) -> dict[str, Any]:
        """Read every node's and output's state and every position from the store."""
        store, serializer, internal = self.store, self.settings.serializer, self._internal
        for node in self.graph.nodes:
            await self._load_node(node, store, serializer, internal)
        for output in self.graph.outputs:
            blob = await anyio.to_thread.run_sync(store.blob, "output:" + output.name)
            if blob is not None:
                output.restore_saved(self._loads(internal, blob, output.name))
        positions = {}
        for node in self.inputs:
            data = await anyio.to_thread.run_sync(store.position, node.name)
            if data is not None:
                positions[node.name] = self._loads(internal, data, node.name)
        return positions

    async def _load_node(
        self, node: Node, store: CheckpointStore, serializer: Serializer, internal: Serializer
    ) -> None:
        name = node.name
        blob = await anyio.to_thread.run_sync(store.blob, name)
        if blob is not None:
            node.restore_saved(self._loads(internal, blob, name))
        if node.keyed_state() is not None:
            rows = await anyio.to_thread.run_sync(lambda: list(store.keyed_rows(name)))
            keys = [(row_id, self._loads(serializer, key, name)) for row_id, key, _ in rows]
            values = [self._loads(serializer, value, name) for _, _, value in rows]
            node.restore_keyed([(key, value) for (_, key), value in zip(keys, values, strict=True)])
            changes = node.keyed_changes = KeyedChanges()
            changes.restored(keys)
        batches = await anyio.to_thread.run_sync(store.batch_rows, name)
        remembered = node.remembered_batches()
        for batch_time, data in batches:
            parts = self._loads(internal, data, name)
            remembered[batch_time] = None if parts is None else Batch(batch_time, parts)
        self._saved_batches[name] = {batch_time for batch_time, _ in batches}

    def _loads(self, serializer: Serializer, data: bytes, what: str) -> Any:
        try:
            return serializer.loads(data)
        except Exception as exc:
            problem = f"the saved state of {what!r} cannot be read: {exc!r}"
            raise self.store.damaged(problem) from exc

    def _track_keyed_changes(self, fresh: bool) -> None:
        for node in self.graph.nodes:
            keyed = node.keyed_state()
            if keyed is None:
                continue
            if node.keyed_changes is None:
                node.keyed_changes = KeyedChanges()
            if fresh:  # the initial state is written by the first checkpoint
                node.keyed_changes.touch_all(keyed[0])

    async def _replay(self, node: ReceiverInputNode, seq: Any) -> None:
        """Store the log's entries after ``seq`` in the input's buffer again."""
        assert self.wal is not None
        entries = await anyio.to_thread.run_sync(self.wal.entries_after, node.name, seq)
        for number, records in entries:
            node.buffer.put_many_nowait(records, number)

    # -- writing -------------------------------------------------------------

    def due(self, batch_time: float) -> bool:
        """Whether a checkpoint is written after the batch at ``batch_time``."""
        steps = round((batch_time - self.graph.zero_time) / self.graph.batch_interval)
        return steps % self._every == 0

    async def write(self, batch_time: float) -> CheckpointInfo:
        """Checkpoint the job as of the batch at ``batch_time``, then commit the
        positions it covers to the sources (and truncate the log behind them)."""
        started = time_module.perf_counter()
        changes = self._snapshot(batch_time)
        commits: list[tuple[ReceiverInputNode, Any]] = []
        for node in self.inputs:
            position = node.position_through(batch_time)
            if position is not None:
                changes.positions.append((node.name, self._internal.dumps(position)))
                commits.append((node, position))
        await anyio.to_thread.run_sync(self.store.write, changes)
        self.last_time = batch_time
        self._count += 1
        for node, position in commits:
            await node.commit_position(position)
        if self.wal is not None:
            through = {node.name: pos for node, pos in commits if node.name in self.logs}
            if through:
                await self.wal.truncate(through)
        return CheckpointInfo(
            batch_time=batch_time,
            duration=time_module.perf_counter() - started,
            bytes_written=changes.nbytes(),
            keys_written=changes.keys_written(),
        )

    def _snapshot(self, batch_time: float) -> StoreChanges:
        """What changed since the previous checkpoint, serialized now (so later
        batches cannot change it)."""
        changes = StoreChanges()
        dumps, internal = self.settings.serializer.dumps, self._internal.dumps
        for node in self.graph.nodes:
            self._snapshot_node(node, changes, dumps, internal)
        for output in self.graph.outputs:
            saved = output.state_to_save()
            if saved is not None:
                changes.blobs.append(("output:" + output.name, internal(saved)))
        changes.meta = {
            "format": FORMAT,
            "batch_time": batch_time,
            "zero_time": self.graph.zero_time,
            "batch_interval": self.graph.batch_interval,
            "graph": graph_shape(self.graph),
            "checkpoints": self._count + 1,
        }
        return changes

    def _snapshot_node(
        self,
        node: Node,
        changes: StoreChanges,
        dumps: Callable[[Any], bytes],
        internal: Callable[[Any], bytes],
    ) -> None:
        name = node.name
        keyed = node.keyed_state()
        if keyed is not None and node.keyed_changes is not None:
            state, value_of = keyed
            inserts, updates, deletes = node.keyed_changes.take(name, value_of, state, dumps)
            changes.keyed_inserts += inserts
            changes.keyed_updates += updates
            changes.keyed_deletes += deletes
        saved = node.state_to_save()
        if saved is not None:
            changes.blobs.append((name, internal(saved)))
        remembered = node.remembered_batches()
        written = self._saved_batches.setdefault(name, set())
        for batch_time, batch in remembered.items():
            if batch_time not in written:
                changes.batch_inserts.append((name, batch_time, internal(_materialized(batch))))
                written.add(batch_time)
        for batch_time in [t for t in written if t not in remembered]:
            changes.batch_deletes.append((name, batch_time))
            written.discard(batch_time)

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self._close)

    def _close(self) -> None:
        self.store.close()
        if self.wal is not None:
            self.wal.close()
