"""The event loops a benchmark runs on: asyncio's, uvloop, or both (the default)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_loop_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--loop", choices=["asyncio", "uvloop", "both"], default="both", help="event loop(s)"
    )


def on_each_loop(args: argparse.Namespace, measure: Callable[[argparse.Namespace], None]) -> None:
    """Run ``measure(args)`` with ``args.uvloop`` set for each chosen loop."""
    for name in ("asyncio", "uvloop"):
        if args.loop in (name, "both"):
            args.uvloop = name == "uvloop"
            measure(args)
