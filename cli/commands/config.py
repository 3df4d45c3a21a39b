"""`skiff config get-contexts|use-context|current-context|view`: the client config's
contexts, as `kubectl config` shows and switches them.

The file is the one clients read (--config, $SKIFF_CONFIG, ~/.skiff/config); its format is
known to skiff.client.config only."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from cli import printers
from cli.commands.get import emit
from cli.errors import CliError
from skiff.client.config import ConfigError, Kubeconfig, default_path


def _path(args: argparse.Namespace) -> Path:
    return Path(args.config) if args.config else default_path()


def _load(args: argparse.Namespace, *, must_exist: bool = False) -> Kubeconfig:
    path = _path(args)
    try:
        return Kubeconfig.load(path)
    except FileNotFoundError:
        if must_exist:
            raise CliError(f"there is no client config {path} (`skiff up` writes one)"
                           ) from None
        return Kubeconfig(source=str(path))
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise CliError(f"cannot read client config: {err}") from None


def run_get_contexts(args: argparse.Namespace) -> int:
    config = _load(args)
    contexts = sorted(config.contexts(), key=lambda c: c.name)
    if args.names:
        known = {c.name for c in contexts}
        missing = [n for n in args.names if n not in known]
        if missing:
            raise CliError(f'context "{missing[0]}" not found')
        contexts = [c for c in contexts if c.name in args.names]
    if args.output == "name":
        emit("".join(f"{c.name}\n" for c in contexts))
        return 0
    current = config.current_context
    rows = [("CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE")]
    rows += [("*" if c.name == current else "", c.name, c.cluster, c.user, c.namespace or "")
             for c in contexts]
    emit(printers.columns(rows))
    return 0


def run_use_context(args: argparse.Namespace) -> int:
    config = _load(args, must_exist=True)
    try:
        config.use(args.name)
    except ConfigError as err:
        raise CliError(str(err)) from None
    config.save(_path(args))
    emit(f'Switched to context "{args.name}".\n')
    return 0


def run_current_context(args: argparse.Namespace) -> int:
    current = _load(args).current_context
    if current is None:
        raise CliError("current-context is not set")
    emit(f"{current}\n")
    return 0


def run_view(args: argparse.Namespace) -> int:
    emit(yaml.safe_dump(_load(args).view(raw=args.raw), default_flow_style=False))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("config", help="show and switch the client config's contexts",
                              description="The client config's contexts (kubectl config).")
    sub = p.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    g = sub.add_parser("get-contexts", help="list the contexts, * marking the current one")
    g.add_argument("names", nargs="*", metavar="NAME")
    g.add_argument("-o", "--output", choices=["name"], help="name: the names alone")
    g.set_defaults(func=run_get_contexts)
    u = sub.add_parser("use-context", help="make a context the current one")
    u.add_argument("name", metavar="NAME")
    u.set_defaults(func=run_use_context)
    c = sub.add_parser("current-context", help="print the current context's name")
    c.set_defaults(func=run_current_context)
    v = sub.add_parser("view", help="print the client config, its keys' data omitted")
    v.add_argument("--raw", action="store_true", help="with the keys' data and tokens")
    v.set_defaults(func=run_view)
