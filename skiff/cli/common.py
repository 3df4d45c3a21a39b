"""What every subcommand shares: the client, the namespace flags, error mapping."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from skiff.api import kinds
from skiff.cli.errors import CliError
from skiff.client import errors
from skiff.client.client import Client

R = TypeVar("R")


def add_namespace_flags(parser: argparse.ArgumentParser, all_namespaces: bool = True) -> None:
    parser.add_argument("-n", "--namespace", default=None,
                        help="namespace (default: the config's, else 'default')")
    if all_namespaces:
        parser.add_argument("-A", "--all-namespaces", action="store_true",
                            help="across every namespace")


def namespace(args: argparse.Namespace) -> str:
    return args.namespace or "default"


def resolve_kind(name: str) -> kinds.Kind:
    try:
        return kinds.lookup(name)
    except kinds.UnknownKindError as err:
        raise CliError(str(err)) from None


def run(args: argparse.Namespace, body: Callable[[Client], Awaitable[R]]) -> R:
    """Runs `body` with a client made from the global flags; API errors become one line."""

    async def main() -> R:
        try:
            client = Client.from_config(args.config, args.server)
        except (OSError, ValueError) as err:
            raise CliError(f"cannot read client config: {err}") from None
        try:
            return await body(client)
        except errors.Unavailable as err:
            raise CliError(f"the server at {client.server} is unavailable: {err.message} "
                           "(is it running? try `skiff up`)") from None
        except errors.ApiError as err:
            raise CliError(err.message) from None
        finally:
            await client.close()

    return asyncio.run(main())
