"""The public surface: ``streamio.__all__``, the public modules connectors import and
nothing else, ``streamio.run``."""

from __future__ import annotations

import ast
import asyncio
import importlib
from pathlib import Path

import pytest
import uvloop

import streamio

PUBLIC_NAMES = {
    "BatchInfo",
    "BufferStatistics",
    "CheckpointError",
    "CheckpointInfo",
    "Clock",
    "ConfigurationError",
    "ConnectorError",
    "ContextState",
    "ContextStateError",
    "DStream",
    "DeadLetter",
    "EventWindow",
    "LazyChunk",
    "ListenerStatistics",
    "ManualClock",
    "OperatorError",
    "OutputOperationInfo",
    "PushStream",
    "Receiver",
    "ReceiverError",
    "ReceiverInfo",
    "ReceiverOutput",
    "SourceRange",
    "StreamingContext",
    "StreamingListener",
    "StreamingStartedInfo",
    "State",
    "StateError",
    "StateSpec",
    "StopTimeoutError",
    "StreamioError",
    "SystemClock",
    "run",
}

# The contracts of streamio.abc, and the configuration checks of streamio.checks.
ABC_NAMES = {
    "BatchInfo",
    "BufferStatistics",
    "CheckpointInfo",
    "Clock",
    "LazyChunk",
    "OutputOperationInfo",
    "Receiver",
    "ReceiverInfo",
    "ReceiverOutput",
    "Sink",
    "SourceRange",
    "StreamingListener",
    "StreamingStartedInfo",
    "Timer",
}
CHECKS_NAMES = {
    "OnError",
    "check_installed",
    "check_number",
    "check_on_error",
    "check_whole_number",
}
# streamio.ml: MLlib's streaming algorithms (the River methods are DStream's).
ML_NAMES = {
    "LinearRegressionModel",
    "LogisticRegressionModel",
    "StreamingKMeans",
    "StreamingKMeansModel",
    "StreamingLinearRegression",
    "StreamingLogisticRegression",
}

# The streamio modules a connector may import from; of each, only the names of its
# __all__. Every other streamio module is internal.
PUBLIC_MODULES = ("streamio", "streamio.abc", "streamio.checks", "streamio.errors")
# Where the connectors are installed: their imports of one another are their own.
CONNECTORS_PACKAGE = "streamio.connectors"
# The example programs, a layer above the connectors: they too use public names only.
EXAMPLES_PACKAGE = "streamio.examples"

ROOT = Path(__file__).resolve().parents[1]
CONNECTORS = ROOT / "connectors"
EXAMPLES = ROOT / "examples"


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


def test_abc_all_is_exactly_the_contracts():
    import streamio.abc

    assert set(streamio.abc.__all__) == ABC_NAMES
    assert len(streamio.abc.__all__) == len(ABC_NAMES)


def test_checks_all_is_exactly_the_checks():
    import streamio.checks

    assert set(streamio.checks.__all__) == CHECKS_NAMES


def test_ml_all_is_exactly_the_algorithms_and_models():
    import streamio.ml

    assert set(streamio.ml.__all__) == ML_NAMES
    for name in ML_NAMES:
        assert getattr(streamio.ml, name).__name__ == name


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_name_of_a_public_module_resolves(module):
    namespace = importlib.import_module(module)
    for name in namespace.__all__:
        assert getattr(namespace, name) is not None


def test_errors_are_the_ones_streamio_exports():
    import streamio.errors

    for name in streamio.errors.__all__:
        assert getattr(streamio, name) is getattr(streamio.errors, name)


def test_contracts_exported_by_streamio_too_are_the_same_objects():
    import streamio.abc

    for name in ABC_NAMES & PUBLIC_NAMES:
        assert getattr(streamio, name) is getattr(streamio.abc, name)


# -- the sink contract ------------------------------------------------------------------


async def test_a_sink_is_an_async_context_manager_closed_on_exit():
    from streamio.abc import Sink

    closed = []

    class Recording(Sink[int]):
        async def __call__(self, batch_time, records):
            pass

        async def aclose(self):
            closed.append(True)

    sink = Recording()
    async with sink as entered:
        assert entered is sink
        assert closed == []
    assert closed == [True]


def test_a_sink_must_define_its_call():
    from streamio.abc import Sink

    class Incomplete(Sink[int]):
        pass

    with pytest.raises(TypeError, match="__call__"):
        Incomplete()


async def test_the_connectors_sinks_implement_the_sink_contract(tmp_path):
    from streamio.abc import Sink
    from streamio.connectors.files import TextFilesSink
    from streamio.connectors.kafka import KafkaSink
    from streamio.connectors.sinks import AsyncCallbackSink

    async def save(batch_time, records):
        pass

    kafka = KafkaSink("topic", bootstrap_servers="127.0.0.1:9")
    assert isinstance(kafka, Sink)
    await kafka.aclose()  # entering it connects: tests/connectors/test_kafka_sink.py
    await kafka.aclose()
    for sink in (AsyncCallbackSink(save), TextFilesSink(tmp_path / "out", "txt")):
        assert isinstance(sink, Sink)
        async with sink as entered:
            assert entered is sink
        await sink.aclose()  # idempotent


# -- connectors import only public names ------------------------------------------------


def _public_names(module: str) -> frozenset[str]:
    return frozenset(importlib.import_module(module).__all__)


def _resolve(node: ast.ImportFrom, importer: str) -> str:
    """The absolute name of the module ``node`` imports from, in module ``importer``."""
    if node.level == 0:
        return node.module or ""
    package = importer.rsplit(".", node.level)[0]
    return f"{package}.{node.module}" if node.module else package


def _is_streamio(module: str) -> bool:
    in_streamio = module == "streamio" or module.startswith("streamio.")
    own = any(
        module == package or module.startswith(package + ".")
        for package in (CONNECTORS_PACKAGE, EXAMPLES_PACKAGE)
    )
    return in_streamio and not own


class _Checker:
    """Finds the uses of what is not public in the code of one module."""

    def __init__(self, filename: str, module: str) -> None:
        self.filename = filename
        self.module = module
        self.found: list[str] = []
        self.bound: dict[str, str] = {}  # local name -> the streamio module it is bound to

    def module_is_public(self, name: str, line: int) -> bool:
        if _is_streamio(name) and name not in PUBLIC_MODULES:
            self.found.append(f"{self.filename}:{line}: import of {name}, not a public module")
            return False
        return True

    def check_name(self, package: str, name: str, line: int) -> None:
        if name == "*" or not _is_streamio(package) or f"{package}.{name}" in PUBLIC_MODULES:
            return
        if name not in _public_names(package):
            self.found.append(f"{self.filename}:{line}: {package}.{name} is not in its __all__")

    def visit_import(self, node: ast.Import) -> None:
        for alias in node.names:
            if self.module_is_public(alias.name, node.lineno) and _is_streamio(alias.name):
                # `import streamio.abc` binds streamio; `import streamio.abc as a` binds a
                local = alias.asname or alias.name.split(".")[0]
                self.bound[local] = alias.name if alias.asname else "streamio"

    def visit_import_from(self, node: ast.ImportFrom) -> None:
        package = _resolve(node, self.module)
        if not self.module_is_public(package, node.lineno):
            return
        for alias in node.names:
            self.check_name(package, alias.name, node.lineno)
            if f"{package}.{alias.name}" in PUBLIC_MODULES:
                self.bound[alias.asname or alias.name] = f"{package}.{alias.name}"

    def visit_call(self, node: ast.Call) -> None:
        if ast.unparse(node.func) not in {"importlib.import_module", "import_module"}:
            return
        if node.args and isinstance(node.args[0], ast.Constant):
            self.module_is_public(str(node.args[0].value), node.lineno)

    def visit_attribute(self, node: ast.Attribute) -> None:
        """``streamio.receiver.Receiver`` after ``import streamio``, and the like."""
        chain: list[str] = []
        base: ast.expr = node
        while isinstance(base, ast.Attribute):
            chain.insert(0, base.attr)
            base = base.value
        if not isinstance(base, ast.Name) or base.id not in self.bound:
            return
        current = self.bound[base.id]
        for attr in chain:
            if f"{current}.{attr}" not in PUBLIC_MODULES:
                self.check_name(current, attr, node.lineno)
                return
            current = f"{current}.{attr}"


def forbidden_imports(
    source: str, filename: str = "<source>", module: str = "streamio.connectors.example"
) -> list[str]:
    """The uses in ``source`` (the code of ``module``) of streamio modules that are not
    public, or of names not in a public module's ``__all__``: imports at any depth
    (relative ones included), ``importlib.import_module`` calls, and attributes of an
    imported streamio module."""
    tree = ast.parse(source, filename)
    checker = _Checker(filename, module)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            checker.visit_import(node)
        elif isinstance(node, ast.ImportFrom):
            checker.visit_import_from(node)
        elif isinstance(node, ast.Call):
            checker.visit_call(node)
    inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in inner:
            checker.visit_attribute(node)
    return checker.found


@pytest.mark.parametrize(
    "source",
    [
        "from streamio.receiver import Receiver",
        "from streamio.listener import BatchInfo, StreamingListener",
        "from streamio.clock import ManualClock",
        "from streamio.buffer import BufferStatistics",
        "import streamio.receiver",
        "import streamio.receiver as receiver",
        "import streamio._impl",
        "from streamio._impl import thing",
        "from streamio import _single",
        "from streamio import receiver",
        "from streamio import Scheduler",
        "from streamio.abc import ChunkBuffer",
        "from streamio.checks import math",
        "from streamio.errors import annotations",
        "import streamio\nstreamio.receiver.Receiver",
        "import streamio.abc\nstreamio.graph.Node",
        "from streamio import abc\nabc.ChunkBuffer",
        "import streamio.abc as contracts\ncontracts.GracefulStop",
        "def f():\n    from streamio.context import StreamingContext\n",
        "if TYPE_CHECKING:\n    from streamio.graph import Node\n",
        "from .. import receiver",
        "from ..receiver import Receiver",
        "import importlib\nimportlib.import_module('streamio.receiver')",
    ],
)
def test_checker_flags_what_is_not_public(source):
    assert forbidden_imports(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "import streamio",
        "from streamio import Receiver, ReceiverOutput, BufferStatistics",
        "from streamio.abc import Receiver, ReceiverOutput, Sink, StreamingListener",
        "import streamio.abc",
        "from streamio import abc",
        "from streamio.errors import ConnectorError",
        "from streamio.checks import check_number, check_whole_number",
        "import streamio\nstreamio.abc.Sink\nstreamio.StreamingContext",
        "import streamio.abc as contracts\ncontracts.Receiver",
        "from .. import abc",
        "from . import text",
        "from .kafka import KafkaSink",
        "from streamio.connectors.kafka import KafkaSink",
        "import streamio_extras._private",
        "import json",
    ],
)
def test_checker_accepts_public_names(source):
    assert forbidden_imports(source) == []


def test_connectors_is_a_package():
    assert (CONNECTORS / "__init__.py").is_file()


def _connector_modules(
    folder: Path = CONNECTORS, package: str = CONNECTORS_PACKAGE
) -> list[tuple[Path, str]]:
    modules = []
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(folder).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules.append((path, ".".join((package, *parts))))
    return modules


def test_connectors_use_only_public_names():
    modules = _connector_modules()
    assert (CONNECTORS / "kafka" / "source.py", "streamio.connectors.kafka.source") in modules
    problems = []
    for path, module in modules:
        problems += forbidden_imports(path.read_text(encoding="utf-8"), str(path), module)
    assert problems == []


def test_examples_use_only_public_names():
    modules = _connector_modules(EXAMPLES, EXAMPLES_PACKAGE)
    assert (EXAMPLES / "network_wordcount.py", "streamio.examples.network_wordcount") in modules
    problems = []
    for path, module in modules:
        problems += forbidden_imports(path.read_text(encoding="utf-8"), str(path), module)
    assert problems == []


def test_streamio_imports_nothing_from_the_connectors():
    problems = []
    for path in sorted((ROOT / "streamio").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else [f".{node.module}"]
                names += [f"{names[0]}.{alias.name}" for alias in node.names]
            else:
                continue
            problems += [
                f"{path}:{node.lineno}: {name}"
                for name in names
                if "connectors" in name.split(".")
            ]
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
