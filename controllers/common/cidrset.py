"""The blocks of a cluster's pod range and which of them are taken: the bookkeeping of
node IPAM (Kubernetes' pkg/controller/nodeipam/ipam/cidrset).

A cluster range (``--cluster-cidr``, 10.244.0.0/16) is cut into blocks of one prefix length
(``--node-cidr-mask-size``, /24), numbered from the range's first address: block 0 is
10.244.0.0/24, block 1 10.244.1.0/24, and so on. Kubernetes' rules:

* ``allocate_next`` hands out the first free block at or after the one after the last block
  it handed out, wrapping round: a block just released is not handed out again until the
  others have had their turn, so a podCIDR does not move to a new node at once while
  routes to its old node may still be about. A fresh set starts at block 0.
* ``occupy`` marks every block a CIDR overlaps (a larger CIDR several, a smaller one the
  block it lies in); ``release`` frees them. Both are idempotent, and both refuse a CIDR
  that does not overlap the range at all.

IPv4 only: a Skiff cluster has one IPv4 pod range (no IPv6, no dual stack yet).
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv4Network

__all__ = ["CIDRSet", "CIDRSetError", "OutOfRange", "RangeExhausted", "parse_cidr"]

_BITS = 32


class CIDRSetError(ValueError):
    """A cluster range and block size that do not make a set, or a CIDR it cannot take."""


class RangeExhausted(CIDRSetError):
    """Every block of the range is taken."""


class OutOfRange(CIDRSetError):
    """A CIDR that shares no address with the cluster range."""


def parse_cidr(text: str) -> IPv4Network:
    """An IPv4 network from `text`, host bits allowed and cleared (as Kubernetes' sloppy
    parse: 10.244.1.7/16 is 10.244.0.0/16)."""
    try:
        if "/" not in text:  # an address alone is no range
            raise ValueError(text)
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise CIDRSetError(f"{text!r} is not a valid CIDR (e.g. 10.244.0.0/16)") from None
    if not isinstance(network, IPv4Network):
        raise CIDRSetError(f"{text!r} is IPv6; only IPv4 pod ranges are supported")
    return network


class CIDRSet:
    """Which blocks of `cluster` (each a /`node_mask_size`) are in use."""

    def __init__(self, cluster: IPv4Network, node_mask_size: int) -> None:
        if not cluster.prefixlen <= node_mask_size <= _BITS:
            raise CIDRSetError(
                f"a node block of /{node_mask_size} does not fit the cluster range {cluster}: "
                f"the node mask size must be between {cluster.prefixlen} and {_BITS}")
        self.cluster = cluster
        self.node_mask_size = node_mask_size
        self.capacity = 1 << (node_mask_size - cluster.prefixlen)
        self._shift = _BITS - node_mask_size
        self._used: set[int] = set()
        self._next_candidate = 0

    @classmethod
    def parse(cls, cluster_cidr: str, node_mask_size: int) -> CIDRSet:
        return cls(parse_cidr(cluster_cidr), node_mask_size)

    def __repr__(self) -> str:
        return (f"CIDRSet({self.cluster}, /{self.node_mask_size}: "
                f"{self.in_use}/{self.capacity} in use)")

    @property
    def in_use(self) -> int:
        return len(self._used)

    def block(self, index: int) -> IPv4Network:
        """The `index`th block of the range."""
        address = IPv4Address(int(self.cluster.network_address) + (index << self._shift))
        return IPv4Network((address, self.node_mask_size))

    def overlaps(self, cidr: IPv4Network) -> bool:
        return self.cluster.overlaps(cidr)

    def contains(self, address: IPv4Address) -> bool:
        return address in self.cluster

    def allocate_next(self) -> IPv4Network:
        """Marks the next free block used and returns it; RangeExhausted when none is."""
        if len(self._used) >= self.capacity:
            raise RangeExhausted(f"no /{self.node_mask_size} is left in {self.cluster} "
                                 f"(all {self.capacity} are in use)")
        candidate = self._next_candidate
        while candidate in self._used:
            candidate = (candidate + 1) % self.capacity
        self._used.add(candidate)
        self._next_candidate = (candidate + 1) % self.capacity
        return self.block(candidate)

    def occupy(self, cidr: IPv4Network) -> None:
        """Marks every block `cidr` overlaps as used (already used ones stay used)."""
        self._used.update(self._indices(cidr))

    def release(self, cidr: IPv4Network) -> None:
        """Marks every block `cidr` overlaps as free (already free ones stay free)."""
        self._used.difference_update(self._indices(cidr))

    def is_used(self, cidr: IPv4Network) -> bool:
        """Whether any block `cidr` overlaps is in use."""
        return any(i in self._used for i in self._indices(cidr))

    def _indices(self, cidr: IPv4Network) -> range:
        if not self.cluster.overlaps(cidr):
            raise OutOfRange(f"{cidr} is outside the cluster range {self.cluster}")
        if cidr.prefixlen <= self.cluster.prefixlen:
            return range(self.capacity)  # it holds the whole range
        base = int(self.cluster.network_address)
        first = (int(cidr.network_address) - base) >> self._shift
        last = (int(cidr.broadcast_address) - base) >> self._shift
        return range(first, last + 1)
