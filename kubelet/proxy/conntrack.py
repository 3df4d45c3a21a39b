"""Stale UDP conntrack entries, removed when an endpoint goes.

A UDP "connection" (a DNS client's socket, say) keeps its conntrack entry, and so its
DNAT to one endpoint, for as long as packets keep coming: when that endpoint goes, its
packets blackhole until the entry times out. kube-proxy deletes such entries
(`conntrack -D`, pkg/proxy/conntrack); so does Skiff, with the same tool (Debian's
`conntrack` package). TCP needs nothing: its connections to a gone endpoint are reset.

`Conntrack` is the seam: `SystemConntrack` runs the tool, `FakeConntrack` records the
calls (unit tests, simulated nodes).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

from kubelet.proxy.model import Endpoint, ServicePortInfo

log = logging.getLogger(__name__)


class Conntrack(Protocol):
    async def delete(self, *args: str) -> None:
        """`conntrack -D ARGS`; no entries to delete is no error."""


@dataclass(frozen=True)
class StaleFlows:
    """What to delete after a sync: flows to a cluster IP of a UDP service port that had
    no endpoints (they were rejected, and may be remembered so), and flows DNATed to an
    endpoint that is gone."""

    cluster_ips: frozenset[tuple[str, str]] = frozenset()  # (cluster IP, protocol)
    endpoints: frozenset[tuple[str, str, str]] = frozenset()  # (cluster IP, ep IP, proto)
    node_ports: frozenset[tuple[int, str, str]] = frozenset()  # (node port, ep IP, proto)

    def __bool__(self) -> bool:
        return bool(self.cluster_ips or self.endpoints or self.node_ports)


def stale_flows(before: list[ServicePortInfo], after: list[ServicePortInfo]) -> StaleFlows:
    """UDP only, as kube-proxy: what changed between two syncs' service ports."""
    old = {(p.key, p.protocol): p for p in before if p.protocol == "UDP"}
    cluster_ips: set[tuple[str, str]] = set()
    endpoints: set[tuple[str, str, str]] = set()
    node_ports: set[tuple[int, str, str]] = set()
    for p in after:
        if p.protocol != "UDP":
            continue
        was = old.pop((p.key, p.protocol), None)
        if p.endpoints and (was is None or not was.endpoints):
            cluster_ips.add((p.cluster_ip, "udp"))
        if was is None:
            continue
        gone: set[Endpoint] = set(was.endpoints) - set(p.endpoints)
        for ep in gone:
            endpoints.add((was.cluster_ip, ep.ip, "udp"))
            if was.node_port:
                node_ports.add((was.node_port, ep.ip, "udp"))
    for was in old.values():  # the service port itself went
        for ep in was.endpoints:
            endpoints.add((was.cluster_ip, ep.ip, "udp"))
            if was.node_port:
                node_ports.add((was.node_port, ep.ip, "udp"))
    return StaleFlows(frozenset(cluster_ips), frozenset(endpoints), frozenset(node_ports))


async def clear(conntrack: Conntrack, flows: StaleFlows) -> None:
    for ip, proto in sorted(flows.cluster_ips):
        await _delete(conntrack, "-p", proto, "--orig-dst", ip)
    for ip, ep, proto in sorted(flows.endpoints):
        await _delete(conntrack, "-p", proto, "--orig-dst", ip, "--dst-nat", ep)
    for port, ep, proto in sorted(flows.node_ports):
        await _delete(conntrack, "-p", proto, "--dport", str(port), "--dst-nat", ep)


async def _delete(conntrack: Conntrack, *args: str) -> None:
    try:
        await conntrack.delete(*args)
    except ConntrackError as err:  # the flows time out on their own: say so, go on
        log.warning("cannot delete stale conntrack entries (%s): %s", " ".join(args), err)


class ConntrackError(Exception):
    pass


class SystemConntrack:
    async def delete(self, *args: str) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                "conntrack", "-D", *args, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE)
        except FileNotFoundError:
            raise ConntrackError("conntrack is not installed (apt-get install conntrack)"
                                 ) from None
        _, err = await proc.communicate()
        text = err.decode(errors="replace").strip()
        # Exit 1 with "0 flow entries have been deleted" is the normal "nothing there".
        if proc.returncode != 0 and "0 flow entries" not in text:
            raise ConntrackError(text or f"exit code {proc.returncode}")


class FakeConntrack:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    async def delete(self, *args: str) -> None:
        self.calls.append(args)
