"""Brute-force references for the event-time window operators.

Each function replays the raw input batches (a list of lists of records) and
recomputes, from the definitions alone, what ``event_time_window`` and
``session_window`` emit in every batch, which records are late, and which
windows are still open after the last batch. Nothing here is incremental the
way the operators are:

* the watermark before batch ``a`` is the largest timestamp of the batches before
  ``a`` minus the allowed lateness (minus infinity before any record);
* a window is emitted in the first batch after which the watermark is >= its end;
* tumbling/sliding: a record belongs to every ``[k*slide, k*slide + length)`` that
  holds its timestamp; it goes into those whose end is above the watermark before
  its batch, and is late when there are none;
* sessions: two records of one key are connected when their timestamps are less
  than ``gap`` apart; a session is a connected group of the open records, spanning
  ``[first, last + gap)``. A record whose ``t + gap`` is not above the watermark
  before its batch is kept only when it is connected to an open record of its key
  (one of an earlier batch not yet emitted, or one of its own batch that is kept);
  otherwise it is late. This is decided for the batch as a whole, so the order of
  the records inside a batch does not matter.

Times are compared exactly, as the decimal numbers the floats are written as
(``Fraction(repr(x))``): a window of 0.1 seconds holds 0.3 in ``[0.3, 0.4)``.
Emitted windows are :class:`streamio.EventWindow`; the windows of a batch are
sorted by ``(end, start, repr(key))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from streamio import EventWindow

NEG_INF = -math.inf


def exact(value: float) -> Fraction:
    """``value`` as the decimal number it is written as."""
    return Fraction(repr(float(value)))


def window_order(window: EventWindow) -> tuple[float, float, str]:
    return (window.end, window.start, repr(window.key))


@dataclass
class Replay:
    """What an event-time operator should produce for a list of batches.

    Attributes:
        emitted: per batch, the windows emitted at its end.
        late: per batch, its late records in arrival order.
        open: the windows still open after the last batch (not emitted).
        placed: per record index ``(batch, position)``, the ``(key, start, end)``
            of every window it went into (empty when it is late).
    """

    emitted: list[list[EventWindow]] = field(default_factory=list)
    late: list[list[Any]] = field(default_factory=list)
    open: list[EventWindow] = field(default_factory=list)
    placed: dict[tuple[int, int], set[tuple[Any, float, float]]] = field(default_factory=dict)


def watermarks(
    batches: list[list[Any]], timestamp: Callable[[Any], float], lateness: float
) -> list[Fraction | float]:
    """``result[i]``: the watermark after the first ``i`` batches (``result[0]`` is -inf)."""
    result: list[Fraction | float] = [NEG_INF]
    largest: Fraction | float = NEG_INF
    for batch in batches:
        for record in batch:
            largest = max(largest, exact(timestamp(record)))
        result.append(largest - exact(lateness) if largest != NEG_INF else NEG_INF)
    return result


def windows_of(
    time: Fraction, length: Fraction, slide: Fraction
) -> list[tuple[Fraction, Fraction]]:
    """Every ``[k*slide, k*slide + length)`` holding ``time``, by trying each ``k`` near it."""
    low = math.floor((time - length) / slide) - 2
    high = math.floor(time / slide) + 2
    found = []
    for k in range(low, high + 1):
        start = k * slide
        if start <= time < start + length:
            found.append((start, start + length))
    return found


def _emission_batch(end: Fraction, marks: list[Fraction | float]) -> int | None:
    """The first batch (counting from 1) after which the watermark reached ``end``."""
    for index in range(1, len(marks)):
        if marks[index] >= end:
            return index
    return None


def event_time_windows(
    batches: list[list[Any]],
    timestamp: Callable[[Any], float],
    length: float,
    slide: float | None = None,
    *,
    lateness: float = 0.0,
    key: Callable[[Any], Any] | None = None,
) -> Replay:
    """Tumbling (``slide`` None) or sliding event-time windows."""
    marks = watermarks(batches, timestamp, lateness)
    length_x = exact(length)
    slide_x = length_x if slide is None else exact(slide)
    replay = Replay()
    contents: dict[tuple[Any, Fraction, Fraction], list[Any]] = {}
    for a, batch in enumerate(batches, start=1):
        late = []
        for position, record in enumerate(batch):
            time = exact(timestamp(record))
            record_key = key(record) if key is not None else None
            kept = [(s, e) for s, e in windows_of(time, length_x, slide_x) if e > marks[a - 1]]
            replay.placed[(a, position)] = {(record_key, float(s), float(e)) for s, e in kept}
            if not kept:
                late.append(record)
            for s, e in kept:
                contents.setdefault((record_key, s, e), []).append(record)
        replay.late.append(late)
    replay.emitted = [[] for _ in batches]
    for (record_key, s, e), records in contents.items():
        window = EventWindow(record_key, float(s), float(e), records)
        batch_index = _emission_batch(e, marks)
        if batch_index is None:
            replay.open.append(window)
        else:
            replay.emitted[batch_index - 1].append(window)
    for windows in replay.emitted:
        windows.sort(key=window_order)
    replay.open.sort(key=window_order)
    return replay


def _components(times: list[Fraction], gap: Fraction) -> list[list[int]]:
    """Connected groups of indexes, two being connected when less than ``gap`` apart."""
    parent = list(range(len(times)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(times)):
        for j in range(i + 1, len(times)):
            if abs(times[i] - times[j]) < gap:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(times)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _sessions(
    record_key: Any, members: list[tuple[tuple[int, int], Any, Fraction]], gap: Fraction
) -> list[tuple[Fraction, EventWindow, list[tuple[int, int]]]]:
    """The sessions of one key's open records: ``(end, window, record indexes)``."""
    found = []
    for group in _components([time for _, _, time in members], gap):
        chosen = sorted((members[i] for i in group), key=lambda member: member[0])
        start = min(time for _, _, time in chosen)
        end = max(time for _, _, time in chosen) + gap
        window = EventWindow(record_key, float(start), float(end), [r for _, r, _ in chosen])
        found.append((end, window, [index for index, _, _ in chosen]))
    return found


def _keep_connected(
    pool: dict[Any, list[tuple[tuple[int, int], Any, Fraction]]],
    kept: list[tuple[tuple[int, int], Any, Fraction, Any]],
    pending: list[tuple[tuple[int, int], Any, Fraction, Any]],
    gap: Fraction,
) -> None:
    """Move from ``pending`` to ``kept`` every record connected to an open or kept one."""
    changed = True
    while changed:
        changed = False
        for entry in list(pending):
            others = [t for _, _, t in pool.get(entry[3], [])]
            others += [t for _, _, t, k in kept if k == entry[3]]
            if any(abs(entry[2] - t) < gap for t in others):
                pending.remove(entry)
                kept.append(entry)
                changed = True


def session_windows(
    batches: list[list[Any]],
    timestamp: Callable[[Any], float],
    gap: float,
    *,
    lateness: float = 0.0,
    key: Callable[[Any], Any] | None = None,
) -> Replay:
    """Session windows; records of one window are listed in arrival order."""
    marks = watermarks(batches, timestamp, lateness)
    gap_x = exact(gap)
    replay = Replay()
    # the open records of every key: ((batch, position), record, time)
    pool: dict[Any, list[tuple[tuple[int, int], Any, Fraction]]] = {}
    for a, batch in enumerate(batches, start=1):
        entries = [
            ((a, position), record, exact(timestamp(record)), None if key is None else key(record))
            for position, record in enumerate(batch)
        ]
        kept = [entry for entry in entries if entry[2] + gap_x > marks[a - 1]]
        pending = [entry for entry in entries if entry[2] + gap_x <= marks[a - 1]]
        _keep_connected(pool, kept, pending, gap_x)
        replay.late.append([record for _, record, _, _ in pending])
        for index, _, _, _ in pending:
            replay.placed[index] = set()
        for index, record, time, record_key in sorted(kept, key=lambda entry: entry[0]):
            pool.setdefault(record_key, []).append((index, record, time))
        emitted = []
        for record_key, members in pool.items():
            done = set()
            for end, window, indexes in _sessions(record_key, members, gap_x):
                if end <= marks[a]:
                    emitted.append(window)
                    done.update(indexes)
                    for index in indexes:
                        replay.placed[index] = {(window.key, window.start, window.end)}
            pool[record_key] = [member for member in members if member[0] not in done]
        replay.emitted.append(sorted(emitted, key=window_order))
    for record_key, members in pool.items():
        for _, window, indexes in _sessions(record_key, members, gap_x):
            replay.open.append(window)
            for index in indexes:
                replay.placed[index] = {(window.key, window.start, window.end)}
    replay.open.sort(key=window_order)
    return replay
