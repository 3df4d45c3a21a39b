"""`skiff port-forward`: forward local ports to a pod.

    skiff port-forward TYPE/NAME [LOCAL_PORT:]REMOTE_PORT [...[LOCAL_PORT_N:]REMOTE_PORT_N]

As kubectl: TYPE/NAME is a pod (`pod/web` or `web`), or a service, deployment, replicaset,
daemonset or job, of which one pod is chosen (a Running one first). A service's port is
translated to that pod's (its targetPort, a name looked up in the pod's container ports).
`8080:80` listens on local 8080, `:80` on a free local port (printed), `80` on 80. Listens on
--address (default localhost: 127.0.0.1 and ::1) until Ctrl-C. Each local connection is one
TCP connection to the port on the pod's own loopback, made by the kubelet of its node inside
the pod's network namespace, through the apiserver (the caller needs `create
pods/portforward`). The pod going away ends the command (`lost connection to pod`).

Examples:
    skiff port-forward pod/web 8080:80
    skiff port-forward svc/web :80
    skiff port-forward deployment/web 8080 8443 --address 127.0.0.1,::1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import sys

from cli import common
from cli.commands.logs import kubelet_error
from cli.errors import CliError
from cli.forward_listener import PortForwarder
from cli.forward_ports import (
    LOCALHOST,
    convert_pod_named_ports,
    first_pod,
    parse_addresses,
    parse_ports,
    translate_service_ports,
)
from skiff.api import kinds
from skiff.api.selectors import SelectorError, label_selector_from_proto_like
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.client import Client, PortForwardStream

USAGE_ERROR = "TYPE/NAME and list of ports are required for port-forward"
_POLL = 1.0  # seconds between looks for a pod of the object, and at the chosen pod
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("port-forward", help="forward local ports to a pod",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", nargs="?", metavar="TYPE/NAME",
                   help="pod/NAME (or NAME), svc/NAME, deployment/NAME, ...")
    p.add_argument("ports", nargs="*", metavar="[LOCAL_PORT:]REMOTE_PORT")
    p.add_argument("--address", action="append", default=[],
                   help="addresses to listen on (comma-separated, or the flag repeated); "
                        "only IP addresses or localhost (default localhost)")
    p.add_argument("--pod-running-timeout", default="1m0s", type=parse_duration,
                   help="how long to wait for a pod of the object to exist (like 5s, 2m; "
                        "default 1m0s)")
    common.add_namespace_flags(p, all_namespaces=False)
    common.take_intermixed(p)
    p.set_defaults(func=run)


def parse_duration(text: str) -> float:
    """Go's durations as kubectl takes them (`90s`, `1m30s`, `500ms`); a bare number is
    seconds."""
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    if not text or _DURATION.sub("", text):
        raise argparse.ArgumentTypeError(f'invalid duration "{text}" (like 5s, 2m, 3h)')
    seconds = sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(text))
    if seconds <= 0:
        raise argparse.ArgumentTypeError("--pod-running-timeout must be higher than zero")
    return seconds


def split_target(text: str) -> tuple[kinds.Kind, str]:
    kind_text, sep, name = text.partition("/")
    if not sep:
        return kinds.lookup("Pod"), text
    if not name:
        raise CliError(f"arguments in resource/name form must have a single resource and "
                       f"name: {text}")
    return common.resolve_kind(kind_text), name


def _selector(kind: kinds.Kind, obj: object, name: str) -> str:
    """The label selector of an object that has pods, as a string for List."""
    if isinstance(obj, core_pb2.Service):
        if not obj.spec.selector:
            raise CliError(f"invalid service '{name}': Service is defined without a selector")
        return ",".join(f"{k}={v}" for k, v in sorted(obj.spec.selector.items()))
    spec = getattr(obj, "spec", None)
    selector = getattr(spec, "selector", None)
    if selector is None or not hasattr(selector, "match_labels"):
        raise CliError(f"cannot port-forward to a {kind.kind}: name a pod, service, "
                       "deployment, replicaset, daemonset or job")
    try:
        return str(label_selector_from_proto_like(selector.match_labels,
                                                  selector.match_expressions))
    except SelectorError as err:
        raise CliError(f"invalid selector of {kind.singular}/{name}: {err}") from None


async def _pod_of(client: Client, kind: kinds.Kind, obj: object, name: str, namespace: str,
                  timeout: float) -> core_pb2.Pod:
    """kubectl's first pod of an object, waiting up to `timeout` for one to exist."""
    selector = _selector(kind, obj, name)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        pods, _ = await client.list(core_pb2.Pod, namespace, label_selector=selector)
        pod = first_pod(pods)
        if pod is not None:
            return pod
        if loop.time() >= deadline:
            raise CliError(f"timed out waiting for the condition: no pods found for "
                           f"{kind.singular}/{name} (selector {selector}) within "
                           f"{timeout:g}s (--pod-running-timeout)")
        await asyncio.sleep(min(_POLL, max(0.0, deadline - loop.time())))


async def _resolve(client: Client, args: argparse.Namespace, namespace: str
                   ) -> tuple[core_pb2.Pod, list[str]]:
    """The pod to forward to, and the ports in its numbers."""
    kind, name = split_target(args.target)
    if kind.kind == "Pod":
        pod = await client.get(core_pb2.Pod, name, namespace)
        return pod, convert_pod_named_ports(args.ports, pod)
    obj = await client.get(kind, name, namespace)
    pod = await _pod_of(client, kind, obj, name, namespace, args.pod_running_timeout)
    if isinstance(obj, core_pb2.Service):
        return pod, translate_service_ports(args.ports, obj, pod)
    return pod, convert_pod_named_ports(args.ports, pod)


async def _watch_pod(client: Client, pod: core_pb2.Pod) -> None:
    """Returns when the pod is gone, replaced or no longer Running (kubectl then says
    `lost connection to pod`); a moment without the apiserver is not that."""
    name, namespace, uid = pod.metadata.name, pod.metadata.namespace, pod.metadata.uid
    while True:
        await asyncio.sleep(_POLL)
        try:
            now = await client.get(core_pb2.Pod, name, namespace)
        except errors.NotFound:
            return
        except errors.ApiError:
            continue
        if now.metadata.uid != uid or now.status.phase != "Running":
            return


async def _forward(client: Client, args: argparse.Namespace) -> int:
    namespace = common.namespace(args)
    addresses = parse_addresses(args.address or [LOCALHOST])
    pod, ports = await _resolve(client, args, namespace)
    if pod.status.phase != "Running":
        raise CliError("unable to forward port because pod is not running. Current status="
                       f"{pod.status.phase or 'Pending'}")
    forwards = parse_ports(ports)
    name, uid = pod.metadata.name, pod.metadata.uid

    async def open_stream(port: int) -> PortForwardStream:
        return await client.port_forward(name, port, namespace, pod_uid=uid)

    forwarder = PortForwarder(open_stream, forwards, addresses)
    await forwarder.listen()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    stopped = asyncio.create_task(stop.wait())
    lost = asyncio.create_task(_watch_pod(client, pod))
    try:
        await asyncio.wait([stopped, lost], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        for task in (stopped, lost):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await forwarder.close()
    if not stop.is_set():
        raise CliError("lost connection to pod")
    return 0


def run(args: argparse.Namespace) -> int:
    if not args.target or not args.ports:
        print(f"error: {USAGE_ERROR}\nSee 'skiff port-forward -h' for help and examples",
              file=sys.stderr)
        return 1

    async def body(client: Client) -> int:
        try:
            return await _forward(client, args)
        except errors.Unavailable as err:
            raise (kubelet_error(err) or err) from None

    return common.run(args, body)
