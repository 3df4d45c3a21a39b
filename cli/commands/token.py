"""`skiff token create|list|delete`: join tokens, as kubeadm's bootstrap tokens.

`create` prints the command that joins a host, in kubeadm's form:
`skiff join https://SERVER:TOKEN_PORT --token ID.SECRET --ca-cert-hash sha256:HEX`. The
cluster keeps only a hash of the secret (skiff.api.bootstrap), so the token is shown once.
"""

from __future__ import annotations

import argparse
import datetime

from cli import common, printers
from cli.commands.delete import parse_duration
from cli.commands.get import emit
from cli.errors import CliError
from skiff import pki
from skiff.api import bootstrap
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.client import Client
from skiff.client.config import ClientConfig


async def _join_server(client: Client) -> str:
    namespace, name = bootstrap.CLUSTER_INFO
    try:
        info = await client.get(core_pb2.ConfigMap, name, namespace)
    except errors.NotFound:
        raise CliError("this cluster takes no joins: its apiserver has no token port (start "
                       "it with --token-port, as deploy/install-server.sh does)") from None
    return info.data[bootstrap.JOIN_SERVER_KEY]


def run_create(args: argparse.Namespace) -> int:
    try:
        config = ClientConfig.load(args.config, args.server, args.context)
    except (OSError, ValueError) as err:
        raise CliError(f"cannot read client config: {err}") from None
    if config.ca is None:
        raise CliError("the client config holds no cluster CA (certificate-authority-data): "
                       "a join command pins it")
    ttl = None if args.ttl == 0 else datetime.timedelta(seconds=args.ttl)
    try:
        token = bootstrap.JoinToken.generate()
        secret = bootstrap.token_secret(token, ttl=ttl, usages=tuple(args.usages.split(",")),
                                        description=args.description)
    except bootstrap.TokenError as err:
        raise CliError(str(err)) from None

    async def create(client: Client) -> str:
        server = await _join_server(client)
        await client.create(secret)
        return server

    server = common.run(args, create)
    emit(f"skiff join {server} --token {token} --ca-cert-hash {pki.ca_cert_hash(config.ca)}\n")
    return 0


def _ttl(expires: datetime.datetime | None, now: datetime.datetime) -> str:
    if expires is None:
        return "<forever>"
    left = (expires - now).total_seconds()
    if left <= 0:
        return "<invalid>"
    hours, rest = divmod(int(left), 3600)
    return f"{hours}h" if hours else f"{rest // 60}m"


def run_list(args: argparse.Namespace) -> int:
    async def secrets(client: Client) -> list[core_pb2.Secret]:
        items, _ = await client.list(core_pb2.Secret, bootstrap.TOKEN_NAMESPACE)
        return [s for s in items if s.type == bootstrap.SECRET_TYPE]

    now = datetime.datetime.now(datetime.UTC)
    rows = [("TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION")]
    for s in common.run(args, secrets):
        expires = bootstrap.expiration(s)
        token_id = s.data.get("token-id", b"").decode()
        rows.append((f"{token_id}.<secret not stored>", _ttl(expires, now),
                     expires.strftime("%Y-%m-%dT%H:%M:%SZ") if expires else "<never>",
                     ",".join(bootstrap.usages(s)) or "<none>",
                     s.data.get("description", b"").decode() or "<none>"))
    if len(rows) == 1:
        emit("No join tokens.\n")
        return 0
    emit(printers.columns(rows))
    return 0


def run_delete(args: argparse.Namespace) -> int:
    ids = []
    for given in args.tokens:
        token_id = given.partition(".")[0]
        if len(token_id) != 6 or not token_id.isalnum():
            raise CliError(f'"{given}" is not a token ID (6 characters) or token')
        ids.append(token_id)

    async def delete(client: Client) -> None:
        for token_id in ids:
            try:
                await client.delete(core_pb2.Secret, bootstrap.secret_name(token_id),
                                    bootstrap.TOKEN_NAMESPACE)
            except errors.NotFound:
                raise CliError(f'bootstrap token "{token_id}" not found') from None
            emit(f'bootstrap token "{token_id}" deleted\n')

    common.run(args, delete)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("token", help="manage the tokens hosts join with",
                              description="Join tokens (kubeadm's bootstrap tokens).")
    sub = p.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    c = sub.add_parser("create", help="make a token and print the command that joins a host")
    c.add_argument("--ttl", type=parse_duration, default=24 * 3600.0, metavar="DURATION",
                   help="how long the token works (default 24h; 0: forever)")
    c.add_argument("--usages", default="join", help="what it may be used for (join)")
    c.add_argument("--description", default="", help="a note shown by token list")
    c.set_defaults(func=run_create)
    ls = sub.add_parser("list", help="list the join tokens")
    ls.set_defaults(func=run_list)
    d = sub.add_parser("delete", help="delete join tokens (by ID or whole token)")
    d.add_argument("tokens", nargs="+", metavar="TOKEN")
    d.set_defaults(func=run_delete)
