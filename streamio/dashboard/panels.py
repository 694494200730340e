"""``stream.to_dashboard(...)``: a stream's batches shown live as a table, bars or lines.

A :class:`Panel` is fed by an output operation with each batch's records and
keeps only what it shows (the ``top`` rows or bars of the last batch, and for a
line chart one point per batch for the last ``retained`` batches), so its memory
stays bounded whatever the stream's size.

Records of (label, number) pairs are ranked by their number, largest first
(a word count shows its top words); other records are shown in their order.
"""

from __future__ import annotations

import heapq
import itertools
import math
import numbers
from collections import deque
from typing import Any

from ..checks import check_whole_number
from ..errors import ConfigurationError

__all__ = ["KINDS", "Panel", "jsonable"]

KINDS = ("table", "bar", "line")


def jsonable(value: Any) -> Any:
    """``value`` as JSON can carry it: numbers, strings, lists and objects; the rest
    as its ``str``; floats that JSON lacks (nan, inf) as strings."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, numbers.Real):
        return jsonable(float(value))
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_pair(record: Any) -> bool:
    return isinstance(record, tuple) and len(record) == 2 and _is_number(record[1])


def _value(pair: tuple[Any, Any]) -> Any:
    return pair[1]


class Panel:
    """What one ``to_dashboard`` output shows: checked when the graph is built.

    Args:
        title: the heading on the page (and the default name of the output).
        kind: "table" (records as rows), "bar" ((label, number) pairs as bars) or
            "line" (one point per batch: the sum of a stream of numbers, or one
            line per label of (label, number) pairs).
        top: most rows, bars or lines shown.
        retained: most points kept per line.

    Raises:
        ConfigurationError: for a title that is not a non-empty string, an
            unknown kind, or a ``top`` that is not a whole number >= 1.
    """

    def __init__(self, title: Any, kind: Any, top: Any, retained: int) -> None:
        if not isinstance(title, str) or not title.strip():
            msg = f"to_dashboard() needs a title, a non-empty string, not {title!r}"
            raise ConfigurationError(msg)
        if kind not in KINDS:
            listed = ", ".join(repr(k) for k in KINDS)
            raise ConfigurationError(f"to_dashboard(kind=) must be one of {listed}, not {kind!r}")
        self.title = title
        self.kind: str = kind
        self.top = check_whole_number(top, "to_dashboard(top)")
        self.retained = retained
        self.name = title  # the output's name, set once registered
        self.version = 0  # bumped at every batch, so pages fetch only what changed
        self.batch_time: float | None = None
        self.rows: list[Any] = []  # table: rows; bar: (label, value) pairs
        self.records = 0  # records of the last batch
        self.series: dict[str, deque[tuple[float, float]]] = {}

    def update(self, time: float, records: list[Any]) -> None:
        """Show the batch at ``time``.

        Raises:
            TypeError: for a bar chart whose records are not (label, number)
                pairs, or a line chart whose records are neither numbers nor
                such pairs (the output then fails, naming the panel).
        """
        self.batch_time = time
        self.records = len(records)
        pairs = all(map(_is_pair, records))
        if self.kind == "line":
            self._add_points(time, records, pairs)
        elif self.kind == "bar" and not pairs:
            bad = next(r for r in records if not _is_pair(r))
            msg = f"a bar chart needs (label, number) pairs, not {bad!r}"
            raise TypeError(msg)
        elif pairs:
            self.rows = [jsonable(r) for r in heapq.nlargest(self.top, records, key=_value)]
        else:
            self.rows = [jsonable(r) for r in itertools.islice(records, self.top)]
        self.version += 1

    def _add_points(self, time: float, records: list[Any], pairs: bool) -> None:
        if pairs:
            latest: dict[str, float] = {}
            for label, value in records:
                key = str(label)
                latest[key] = latest.get(key, 0.0) + float(value)
        elif all(map(_is_number, records)):
            latest = {self.title: float(sum(records))}
        else:
            bad = next(r for r in records if not _is_number(r))
            msg = f"a line chart needs numbers or (label, number) pairs, not {bad!r}"
            raise TypeError(msg)
        for key, value in latest.items():
            if key not in self.series:
                if len(self.series) >= self.top:
                    continue  # the first `top` labels seen get a line, no more
                self.series[key] = deque(maxlen=self.retained)
            self.series[key].append((time, value))

    def to_json(self) -> dict[str, Any]:
        """What the page draws."""
        data: dict[str, Any] = {
            "name": self.name,
            "title": self.title,
            "kind": self.kind,
            "top": self.top,
            "time": self.batch_time,
            "records": self.records,
            "version": self.version,
        }
        if self.kind == "line":
            data["series"] = {key: [list(p) for p in points] for key, points in self.series.items()}
        else:
            data["rows"] = self.rows
        return data
