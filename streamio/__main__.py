"""Command line: ``python -m streamio demo`` and ``python -m streamio example ...``
(also installed as ``streamio``)."""

from __future__ import annotations

import argparse
import importlib
import sys

from .demo import run_demo
from .errors import StreamioError
from .runner import run


def _example(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``streamio example``: list the examples, show one's source, or run one."""
    # installed from the repository's examples/ folder (see pyproject.toml)
    examples = importlib.import_module("streamio.examples")
    try:
        if args.list:
            for name in examples.EXAMPLES:
                line, usage = examples.summary(name)
                print(f"{name}\n    {line}\n    streamio example {usage}")
            return 0
        if args.show is not None:
            print(examples.source(args.show), end="")
            return 0
        if args.name is None:
            parser.error("name an example (--list shows them)")
        # the examples print batches as they come: keep a pipe's reader up to date
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        examples.main(args.name, args.args)
    except (StreamioError, ImportError) as exc:
        print(f"streamio example: error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamio", description="streamio command line")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="live word count over an embedded source")
    demo.add_argument("--seconds", type=float, default=5.0, help="how long to run")
    demo.add_argument("--interval", type=float, default=1.0, help="batch interval, seconds")
    demo.add_argument("--rate", type=int, default=5000, help="generated lines per second")
    demo.add_argument(
        "--uvloop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run on uvloop (default: when installed)",
    )
    example = commands.add_parser(
        "example",
        help="run one of Spark Streaming's examples, with Spark's arguments",
        description=(
            "Run the streamio twin of a Spark Streaming Python example, with the "
            "same arguments: streamio example NAME ARGS... (NAME -h: its options)."
        ),
    )
    example.add_argument("--list", action="store_true", help="list the examples")
    example.add_argument("--show", metavar="NAME", help="print an example's source")
    example.add_argument("name", nargs="?", help="the example to run")
    example.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    args = parser.parse_args(argv)
    if args.command == "example":
        return _example(example, args)
    run(run_demo(args.seconds, args.interval, args.rate), use_uvloop=args.uvloop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
