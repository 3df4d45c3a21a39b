"""What every subcommand shares: the client, the namespace flags, error mapping."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, overload

from cli.errors import CliError
from skiff.api import kinds
from skiff.client import errors
from skiff.client.client import Client

R = TypeVar("R")
N = TypeVar("N")

def add_namespace_flags(parser: argparse.ArgumentParser, all_namespaces: bool = True) -> None:
    parser.add_argument("-n", "--namespace", default=None,
                        help="namespace (default: the config's, else 'default')")
    if all_namespaces:
        parser.add_argument("-A", "--all-namespaces", action="store_true",
                            help="across every namespace")


class _IntermixedParser(argparse.ArgumentParser):
    """Parses its positionals and options in any order (see `take_intermixed`)."""

    _inner = False

    @overload
    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: None = None
    ) -> tuple[argparse.Namespace, list[str]]: ...

    @overload
    def parse_known_args(self, args: Iterable[str] | None, namespace: N) -> tuple[N, list[str]]: ...

    @overload
    def parse_known_args(self, *, namespace: N) -> tuple[N, list[str]]: ...

    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        # The intermixed parse calls parse_known_args itself (once for the options, once for
        # the positionals): those inner calls are the plain ones.
        if self._inner:
            return super().parse_known_args(args, namespace)
        self._inner = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False


def take_intermixed(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Lets a subcommand's parser take positionals on both sides of its options, as kubectl's
    flag parser does: `skiff taint nodes -l pool=gpu gpu:NoSchedule`. Plain argparse takes
    one run of positionals and calls the later ones unrecognized. (Subparsers are made by
    `add_parser`, which takes no parser class, hence the class swap.)"""
    parser.__class__ = _IntermixedParser
    return parser


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
            client = Client.from_config(args.config, args.server,
                                        context=getattr(args, "context", None))
        except (OSError, ValueError) as err:
            raise CliError(f"cannot read client config: {err}") from None
        try:
            return await body(client)
        except errors.TransportSecurity as err:
            raise CliError(f"cannot talk to the server at {client.server}: {err.message}"
                           ) from None
        except errors.Unavailable as err:
            raise CliError(f"the server at {client.server} is unavailable: {err.message} "
                           "(is it running? try `skiff up`)") from None
        except errors.ApiError as err:
            raise CliError(err.message) from None
        finally:
            await client.close()

    return asyncio.run(main())

