"""Command line: ``python -m streamio demo`` (also installed as ``streamio``)."""

from __future__ import annotations

import argparse
import sys

from .demo import run_demo
from .runner import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamio", description="streamio command line")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="live word count over an embedded source")
    demo.add_argument(
        "--seconds", type=float, default=5.0, help="how long to run (0: until SIGTERM or Ctrl-C)"
    )
    demo.add_argument("--interval", type=float, default=1.0, help="batch interval, seconds")
    demo.add_argument("--rate", type=int, default=5000, help="generated lines per second")
    demo.add_argument(
        "--uvloop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run on uvloop (default: when installed)",
    )
    args = parser.parse_args(argv)
    try:
        run(
            run_demo(args.seconds, args.interval, args.rate),
            use_uvloop=args.uvloop,
            stop_on_signals=True,  # SIGTERM and Ctrl-C stop it cleanly
        )
    except KeyboardInterrupt:  # Ctrl-C before the context watches signals, or after
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
