"""The `skiff` command: a kubectl-shaped CLI for a Skiff cluster.

Each subcommand lives in its own module under `cli.commands` and exposes
`register(subparsers)`, which adds its parser and sets `func=run` where
`run(args) -> int` returns the exit code. Errors a user can act on are raised as
`CliError` and printed as one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from cli import commands
from cli.errors import CliError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skiff", description="Skiff cluster command line")
    parser.add_argument("--server", help="apiserver address host:port (default from config)")
    parser.add_argument("--config",
                        help="client config file (default $SKIFF_CONFIG or ~/.skiff/config)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except CliError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
