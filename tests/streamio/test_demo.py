"""The main job: ``python -m streamio demo`` runs, prints batches and stops cleanly."""

import subprocess
import sys
from datetime import datetime


def test_demo_command_prints_word_counts_and_metrics():
    result = subprocess.run(
        [sys.executable, "-m", "streamio", "demo", "--seconds", "1", "--interval", "0.25"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = result.stdout
    assert out.count("Time: ") >= 2
    headers = [line for line in out.splitlines() if line.startswith("Time: ")]
    # local dates and times, with milliseconds for an interval under a second
    shown = [datetime.fromisoformat(line.removeprefix("Time: ")) for line in headers]
    assert all(len(line) == len("Time: 2026-12-01 18:16:13.250") for line in headers)
    times = [t.timestamp() for t in shown]
    assert all(round(t / 0.25, 6).is_integer() for t in times)  # on the batch grid
    assert times == sorted(times) and len(set(times)) == len(times)
    assert "lines, scheduling delay" in out
    assert out.rstrip().endswith("stopped cleanly")
    assert result.stderr == ""
