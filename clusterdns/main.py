"""`skiff-dns`: the cluster DNS server.

Answers `SVC.NS.svc.ZONE` (the ClusterIP, or a headless Service's ready addresses),
`HOSTNAME.SVC.NS.svc.ZONE`, SRV records for named ports, ExternalName Services as
CNAMEs, and forwards every other name to the node's resolvers. It watches Services,
Endpoints and Pods through informers and reads its sockets only once they have synced,
so that it never answers NXDOMAIN for a Service it has not heard of yet. Its sockets can
be handed to it (systemd's skiff-dns.socket, skiff up's supervisor) and outlive it: a
query that comes while it restarts waits in them and gets its answer once it is back;
bound by itself, a query in that time is refused and the resolver's retry is answered.
If the apiserver cannot be reached within --sync-timeout, it serves anyway (other names
resolve) and answers SERVFAIL for the cluster's names until its caches are complete.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging

from clusterdns.address import LABEL, AddressError, hold_address, release_addresses
from clusterdns.records import DEFAULT_DOMAIN, DEFAULT_TTL, ClusterZone
from clusterdns.server import DnsServer
from clusterdns.upstream import SYSTEMD_RESOLV_CONF, Forwarder, read_upstreams
from skiff import daemon
from skiff.api.v1 import core_pb2
from skiff.client.client import Client
from skiff.client.informer import SharedInformerFactory
from skiff.daemon import activation

log = logging.getLogger("clusterdns")

DEFAULT_BIND_ADDRESS = "10.96.0.10"
REPORT_PERIOD = 60.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff-dns", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    daemon.add_client_flags(p)
    p.add_argument("--bind-address",
                   help=f"the address to answer on (default {DEFAULT_BIND_ADDRESS}, the "
                   "cluster DNS address pods' resolv.conf names)")
    p.add_argument("--port", type=int, default=53, help="UDP and TCP port (default 53)")
    p.add_argument("--hold-address", action=argparse.BooleanOptionalAction, default=True,
                   help="put --bind-address on this node's loopback interface (label "
                   f"{LABEL}) when no interface holds it, so that the node's pods reach it "
                   "(default: yes; kept when skiff-dns stops, so that queries during a "
                   "restart are refused here rather than routed off the node)")
    p.add_argument("--cleanup", action="store_true",
                   help=f"remove the addresses skiff-dns put on this node ({LABEL}): all, "
                   "or the --bind-address given; and exit")
    p.add_argument("--cluster-domain", default=DEFAULT_DOMAIN,
                   help="the cluster's DNS domain (default %(default)s)")
    p.add_argument("--ttl", type=int, default=DEFAULT_TTL,
                   help="TTL of the cluster's records, seconds (default %(default)s)")
    p.add_argument("--resolv-conf", default="/etc/resolv.conf",
                   help="where the node's resolvers are, for other names (default "
                   "%(default)s; loopback stubs are skipped, see --systemd-resolv-conf)")
    p.add_argument("--systemd-resolv-conf", default=SYSTEMD_RESOLV_CONF,
                   help="read when --resolv-conf names only loopback stubs (default "
                   "%(default)s)")
    p.add_argument("--upstream", action="append", default=[], metavar="HOST:PORT",
                   help="forward to this resolver instead of --resolv-conf's (repeatable)")
    p.add_argument("--sync-timeout", type=float, default=5.0, metavar="SECONDS",
                   help="serve after this long even if the caches have not synced (the "
                   "cluster's names get SERVFAIL until they have; default %(default)s)")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    args.cleanup_only = args.bind_address  # --cleanup: that address alone, when given
    args.bind_address = args.bind_address or DEFAULT_BIND_ADDRESS
    return args


def _upstreams(args: argparse.Namespace) -> list[tuple[str, int]]:
    if args.upstream:
        found = []
        for item in args.upstream:
            host, _, port = item.rpartition(":")
            if not host:
                host, port = item, "53"
            found.append((host.strip("[]"), int(port)))
        return found
    return read_upstreams(args.resolv_conf, args.systemd_resolv_conf)


def watch_cluster(factory: SharedInformerFactory, zone: ClusterZone) -> None:
    """Feeds the zone from informers of Services, Endpoints and Pods."""
    services = factory.informer(core_pb2.Service)
    services.add_handlers(on_add=zone.set_service,
                          on_update=lambda _old, new: zone.set_service(new),
                          on_delete=lambda s: zone.delete_service(s.metadata.namespace,
                                                                  s.metadata.name))
    endpoints = factory.informer(core_pb2.Endpoints)
    endpoints.add_handlers(on_add=zone.set_endpoints,
                           on_update=lambda _old, new: zone.set_endpoints(new),
                           on_delete=lambda e: zone.delete_endpoints(e.metadata.namespace,
                                                                     e.metadata.name))
    pods = factory.informer(core_pb2.Pod)
    pods.add_handlers(on_add=zone.set_pod, on_update=lambda _old, new: zone.set_pod(new),
                      on_delete=lambda p: zone.delete_pod(p.metadata.namespace,
                                                          p.metadata.name))


async def report(server: DnsServer, period: float) -> None:
    seen = 0
    while True:
        await asyncio.sleep(period)
        total = server.udp_queries + server.tcp_queries
        if total != seen:
            log.info("%d queries in %.0fs (%d forwarded answers cached, %d cache hits, "
                     "%d dropped)", total - seen, period, len(server.forwarder.cache),
                     server.forwarder.cache.hits, server.dropped)
            seen = total


def ready(zone: ClusterZone, upstreams: list[tuple[str, int]]) -> None:
    log.info("synced: %d names in %s; forwarding other names to %s", len(zone.names()),
             zone.domain, ", ".join(f"{h}:{p}" for h, p in upstreams) or "nobody")
    # What the sync built lives as long as the process: out of the collector's sight, so
    # that its full collections (which the hot path's short-lived objects trigger now and
    # then) do not walk every cached record each time.
    gc.collect()
    gc.freeze()


async def finish_sync(factory: SharedInformerFactory, server: DnsServer,
                      upstreams: list[tuple[str, int]]) -> None:
    await factory.wait_for_sync()
    server.answers.synced = True
    ready(server.zone, upstreams)


async def serve(client: Client, args: argparse.Namespace) -> None:
    # Sockets systemd (skiff-dns.socket) or skiff up holds across our restarts: queries
    # that come while we start wait in them, and are answered once the caches are synced.
    handed = activation.listen_sockets()
    zone = ClusterZone(args.cluster_domain, args.ttl)
    factory = SharedInformerFactory(client)
    watch_cluster(factory, zone)
    factory.start_all()
    upstreams = _upstreams(args)
    log.info("waiting for the caches of services, endpoints and pods (up to %.0fs)",
             args.sync_timeout)
    try:
        await factory.wait_for_sync(args.sync_timeout)
        synced = True
    except TimeoutError:
        # As CoreDNS: serve anyway, so that other names resolve while the apiserver is
        # out of reach; the zone's names get SERVFAIL until the caches are complete.
        log.warning("caches not synced after %.0fs; serving, with SERVFAIL for %s until "
                    "they are", args.sync_timeout, zone.domain)
        synced = False
    if args.hold_address:
        hold_address(args.bind_address)
    forwarder = Forwarder(upstreams)
    await forwarder.start()
    server = DnsServer(zone, forwarder, args.bind_address, args.port)
    server.answers.synced = synced
    await server.start(handed)
    background = [asyncio.create_task(report(server, REPORT_PERIOD))]
    if synced:
        ready(zone, upstreams)
    else:
        background.append(asyncio.create_task(finish_sync(factory, server, upstreams)))
    try:
        await asyncio.Event().wait()
    finally:
        for task in background:
            task.cancel()
        await server.stop()
        forwarder.close()
        await factory.stop_all()


async def run(args: argparse.Namespace) -> None:
    client = daemon.client_from_args(args)
    try:
        await daemon.run_until_signalled(serve(client, args))
    finally:
        await client.close()


def cleanup(only: str | None) -> int:
    """kube-proxy's --cleanup, for what skiff-dns adds to a node: 1 when something could
    not be removed."""
    try:
        released = release_addresses(only)
    except AddressError as err:
        print(f"skiff-dns: {err}")
        return 1
    for address in released:
        print(f"skiff-dns: removed {address} ({LABEL})")
    return 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.cleanup:
        raise SystemExit(cleanup(args.cleanup_only))
    try:
        daemon.run(run(args), args.log_level)
    except AddressError as err:
        raise SystemExit(f"skiff-dns: cannot hold the address {args.bind_address}: {err}"
                         ) from None


if __name__ == "__main__":
    main()
