"""The node's side of the pod network, kept converged: `PodNetwork`.

Its inputs are this node's podCIDR (given by the controller manager's nodeipam, possibly
after the kubelet registered), every other node's podCIDR and InternalIP (from the
kubelet's Node informer), the host's addresses and routes, and the runtime's networks. One
`sync` brings everything in line, in order:

    1. the podCIDR checked: inside the cluster CIDR, big enough, overlapping none of the
       host's own networks (kubelet/network/cidrs.py);
    2. the pods bridge made, or made again when its subnet is not the podCIDR and no pod
       runs on it (kubelet/network/bridge.py);
    3. Skiff's iptables chains and jumps in place (kubelet/network/rules.py);
    4. routes to the other nodes' podCIDRs (kubelet/network/routes.py);
    5. the other nodes' pod networks probed from this one's (kubelet/network/probe.py).

The first sync after the kubelet starts rebuilds the rules and routes completely; later
ones change only what differs. A sync runs when a Node's podCIDR or InternalIP changes or a
node comes or goes, and every RESYNC_PERIOD seconds (Docker moves its own iptables jumps
above Skiff's when it creates a network; a route may have been removed by hand).

The outcome is a `NetworkState` (kubelet/network/state.py): the executor asks it which
network a new sandbox joins; the NodeAgent reports it as the Node's NetworkUnavailable
condition. A change of state is logged and recorded as an event on the Node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from ipaddress import IPv4Network

from kubelet.network.bridge import BridgeAction, network_config, plan_bridge
from kubelet.network.cidrs import (
    CIDRError,
    check_pod_cidr,
    find_collision,
    gateway_of,
    parse_cidr,
)
from kubelet.network.host import Host, HostError, InterfaceAddress
from kubelet.network.probe import CONDITION as PROBE_CONDITION
from kubelet.network.probe import PeerProbes
from kubelet.network.routes import desired_routes, internal_ip, node_pod_cidr, plan_routes
from kubelet.network.rules import TABLES, plan_rules
from kubelet.network.state import NetworkState, Phase
from kubelet.runtime import ContainerRuntime, RuntimeError_
from skiff.api.v1 import core_pb2, meta_pb2
from skiff.client.clock import Clock, RealClock, sleep_or_wake
from skiff.client.events import NORMAL, WARNING, Recorder

log = logging.getLogger(__name__)

RESYNC_PERIOD = 10.0
DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"  # the controller manager's default

# Reasons of the Node's NetworkUnavailable condition and of the events on the Node.
READY = "PodNetworkReady"
OVERLAP = "PodCIDROverlapsHostNetwork"
INVALID = "InvalidPodCIDR"
CHANGED = "PodCIDRChanged"
FAILED = "NetworkSetupFailed"

ConditionSpec = tuple[str, str, str]  # status, reason, message


class PodNetwork:
    def __init__(self, *, node_name: str, cluster_cidr: IPv4Network,
                 runtime: ContainerRuntime, host: Host,
                 nodes: Callable[[], Iterable[core_pb2.Node]], recorder: Recorder,
                 clock: Clock | None = None, resync_period: float = RESYNC_PERIOD,
                 on_change: Callable[[NetworkState], None] | None = None,
                 probe_port: int = 0) -> None:
        self.node_name = node_name
        self.cluster = cluster_cidr
        self.runtime = runtime
        self.host = host
        self.nodes = nodes
        self.recorder = recorder
        self.clock: Clock = clock or RealClock()
        self.resync_period = resync_period
        self.on_change = on_change or (lambda state: None)
        self.state = NetworkState()
        self.routes: dict[str, str] = {}  # node -> "podCIDR via InternalIP", as routed now
        self.bridge_interface = ""  # the pods bridge's host interface (br-...), once made
        self._rebuilt = False  # rules and routes rebuilt completely since the start
        self._skipped: dict[str, str] = {}  # node -> why it gets no route, as last logged
        self._wake = asyncio.Event()
        # The other nodes' pod networks, probed from this one's (0: not probed, as for
        # simulated nodes, which have no host network of their own).
        self.probes = PeerProbes(node_name, probe_port) if probe_port else None

    # ---- what the kubelet asks ----

    def sandbox_network(self) -> str:
        """The runtime network a new sandbox joins; NetworkNotReady when there is none."""
        return self.state.sandbox_network()

    def node_condition(self) -> ConditionSpec | None:
        """The Node's NetworkUnavailable condition: None while the node has no podCIDR."""
        if self.state.phase is Phase.NONE:
            return None
        status = "True" if self.state.phase is Phase.UNAVAILABLE else "False"
        return status, self.state.reason, self.state.message

    def node_conditions(self) -> list[tuple[str, str, str, str]]:
        """The Node's conditions the pod network owns (type, status, reason, message):
        NetworkUnavailable, and PodNetworkReachable once other nodes were probed."""
        found = []
        unavailable = self.node_condition()
        if unavailable is not None:
            found.append(("NetworkUnavailable", *unavailable))
        reachable = self.probes.condition() if self.probes is not None else None
        if reachable is not None and self.state.phase is Phase.READY:
            found.append((PROBE_CONDITION, *reachable))
        return found

    # ---- when it runs ----

    def wake(self) -> None:
        self._wake.set()

    def node_handlers(self) -> tuple[Callable[[core_pb2.Node], None],
                                     Callable[[core_pb2.Node, core_pb2.Node], None],
                                     Callable[[core_pb2.Node], None]]:
        """Node informer handlers (add, update, delete) that wake the sync when what it
        depends on changed: a node came or went, or its podCIDR or InternalIP changed
        (not its heartbeats)."""
        def updated(old: core_pb2.Node, new: core_pb2.Node) -> None:
            if _routing_facts(old) != _routing_facts(new):
                self.wake()

        return (lambda node: self.wake()), updated, (lambda node: self.wake())

    async def run(self) -> None:
        """Syncs when woken and every resync period (the caller did the first sync)."""
        while True:
            await sleep_or_wake(self.clock, self.resync_period, self._wake)
            self._wake.clear()
            await self.sync_logged()

    async def sync_logged(self) -> None:
        try:
            await self.sync()
        except Exception:  # the loop must go on; the next sync tries again
            log.exception("pod network sync failed")

    # ---- one sync ----

    async def sync(self) -> NetworkState:
        node = self._own_node()
        text = node_pod_cidr(node) if node is not None else ""
        if not text:
            self._set(NetworkState(), node)
            return self.state
        try:
            pod_cidr = parse_cidr(text, "podCIDR")
            check_pod_cidr(pod_cidr, self.cluster)
        except CIDRError as err:
            state = NetworkState(Phase.UNAVAILABLE, text, reason=INVALID,
                                 message=f"{err}; pods that need the pod network wait")
        else:
            try:
                state = await self._converge(pod_cidr)
            except (HostError, RuntimeError_) as err:
                message = err.message if isinstance(err, RuntimeError_) else str(err)
                state = NetworkState(Phase.UNAVAILABLE, text, reason=FAILED,
                                     message=f"setting up the pod network for podCIDR "
                                     f"{pod_cidr} failed: {message}")
        self._set(state, node)
        return self.state

    def _own_node(self) -> core_pb2.Node | None:
        return next((n for n in self.nodes() if n.metadata.name == self.node_name), None)

    async def _converge(self, pod_cidr: IPv4Network) -> NetworkState:
        desired = network_config(self.node_name, pod_cidr)
        existing = await self.runtime.inspect_network(desired.name)
        addresses = await self.host.addresses()
        collision = find_collision(
            pod_cidr, addresses, await self.host.routes(),
            ignore_interfaces={existing.interface} if existing is not None else set())
        if collision is not None:
            return NetworkState(
                Phase.UNAVAILABLE, str(pod_cidr), reason=OVERLAP,
                message=f"podCIDR {pod_cidr} overlaps {collision} on this host, so pods "
                "cannot use it and wait; delete the Node so that it gets another podCIDR "
                "when it registers again, or give the controller manager and the kubelets "
                "a --cluster-cidr that overlaps none of the hosts' networks")
        action = plan_bridge(desired, existing)
        if action is BridgeAction.BUSY:
            assert existing is not None
            return NetworkState(
                Phase.UNAVAILABLE, str(pod_cidr), reason=CHANGED,
                message=f"the pods network {desired.name} has subnet {existing.subnet}, "
                f"but the podCIDR is now {pod_cidr}; {len(existing.containers)} running "
                "container(s) still use it: it is made again once they are gone, and new "
                "pods wait until then")
        if action is BridgeAction.RECREATE:
            assert existing is not None
            log.warning("pods network %s has subnet %s, the podCIDR is now %s: making it "
                        "again", desired.name, existing.subnet, pod_cidr)
            await self.runtime.remove_network(desired.name)
        if action in (BridgeAction.CREATE, BridgeAction.RECREATE):
            existing = await self.runtime.create_network(desired)
            log.info("made the pods network %s: subnet %s, gateway %s", desired.name,
                     desired.subnet, desired.gateway)
        self.bridge_interface = existing.interface if existing is not None else ""
        # The engine moves its own jumps above Skiff's when it makes a network.
        force = not self._rebuilt
        await self._sync_rules(force=force or action is not BridgeAction.KEEP)
        await self._sync_routes(pod_cidr, addresses, force=force)
        self._rebuilt = True
        if self.probes is not None:
            await self.probes.listen(desired.gateway)
            await self.probes.probe(desired.gateway, self._peer_gateways())
        return NetworkState(Phase.READY, str(pod_cidr), desired.name, reason=READY,
                            message=f"pods are on the bridge network {desired.name} "
                            f"({pod_cidr})")

    async def _sync_rules(self, *, force: bool) -> None:
        saves = {table: await self.host.iptables_save(table) for table in TABLES}
        text = plan_rules(self.cluster, saves, force=force)
        if text is None:
            return
        await self.host.iptables_restore(text)
        if force:
            log.info("wrote the pod network's iptables rules (chains SKIFF-FORWARD, "
                     "SKIFF-POSTROUTING) for cluster CIDR %s", self.cluster)
        else:
            log.info("the pod network's iptables rules were not in place (Docker moves "
                     "its own jumps first when it makes a network): put back")

    async def _sync_routes(self, pod_cidr: IPv4Network, addresses: list[InterfaceAddress], *,
                           force: bool) -> None:
        routes = await self.host.routes()
        desired, skipped = desired_routes(
            self.nodes(), self_name=self.node_name, cluster=self.cluster,
            own_pod_cidr=pod_cidr, addresses=addresses, routes=routes)
        plan = plan_routes(desired, routes, self.cluster, force=force)
        failed: dict[str, str] = {}
        for r in plan.replace:
            try:
                await self.host.replace_route(r.destination, r.gateway)
            except HostError as err:
                failed[r.node] = str(err)
                continue
            log.info("route to node %s's pods: %s via %s", r.node, r.destination, r.gateway)
        for gone in plan.delete:
            try:
                await self.host.delete_route(gone)
            except HostError as err:
                log.warning("cannot remove route %s: %s", gone.describe(), err)
                continue
            log.info("removed route %s: no node has that podCIDR there any more",
                     gone.describe())
        self.routes = {r.node: f"{r.destination} via {r.gateway}" for r in desired
                       if r.node not in failed}
        skipped.update(failed)
        for name, reason in skipped.items():
            if self._skipped.get(name) != reason:
                log.warning("no route to node %s's pods: %s", name, reason)
        self._skipped = skipped

    def _peer_gateways(self) -> dict[str, str]:
        """Every other node with a podCIDR: the address its pods bridge answers on."""
        peers = {}
        for node in self.nodes():
            text = node_pod_cidr(node)
            if node.metadata.name == self.node_name or not text:
                continue
            with contextlib.suppress(CIDRError):
                peers[node.metadata.name] = str(gateway_of(parse_cidr(text, "podCIDR")))
        return peers

    def _set(self, state: NetworkState, node: core_pb2.Node | None) -> None:
        before = self.state
        if state == before:
            return
        self.state = state
        if state.phase is Phase.UNAVAILABLE:
            log.error("pod network unavailable (%s): %s", state.reason, state.message)
        elif state.phase is Phase.READY:
            log.info("pod network ready: %s", state.message)
        if node is not None and state.phase is not Phase.NONE:
            ready = state.phase is Phase.READY
            self.recorder.event(_node_ref(node), NORMAL if ready else WARNING,
                                state.reason, state.message)
        self.on_change(state)


def _routing_facts(node: core_pb2.Node) -> tuple[str, str]:
    return node_pod_cidr(node), internal_ip(node)


def _node_ref(node: core_pb2.Node) -> meta_pb2.ObjectReference:
    # Kubernetes' kubelet: node events carry the node's name as its uid.
    return meta_pb2.ObjectReference(kind="Node", name=node.metadata.name,
                                    uid=node.metadata.name, api_version="v1")
