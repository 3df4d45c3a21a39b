"""The Services a cluster has from its start: `kube-system/kube-dns`, the cluster DNS.

kubeadm installs it with its DNS addon, k3s from a manifest at the server's start; here the
apiserver keeps it, as it keeps the built-in namespaces: created when missing at every
start (so that a deleted one comes back, as an addon manager would put it back), left as it
is when present. Its cluster IP is the address pods' resolv.conf names (the kubelets'
--cluster-dns): holding it in a Service is what keeps the allocator from handing it to
another. It has no selector and no endpoints: skiff-dns answers on that address on every
node itself (clusterdns/address.py), and the node proxy leaves an address the node holds
alone.
"""

from __future__ import annotations

import logging

import grpc

from apiserver import errors
from apiserver.registry import Registry
from skiff.api.v1 import core_pb2

__all__ = ["ensure_kube_dns", "kube_dns_service"]

log = logging.getLogger(__name__)


def kube_dns_service(cluster_ip: str) -> core_pb2.Service:
    """kubeadm's kube-dns Service (its labels, ports and names), without a selector."""
    svc = core_pb2.Service()
    svc.metadata.name = "kube-dns"
    svc.metadata.namespace = "kube-system"
    svc.metadata.labels.update({"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                                "kubernetes.io/name": "skiff-dns"})
    svc.spec.cluster_ip = cluster_ip
    svc.spec.cluster_ips.append(cluster_ip)
    for name, protocol in (("dns", "UDP"), ("dns-tcp", "TCP")):
        port = svc.spec.ports.add(name=name, protocol=protocol, port=53)
        port.target_port.int_val = 53
    return svc


async def ensure_kube_dns(registry: Registry, cluster_ip: str) -> None:
    try:
        await registry.create(kube_dns_service(cluster_ip))
        log.info("created service kube-system/kube-dns at %s", cluster_ip)
    except errors.ApiError as err:
        if err.code == grpc.StatusCode.ALREADY_EXISTS:
            return
        # The address is another Service's, or outside the range: the cluster runs, and
        # says why its pods' DNS address is not reserved.
        log.error("cannot create service kube-system/kube-dns at %s: %s", cluster_ip, err)
