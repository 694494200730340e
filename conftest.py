"""Names the docstring examples of the streamio package use, and the time zone
every test runs in (UTC), so that the batch times ``pprint`` shows as local
dates and times are the same on every machine."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

import streamio
from streamio.testing import collect_batches

os.environ["TZ"] = "UTC"
time.tzset()


def _collect(build: Any, batches: list[list[Any]]) -> list[list[Any]]:
    return streamio.run(collect_batches(build, batches), use_uvloop=False)


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace: dict[str, Any]) -> None:
    doctest_namespace.update(
        collect=_collect,
        run=streamio.run,
        StreamingContext=streamio.StreamingContext,
        ManualClock=streamio.ManualClock,
        StateSpec=streamio.StateSpec,
    )
