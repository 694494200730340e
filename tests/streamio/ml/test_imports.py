"""Optional dependencies stay optional: ``import streamio`` imports neither numpy
nor River, and River's methods need no numpy."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import streamio
import streamio.ml
import streamio.ml.river
assert streamio.DStream.learn and streamio.DStream.evaluate
print(sorted(name for name in ("numpy", "river", "pandas") if name in sys.modules))
"""


def test_streamio_and_its_river_methods_import_no_numpy():
    completed = subprocess.run(
        [sys.executable, "-c", PROBE], check=True, capture_output=True, text=True, timeout=60
    )
    assert completed.stdout.strip() == "[]"


def test_the_algorithms_load_numpy_when_first_used():
    probe = "import sys, streamio.ml as ml; ml.StreamingKMeans; print('numpy' in sys.modules)"
    completed = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=60
    )
    assert completed.stdout.strip() == "True"
