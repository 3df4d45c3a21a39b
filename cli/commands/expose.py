"""`skiff expose`: a Service in front of a deployment's, replica set's, pod's or service's pods.

    skiff expose TYPE NAME | TYPE/NAME [--port P] [--target-port T] [--protocol TCP|UDP|SCTP]
                 [--type ClusterIP|NodePort|LoadBalancer] [--name N] [--selector k=v,...]
                 [--labels k=v,...] [--cluster-ip IP|None] [--external-ip IP]
                 [--session-affinity None|ClientIP] [--dry-run=client|server] [-o yaml|json|name]

As kubectl expose does: the selector is the object's (a deployment's or replica set's
spec.selector.matchLabels, a pod's labels, a service's selector), the Service is named
after the object and carries its labels; without --port the ports are the containers'
(a service's own ports), one port unnamed, several named port-1, port-2...; a number the
containers serve on several protocols gives one port each (port-1-tcp, port-1-udp) unless
--protocol says which; targetPort is --target-port for every port, else the port itself.
Prints `service/NAME exposed`. Unlike kubectl, a number listed by two containers is one
port, not two that the apiserver would refuse as duplicates.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from google.protobuf.message import Message

from cli import common
from cli.errors import CliError
from cli.printers import dump, name_of
from skiff.api import convert, kinds
from skiff.api.meta import meta
from skiff.api.v1 import apps_pb2, core_pb2, meta_pb2
from skiff.client.client import Client

EXPOSABLE = ("Deployment", "ReplicaSet", "Pod", "Service")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = common.take_intermixed(subparsers.add_parser(
        "expose",
        help="make a Service for a deployment, replica set, pod or service",
        description="Expose a deployment, replica set, pod or service as a new Service, "
        "selecting the same pods. Named as TYPE NAME or TYPE/NAME.",
    ))
    p.add_argument("resource", nargs="+", metavar="TYPE[/NAME] [NAME]")
    p.add_argument("--port", default="",
                   help="the port the service serves on (default: the object's ports)")
    p.add_argument("--target-port", default="",
                   help="the number or name of the port on the pods (default: --port)")
    p.add_argument("--protocol", default="",
                   help="TCP, UDP or SCTP (default: the container port's, else TCP)")
    p.add_argument("--type", default="",
                   help="ClusterIP (default), NodePort, LoadBalancer or ExternalName")
    p.add_argument("--name", default="", help="the service's name (default: the object's)")
    p.add_argument("--selector", default="",
                   help="k=v,... pods to select (default: the object's selector)")
    p.add_argument("-l", "--labels", default="",
                   help="k=v,... labels of the service (default: the object's labels)")
    p.add_argument("--cluster-ip", default="",
                   help="the cluster IP to ask for; 'None' for a headless service")
    p.add_argument("--external-ip", default="",
                   help="an external IP the service also answers on")
    p.add_argument("--session-affinity", default="", help="None (default) or ClientIP")
    p.add_argument("-n", "--namespace", default=argparse.SUPPRESS,
                   help="namespace (default: the config's, else 'default')")
    p.add_argument("--dry-run", choices=("none", "client", "server"), default="none",
                   help="client: only print the service; server: checked, not stored")
    p.add_argument("-o", "--output", choices=("yaml", "json", "name"),
                   help="print the service (yaml, json) or its kind/name (name)")
    p.set_defaults(func=run_expose)


def parse_target(words: list[str]) -> tuple[kinds.Kind, str]:
    """TYPE NAME or TYPE/NAME, as kubectl takes them."""
    if len(words) == 1 and "/" in words[0]:
        kind_name, _, name = words[0].partition("/")
    elif len(words) == 2 and "/" not in words[0]:
        kind_name, name = words
    else:
        raise CliError("you must provide one resource by TYPE NAME or TYPE/NAME to expose")
    if not kind_name or not name:
        raise CliError(f"arguments in resource/name form must have a single resource and "
                       f"name: {'/'.join(words)}")
    kind = common.resolve_kind(kind_name)
    if kind.kind not in EXPOSABLE:
        group_kind = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
        raise CliError(f"cannot expose a {group_kind}")
    return kind, name


def parse_labels(text: str) -> dict[str, str]:
    """kubectl expose's parseLabels: k=v,k=v."""
    labels: dict[str, str] = {}
    for pair in text.split(","):
        words = pair.split("=")
        if len(words) != 2:
            raise CliError(f"unexpected label spec: {pair}")
        if not words[0]:
            raise CliError("unexpected empty label key")
        labels[words[0]] = words[1]
    return labels


def selector_of(obj: Message) -> dict[str, str]:
    """kubectl's MapBasedSelectorForObject: the pods the object's service should select."""
    why = "couldn't retrieve selectors via --selector flag or introspection: "
    if isinstance(obj, core_pb2.Pod):
        if not obj.metadata.labels:
            raise CliError(why + "the pod has no labels and cannot be exposed")
        return dict(obj.metadata.labels)
    if isinstance(obj, core_pb2.Service):
        if not obj.spec.selector:
            raise CliError(why + "the service has no pod selector set")
        return dict(obj.spec.selector)
    assert isinstance(obj, (apps_pb2.Deployment, apps_pb2.ReplicaSet))
    selector = obj.spec.selector
    if not selector.match_labels:
        what = "deployment" if isinstance(obj, apps_pb2.Deployment) else "replicaset"
        raise CliError(why + f"invalid {what}: no selectors, therefore cannot be exposed")
    if selector.match_expressions:
        raise CliError(why + "couldn't convert expressions - "
                       f'"{_go_requirements(selector.match_expressions)}" to map-based '
                       "selector format")
    return dict(selector.match_labels)


def _go_requirements(requirements: Iterable[meta_pb2.LabelSelectorRequirement]) -> str:
    """How Go's %+v prints []LabelSelectorRequirement."""
    items = [f"{{Key:{r.key} Operator:{r.operator} Values:[{' '.join(r.values)}]}}"
             for r in requirements]
    return f"[{' '.join(items)}]"


def ports_of(obj: Message) -> dict[int, list[str]]:
    """kubectl's PortsForObject and MultiProtocolsForObject: each container port's number
    (a service's own ports), in order, with the protocols it is served on."""
    if isinstance(obj, core_pb2.Service):
        pairs = [(p.port, p.protocol) for p in obj.spec.ports]
    else:
        if isinstance(obj, core_pb2.Pod):
            pod_spec = obj.spec
        else:
            assert isinstance(obj, (apps_pb2.Deployment, apps_pb2.ReplicaSet))
            pod_spec = obj.spec.template.spec
        pairs = [(p.container_port, p.protocol) for c in pod_spec.containers for p in c.ports]
    protocols: dict[int, list[str]] = {}
    for number, protocol in pairs:
        listed = protocols.setdefault(number, [])
        if (protocol or "TCP") not in listed:
            listed.append(protocol or "TCP")
    return protocols


def _port_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise CliError(f'strconv.Atoi: parsing "{text}": invalid syntax') from None


def service_for(obj: Message, args: argparse.Namespace) -> core_pb2.Service:
    """The Service `skiff expose` makes for `obj` with the given flags."""
    svc = core_pb2.Service(api_version="v1", kind="Service")
    # A DNS-1035 label's length: longer object names are cut, as kubectl cuts them.
    svc.metadata.name = args.name or meta(obj).name[:63]
    svc.metadata.namespace = meta(obj).namespace
    svc.metadata.labels.update(parse_labels(args.labels) if args.labels
                               else meta(obj).labels)
    svc.spec.selector.update(parse_labels(args.selector) if args.selector
                             else selector_of(obj))
    if args.session_affinity not in ("", "None", "ClientIP"):
        raise CliError(f"unknown session affinity: {args.session_affinity}")
    protocols = ports_of(obj)
    numbers = ([_port_number(p) for p in args.port.split(",")] if args.port
               else list(protocols))
    if not numbers and args.cluster_ip != "None":
        raise CliError("couldn't find port via --port flag or introspection")
    for i, number in enumerate(numbers):
        # Several ports need names; a number served on several protocols, one port each.
        name = f"port-{i + 1}" if len(numbers) > 1 else ""
        served = protocols.get(number, [])
        if args.protocol or len(served) < 2:
            protocol = args.protocol or (served[0] if served else "TCP")
            svc.spec.ports.add(name=name, port=number, protocol=protocol)
        else:
            for protocol in served:
                svc.spec.ports.add(name=f"port-{i + 1}-{protocol.lower()}", port=number,
                                   protocol=protocol)
    for port in svc.spec.ports:
        target = args.target_port
        if not target:
            port.target_port.int_val = port.port
        elif target.isdigit():
            port.target_port.int_val = int(target)
        else:
            port.target_port.str_val = target
    if args.type:
        svc.spec.type = args.type
    if args.cluster_ip:
        svc.spec.cluster_ip = args.cluster_ip
    if args.external_ip:
        svc.spec.external_ips.append(args.external_ip)
    if args.session_affinity:
        svc.spec.session_affinity = args.session_affinity
    return svc


def run_expose(args: argparse.Namespace) -> int:
    kind, name = parse_target(args.resource)
    namespace = common.namespace(args)

    # As kubectl, even a client dry run reads the object: the Service is made from it.
    async def body(client: Client) -> Message:
        obj = await client.get(kind.message, name, namespace)
        svc = service_for(obj, args)
        if args.dry_run == "client":
            return svc
        return await client.create(svc, dry_run=args.dry_run == "server")

    result = common.run(args, body)
    if args.output == "name":
        print(name_of(result))
    elif args.output in ("yaml", "json"):
        print(dump(convert.to_dict(result), args.output), end="")
    else:
        suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(args.dry_run, "")
        print(f"{name_of(result)} exposed{suffix}")
    return 0
