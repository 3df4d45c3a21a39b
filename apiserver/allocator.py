"""Cluster IPs and node ports for Services, allocated without races.

Each allocated value is a key under /allocations/ written in the same etcd
transaction as the Service (and deleted with it), guarded by "the key is absent":
two concurrent creates can never get the same IP, and nothing leaks if an
apiserver dies midway.
"""

from __future__ import annotations

import ipaddress
import random

from apiserver.codec import ALLOCATIONS_PREFIX

NODE_PORT_RANGE = (30000, 32767)


class ServiceAllocator:
    def __init__(self, cidr: str) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        # The network address, the first host (Kubernetes keeps it for the `kubernetes`
        # service) and the broadcast address are never handed out.
        self._first = int(self.network.network_address) + 2
        self._last = int(self.network.broadcast_address) - 1

    def contains(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in self.network
        except ValueError:
            return False

    def random_ip(self) -> str:
        return str(ipaddress.ip_address(random.randint(self._first, self._last)))

    @staticmethod
    def random_node_port() -> int:
        return random.randint(*NODE_PORT_RANGE)

    @staticmethod
    def ip_key(ip: str) -> bytes:
        return ALLOCATIONS_PREFIX + b"serviceips/" + ip.encode()

    @staticmethod
    def node_port_key(port: int) -> bytes:
        # One key per number whatever the protocol, as Kubernetes' node port bitmap: a
        # Service's TCP and UDP ports of one number share it, two Services never do.
        return ALLOCATIONS_PREFIX + f"nodeports/{port}".encode()
