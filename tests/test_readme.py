"""README's examples run as written, so the docs cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.S)


def test_readme_testing_example_passes_under_plain_pytest(tmp_path):
    """The example and the pytest setting README gives, alone in a project of their
    own: none of this repository's pytest configuration or conftest applies."""
    (example,) = [block for block in blocks("python") if "async def test_word_count" in block]
    (setting,) = [block for block in blocks("toml") if "[tool.pytest.ini_options]" in block]
    (tmp_path / "pyproject.toml").write_text(setting)
    (tmp_path / "test_job.py").write_text(example)
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST_")}
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_job.py"],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = completed.stdout + completed.stderr
    assert f"rootdir: {tmp_path}" in output
    assert completed.returncode == 0, output
    assert re.search(r"\b1 passed\b", output), output


def test_readme_gives_the_test_command_ci_runs():
    ci = (README.parent / ".ci" / "run").read_text()
    test_command = next(
        line for line in README.read_text().splitlines() if line.endswith("-m pytest")
    )
    assert test_command in ci


@pytest.mark.parametrize("example", ["fastapi_app.py", "aiohttp_app.py"])
def test_readme_web_recipes_are_the_tested_example_modules(example):
    # tests/test_web_recipes.py runs these modules: README must show them as they are
    source = (README.parent / "tests" / "recipes" / example).read_text()
    assert source in blocks("python")


def test_readme_sql_example_counts_words_as_the_row_wise_operators_do(capsys):
    import pyarrow as pa

    from streamio import run
    from streamio.testing import collect_batches

    (example,) = [block for block in blocks("python") if "def word_totals" in block]
    namespace: dict[str, object] = {}
    exec(example, namespace)
    words = [["to", "be", "or", "not", "to", "be"], []]
    totals = run(collect_batches(namespace["word_totals"], words), use_uvloop=False)
    assert [sorted(r["total"] for r in batch) for batch in totals] == [[1, 1, 2, 2], []]
    lines = [["a b a", "c a"]]
    columnar = run(
        collect_batches(
            lambda s: namespace["top_words"](s.to_arrow(pa.schema([("line", pa.string())]))), lines
        ),
        use_uvloop=False,
    )
    assert columnar == [[{"word": "a", "n": 3}, {"word": "b", "n": 1}, {"word": "c", "n": 1}]]
    run(
        collect_batches(
            lambda s: (
                namespace["word_totals"](s).foreach_batch(namespace["show"], format="pandas") or s
            ),
            words[:1],
        ),
        use_uvloop=False,
    )
    assert "========= 1.0 =========" in capsys.readouterr().out
