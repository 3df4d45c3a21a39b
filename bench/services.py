"""The service proxy: from an Endpoints change to the rules in force, and a full resync.

Starts a private etcd and apiserver (bench/_cluster.py) and, in this process, the node's
`ServiceProxy` (kubelet/proxy/) on the real iptables of this host, fed by informers on
Services and Endpoints exactly as in the kubelet. Then:

1. SERVICES services of ENDPOINTS endpoints each (addresses in 10.244.128-255.x, which
   nothing answers on: no packet is sent anywhere) are created and the proxy's first full
   sync waited for;
2. CHANGES times, one Endpoints object gets one address replaced (what a pod's readiness
   change does through the Endpoints controller), and the time from the update call to
   the end of the `iptables-restore` that carries the new address is taken: p50/p99
   (goal p99 < 1 s, moonshot 200 ms). The final rules are checked against iptables-save.
3. The time of a full resync at FULL services x ENDPOINTS endpoints: everything written
   (the agent's start), and then a periodic resync that finds all in place.

The service range rule (REJECT of the rest of 10.96.0.0/12) is left out, so that nothing
else on this host that uses a service address is disturbed meanwhile. Every chain of the
proxy's is removed at the end (`--cleanup-services`).

Usage: python bench/services.py [--services 100] [--endpoints 10] [--changes 200]
                                [--full 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from ipaddress import IPv4Network
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

from bench._cluster import cluster, percentile  # noqa: E402
from kubelet.network.host import SystemHost  # noqa: E402
from kubelet.proxy.cleanup import cleanup_services  # noqa: E402
from kubelet.proxy.conntrack import FakeConntrack  # noqa: E402
from kubelet.proxy.model import Endpoint, ServicePortInfo  # noqa: E402
from kubelet.proxy.proxier import ServiceProxy  # noqa: E402
from kubelet.proxy.rules import TABLES, build, plan_full  # noqa: E402
from skiff.api.v1 import core_pb2  # noqa: E402
from skiff.client.client import Client  # noqa: E402
from skiff.client.informer import SharedInformerFactory  # noqa: E402

CLUSTER = IPv4Network("10.244.0.0/16")


class TimedHost(SystemHost):
    """The real host, noting when each restore finished and what it carried."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, str]] = []

    async def iptables_restore(self, rules: str) -> None:
        await super().iptables_restore(rules)
        self.writes.append((time.monotonic(), rules))


def address(n: int) -> str:
    """The n-th endpoint address, in 10.244.128.1-10.244.255.254 (no packet goes there)."""
    return f"10.244.{128 + n // 254}.{1 + n % 254}"


def endpoints(ns: str, name: str, ips: list[str]) -> core_pb2.Endpoints:
    eps = core_pb2.Endpoints()
    eps.metadata.namespace, eps.metadata.name = ns, name
    subset = eps.subsets.add()
    for ip in ips:
        subset.addresses.add(ip=ip)
    subset.ports.add(name="http", port=8080, protocol="TCP")
    return eps


async def change_latency(address_: str, args: argparse.Namespace) -> list[float]:
    host = TimedHost()
    async with Client(address_) as client:
        ns = core_pb2.Namespace()
        ns.metadata.name = "bench"
        await client.create(ns)
        ips: dict[str, list[str]] = {}
        counter = 0
        for i in range(args.services):
            svc = core_pb2.Service()
            svc.metadata.namespace, svc.metadata.name = "bench", f"svc-{i}"
            svc.spec.ports.add(name="http", port=80, protocol="TCP")
            await client.create(svc)
            ips[svc.metadata.name] = [address(counter + j) for j in range(args.endpoints)]
            counter += args.endpoints
            await client.create(endpoints("bench", svc.metadata.name, ips[svc.metadata.name]))
        factory = SharedInformerFactory(client)
        services = factory.informer(core_pb2.Service)
        eps = factory.informer(core_pb2.Endpoints)
        proxy = ServiceProxy(host=host, conntrack=FakeConntrack(),
                             services=services.store.list, endpoints=eps.store.list,
                             cluster_cidr=CLUSTER, service_cidr=None,
                             min_sync_period=args.min_sync_period, resync_period=30.0)
        factory.start_all()
        await factory.wait_for_sync()
        services.add_handlers(*proxy.handlers())
        eps.add_handlers(*proxy.handlers())
        loop = asyncio.create_task(proxy.run())
        latencies: list[float] = []
        try:
            while proxy.syncs == 0:
                await asyncio.sleep(0.05)
            print(f"# first full sync of {args.services} services x {args.endpoints} "
                  f"endpoints written", file=sys.stderr)
            for k in range(args.changes):
                name = f"svc-{k % args.services}"
                fresh = address(counter)
                counter += 1
                ips[name] = [*ips[name][1:], fresh]
                current = await client.get(core_pb2.Endpoints, name, "bench")
                del current.subsets[:]
                current.subsets.extend(endpoints("bench", name, ips[name]).subsets)
                started = time.monotonic()
                await client.update(current)
                needle = f"--to-destination {fresh}:8080"
                deadline = started + 10
                while True:
                    done = next((t for t, text in host.writes if needle in text), None)
                    if done is not None:
                        latencies.append(done - started)
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{fresh} never reached the rules")
                    await asyncio.sleep(0.002)
                host.writes.clear()
                await asyncio.sleep(args.gap)
            saved = await host.iptables_save("nat")
            missing = [ip for name in ips for ip in ips[name]
                       if f"--to-destination {ip}:8080" not in saved]
            assert not missing, f"not in iptables-save: {missing[:5]}"
        finally:
            loop.cancel()
            await factory.stop_all()
    return latencies


async def full_resync(n: int, per: int) -> tuple[float, float, int]:
    """(seconds to write everything, seconds of a resync that finds it in place, lines)."""
    host = SystemHost()
    ports = [ServicePortInfo("bench", f"svc-{i}", "http", "TCP",
                             f"10.{96 + i // 65536}.{i // 256 % 256}.{i % 256}", 80,
                             endpoints=tuple(Endpoint(address(i * per + j), 8080)
                                             for j in range(per)))
             for i in range(n)]
    started = time.monotonic()
    desired = build(ports, cluster_cidr=CLUSTER, service_cidr=None)
    saves = {t: await host.iptables_save(t) for t in TABLES}
    text = plan_full(desired, saves, force=True)
    assert text is not None
    await host.iptables_restore(text)
    written = time.monotonic() - started
    started = time.monotonic()
    desired = build(ports, cluster_cidr=CLUSTER, service_cidr=None)
    saves = {t: await host.iptables_save(t) for t in TABLES}
    again = plan_full(desired, saves)
    checked = time.monotonic() - started
    assert again is None, "a resync of an unchanged host would write: " + again[:500]
    return written, checked, text.count("\n")


async def main(args: argparse.Namespace) -> None:
    host = SystemHost()
    try:
        with cluster() as c:
            latencies = await change_latency(c.address, args)
        await cleanup_services(host)
        written, checked, lines = await full_resync(args.full, args.endpoints)
    finally:
        await cleanup_services(host)
    ms = [x * 1000 for x in latencies]
    print(f"Endpoints change -> rules in force ({args.services} services x {args.endpoints} "
          f"endpoints, {len(ms)} changes, min sync period {args.min_sync_period:g} s): "
          f"p50 {percentile(ms, 50):.0f} ms, p99 {percentile(ms, 99):.0f} ms, "
          f"max {max(ms):.0f} ms (goal p99 < 1000 ms)")
    print(f"full resync at {args.full} services x {args.endpoints} endpoints ({lines} lines "
          f"of iptables-restore): everything written in {written:.2f} s; a resync that "
          f"finds it in place (iptables-save + compare, nothing written) {checked:.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.05,
                        help="seconds between two changes")
    parser.add_argument("--min-sync-period", type=float, default=0.1)
    parser.add_argument("--full", type=int, default=1000)
    asyncio.run(main(parser.parse_args()))
