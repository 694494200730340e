"""Event-time windows: windows on the time an event happened, not when it arrived.

Each record's timestamp comes from a user function. The *watermark* is the
largest timestamp seen so far minus the allowed lateness; a window is emitted
once the watermark passes its end. A record whose windows have all been emitted
already is *late*: it goes to the ``late_records()`` side stream, never dropped
silently. Records are judged against the watermark of the batches before theirs,
so records out of order within one batch are never late to each other.

Windows still open when the context stops are not emitted (their end was not
reached); they are part of the state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

from .graph import Node
from .state import StatefulNode

__all__ = ["EventWindow"]


class EventWindow(NamedTuple):
    """One emitted event-time window: ``[start, end)`` and its records.

    ``key`` is None when the window operator was given no key function.
    """

    key: Any
    start: float
    end: float
    records: list[Any]


class EventTimeWindowNode(StatefulNode):
    """Tumbling (``slide`` None) or sliding windows of ``length`` seconds of event time."""

    kind = "event_time_window"

    def __init__(
        self,
        parent: Node,
        timestamp: Callable[[Any], float],
        key: Callable[[Any], Any] | None,
        length: float,
        slide: float,
        allowed_lateness: float,
        name: str | None,
    ) -> None:
        super().__init__(parent, 1, name)
        self.user_fn = timestamp
        self._key = key
        self._length = length
        self._window_slide = slide
        self._lateness = allowed_lateness
        self.watermark = -math.inf
        self.open: dict[tuple[Any, float, float], list[Any]] = {}

    def window_starts(self, time: float) -> list[float]:
        """Starts of the windows that hold an event at ``time`` (aligned to 0)."""
        slide, length = self._window_slide, self._length
        start = math.floor(time / slide) * slide
        starts = []
        while start > time - length:
            starts.append(round(start, 9))
            start -= slide
        return starts

    def place(self, key: Any, time: float, record: Any, watermark: float) -> bool:
        """Put ``record`` in its open windows; False when every one was emitted."""
        placed = False
        for start in self.window_starts(time):
            end = round(start + self._length, 9)
            if end > watermark:
                self.open.setdefault((key, start, end), []).append(record)
                placed = True
        return placed

    def due(self, watermark: float) -> list[EventWindow]:
        """Remove and return the windows whose end the watermark has passed."""
        ready = sorted(
            (window for window in self.open if window[2] <= watermark),
            key=lambda window: (window[2], window[1]),
        )
        return [
            EventWindow(key, start, end, self.open.pop((key, start, end)))
            for key, start, end in ready
        ]

    def update(self, time: float, parts: list[list[Any]]) -> list[Any]:
        timestamp, key_of, watermark = self.user_fn, self._key, self.watermark
        latest, late = -math.inf, []
        for partition in parts:
            for record in partition:
                event_time = float(timestamp(record))
                key = key_of(record) if key_of is not None else None
                if not self.place(key, event_time, record, watermark):
                    late.append(record)
                latest = max(latest, event_time)
        self.watermark = max(watermark, latest - self._lateness)
        self.side[time] = late
        return self.due(self.watermark)


class _Session:
    __slots__ = ("end", "records", "start")

    def __init__(self, start: float, end: float, records: list[Any]) -> None:
        self.start, self.end, self.records = start, end, records


class SessionWindowNode(EventTimeWindowNode):
    """Session windows: a key's events closer than ``gap`` seconds form one window."""

    kind = "session_window"

    def __init__(
        self,
        parent: Node,
        timestamp: Callable[[Any], float],
        key: Callable[[Any], Any] | None,
        gap: float,
        allowed_lateness: float,
        name: str | None,
    ) -> None:
        super().__init__(parent, timestamp, key, gap, gap, allowed_lateness, name)
        self._gap = gap
        self.sessions: dict[Any, list[_Session]] = {}

    def place(self, key: Any, time: float, record: Any, watermark: float) -> bool:
        end = time + self._gap
        sessions = self.sessions.setdefault(key, [])
        touching = [s for s in sessions if s.start < end and time < s.end]
        if not touching and end <= watermark:
            return False
        merged = _Session(time, end, [])
        for session in sorted(touching, key=lambda s: s.start):
            sessions.remove(session)
            merged.start = min(merged.start, session.start)
            merged.end = max(merged.end, session.end)
            merged.records.extend(session.records)
        merged.records.append(record)
        sessions.append(merged)
        return True

    def due(self, watermark: float) -> list[EventWindow]:
        ready = []
        for key, sessions in list(self.sessions.items()):
            for session in [s for s in sessions if s.end <= watermark]:
                sessions.remove(session)
                ready.append(EventWindow(key, session.start, session.end, session.records))
            if not sessions:
                del self.sessions[key]
        ready.sort(key=lambda window: (window.end, window.start))
        return ready
