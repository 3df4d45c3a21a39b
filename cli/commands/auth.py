"""`skiff auth whoami`: who the cluster takes you for (kubectl auth whoami)."""

from __future__ import annotations

import argparse

from cli import common, printers
from cli.commands.get import emit
from cli.errors import CliError
from skiff.client.client import Client


async def _whoami(client: Client) -> tuple[str, list[str]]:
    reply = await client.whoami()
    return reply.username, list(reply.groups)


def run_whoami(args: argparse.Namespace) -> int:
    if args.output not in ("", "yaml", "json"):
        raise CliError(f'--output must be "yaml" or "json", got "{args.output}"')
    user, groups = common.run(args, _whoami)
    if args.output:
        # SelfSubjectReview's shape, as kubectl prints it with -o.
        emit(printers.dump({"apiVersion": "authentication.k8s.io/v1",
                            "kind": "SelfSubjectReview",
                            "status": {"userInfo": {"username": user, "groups": groups}}},
                           args.output))
        return 0
    emit(printers.columns([("ATTRIBUTE", "VALUE"), ("Username", user),
                           ("Groups", f"[{' '.join(groups)}]")]))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("auth", help="inspect authorization",
                              description="Who the cluster takes you for.")
    sub = p.add_subparsers(dest="auth_command", metavar="COMMAND", required=True)
    w = sub.add_parser("whoami", help="the user and groups your credentials stand for",
                       description="The user and groups the apiserver takes your "
                       "credentials for (a client certificate or a token).")
    w.add_argument("-o", "--output", default="", metavar="FORMAT", help="yaml or json")
    w.set_defaults(func=run_whoami)
