"""Whole batches as data frames: ``map_batches`` and ``foreach_batch(format=...)``.

A batch is handed to the user's function as one frame: an Arrow table
(``"arrow"``, the receiver's own buffers), a polars DataFrame (``"polars"``, made
from the Arrow buffers, mostly without copying) or a pandas DataFrame
(``"pandas"``, a conversion). polars and pandas are imported only when an
operator asks for them; a missing one fails when the graph is built.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .batch import Batch
from .columnar import TableReader, require, split_table
from .errors import ConfigurationError
from .functions import describe, operator_failures
from .graph import Node
from .outputs import OutputOperation

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["FORMATS", "FrameOutput", "MapBatchesNode", "check_format"]

FORMATS = ("arrow", "polars", "pandas")

# The module each format needs.
_MODULES = {"arrow": "pyarrow", "polars": "polars", "pandas": "pandas"}


def check_format(format: Any, operator: str) -> str:
    """A ``format=`` argument, with what it needs installed (checked at build time)."""
    if format not in FORMATS:
        msg = f'{operator}(): format= must be "arrow", "polars" or "pandas", not {format!r}'
        raise ConfigurationError(msg)
    require("pyarrow", f"{operator}(format={format!r})")
    require(_MODULES[format], f"{operator}(format={format!r})")
    return str(format)


def to_frame(table: pa.Table, format: str) -> Any:
    """``table`` in the given format."""
    if format == "polars":
        return sys.modules["polars"].from_arrow(table, rechunk=False)
    if format == "pandas":
        return table.to_pandas()
    return table


def from_frame(result: Any, operator: str, fn: Callable[..., Any]) -> pa.Table:
    """What a ``map_batches`` function returned, as an Arrow table.

    Raises:
        TypeError: for anything but an Arrow table or record batch, or a polars
            or pandas DataFrame.
    """
    pa = sys.modules["pyarrow"]
    if isinstance(result, pa.Table):
        return result
    if isinstance(result, pa.RecordBatch):
        return pa.Table.from_batches([result])
    polars = sys.modules.get("polars")
    if polars is not None and isinstance(result, polars.DataFrame):
        return result.to_arrow()
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(result, pandas.DataFrame):
        return pa.Table.from_pandas(result, preserve_index=False)
    msg = (
        f"{operator}(): {describe(fn)} must return a frame (an Arrow table or record "
        f"batch, a polars or pandas DataFrame), not {type(result).__name__}"
    )
    raise TypeError(msg)


class MapBatchesNode(Node):
    """``map_batches``: a function of the whole batch as a frame, giving a frame."""

    kind = "map_batches"

    def __init__(
        self,
        parent: Node,
        fn: Callable[..., Any],
        format: str,
        with_time: bool,
        name: str | None,
    ) -> None:
        super().__init__(parent.graph, (parent,), name)
        self._fn = fn
        self._format = format
        self._with_time = with_time
        self._reader = TableReader(parent)

    async def compute(self, time: float) -> Batch[Any] | None:
        found, table = await self._reader.read(time, self.label)
        if not found:
            return None
        if table is None:
            return Batch(time, [[]])
        fn = self._fn
        with operator_failures(self.label, time, ((self.label, fn),)):
            frame = to_frame(table, self._format)
            result = fn(time, frame) if self._with_time else fn(frame)
            if inspect.isawaitable(result):
                result = await result
            out = from_frame(result, "map_batches", fn)
        return Batch(time, split_table(out, self.graph.partition_size))


class FrameOutput(OutputOperation):
    """``foreach_batch(fn, format=...)``: the output function gets the batch as a frame.

    A batch that is empty and whose schema is not known yet is handed as an
    empty frame without columns.
    """

    def __init__(
        self, node: Node, fn: Callable[..., Any], format: str, with_time: bool, name: str | None
    ) -> None:
        super().__init__(node, fn, "foreach_batch", name, user_fn=fn)
        self._frame_fn = fn
        self._format = format
        self._with_time = with_time
        self._reader = TableReader(node)

    async def run(self, time: float) -> None:
        found, table = await self._reader.read(time, self.name)
        if not found:
            return
        fn = self._frame_fn
        with operator_failures(self.name, time, ((self.name, fn),)):
            if table is None:
                table = sys.modules["pyarrow"].table({})
            frame = to_frame(table, self._format)
            result = fn(time, frame) if self._with_time else fn(frame)
            if inspect.isawaitable(result):
                await result

