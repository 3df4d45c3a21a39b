"""`skiff create`: make objects imperatively.

    skiff create -f SRC                      each object of the manifests (fails if it exists)
    skiff create namespace NAME
    skiff create secret generic NAME [--from-literal k=v]... [--from-file [key=]path]...
                                     [--from-env-file path] [--type T]
    skiff create secret docker-registry NAME --docker-server S --docker-username U
                                             --docker-password P [--docker-email E]
    skiff create configmap NAME [--from-literal k=v]... [--from-file [key=]path]...
                                [--from-env-file path]
    skiff create job NAME --from=cronjob/CRONJOB    a run of a CronJob, now
    skiff create job NAME --image=IMAGE [-- COMMAND [ARG...]]

`--from-file` of a folder makes a key of each regular file in it, as kubectl does. Prints
`<kind>/<name> created`; `--dry-run=client -o yaml` prints the object without sending it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

from google.protobuf.message import Message

from cli import common, printers
from cli.commands.apply import desired_object
from cli.errors import CliError, one_line
from cli.manifests import check_outgoing, load, print_warnings, target_namespace
from skiff.api import convert, kinds
from skiff.api.meta import meta
from skiff.api.v1 import batch_pb2, core_pb2, meta_pb2
from skiff.client import errors
from skiff.client.client import Client

# What Kubernetes accepts as a key of a Secret's or ConfigMap's data.
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_CONFIG_KEY_MAX = 253
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
DEFAULT_DOCKER_SERVER = "https://index.docker.io/v1/"


class _TypedObject(Protocol):
    """Every kind's message carries its apiVersion and kind."""

    api_version: str
    kind: str



def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "create",
        help="create objects from manifests or from arguments",
        description="Create objects from manifests (-f), or a namespace, secret, configmap "
        "or job from arguments. Unlike apply, an object that exists is an error.",
    )
    p.add_argument(
        "-f",
        "--filename",
        dest="filenames",
        action="append",
        default=[],
        metavar="SRC",
        help="a manifest file, a folder of them, or - for stdin",
    )
    p.add_argument(
        "-R",
        "--recursive",
        action="store_true",
        help="with -f on a folder, also read its subfolders",
    )
    p.add_argument(
        "--save-config",
        action="store_true",
        help="record the manifest as apply does, so a later apply can remove fields",
    )
    common.add_namespace_flags(p, all_namespaces=False)
    p.set_defaults(func=run_create_from_files)
    sub = p.add_subparsers(dest="what", metavar="KIND")

    ns = sub.add_parser("namespace", aliases=["ns"], help="create a namespace")
    ns.add_argument("name", metavar="NAME")
    _output_flags(ns)
    ns.set_defaults(func=_runner(_namespace))

    secret = sub.add_parser("secret", help="create a secret")
    secret_sub = secret.add_subparsers(dest="secret_type", metavar="TYPE", required=True)
    generic = secret_sub.add_parser("generic", help="a secret from literals, files or folders")
    generic.add_argument("name", metavar="NAME")
    _data_flags(generic)
    generic.add_argument("--type", default="Opaque", help="the secret's type (default Opaque)")
    _output_flags(generic)
    generic.set_defaults(func=_runner(_generic_secret))

    docker = secret_sub.add_parser(
        "docker-registry", help="a secret for pulling images from a registry"
    )
    docker.add_argument("name", metavar="NAME")
    docker.add_argument("--docker-server", default=DEFAULT_DOCKER_SERVER)
    docker.add_argument("--docker-username", required=True)
    docker.add_argument("--docker-password", required=True)
    docker.add_argument("--docker-email", default="")
    _output_flags(docker)
    docker.set_defaults(func=_runner(_docker_secret))

    cm = sub.add_parser(
        "configmap", aliases=["cm"], help="a configmap from literals, files or folders"
    )
    cm.add_argument("name", metavar="NAME")
    _data_flags(cm)
    _output_flags(cm)
    cm.set_defaults(func=_runner(_configmap))

    # Intermixed: `create job NAME --image IMG -- COMMAND...` has positionals on both sides.
    job = common.take_intermixed(sub.add_parser(
        "job",
        help="a job from a cronjob's template (--from) or from an image",
        description="Create a job: a manual run of a CronJob (--from=cronjob/NAME: its job "
        "template, owned by the CronJob and annotated cronjob.kubernetes.io/instantiate="
        "manual), or a single container running IMAGE (with COMMAND after --).",
    ))
    job.add_argument("name", metavar="NAME")
    job.add_argument("--from", dest="from_", metavar="cronjob/NAME",
                     help="the cronjob whose job template to run")
    job.add_argument("--image", help="the image of the job's one container")
    job.add_argument("command", nargs="*", metavar="COMMAND",
                     help="after --: the container's command and arguments")
    _output_flags(job)
    job.set_defaults(func=run_create_job)


def _data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--from-literal",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a key and its value (repeatable)",
    )
    p.add_argument(
        "--from-file",
        action="append",
        default=[],
        metavar="[KEY=]PATH",
        help="a file's content under its name or KEY; a folder: each regular file "
        "in it (repeatable)",
    )
    p.add_argument(
        "--from-env-file",
        action="append",
        default=[],
        metavar="PATH",
        help="KEY=VALUE lines of a file (repeatable)",
    )


def _output_flags(p: argparse.ArgumentParser) -> None:
    # -n is accepted before the kind (on `create`) and after it (here). argparse copies a
    # subcommand's values over its parent's, so this one must have no default, or a missing
    # `-n` here would undo `skiff create -n team secret ...`.
    p.add_argument("-n", "--namespace", default=argparse.SUPPRESS,
                   help="namespace (default: the config's, else 'default')")
    p.add_argument(
        "--dry-run",
        choices=("none", "client", "server"),
        default="none",
        help="client: only print the object; server: the server checks it but stores nothing",
    )
    p.add_argument(
        "-o",
        "--output",
        choices=("yaml", "json", "name"),
        help="print the object (yaml, json) or its kind/name (name)",
    )


# ---- create -f ----


def run_create_from_files(args: argparse.Namespace) -> int:
    if not args.filenames:
        raise CliError(
            "must specify one of -f, or a kind to create (namespace, secret, "
            "configmap, job); see skiff create -h"
        )
    manifests = load(args.filenames, recursive=args.recursive)
    if not manifests:
        raise CliError("no objects passed to create")
    default = common.namespace(args)
    prepared = []
    for manifest in manifests:
        namespace = target_namespace(manifest, args.namespace, default)
        data = (
            desired_object(manifest.data, namespace)
            if args.save_config
            else _with_namespace(manifest.data, namespace)
        )
        check_outgoing(manifest, data)
        prepared.append((manifest, data))

    async def body(client: Client) -> bool:
        ok = True
        for manifest, data in prepared:
            try:
                obj, warnings = await client.create_manifest(data)
            except (errors.Unavailable, errors.Timeout):
                raise
            except errors.ApiError as err:
                print(f"error: {manifest.source}: {one_line(err.message)}", file=sys.stderr,
                      flush=True)
                ok = False
                continue
            print_warnings(warnings)
            print(
                f"{manifest.kind.qualified}/{meta(obj).name} created",
                flush=True,
            )
        return ok

    return 0 if common.run(args, body) else 1


def _with_namespace(data: dict[str, Any], namespace: str) -> dict[str, Any]:
    if not namespace:
        return data
    return {**data, "metadata": {**data.get("metadata", {}), "namespace": namespace}}


# ---- create KIND NAME ----


def _runner(build: Callable[[argparse.Namespace], Message]) -> Callable[[argparse.Namespace], int]:
    """A subcommand's run function: build the object, then create and print it."""

    def run(args: argparse.Namespace) -> int:
        obj = build(args)
        kind = kinds.by_message(obj)
        typed = cast(_TypedObject, obj)
        typed.api_version, typed.kind = kind.api_version, kind.kind
        if kind.namespaced:
            meta(obj).namespace = common.namespace(args)
        if args.dry_run == "client":
            _print(obj, args.output, " (dry run)")
            return 0

        async def body(client: Client) -> Message:
            return await client.create(obj, dry_run=args.dry_run == "server")

        created = common.run(args, body)
        _print(created, args.output, " (server dry run)" if args.dry_run == "server" else "")
        return 0

    return run


# ---- create job ----

INSTANTIATE_ANNOTATION = "cronjob.kubernetes.io/instantiate"


def run_create_job(args: argparse.Namespace) -> int:
    """kubectl's `create job`: from a CronJob's template, or from an image."""
    if bool(args.image) == bool(args.from_):
        raise CliError("either --image or --from must be specified")
    if args.from_ and args.command:
        raise CliError("cannot specify --from and command")
    if args.image:
        return _runner(lambda a: job_from_image(a.name, a.image, a.command))(args)
    namespace = common.namespace(args)
    kind_name, sep, source = args.from_.partition("/")
    if not sep or not kind_name or not source:
        raise CliError("arguments in resource/name form must have a single resource and "
                       f"name: --from={args.from_}")
    kind = common.resolve_kind(kind_name)
    if kind.kind != "CronJob":
        raise CliError(f"unknown object type {kind.qualified}: --from must name a cronjob")

    # As with kubectl, even a client dry run reads the CronJob: the Job is made from it.
    async def body(client: Client) -> Message:
        cronjob = await client.get(batch_pb2.CronJob, source, namespace)
        job = job_from_cronjob(args.name, cronjob)
        if args.dry_run == "client":
            return job
        return await client.create(job, dry_run=args.dry_run == "server")

    result = common.run(args, body)
    suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(args.dry_run, "")
    _print(result, args.output, suffix)
    return 0


def job_from_cronjob(name: str, cronjob: batch_pb2.CronJob) -> batch_pb2.Job:
    """A manual run of `cronjob`, as kubectl makes it: the job template's labels, its
    annotations plus `cronjob.kubernetes.io/instantiate: manual`, its spec, and the CronJob
    as controller (without blockOwnerDeletion, which would need more rights)."""
    template = cronjob.spec.job_template
    job = batch_pb2.Job(api_version="batch/v1", kind="Job")
    job.metadata.name = name
    job.metadata.namespace = cronjob.metadata.namespace
    job.metadata.annotations[INSTANTIATE_ANNOTATION] = "manual"
    job.metadata.annotations.update(template.metadata.annotations)
    job.metadata.labels.update(template.metadata.labels)
    job.metadata.owner_references.add(api_version="batch/v1", kind="CronJob",
                                      name=cronjob.metadata.name, uid=cronjob.metadata.uid,
                                      controller=True)
    job.spec.CopyFrom(template.spec)
    return job


def job_from_image(name: str, image: str, command: list[str]) -> batch_pb2.Job:
    """kubectl's job from an image: one container named after the job, never restarted."""
    job = batch_pb2.Job(api_version="batch/v1", kind="Job")
    job.metadata.name = name
    pod = job.spec.template.spec
    pod.containers.add(name=name, image=image, command=command)
    pod.restart_policy = "Never"
    return job


def _print(obj: Message, output: str | None, suffix: str) -> None:
    ref = printers.name_of(obj)
    if output == "name":
        print(ref)
    elif output in ("yaml", "json"):
        print(printers.dump(convert.to_dict(obj), output), end="")
    else:
        print(f"{ref} created{suffix}")


def _meta(name: str) -> meta_pb2.ObjectMeta:
    return meta_pb2.ObjectMeta(name=name)


def _namespace(args: argparse.Namespace) -> Message:
    return core_pb2.Namespace(metadata=_meta(args.name))


def _generic_secret(args: argparse.Namespace) -> Message:
    data = collect_data(
        args.from_literal, args.from_file, args.from_env_file, f'Secret "{args.name}"'
    )
    return core_pb2.Secret(metadata=_meta(args.name), data=data, type=args.type)


def _docker_secret(args: argparse.Namespace) -> Message:
    auth = base64.b64encode(f"{args.docker_username}:{args.docker_password}".encode()).decode()
    entry = {"username": args.docker_username, "password": args.docker_password, "auth": auth}
    if args.docker_email:
        entry["email"] = args.docker_email
    config = json.dumps({"auths": {args.docker_server: entry}}).encode()
    return core_pb2.Secret(
        metadata=_meta(args.name),
        data={".dockerconfigjson": config},
        type="kubernetes.io/dockerconfigjson",
    )


def _configmap(args: argparse.Namespace) -> Message:
    values = collect_data(
        args.from_literal, args.from_file, args.from_env_file, f'ConfigMap "{args.name}"'
    )
    cm = core_pb2.ConfigMap(metadata=_meta(args.name))
    for key, value in values.items():
        # Text goes to data; bytes that are not UTF-8 to binaryData, as kubectl sorts them.
        try:
            cm.data[key] = value.decode("utf-8")
        except UnicodeDecodeError:
            cm.binary_data[key] = value
    return cm


# ---- the data of secrets and configmaps ----


def collect_data(
    literals: list[str], files: list[str], env_files: list[str], subject: str
) -> dict[str, bytes]:
    """Keys and values from --from-literal, --from-file and --from-env-file; raises CliError
    for a malformed source, an invalid key or a key given twice."""
    data: dict[str, bytes] = {}

    def add(key: str, value: bytes) -> None:
        check_key(key, subject)
        if key in data:
            raise CliError(
                f'cannot add key "{key}", another key by that name already exists '
                f"in the data of {subject}"
            )
        data[key] = value

    for literal in literals:
        key, sep, value = literal.partition("=")
        if not sep or not key:
            raise CliError(f'invalid literal source "{literal}", expected key=value')
        add(key, value.encode())
    for source in files:
        for key, path in file_sources(source):
            try:
                add(key, path.read_bytes())
            except OSError as err:
                raise CliError(f"error reading {path}: {err.strerror or err}") from None
    for env_file in env_files:
        for key, text in env_file_entries(env_file):
            add(key, text.encode())
    return data


def check_key(key: str, subject: str) -> None:
    if len(key) > _CONFIG_KEY_MAX or not _CONFIG_KEY.fullmatch(key) or key in (".", ".."):
        raise CliError(
            f'"{key}" is not a valid key name for {subject}: a valid key must '
            "consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name', "
            f"'KEY_NAME' or 'key-name'), be at most {_CONFIG_KEY_MAX} characters, "
            "and not be '.' or '..'"
        )


def file_sources(source: str) -> list[tuple[str, Path]]:
    """(key, file) pairs of one --from-file: `path`, `key=path`, or a folder's regular files
    (not its subfolders, links or devices) under their names."""
    key, sep, path_text = source.partition("=")
    if not sep:
        key, path_text = "", source
    elif not key:
        raise CliError(f'key name for file path "{path_text}" missing in --from-file={source}')
    elif not path_text:
        raise CliError(f'file path for key name "{key}" missing in --from-file={source}')
    path = Path(path_text)
    if path.is_dir():
        if key:
            raise CliError(f"cannot give a key name for a directory path: --from-file={source}")
        return [
            (entry.name, entry)
            for entry in sorted(path.iterdir())
            if entry.is_file() and not entry.is_symlink()
        ]
    if not path.exists():
        raise CliError(f"error reading {path_text}: no such file or directory")
    return [(key or path.name, path)]


def env_file_entries(path_text: str) -> list[tuple[str, str]]:
    """KEY=VALUE lines of an env file, as kubectl reads them: blank lines and # comments
    skipped, the value taken verbatim, a bare KEY taking its value from the environment."""
    try:
        text = Path(path_text).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CliError(f"error reading {path_text}: {err}") from None
    entries = []
    for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not _ENV_NAME.fullmatch(key):
            raise CliError(
                f'{path_text}: line {number}: "{key}" is not a valid environment variable name'
            )
        if not sep:
            if key not in os.environ:
                continue
            value = os.environ[key]
        entries.append((key, value))
    return entries
