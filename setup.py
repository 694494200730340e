"""Package discovery for the layout pyproject.toml's ``package-dir`` maps.

pyproject's ``packages.find`` cannot give a folder another package name, and the
repository's ``connectors/`` and ``examples/`` folders are installed as
``streamio.connectors`` and ``streamio.examples``: the packages under the three
folders are found here, so a new sub-package is in the wheel and the sdist
without being listed anywhere. Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["streamio", "streamio.*"]),
        *(
            f"streamio.{name}"
            for name in find_packages(
                include=["connectors", "connectors.*", "examples", "examples.*"]
            )
        ),
    ]
)
