"""``streamio example``: --list, --show, and the errors a user can make on the
command line (in this process: the other tests of this folder run the examples
as subprocesses, through ``python -m streamio example``)."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pytest

import streamio.examples
from streamio.__main__ import main
from streamio.examples import EXAMPLES
from streamio.examples.network_wordcount import network_wordcount

FOLDER = Path(streamio.examples.__file__).parent


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``streamio example args``: exit code, stdout and stderr."""
    try:
        code = main(["example", *args])
    except SystemExit as exit:  # argparse's errors
        code = exit.code if isinstance(exit.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_list_names_every_example_with_its_summary_and_usage(capsys):
    code, out, _ = run(capsys, "--list")
    assert code == 0
    lines = out.splitlines()
    assert [line for line in lines if not line.startswith(" ")] == list(EXAMPLES)
    at = lines.index("network_wordcount")
    assert lines[at + 1].strip().startswith("Counts the words of the lines a TCP server sends")
    assert lines[at + 2].strip() == "streamio example network_wordcount <hostname> <port>"
    assert "    streamio example queue_stream" in lines


def test_show_prints_the_source_of_the_program(capsys):
    for name in EXAMPLES:
        code, out, _ = run(capsys, "--show", name)
        assert code == 0
        assert out == (FOLDER / f"{name}.py").read_text(encoding="utf-8")


def test_an_unknown_example_is_an_error_naming_the_examples(capsys):
    for name, args in [
        ("network_wordcont", ("network_wordcont", "localhost", "9999")),
        ("nope", ("--show", "nope")),
    ]:
        code, out, err = run(capsys, *args)
        assert code == 1
        assert f"no example called {name!r}" in err
        assert "network_wordcount, stateful_network_wordcount" in err
        assert out == ""


def test_wrong_arguments_print_the_examples_usage(capsys):
    code, _, err = run(capsys, "network_wordcount", "localhost")
    assert code == 2
    assert "usage: streamio example network_wordcount" in err
    assert "required: port" in err
    code, _, err = run(capsys, "network_wordcount", "localhost", "http")
    assert code == 2
    assert "invalid int value: 'http'" in err
    code, _, err = run(capsys, "mqtt_wordcount", "http://localhost", "foo")
    assert code == 2
    assert "expected a broker url such as tcp://localhost:1883" in err
    code, _, err = run(capsys)
    assert code == 2
    assert "--list shows them" in err


def test_a_bad_setting_is_reported_without_a_traceback(capsys):
    code, out, err = run(capsys, "queue_stream", "--interval", "0")
    assert code == 1
    assert err.startswith("streamio example: error: batch_interval")
    assert out == ""


def test_an_example_prints_line_by_line(capsys):
    """Batches reach a pipe's reader as they are printed (tests, ``| grep``), not when
    a block of output fills up."""
    code, out, _ = run(capsys, "queue_stream", "--interval", "0.01")
    assert code == 0
    assert out.count("Time: ") == 5
    assert sys.stdout.line_buffering


def test_readme_shows_network_wordcount_as_it_is():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert inspect.getsource(network_wordcount) in readme
    for name in EXAMPLES:  # the table has a command for each
        assert f"`streamio example {name} " in readme or f"`streamio example {name}`" in readme
