"""Names the docstring examples of the streamio package use."""

from __future__ import annotations

from typing import Any

import pytest

import streamio
from streamio.testing import collect_batches


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
