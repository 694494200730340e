"""The main job: ``python -m streamio demo`` runs, prints batches and stops cleanly."""

import re
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


def run_demo(*options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "streamio", "demo", "--seconds", "1", "--interval", "0.25"]
    return subprocess.run(
        [*command, *options], capture_output=True, text=True, timeout=60, check=True
    )


def test_demo_prints_the_dashboards_address_and_stops_it():
    result = run_demo("--dashboard", "0", "--no-live")
    first = result.stdout.splitlines()[0]
    assert re.fullmatch(r"dashboard: http://127\.0\.0\.1:\d+/", first), first
    assert result.stdout.rstrip().endswith("stopped cleanly")
    assert result.stderr == ""


def test_demo_shows_the_live_figures_in_one_table_with_rich():
    result = run_demo("--live")
    out = result.stdout
    assert "streamio demo: live word count" in out
    for figure in ("completed batches", "input rate", "scheduling delay", "processing time",
                   "total delay", "buffer fill", "top words"):  # fmt: skip
        assert figure in out
    assert "Time: " not in out  # the table replaces the printed batches
    assert out.rstrip().endswith("stopped cleanly")
    assert result.stderr == ""


# Runs the demo's command line with rich made unimportable.
WITHOUT_RICH = "import sys; sys.modules['rich'] = None; from streamio.__main__ import main; main()"


def test_demo_runs_plain_without_rich():
    command = [sys.executable, "-c", WITHOUT_RICH, "demo", "--seconds", "1", "--interval", "0.25"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert "Time: " in result.stdout
    assert result.stdout.rstrip().endswith("stopped cleanly")
    live = subprocess.run(
        [*command, "--live"], check=False, capture_output=True, text=True, timeout=60
    )
    assert live.returncode == 2
    assert "Traceback" not in live.stderr
    assert "live table needs rich: pip install 'streamio[rich]'" in live.stderr
