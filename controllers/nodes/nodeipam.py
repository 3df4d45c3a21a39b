"""The node IPAM controller: gives every Node a podCIDR, one block of the cluster's pod
range, from which its kubelet addresses pods and to which the other nodes route.

Kubernetes' range allocator (pkg/controller/nodeipam/ipam/range_allocator.go), single
stack IPv4:

* A Node without ``spec.podCIDR`` gets the next free block of ``--cluster-cidr`` (of size
  ``--node-cidr-mask-size``; bookkeeping in ``controllers/common/cidrset.py``) in
  ``spec.podCIDR`` and ``spec.podCIDRs``. The write carries the resourceVersion it read
  and is done again on a fresh read after a Conflict; a node that got a podCIDR from
  someone else meanwhile keeps that one, and the block reserved for it is freed. The
  apiserver lets a podCIDR be set once, never changed.
* A Node with a podCIDR inside the range keeps it, and its blocks are marked used. Every
  node's blocks are marked before the first block is handed out, so a restarted
  controller never hands out a block that is taken.
* A podCIDR outside the range is left alone, with a Warning event (Kubernetes' controller
  manager refuses to start instead).
* When no block is left, the node gets a Warning ``CIDRNotAvailable`` event (Kubernetes'
  reason and message) and is looked at again as soon as a block frees.
* A deleted node's blocks are free again; as in Kubernetes, they are handed out again
  after the other free blocks have had their turn.
* A node whose own address (InternalIP or ExternalIP) lies inside the range gets no block:
  routes for pod addresses would capture traffic to the host itself. A Warning event
  names the address and the range and says to choose another ``--cluster-cidr``.

Left out: dual stack and IPv6; keeping the blocks of ``--service-cluster-ip-range`` out
of the range (Skiff's default 10.96.0.0/12 does not overlap 10.244.0.0/16), and the
cloud allocator.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network

from controllers.common.cidrset import CIDRSet, CIDRSetError, RangeExhausted, parse_cidr
from controllers.common.context import ControllerContext
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.controller import Controller
from skiff.client.events import WARNING
from skiff.client.retry import update_with_retries

__all__ = [
    "ADDRESS_IN_CLUSTER_CIDR",
    "CIDR_NOT_AVAILABLE",
    "EVENT_SOURCE",
    "POD_CIDR_OUT_OF_RANGE",
    "NodeIpamController",
    "address_in_range",
    "pod_cidrs",
]

log = logging.getLogger(__name__)

EVENT_SOURCE = "cidrAllocator"  # Kubernetes' event source for the range allocator
CIDR_NOT_AVAILABLE = "CIDRNotAvailable"
POD_CIDR_OUT_OF_RANGE = "PodCIDROutOfRange"
ADDRESS_IN_CLUSTER_CIDR = "NodeAddressInClusterCIDR"

_HOST_ADDRESS_TYPES = ("InternalIP", "ExternalIP")


def pod_cidrs(node: core_pb2.Node) -> list[str]:
    """The node's podCIDRs as written (podCIDRs, or the older single podCIDR)."""
    if node.spec.pod_cidrs:
        return list(node.spec.pod_cidrs)
    return [node.spec.pod_cidr] if node.spec.pod_cidr else []


def address_in_range(node: core_pb2.Node, cidrs: CIDRSet) -> core_pb2.NodeAddress | None:
    """The node's first own address (InternalIP, ExternalIP) that lies in the range."""
    for address in node.status.addresses:
        if address.type not in _HOST_ADDRESS_TYPES:
            continue
        try:
            ip = IPv4Address(address.address)
        except ValueError:
            continue  # an IPv6 address cannot collide with an IPv4 range
        if cidrs.contains(ip):
            return address
    return None


def _assign(node: core_pb2.Node, cidr: str) -> core_pb2.Node:
    """Sets `cidr` as the node's podCIDR unless it has one already; the node either way."""
    if not pod_cidrs(node):
        node.spec.pod_cidr = cidr
        node.spec.pod_cidrs[:] = [cidr]
    return node


class NodeIpamController(Controller):
    def __init__(self, ctx: ControllerContext, *, workers: int = 1) -> None:
        config = ctx.config
        self.cidrs = CIDRSet.parse(config.cluster_cidr, config.node_cidr_mask_size)
        self.client = ctx.client
        self.nodes = ctx.factory.informer(core_pb2.Node)
        super().__init__("nodeipam", informers=[self.nodes], workers=workers, clock=ctx.clock)
        self.recorder = ctx.recorder(EVENT_SOURCE)
        # node name -> the blocks marked for it: those its podCIDRs cover, or the one
        # reserved for it while the write of its podCIDR is under way (or to be retried)
        self._held: dict[str, tuple[IPv4Network, ...]] = {}
        # node name -> the podCIDRs last looked at (they never change: looked at once)
        self._seen: dict[str, tuple[str, ...]] = {}
        # nodes that found the range exhausted, looked at again when a block frees
        self._waiting: set[str] = set()
        self._primed = False

        self.enqueue_from(self.nodes)

    # ---- sync ----

    async def sync(self, key: str) -> None:
        self._mark_every_node_once()
        node = self.nodes.store.get(key)
        if node is None or node.metadata.HasField("deletion_timestamp"):
            self._forget(key)
            return
        cidrs = pod_cidrs(node)
        if cidrs:
            self._waiting.discard(key)
            self._hold(node, cidrs)
            return
        await self._allocate(node)

    def _mark_every_node_once(self) -> None:
        """Marks the blocks of every node in the (synced) cache before the first block is
        handed out, so that none is handed out twice after a restart."""
        if self._primed:
            return
        for node in self.nodes.store.list():
            cidrs = pod_cidrs(node)
            if cidrs:
                self._hold(node, cidrs)
        self._primed = True
        log.info("node IPAM: %s", self.cidrs)

    def _hold(self, node: core_pb2.Node, cidrs: Sequence[str]) -> None:
        """Marks the blocks of the node's podCIDRs; warns about those it cannot mark."""
        name = node.metadata.name
        if self._seen.get(name) == tuple(cidrs):
            return
        inside: list[IPv4Network] = []
        for text in cidrs:
            try:
                cidr = parse_cidr(text)
            except CIDRSetError as err:
                self._warn(node, POD_CIDR_OUT_OF_RANGE,
                           f"Node {name} has podCIDR {text}, which cannot be used: {err}; "
                           "it is left as it is")
                continue
            if not self.cidrs.overlaps(cidr):
                self._warn(node, POD_CIDR_OUT_OF_RANGE,
                           f"Node {name} has podCIDR {cidr}, outside the cluster range "
                           f"{self.cidrs.cluster} (--cluster-cidr); it is left as it is")
                continue
            inside.append(cidr)
        self._seen[name] = tuple(cidrs)
        self._set_held(name, tuple(inside))

    def _set_held(self, name: str, cidrs: tuple[IPv4Network, ...]) -> None:
        old = self._held.pop(name, ())
        if cidrs:
            self._held[name] = cidrs
            for cidr in cidrs:
                self.cidrs.occupy(cidr)
        self._free([c for c in old if c not in cidrs])

    def _forget(self, name: str) -> None:
        """A node gone (or going): its blocks are free again."""
        self._waiting.discard(name)
        self._seen.pop(name, None)
        self._set_held(name, ())

    def _free(self, cidrs: Sequence[IPv4Network]) -> None:
        """Frees the blocks of `cidrs` (but those another node still holds, if two nodes
        were ever given overlapping podCIDRs by hand); wakes the nodes waiting for one."""
        if not cidrs:
            return
        for cidr in cidrs:
            self.cidrs.release(cidr)
            for held in self._held.values():
                for other in held:
                    if other.overlaps(cidr):
                        self.cidrs.occupy(other)
        log.info("node IPAM: freed %s (%s)", ", ".join(map(str, cidrs)), self.cidrs)
        for name in sorted(self._waiting):
            self.enqueue_key(name)

    async def _allocate(self, node: core_pb2.Node) -> None:
        name = node.metadata.name
        colliding = address_in_range(node, self.cidrs)
        if colliding is not None:
            self._waiting.discard(name)
            self._set_held(name, ())
            self._warn(node, ADDRESS_IN_CLUSTER_CIDR,
                       f"Node {name}'s {colliding.type} {colliding.address} lies inside the "
                       f"cluster's pod range {self.cidrs.cluster}: no podCIDR is given to it, "
                       "since routes to pod addresses would take traffic meant for the host "
                       "itself. Pick another --cluster-cidr for skiff-controller-manager, "
                       "one that no host address falls in.")
            return
        reserved = self._held.get(name)
        if reserved:
            cidr = reserved[0]  # an earlier write that failed, or is not in the cache yet
        else:
            try:
                cidr = self.cidrs.allocate_next()
            except RangeExhausted as err:
                self._waiting.add(name)
                self._warn(node, CIDR_NOT_AVAILABLE,
                           f"Node {name} status is now: {CIDR_NOT_AVAILABLE} ({err}); it gets "
                           "one when a node is deleted, or when the controller manager runs "
                           "with a larger --cluster-cidr")
                return
            self._held[name] = (cidr,)
        self._waiting.discard(name)
        try:
            written = await update_with_retries(self.client, core_pb2.Node, name, "",
                                                lambda fresh: _assign(fresh, str(cidr)))
        except errors.NotFound:
            self._forget(name)
            return
        # On any other failure the reservation stays with the node and the key is retried
        # with back-off; a node deleted meanwhile frees it.
        final = pod_cidrs(written)
        if final == [str(cidr)]:
            log.info("node %s: podCIDR %s", name, cidr)
        else:
            log.info("node %s: podCIDR %s was set meanwhile; %s is free again", name,
                     ",".join(final), cidr)
        self._hold(written, final)

    def _warn(self, node: core_pb2.Node, reason: str, message: str) -> None:
        log.warning("node %s: %s", node.metadata.name, message)
        self.recorder.event(node, WARNING, reason, message)
