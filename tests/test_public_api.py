"""The public surface: ``streamio.__all__``, what connectors may import, ``streamio.run``."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest
import uvloop

import streamio

PUBLIC_NAMES = {
    "BatchInfo",
    "Clock",
    "ConfigurationError",
    "ConnectorError",
    "ContextState",
    "ContextStateError",
    "DStream",
    "EventWindow",
    "LazyChunk",
    "ManualClock",
    "OperatorError",
    "Receiver",
    "ReceiverError",
    "ReceiverInfo",
    "ReceiverOutput",
    "StreamingContext",
    "StreamingListener",
    "State",
    "StateError",
    "StateSpec",
    "StreamioError",
    "SystemClock",
    "run",
}

# The streamio modules a connector may import from.
CONNECTOR_MODULES = {
    "streamio",
    "streamio.testing",
    "streamio.checks",
    "streamio.errors",
    "streamio.receiver",
    "streamio.listener",
    "streamio.clock",
}

CONNECTORS = Path(__file__).resolve().parents[1] / "connectors"


# -- __all__ -----------------------------------------------------------------------


def test_all_is_exactly_the_public_names():
    assert set(streamio.__all__) == PUBLIC_NAMES
    assert len(streamio.__all__) == len(set(streamio.__all__))


@pytest.mark.parametrize("name", sorted(PUBLIC_NAMES))
def test_every_public_name_resolves(name):
    assert getattr(streamio, name) is not None


def test_star_import_gives_the_public_names():
    namespace: dict[str, object] = {}
    exec("from streamio import *", namespace)
    assert set(namespace) - {"__builtins__"} == PUBLIC_NAMES


def test_errors_share_one_base_class():
    for name in (
        "ConfigurationError",
        "ConnectorError",
        "ContextStateError",
        "OperatorError",
        "ReceiverError",
    ):
        assert issubclass(getattr(streamio, name), streamio.StreamioError)


# -- connectors import only public modules -------------------------------------------------


def forbidden_imports(source: str, filename: str = "<source>") -> list[str]:
    """The imports in ``source`` of private or internal streamio modules and names."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            modules = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [(node.module, alias.name) for alias in node.names]
        else:
            continue
        for module, name in modules:
            if module != "streamio" and not module.startswith("streamio."):
                continue
            parts = module.split(".")
            if any(part.startswith("_") for part in parts[1:]):
                found.append(f"{filename}:{node.lineno}: import of private module {module}")
            elif module not in CONNECTOR_MODULES:
                found.append(f"{filename}:{node.lineno}: import of internal module {module}")
            elif name is not None and name.startswith("_"):
                found.append(f"{filename}:{node.lineno}: import of private name {module}.{name}")
    return found


@pytest.mark.parametrize(
    "source",
    [
        "import streamio._impl",
        "from streamio._impl import thing",
        "from streamio.receiver import _CLOSE_TIMEOUT",
        "from streamio import _single",
        "import streamio.graph",
        "from streamio.buffer import ChunkBuffer",
        "from streamio.scheduler import Scheduler",
        "def f():\n    from streamio.context import StreamingContext\n",
    ],
)
def test_checker_flags_private_and_internal_imports(source):
    assert forbidden_imports(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "import streamio",
        "from streamio import Receiver, ReceiverOutput",
        "from streamio.testing import MemorySource",
        "from streamio.errors import ConnectorError",
        "from streamio.receiver import Receiver",
        "from streamio.listener import ReceiverInfo",
        "from streamio.clock import ManualClock",
        "import streamio_extras._private",
        "from . import _helpers",
        "import json",
    ],
)
def test_checker_accepts_public_imports(source):
    assert forbidden_imports(source) == []


def test_connectors_is_a_package():
    assert (CONNECTORS / "__init__.py").is_file()


def test_connectors_import_no_private_streamio_module():
    files = sorted(CONNECTORS.rglob("*.py"))
    assert CONNECTORS / "__init__.py" in files
    problems = []
    for path in files:
        problems += forbidden_imports(path.read_text(encoding="utf-8"), str(path))
    assert problems == []


def test_connectors_package_imports():
    import streamio.connectors

    assert streamio.connectors.__doc__


# -- streamio.run ----------------------------------------------------------------------


async def loop_of_main() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_run_on_uvloop():
    loop = streamio.run(loop_of_main(), use_uvloop=True)
    assert isinstance(loop, uvloop.Loop)


def test_run_on_asyncio_loop():
    loop = streamio.run(loop_of_main(), use_uvloop=False)
    assert not isinstance(loop, uvloop.Loop)
    assert isinstance(loop, asyncio.BaseEventLoop)
    assert type(loop).__module__.startswith("asyncio.")


def test_run_prefers_uvloop_when_installed():
    loop = streamio.run(loop_of_main())
    assert isinstance(loop, uvloop.Loop)


def test_run_accepts_an_async_function_and_returns_its_result():
    async def main():
        await asyncio.sleep(0)
        return "done"

    assert streamio.run(main, use_uvloop=False) == "done"
    assert streamio.run(main, use_uvloop=True) == "done"


def test_run_does_not_change_the_event_loop_policy():
    policy = asyncio.get_event_loop_policy()
    streamio.run(loop_of_main(), use_uvloop=True)
    assert asyncio.get_event_loop_policy() is policy


def test_run_a_streaming_job_on_both_loops():
    from streamio.testing import ListSink

    async def job():
        clock = streamio.ManualClock()
        sink = ListSink()
        async with streamio.StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            ssc.queue_stream([[1, 2], [3]]).map(lambda x: x * 10).foreach_batch(sink)
            ssc.start()
            await clock.advance(2.0)
        return sink.batches

    for use_uvloop in (False, True):
        assert streamio.run(job, use_uvloop=use_uvloop) == [(1.0, [10, 20]), (2.0, [30])]
