"""The package as users install it.

A wheel built the way ``pip install`` from a source checkout or an sdist builds it
(``python -m build``: the sdist first, then the wheel from the sdist), installed
into a fresh virtualenv, not editable, holds every module of the source tree; the
connectors are ``streamio.connectors`` there and in the editable install, and no
top-level ``connectors`` package is installed to collide with an application's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Imports every module named in argv[1] (a JSON list) and prints, as JSON, where each
# one was loaded from or why it failed, and whether a top-level `connectors` or
# `examples` exists.
PROBE = """
import importlib, importlib.util, json, sys
found, failed = {}, {}
for name in json.loads(sys.argv[1]):
    try:
        found[name] = importlib.import_module(name).__file__
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
spec = importlib.util.find_spec("connectors")
examples = importlib.util.find_spec("examples")
print(json.dumps({
    "found": found,
    "failed": failed,
    "connectors": None if spec is None else spec.origin,
    "examples": None if examples is None else examples.origin,
}))
"""


def source_modules() -> dict[str, Path]:
    """Every module of the source tree by its installed name, with its source file."""
    modules = {}
    folders = {
        "streamio": ROOT / "streamio",
        "streamio.connectors": ROOT / "connectors",
        "streamio.examples": ROOT / "examples",
    }
    for package, folder in folders.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


def run(*command: str | Path, cwd: Path) -> str:
    """Run ``command``; its output, or a failure showing what it printed."""
    completed = subprocess.run(
        [str(part) for part in command],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def probe(python: Path | str, cwd: Path, modules: list[str]) -> dict:
    """Run PROBE with ``python`` in isolated mode (no current directory, PYTHONPATH or
    user site on sys.path), so only what is installed can be imported."""
    return json.loads(run(python, "-I", "-c", PROBE, json.dumps(modules), cwd=cwd))


def checkout(destination: Path) -> Path:
    """A copy of the repository's files as a fresh clone would have them, with the
    changes not committed yet: what git tracks or would track, nothing it ignores.

    Building in the repository itself would not be a test: the ``*.egg-info`` an
    earlier build or the editable install left there lists every file of that
    build, and setuptools puts the files of such a list into the next sdist.
    """
    listing = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
    for name in filter(None, listing.split("\0")):
        source = ROOT / name
        if source.is_file():  # not a file deleted from the work tree
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel and the extras its modules import."""
    base = tmp_path_factory.mktemp("packaging")
    source, dist, venv = checkout(base / "source"), base / "dist", base / "venv"
    run(sys.executable, "-m", "build", "--outdir", dist, source, cwd=base)
    (wheel,) = dist.glob("streamio-*.whl")
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=base)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q",
        f"{wheel}[kafka,files,ml,redis,nats,mqtt,zeromq,postgres]", cwd=base)  # fmt: skip
    return venv


def test_source_modules_are_found():
    modules = source_modules()
    assert modules["streamio.abc"] == ROOT / "streamio" / "abc.py"
    assert modules["streamio.connectors"] == ROOT / "connectors" / "__init__.py"
    kafka_source = ROOT / "connectors" / "kafka" / "source.py"
    assert modules["streamio.connectors.kafka.source"] == kafka_source


def installed_file(name: str, source: Path) -> Path:
    """Where the module ``name``, from ``source``, is in site-packages."""
    *packages, last = name.split(".")
    if source.name == "__init__.py":
        return Path(*packages, last, "__init__.py")
    return Path(*packages, f"{last}.py")


def test_the_wheel_installs_every_module(wheel_venv, tmp_path):
    modules = source_modules()
    result = probe(wheel_venv / "bin" / "python", tmp_path, sorted(modules))
    assert result["failed"] == {}
    (site_packages,) = (wheel_venv / "lib").glob("python*/site-packages")
    assert {name: Path(file) for name, file in result["found"].items()} == {
        name: site_packages / installed_file(name, source) for name, source in modules.items()
    }


def test_the_wheel_installs_no_top_level_connectors(wheel_venv, tmp_path):
    result = probe(wheel_venv / "bin" / "python", tmp_path, ["streamio.connectors.kafka"])
    assert result["failed"] == {}
    assert result["connectors"] is None
    assert result["examples"] is None


def test_the_wheels_command_runs_the_examples_with_their_data(wheel_venv, tmp_path):
    """``streamio example`` from the wheel: the console script, the programs, and the
    word-sentiment table that network_wordjoinsentiments loads (package data)."""
    streamio = wheel_venv / "bin" / "streamio"
    listed = run(streamio, "example", "--list", cwd=tmp_path)
    assert "network_wordcount" in listed and "zeromq_wordcount" in listed
    printed = run(streamio, "example", "queue_stream", "--interval", "0.05", cwd=tmp_path)
    assert printed.count("(7, 100)") == 5
    table = run(
        wheel_venv / "bin" / "python", "-I", "-c",
        "from streamio.examples.network_wordjoinsentiments import load_word_sentiments\n"
        "print(load_word_sentiments()['happy'])",
        cwd=tmp_path,
    )  # fmt: skip
    assert table.strip() == "4"


def test_the_editable_install_maps_the_connectors_folder(tmp_path):
    """The development install (``pip install -e``) that README and CI use."""
    modules = source_modules()
    result = probe(sys.executable, tmp_path, sorted(modules))
    assert result["failed"] == {}
    assert {name: Path(file) for name, file in result["found"].items()} == modules
    assert result["connectors"] is None
    assert result["examples"] is None
