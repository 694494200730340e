"""Event-time windows: windows on the time an event happened, not when it arrived.

Each record's timestamp comes from a user function. The *watermark* is the
largest timestamp seen so far minus the allowed lateness; a window is emitted
once the watermark passes its end. A record whose windows have all been emitted
already is *late*: it goes to the ``late_records()`` side stream, never dropped
silently; so does a record whose timestamp is not a finite number (NaN), which no
window can hold. Records are judged against the watermark of the batches before
theirs, so records out of order within one batch are never late to each other.

Windows still open when the context stops are not emitted (their end was not
reached); they are part of the state.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .functions import Ops
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


class _Entry(NamedTuple):
    arrival: int
    time: float
    key: Any
    record: Any


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
        self._arrivals = 0  # records seen, numbering them in arrival order

    def state_to_save(self) -> Any:
        # open windows are few (those the watermark has not passed): saved whole
        return {
            "state_time": self.state_time,
            "watermark": self.watermark,
            "open": self.open,
            "arrivals": self._arrivals,
        }

    def restore_saved(self, saved: Any) -> None:
        self.state_time = saved["state_time"]
        self.watermark = saved["watermark"]
        self.open = saved["open"]
        self._arrivals = saved["arrivals"]

    def user_functions(self) -> Ops:
        named = ((self.label, self.user_fn), (self.label, self._key))
        return tuple((name, fn) for name, fn in named if fn is not None)

    def window_starts(self, time: float) -> list[float]:
        """Starts of the windows ``[start, start + length)`` that hold an event at
        ``time`` (aligned to 0). Rounded to the nanosecond, so that 0.3 falls in
        ``[0.3, 0.4)`` although ``0.3 / 0.1`` is 2.999... in floating point."""
        slide, length = self._window_slide, self._length
        index = math.floor(round(time / slide, 9))
        starts = []
        while round(index * slide + length, 9) > time:
            starts.append(round(index * slide, 9))
            index -= 1
        return starts

    def placement_order(self, entries: list[_Entry]) -> list[_Entry]:
        """The order records of one batch are placed in (arrival order here)."""
        return entries

    def place(self, entry: _Entry, watermark: float) -> bool:
        """Put a record in its open windows; False when every one was emitted."""
        placed = False
        for start in self.window_starts(entry.time):
            end = round(start + self._length, 9)
            if end > watermark:
                self.open.setdefault((entry.key, start, end), []).append(entry.record)
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

    def update(self, time: float, parts: list[Sequence[Any]]) -> list[Any]:
        timestamp, key_of, watermark = self.user_fn, self._key, self.watermark
        entries, late = [], []
        for partition in parts:
            for record in partition:
                event_time = float(timestamp(record))
                key = key_of(record) if key_of is not None else None
                self._arrivals += 1
                if math.isfinite(event_time):
                    entries.append(_Entry(self._arrivals, event_time, key, record))
                else:  # no window can hold it: keep it visible with the late ones
                    late.append((self._arrivals, record))
        for entry in self.placement_order(entries):
            if not self.place(entry, watermark):
                late.append((entry.arrival, entry.record))
        latest = max((entry.time for entry in entries), default=-math.inf)
        self.watermark = max(watermark, latest - self._lateness)
        self.side[time] = [record for _, record in sorted(late, key=lambda item: item[0])]
        return self.due(self.watermark)


class _Session:
    __slots__ = ("end", "entries", "start")

    def __init__(self, start: float, end: float, entries: list[_Entry]) -> None:
        self.start, self.end, self.entries = start, end, entries

    def window(self, key: Any) -> EventWindow:
        records = [entry.record for entry in sorted(self.entries, key=lambda e: e.arrival)]
        return EventWindow(key, self.start, self.end, records)


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

    def state_to_save(self) -> Any:
        return {**super().state_to_save(), "sessions": self.sessions}

    def restore_saved(self, saved: Any) -> None:
        super().restore_saved(saved)
        self.sessions = saved["sessions"]

    def placement_order(self, entries: list[_Entry]) -> list[_Entry]:
        """Newest first: an older record of the batch may join the session that a
        newer one (not late) opens, so records of one batch are never late to each
        other."""
        return sorted(entries, key=lambda entry: entry.time, reverse=True)

    def place(self, entry: _Entry, watermark: float) -> bool:
        time, end = entry.time, entry.time + self._gap
        sessions = self.sessions.setdefault(entry.key, [])
        touching = [s for s in sessions if s.start < end and time < s.end]
        if not touching and end <= watermark:
            if not sessions:
                del self.sessions[entry.key]
            return False
        merged = _Session(time, end, [entry])
        for session in touching:
            sessions.remove(session)
            merged.start = min(merged.start, session.start)
            merged.end = max(merged.end, session.end)
            merged.entries.extend(session.entries)
        sessions.append(merged)
        return True

    def due(self, watermark: float) -> list[EventWindow]:
        ready = []
        for key, sessions in list(self.sessions.items()):
            for session in [s for s in sessions if s.end <= watermark]:
                sessions.remove(session)
                ready.append(session.window(key))
            if not sessions:
                del self.sessions[key]
        ready.sort(key=lambda window: (window.end, window.start))
        return ready
