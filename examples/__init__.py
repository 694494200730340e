"""Spark Streaming's Python examples, as streamio programs.

Each example is one short module of this package, the twin of the Spark program
of the same name (``examples/src/main/python/streaming/`` in Spark's repository),
taking the same arguments::

    python -m streamio example network_wordcount localhost 9999
    python -m streamio example --list          # what there is
    python -m streamio example --show NAME     # the program's source

The list and the sources are read from the files, without importing them, so
both work when a connector's extra (``streamio[kafka]``...) is not installed.
"""

from __future__ import annotations

import ast
import importlib
import importlib.resources

from streamio import ConfigurationError

__all__ = ["EXAMPLES", "main", "source", "summary"]

# In the order of Spark's listing; each is a module of this package.
EXAMPLES = (
    "network_wordcount",
    "stateful_network_wordcount",
    "recoverable_network_wordcount",
    "sql_network_wordcount",
    "network_wordjoinsentiments",
    "hdfs_wordcount",
    "queue_stream",
    "kafka_wordcount",
    "mqtt_wordcount",
    "zeromq_wordcount",
)


def _check(name: str) -> str:
    if name not in EXAMPLES:
        msg = f"no example called {name!r}; the examples are: {', '.join(EXAMPLES)}"
        raise ConfigurationError(msg)
    return name


def source(name: str) -> str:
    """The source text of example ``name``.

    Raises:
        ConfigurationError: when there is no such example.
    """
    return importlib.resources.files(__name__).joinpath(f"{_check(name)}.py").read_text("utf-8")


def summary(name: str) -> tuple[str, str]:
    """The first line of example ``name``'s docstring, and its ``Usage:`` line."""
    docstring = ast.get_docstring(ast.parse(source(name))) or ""
    lines = [line.strip() for line in docstring.splitlines()]
    usage = next((line for line in lines if line.startswith("Usage:")), "")
    return lines[0] if lines else "", usage.removeprefix("Usage:").strip()


def main(name: str, argv: list[str]) -> None:
    """Run example ``name`` with the command line arguments ``argv``.

    Raises:
        ConfigurationError: when there is no such example.
        ImportError: when the example's connector needs an extra not installed
            (the message says which).
    """
    module = importlib.import_module(f"{__name__}.{_check(name)}")
    module.main(argv)
