"""``python -m pytest_isolate SUBCOMMAND``: a thin dispatcher.

Each subcommand lives in its own module exposing
``register(subparsers)``, which adds its parser and sets ``func``
(``args -> exit status``). Adding a subcommand is one import and one line
in :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pytest_isolate")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    from pytest_isolate.images import cli as image_cli
    from pytest_isolate.vm import kit_cli

    image_cli.register(subparsers)
    kit_cli.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
