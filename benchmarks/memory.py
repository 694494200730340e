"""Peak memory of one measured job: resident set (Linux) and Python allocations.

The peak resident set size of a process only grows; on Linux, writing ``5`` to
``/proc/self/clear_refs`` resets it to the current size, so each job of a
benchmark gets its own peak (what earlier jobs left allocated still counts, as
it does for any long-running process). Elsewhere the peak is the process's
lifetime peak and is labelled so.

tracemalloc counts what Python allocates, exactly, but slows a job several
times: benchmarks measure it in a run of its own, never in a timed one.
"""

from __future__ import annotations

import gc
import re
import resource
import sys
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def reset_peak_rss() -> bool:
    """Collect garbage and reset the peak RSS to the current RSS (Linux only).

    Returns whether the reset was possible.
    """
    gc.collect()
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def rss_mib() -> float:
    """The resident set size now, in MiB (0 where unknown)."""
    kib = _status_kib("VmRSS")
    return (kib or 0) / 1024


def peak_rss_mib() -> float:
    """The peak resident set size since :func:`reset_peak_rss` (or since start), in MiB."""
    kib = _status_kib("VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if sys.platform == "darwin":
            kib //= 1024  # bytes there
    return kib / 1024


async def traced_peak_mib(job: Callable[[], Awaitable[T]]) -> tuple[float, T]:
    """The peak of Python's allocations while ``job()`` runs, in MiB, and its result."""
    gc.collect()
    tracemalloc.start()
    try:
        result = await job()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak / 2**20, result
