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
