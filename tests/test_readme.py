"""README's testing example runs as written, so the docs cannot rot."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


async def test_readme_testing_example_passes():
    (block,) = [b for b in python_blocks() if "async def test_word_count" in b]
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    await namespace["test_word_count"]()


def test_readme_gives_the_test_command_ci_runs():
    ci = (README.parent / ".ci" / "run").read_text()
    test_command = next(
        line for line in README.read_text().splitlines() if line.endswith("-m pytest")
    )
    assert test_command in ci
