"""The `skiff` command: a kubectl-shaped CLI for a Skiff cluster.

Each subcommand lives in its own module under `cli.commands` and exposes
`register(subparsers)`, which adds its parser and sets `func=run` where
`run(args) -> int` returns the exit code. Errors a user can act on are raised as
`CliError` and printed as one line on stderr. Anything else is a bug, but a user still gets
one line, not a traceback, unless they ask for it (`--v`, or SKIFF_DEBUG=1 for a command run
before its flags are read).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback

from cli import commands
from cli.errors import CliError, one_line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skiff", description="Skiff cluster command line")
    parser.add_argument("--server", help="apiserver address host:port (default from config)")
    parser.add_argument("--config",
                        help="client config file (default $SKIFF_CONFIG or ~/.skiff/config)")
    parser.add_argument("--context",
                        help="the client config's context to use (default its current one)")
    parser.add_argument("--v", dest="debug", action="store_true",
                        help="print the traceback of an unexpected error (or SKIFF_DEBUG=1)")
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
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a bug: say so in one line, keep the traceback for who asks
        if args.debug or os.environ.get("SKIFF_DEBUG"):
            traceback.print_exc()
        else:
            print(f"error: unexpected {type(err).__name__}: {_first_line(err)} (a bug in "
                  "skiff; run with --v or SKIFF_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return one_line(text.splitlines()[0][:300]) if text else "no message"


if __name__ == "__main__":
    sys.exit(main())
