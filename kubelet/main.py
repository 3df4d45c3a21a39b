"""`skiff-kubelet`: the node agent. Registers this host as a Node, runs the pods bound to
it as Docker container groups, and reports back what is true."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import logging
import socket
import sys
from ipaddress import IPv4Network
from pathlib import Path

from kubelet.agent import (
    CRASH_BACKOFF_BASE,
    RELIST_PERIOD,
    VOLUME_REFRESH_PERIOD,
    Kubelet,
    KubeletConfig,
)
from kubelet.dns import DEFAULT_CLUSTER_DOMAIN, DEFAULT_RESOLV_CONF, ClusterDns
from kubelet.network.cidrs import CIDRError, parse_cidr
from kubelet.network.cleanup import cleanup_pod_network
from kubelet.network.fake import FakeHost
from kubelet.network.host import Host, SystemHost
from kubelet.network.manager import DEFAULT_CLUSTER_CIDR, RESYNC_PERIOD
from kubelet.network.probe import DEFAULT_PROBE_PORT
from kubelet.node import LEASE_DURATION, detect_address
from kubelet.proxy.cleanup import cleanup_services
from kubelet.proxy.conntrack import Conntrack, FakeConntrack, SystemConntrack
from kubelet.proxy.proxier import DEFAULT_SERVICE_CIDR, MIN_SYNC_PERIOD
from kubelet.proxy.proxier import RESYNC_PERIOD as PROXY_RESYNC_PERIOD
from kubelet.runtime import ContainerRuntime
from kubelet.server import DEFAULT_PORT, start_kubelet_server
from kubelet.volumes import FakeMounter, Mounter, SystemMounter
from skiff import daemon, pki
from skiff.client.config import ClientConfig
from skiff.daemon import serving, until_signalled
from skiff.daemon.auth import JOINED

log = logging.getLogger("kubelet")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff-kubelet", description=__doc__)
    daemon.add_client_flags(p)
    p.add_argument("--node-name", default=socket.gethostname().lower())
    p.add_argument("--node-labels", default="", help="k=v,k2=v2 added to the Node")
    p.add_argument("--node-ip", default="", help="this node's InternalIP (default: detected)")
    p.add_argument("--root-dir", default="/var/lib/skiff/kubelet",
                   help="pod volumes live under ROOT/pods/<uid>")
    p.add_argument("--address", default="",
                   help="the address the kubelet's own server (logs, exec) listens on, "
                   "besides loopback (default: the node's address, --node-ip; 0.0.0.0 for "
                   "every interface)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help="port of the kubelet's own server (logs, exec)")
    p.add_argument("--kubelet-token-file",
                   help="require this bearer token (file content) on calls to that server "
                   "(the apiserver's --kubelet-token-file)")
    p.add_argument("--tls-cert-file", help="that server's certificate (PEM, then its CA's): "
                   "TLS, required to listen beyond loopback")
    p.add_argument("--tls-private-key-file")
    p.add_argument("--client-ca-file", help="callers of that server must present a client "
                   "certificate signed by this CA: the apiserver's")
    p.add_argument("--relist-period", type=float, default=RELIST_PERIOD, metavar="SECONDS",
                   help="how often the runtime's containers are listed to notice exits "
                   "(default %(default)s)")
    p.add_argument("--volume-refresh-period", type=float, default=VOLUME_REFRESH_PERIOD,
                   metavar="SECONDS",
                   help="how often every running pod's secret and configMap files are "
                   "rewritten from the API (default %(default)s; a change of an object a "
                   "pod uses reaches it at once anyway)")
    p.add_argument("--crash-backoff-base", type=float, default=CRASH_BACKOFF_BASE,
                   metavar="SECONDS",
                   help="the first crash-loop back-off; it doubles with each restart, up "
                   "to 300 s (default %(default)s)")
    p.add_argument("--node-lease-duration-seconds", type=int, default=LEASE_DURATION,
                   metavar="SECONDS",
                   help="the duration of the node's Lease in kube-node-lease, renewed every "
                   "quarter of it (default %(default)s)")
    p.add_argument("--cluster-cidr", default=DEFAULT_CLUSTER_CIDR,
                   help="the pod range of the whole cluster, as the controller manager's "
                   "--cluster-cidr (default %(default)s): traffic between its addresses "
                   "keeps its source, and only routes inside it are ever touched")
    p.add_argument("--pod-network-probe-port", type=int, default=DEFAULT_PROBE_PORT,
                   help="the port this node's pods bridge answers the other nodes' probes "
                   "on, and theirs are probed at (0: no probes)")
    p.add_argument("--pod-network-resync-period", type=float, default=RESYNC_PERIOD,
                   metavar="SECONDS",
                   help="how often the pod network's bridge, iptables rules and routes are "
                   "checked and put right (default %(default)s; a change of a Node's "
                   "podCIDR or address is acted on at once anyway)")
    p.add_argument("--cleanup-pod-network", action="store_true",
                   help="remove what the pod network made on this host (Skiff's iptables "
                   "chains, its routes inside --cluster-cidr, this node's pods bridge when "
                   "no pod runs on it), then exit")
    p.add_argument("--cluster-dns", default="", metavar="IP[,IP]",
                   help="the cluster's DNS servers, for pods of dnsPolicy ClusterFirst (none: "
                        "those pods get the node's DNS, as under Default)")
    p.add_argument("--cluster-domain", default=DEFAULT_CLUSTER_DOMAIN,
                   help=f"the cluster's DNS domain (default {DEFAULT_CLUSTER_DOMAIN})")
    p.add_argument("--resolv-conf", default=DEFAULT_RESOLV_CONF,
                   help="the node's resolver configuration, for pods of dnsPolicy Default "
                        f"(default {DEFAULT_RESOLV_CONF}; \"\" for none)")
    p.add_argument("--proxy-services", choices=("auto", "on", "off"), default="auto",
                   help="the service proxy (cluster IPs and node ports to endpoints, in "
                   "iptables): auto runs it once the node's pod network is ready (it has a "
                   "podCIDR), on always, off never (default %(default)s)")
    p.add_argument("--service-cluster-ip-range", default=DEFAULT_SERVICE_CIDR,
                   help="the apiserver's service range (default %(default)s): connections "
                   "to an address of it that no service port serves are refused at once")
    p.add_argument("--proxy-min-sync-period", type=float, default=MIN_SYNC_PERIOD,
                   metavar="SECONDS", help="the least time between two writes of the "
                   "service rules: a burst of changes is one write (default %(default)s)")
    p.add_argument("--proxy-sync-period", type=float, default=PROXY_RESYNC_PERIOD,
                   metavar="SECONDS", help="how often every service rule is written again "
                   "and the jumps to them checked (default %(default)s)")
    p.add_argument("--cleanup-services", action="store_true",
                   help="remove the service proxy's iptables chains and the jumps to them, "
                   "then exit (--cleanup-pod-network removes them too)")
    p.add_argument("--fake-runtime", action="store_true",
                   help="run pods in memory (for tests and simulated nodes; the host's "
                   "routes and iptables are left alone)")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def make_runtime(fake: bool) -> ContainerRuntime:
    if fake:
        from kubelet.runtime.fake import FakeRuntime, script_from_command
        runtime = FakeRuntime(pullable={"*": None})  # simulated nodes can "pull" anything
        runtime.default_script = script_from_command  # `sleep 5; exit 1` does just that
        return runtime
    from kubelet.runtime.docker import DockerRuntime
    return DockerRuntime()


def make_host(fake: bool) -> Host:
    """A simulated node's pod network is in memory: it never touches the host's routes or
    rules."""
    return FakeHost() if fake else SystemHost()


def make_conntrack(fake: bool) -> Conntrack:
    return FakeConntrack() if fake else SystemConntrack()


def service_cidr(args: argparse.Namespace) -> IPv4Network:
    try:
        return parse_cidr(args.service_cluster_ip_range, "--service-cluster-ip-range")
    except CIDRError as err:
        raise SystemExit(str(err)) from None


def cluster_cidr(args: argparse.Namespace) -> IPv4Network:
    try:
        return parse_cidr(args.cluster_cidr, "--cluster-cidr")
    except CIDRError as err:
        raise SystemExit(str(err)) from None


def make_mounter(fake: bool) -> Mounter:
    """A simulated node mounts nothing: it needs no root and leaves the host's mounts be."""
    return FakeMounter() if fake else SystemMounter()


def kubelet_config(args: argparse.Namespace, node_ip: str) -> KubeletConfig:
    return KubeletConfig(
        node_name=args.node_name, root_dir=Path(args.root_dir),
        node_labels=parse_labels(args.node_labels), node_ip=node_ip, port=args.port,
        relist_period=args.relist_period, volume_refresh_period=args.volume_refresh_period,
        crash_backoff_base=args.crash_backoff_base,
        lease_duration=args.node_lease_duration_seconds,
        cluster_cidr=str(cluster_cidr(args)),
        network_resync_period=args.pod_network_resync_period,
        # Simulated nodes share this host: they have no pod network of their own to probe.
        network_probe_port=0 if args.fake_runtime else args.pod_network_probe_port,
        dns=ClusterDns(servers=cluster_dns(args.cluster_dns), domain=args.cluster_domain,
                       resolv_conf=args.resolv_conf),
        proxy_mode=args.proxy_services, service_cidr=str(service_cidr(args)),
        proxy_min_sync_period=args.proxy_min_sync_period,
        proxy_resync_period=args.proxy_sync_period,
        proxy_hairpin=not args.fake_runtime)


def cluster_dns(text: str) -> tuple[str, ...]:
    servers = tuple(filter(None, (part.strip() for part in text.split(","))))
    for server in servers:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise SystemExit(f"--cluster-dns: {server!r} is not an IP address") from None
    return servers


def parse_labels(text: str) -> dict[str, str]:
    labels = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--node-labels: {item!r} is not key=value")
        labels[key] = value
    return labels


async def run(args: argparse.Namespace) -> None:
    client = daemon.client_from_args(args)
    runtime = make_runtime(args.fake_runtime)
    node_ip = args.node_ip or detect_address()
    # Up before the Node advertises its port, so logs and exec work as soon as pods run.
    # It listens where the Node says it is (the apiserver calls it there), and on loopback
    # for tools on the node, not on every interface: exec is a root shell on the node.
    kubelet_server = await start_kubelet_server(
        runtime, args.port,
        Path(args.kubelet_token_file).read_text().strip() if args.kubelet_token_file else None,
        address=args.address or node_ip, local=True,
        credentials=serving.ServerCredentials.from_files(
            args.tls_cert_file, args.tls_private_key_file, args.client_ca_file,
            require_client_cert=True))
    kubelet = Kubelet(kubelet_config(args, node_ip), client, runtime,
                      mounter=make_mounter(args.fake_runtime),
                      host=make_host(args.fake_runtime),
                      conntrack=make_conntrack(args.fake_runtime))
    await kubelet.start()
    log.info("kubelet for node %s is running (%s)", args.node_name,
             "fake runtime" if args.fake_runtime else "docker")
    renewal = _renewal_time(args)
    try:
        if renewal is None:
            await until_signalled()
        else:
            await _until_signalled_or(renewal)
    finally:
        await kubelet_server.stop(grace=1)
        await kubelet.stop()
        await client.close()


def _renewal_time(args: argparse.Namespace) -> datetime.datetime | None:
    """When the certificate of a joined host (skiff join) is due for renewal; None for
    certificates that `skiff up` issues and renews itself, and for tokens."""
    config = ClientConfig.load(args.config, args.server)
    if config.cert is None or JOINED not in pki.subject_of(config.cert).units:
        return None
    return pki.renewal_time(config.cert)


async def _until_signalled_or(due: datetime.datetime) -> None:
    """Until SIGTERM/SIGINT, or until the certificate is due: then the kubelet stops, and
    `skiff agent`, started again by its unit (Restart=always; the pods keep running, as on
    any restart of the agent), renews it before the kubelet starts."""
    wait = (due - datetime.datetime.now(datetime.UTC)).total_seconds()
    signalled = asyncio.ensure_future(until_signalled())
    try:
        await asyncio.wait_for(asyncio.shield(signalled), max(0.0, wait))
    except TimeoutError:
        log.warning("the node's certificate is due for renewal (at %s): stopping so that "
                    "skiff agent renews it and starts the kubelet again", due)
    finally:
        signalled.cancel()


async def cleanup(args: argparse.Namespace) -> int:
    """`--cleanup-pod-network` (the service proxy's chains too) or `--cleanup-services`:
    prints what it removed; 1 when something could not be."""
    host = make_host(args.fake_runtime)
    done, problems = await cleanup_services(host)
    if not args.cleanup_pod_network:
        return report(done, problems, "nothing of the service proxy's on this host")
    runtime = make_runtime(args.fake_runtime)
    try:
        more, trouble = await cleanup_pod_network(
            host, cluster_cidr(args), runtime=runtime, node_name=args.node_name)
        done += more
        problems += trouble
    finally:
        close = getattr(runtime, "close", None)
        if close is not None:
            close()
    return report(done, problems, "nothing of the pod network's on this host")


def report(done: list[str], problems: list[str], nothing: str) -> int:
    for line in done:
        print(line)
    for line in problems:
        print(f"cannot clean up: {line}", file=sys.stderr)
    if not done and not problems:
        print(nothing)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.cleanup_pod_network or args.cleanup_services:
        sys.exit(asyncio.run(cleanup(args)))
    daemon.run(run(args), args.log_level)


if __name__ == "__main__":
    main()
