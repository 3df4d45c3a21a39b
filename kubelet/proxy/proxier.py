"""`ServiceProxy`: the node's service proxy kept converged, kube-proxy's iptables mode.

Its inputs are the kubelet's Service and Endpoints informer caches. Their handlers only
wake the loop; the loop syncs at most once per `min_sync_period` (a burst of changes, a
rollout of a hundred pods, becomes one write) and at least once per `resync_period`.

One sync computes the whole desired content of the proxy's chains from the caches
(kubelet/proxy/rules.py) and writes, with one `iptables-restore --noflush`:
  * the first time (the kubelet's start): everything, with the stale chains of an
    earlier run deleted; every resync period and after a failure: whatever differs from
    what iptables-save shows, with the jumps from the built-in chains put back where
    they belong (Docker moves its own first when it makes a network);
  * otherwise only the chains that changed since the last write, and the deletion of
    those no longer wanted.
Then it removes the UDP conntrack entries that the change left stale
(kubelet/proxy/conntrack.py). A failed write is retried by the next sync, which is a full
one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from ipaddress import IPv4Network

from google.protobuf.message import Message

from kubelet.network.host import Host, HostError
from kubelet.proxy.conntrack import Conntrack, clear, stale_flows
from kubelet.proxy.model import EndpointsCache, ServicePortInfo, service_ports
from kubelet.proxy.rules import TABLES, Ruleset, build, plan_changes, plan_full
from skiff.api.v1 import core_pb2
from skiff.client.clock import Clock, RealClock, sleep_or_wake

log = logging.getLogger(__name__)

MIN_SYNC_PERIOD = 0.1
RESYNC_PERIOD = 30.0
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"

Handlers = tuple[Callable[[Message], None], Callable[[Message, Message], None],
                 Callable[[Message], None]]


class ServiceProxy:
    def __init__(self, *, host: Host, conntrack: Conntrack,
                 services: Callable[[], Iterable[core_pb2.Service]],
                 endpoints: Callable[[], Iterable[core_pb2.Endpoints]],
                 cluster_cidr: IPv4Network, service_cidr: IPv4Network | None,
                 enabled: Callable[[], bool] = lambda: True,
                 clock: Clock | None = None, min_sync_period: float = MIN_SYNC_PERIOD,
                 resync_period: float = RESYNC_PERIOD,
                 hairpin: Callable[[], object] | None = None) -> None:
        self.host = host
        self.conntrack = conntrack
        self.services = services
        self.endpoints = endpoints
        self.cluster_cidr = cluster_cidr
        self.service_cidr = service_cidr
        self.enabled = enabled
        self.clock: Clock = clock or RealClock()
        self.min_sync_period = min_sync_period
        self.resync_period = resync_period
        # Puts the pods bridge's ports in hairpin mode (kubelet/proxy/hairpin.py); None
        # for simulated nodes, which have no bridge.
        self.hairpin = hairpin
        self.written: Ruleset | None = None  # None: the next sync is a full one
        self.ports: list[ServicePortInfo] = []
        self.syncs = 0  # for tests and the benchmark
        self._endpoints_cache: EndpointsCache = {}
        self._last_full = 0.0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def handlers(self) -> Handlers:
        """Informer handlers (add, update, delete) for Services and Endpoints."""
        return (lambda obj: self.wake()), (lambda old, new: self.wake()), \
            (lambda obj: self.wake())

    async def run(self) -> None:
        """Syncs when woken, at most every min_sync_period, and every resync period."""
        while True:
            started = self.clock.now()
            await self.sync_logged()
            rest = self.min_sync_period - (self.clock.now() - started)
            if rest > 0:
                await self.clock.sleep(rest)
            await sleep_or_wake(self.clock, self._until_full(), self._wake)
            self._wake.clear()

    def _until_full(self) -> float:
        return max(0.0, self._last_full + self.resync_period - self.clock.now())

    async def sync_logged(self) -> None:
        try:
            await self.sync()
        except Exception:  # the loop must go on; the next sync (a full one) tries again
            log.exception("service proxy sync failed")
            self.written = None

    async def sync(self, *, full: bool = False) -> bool:
        """One sync; returns whether anything was written."""
        if not self.enabled():
            return False
        started = time.monotonic()
        ports = service_ports(self.services(), self.endpoints(), self._endpoints_cache)
        desired = build(ports, cluster_cidr=self.cluster_cidr, service_cidr=self.service_cidr)
        force = self.syncs == 0  # the first: everything rewritten
        full = full or force or self.written is None or self._until_full() <= 0
        if full:
            saves = {table: await self.host.iptables_save(table) for table in TABLES}
            text = plan_full(desired, saves, force=force)
        else:
            assert self.written is not None
            text = plan_changes(desired, self.written)
        if text is not None:
            try:
                await self.host.iptables_restore(text)
            except HostError:
                self.written = None
                raise
        if self.hairpin is not None:
            self.hairpin()
        flows = stale_flows(self.ports, ports)
        self.written, self.ports = desired, ports
        self.syncs += 1
        if full:
            self._last_full = self.clock.now()
        if flows:
            await clear(self.conntrack, flows)
        if text is not None:
            log.log(logging.INFO if full else logging.DEBUG,
                    "service proxy: wrote %s rules for %d service ports in %.3fs",
                    "all" if full else "changed", len(ports), time.monotonic() - started)
        return text is not None
