"""A pod's resolv.conf: its nameservers, search path and options, as Kubernetes' kubelet
forms them (pkg/kubelet/network/dns: GetPodDNS).

- ClusterFirst (the default), and ClusterFirstWithHostNet: the cluster's DNS servers
  (--cluster-dns) alone, the search path `NS.svc.DOMAIN svc.DOMAIN DOMAIN` then the node's
  own, and `ndots:5`. A hostNetwork pod under ClusterFirst gets the node's DNS (Default),
  as does every ClusterFirst pod while the kubelet knows no cluster DNS server.
- Default: the node's resolv.conf (--resolv-conf; "" means none: 127.0.0.1 and search `.`).
- None: nothing but the pod's dnsConfig.
The pod's dnsConfig is then appended (servers and searches without duplicates; options
merged by name, the pod's winning), and the result cut to the resolver's limits (3
servers; 32 search domains of at most 2048 characters in all) with a warning saying what
was applied.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from kubelet.runtime import DnsConfig
from skiff.api.v1 import core_pb2

__all__ = ["ClusterDns", "PodDns", "host_dns", "parse_resolv_conf", "pod_dns"]

DEFAULT_CLUSTER_DOMAIN = "cluster.local"
DEFAULT_RESOLV_CONF = "/etc/resolv.conf"
# What a resolver reads (glibc's MAXNS, and Kubernetes' search limits).
MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048
CLUSTER_OPTIONS = ("ndots:5",)
DNS_CONFIG_FORMING = "DNSConfigForming"
MISSING_CLUSTER_DNS = "MissingClusterDNS"


@dataclass(frozen=True)
class ClusterDns:
    """The kubelet's DNS settings."""

    servers: tuple[str, ...] = ()  # --cluster-dns
    domain: str = DEFAULT_CLUSTER_DOMAIN  # --cluster-domain
    resolv_conf: str = DEFAULT_RESOLV_CONF  # --resolv-conf; "" for none


@dataclass(frozen=True)
class PodDns:
    config: DnsConfig
    # Warning events for the pod: (reason, message); DNSConfigForming, MissingClusterDNS.
    warnings: tuple[tuple[str, str], ...] = ()
    # False when it is the node's DNS, unchanged: the runtime's own resolv.conf then serves
    # (Docker's drops the node's loopback stubs, which a pod could not reach).
    custom: bool = True


def parse_resolv_conf(text: str) -> DnsConfig:
    """nameserver, search (the last line wins; `domain` too) and options lines."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        key, values = fields[0], fields[1:]
        if key == "nameserver" and values:
            servers.append(values[0])
        elif key in ("search", "domain"):
            searches = [s.removesuffix(".") for s in values if s != "."]
        elif key == "options":
            options = _merge_options(options, values)
    return DnsConfig(tuple(servers), tuple(searches), tuple(options))


def host_dns(resolv_conf: str) -> DnsConfig:
    """The node's DNS, from its resolv.conf ("": none at all, as Kubernetes: a local
    nameserver and an empty search). Loopback nameservers (a stub such as systemd-resolved's
    127.0.0.53, Docker's 127.0.0.11) are left out: in a pod's network namespace they are
    the pod's own loopback, where nothing answers."""
    if not resolv_conf:
        return DnsConfig(("127.0.0.1",), (".",), ())
    try:
        parsed = parse_resolv_conf(Path(resolv_conf).read_text())
    except OSError:
        return DnsConfig()
    servers = tuple(s for s in parsed.servers if not _is_loopback(s))
    return DnsConfig(servers, parsed.searches, parsed.options)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _merge_options(existing: list[str], more: list[str]) -> list[str]:
    """Options by name: a later one replaces an earlier one of the same name in place."""
    merged: dict[str, str] = {}
    for option in [*existing, *more]:
        name, _, _ = option.partition(":")
        merged[name] = option
    return list(merged.values())


def pod_dns(pod: core_pb2.Pod, cluster: ClusterDns, host: DnsConfig) -> PodDns:
    """The DNS settings of `pod`'s sandbox."""
    policy = pod.spec.dns_policy or "ClusterFirst"
    servers, searches, options = list(host.servers), list(host.searches), list(host.options)
    clustered = policy == "ClusterFirstWithHostNet" or (
        policy == "ClusterFirst" and not pod.spec.host_network)
    custom = policy == "None" or pod.spec.HasField("dns_config")
    if policy == "None":
        servers, searches, options = [], [], []
    elif clustered and cluster.servers:
        custom = True
        servers = list(cluster.servers)
        if cluster.domain:
            ns = pod.metadata.namespace or "default"
            searches = _dedupe([f"{ns}.svc.{cluster.domain}", f"svc.{cluster.domain}",
                                cluster.domain, *searches])
        options = list(CLUSTER_OPTIONS)
    if pod.spec.HasField("dns_config"):
        extra = pod.spec.dns_config
        servers = _dedupe([*servers, *extra.nameservers])
        searches = _dedupe([*searches, *extra.searches])
        options = _merge_options(options, [
            f"{o.name}:{o.value}" if o.HasField("value") and o.value else o.name
            for o in extra.options])
    warnings = []
    if clustered and not cluster.servers:
        # Kubernetes' words (pkg/kubelet/network/dns); the pod gets the node's DNS.
        warnings.append((MISSING_CLUSTER_DNS, (
            f'pod: "{pod.metadata.name}_{pod.metadata.namespace}({pod.metadata.uid})". '
            "kubelet does not have ClusterDNS IP configured and cannot create Pod using "
            '"ClusterFirst" policy. Falling back to "Default" policy.')))
    if len(servers) > MAX_NAMESERVERS:
        servers = servers[:MAX_NAMESERVERS]
        warnings.append((DNS_CONFIG_FORMING, "Nameserver limits were exceeded, some "
                         "nameservers have been omitted, the applied nameserver line is: "
                         f"{' '.join(servers)}"))
    limited = _fit_searches(searches)
    if limited != searches:
        searches = limited
        warnings.append((DNS_CONFIG_FORMING, "Search Line limits were exceeded, some "
                         "search paths have been omitted, the applied search line is: "
                         f"{' '.join(searches)}"))
    return PodDns(DnsConfig(tuple(servers), tuple(searches), tuple(options)), tuple(warnings),
                  custom)


def _fit_searches(searches: list[str]) -> list[str]:
    kept: list[str] = []
    for search in searches[:MAX_SEARCHES]:
        if len(" ".join([*kept, search])) > MAX_SEARCH_CHARS:
            break
        kept.append(search)
    return kept

