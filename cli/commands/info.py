"""`skiff api-resources` (the kinds the cluster serves) and `skiff version`."""

from __future__ import annotations

import argparse
import importlib.metadata
import sys

from cli import common, printers
from cli.commands.get import emit
from cli.errors import CliError
from skiff.api import kinds
from skiff.client.client import Client

# ---- api-resources ----

API_RESOURCE_HEADERS = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]


def _sort_key(kind: kinds.Kind) -> tuple[bool, str, str]:
    # The core group first, then the named groups, each by resource name, as kubectl lists.
    return (kind.group != "", kind.group, kind.plural)


def api_resources(namespaced: bool | None = None, group: str | None = None) -> list[kinds.Kind]:
    return sorted(
        (
            k
            for k in kinds.KINDS
            if (namespaced is None or k.namespaced == namespaced)
            and (group is None or k.group == group)
        ),
        key=_sort_key,
    )


def api_resources_text(
    selected: list[kinds.Kind], output: str = "", no_headers: bool = False
) -> str:
    if output == "name":
        return "".join(f"{k.plural}.{k.group}\n" if k.group else f"{k.plural}\n" for k in selected)
    rows = [] if no_headers else [API_RESOURCE_HEADERS]
    rows += [
        [
            k.plural,
            ",".join(k.short_names),
            k.api_version,
            "true" if k.namespaced else "false",
            k.kind,
        ]
        for k in selected
    ]
    return printers.TableWriter().render(rows)


def _optional_bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def run_api_resources(args: argparse.Namespace) -> int:
    if args.output not in ("", "name"):
        raise CliError(f'--output must be "name" or unset, got "{args.output}"')
    emit(
        api_resources_text(
            api_resources(args.namespaced, args.api_group), args.output, args.no_headers
        )
    )
    return 0


# ---- version ----


def client_version() -> str:
    try:
        return importlib.metadata.version("skiff")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0+unknown"


def _v(version: str) -> str:
    """Versions print as kubectl's do: v1.2.3."""
    return version if version.startswith("v") or not version else f"v{version}"


async def _server_version(client: Client) -> dict[str, str]:
    reply = await client.version()
    return {
        "gitVersion": _v(reply.version),
        "etcdVersion": reply.etcd_version,
        "pythonVersion": reply.python_version,
    }


def run_version(args: argparse.Namespace) -> int:
    client = {"gitVersion": _v(client_version()), "pythonVersion": sys.version.split()[0]}
    if args.output not in ("", "yaml", "json"):
        raise CliError(f'--output must be "yaml" or "json", got "{args.output}"')
    if not args.output:
        # The client's line comes first, so it shows even when the server cannot be reached.
        emit(f"Client Version: {client['gitVersion']}\n")
    server = None if args.client else common.run(args, _server_version)
    if args.output:
        data: dict[str, object] = {"clientVersion": client}
        if server is not None:
            data["serverVersion"] = server
        emit(printers.dump(data, args.output))
    elif server is not None:
        emit(f"Server Version: {server['gitVersion']}\netcd Version: {server['etcdVersion']}\n")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "api-resources",
        help="print the supported API resources",
        description="The kinds of object this cluster serves.",
    )
    p.add_argument(
        "--namespaced",
        type=_optional_bool,
        default=None,
        metavar="BOOL",
        help="only namespaced (true) or only cluster-wide (false) resources",
    )
    p.add_argument("--api-group", default=None, help='only this API group ("" for the core group)')
    p.add_argument("-o", "--output", default="", metavar="FORMAT", help="name")
    p.add_argument("--no-headers", action="store_true", help="omit the header row")
    p.set_defaults(func=run_api_resources)

    v = subparsers.add_parser(
        "version",
        help="print the client and server versions",
        description="The versions of this client and of the cluster.",
    )
    v.add_argument(
        "--client",
        action="store_true",
        help="the client's version only, without contacting the server",
    )
    v.add_argument("-o", "--output", default="", metavar="FORMAT", help="yaml or json")
    v.set_defaults(func=run_version)
