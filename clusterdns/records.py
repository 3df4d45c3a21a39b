"""The cluster zone: which DNS records Services, Endpoints and Pods make, and the answer to
one question about a name in it (Kubernetes' DNS specification, schema 1.1.0).

Pure: objects in, records out; no sockets, no clock. `ClusterZone` keeps the records of
each Service apart (every name under `SVC.NS.svc.ZONE` belongs to exactly one Service), so
a change to one Service, its Endpoints or one of its pods recomputes that Service only.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from dnslib import AAAA, CNAME, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A

from skiff.api.v1 import core_pb2

__all__ = ["DEFAULT_DOMAIN", "DEFAULT_TTL", "SCHEMA_VERSION", "Answer", "ClusterZone",
           "ServiceRecords", "service_records"]

DEFAULT_DOMAIN = "cluster.local"
DEFAULT_TTL = 5  # seconds, CoreDNS's kubernetes plugin's default
SCHEMA_VERSION = "1.1.0"  # answered at dns-version.ZONE (TXT), as the specification asks
CHANGE_LOG = 10_000  # the Services changed lately, for caches to forget only their names


@dataclass(frozen=True)
class Answer:
    """What the zone says about one question: a response code and its three sections."""

    rcode: int
    answer: tuple[RR, ...] = ()
    authority: tuple[RR, ...] = ()
    additional: tuple[RR, ...] = ()


@dataclass
class ServiceRecords:
    """Every name under one Service (`SVC.NS.svc.ZONE` and below), lower case without the
    final dot, with its records; a name with no records exists all the same (an empty
    non-terminal such as `_tcp.SVC...`: NOERROR without answers, not NXDOMAIN). `ptr`: the
    reverse names this Service owns (IP -> name)."""

    names: dict[str, list[RR]] = field(default_factory=dict)
    ptr: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, rr: RR | None = None) -> None:
        records = self.names.setdefault(name, [])
        if rr is not None:
            records.append(rr)


def _is_headless(svc: core_pb2.Service) -> bool:
    return svc.spec.cluster_ip == "None"


def _dashed(ip: str) -> str:
    """An address as one DNS label, as CoreDNS names endpoints without a hostname."""
    return ip.replace(".", "-").replace(":", "-")


def _address_record(name: str, ip: str, ttl: int) -> RR | None:
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if parsed.version == 4:
        return RR(name, QTYPE.A, rdata=A(ip), ttl=ttl)
    return RR(name, QTYPE.AAAA, rdata=AAAA(ip), ttl=ttl)


def _pod_is_ready(pod: core_pb2.Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def service_records(domain: str, svc: core_pb2.Service, endpoints: core_pb2.Endpoints | None,
                    pods: Iterable[core_pb2.Pod] = (), ttl: int = DEFAULT_TTL
                    ) -> ServiceRecords:
    """The records one Service makes. `endpoints`: its Endpoints object, if any (ready
    addresses only: the Endpoints controller lists not-ready ones apart, and puts them with
    the ready ones when the Service publishes not-ready addresses); `pods`: the pods of its
    namespace whose `spec.subdomain` is its name (their `HOSTNAME.SVC...` names, for a
    headless Service, when no endpoint address carries that hostname already)."""
    out = ServiceRecords()
    ns, name = svc.metadata.namespace, svc.metadata.name
    base = f"{name}.{ns}.svc.{domain}".lower()
    out.add(base)
    if svc.spec.type == "ExternalName" or (svc.spec.external_name and not svc.spec.cluster_ip):
        if svc.spec.external_name:
            target = svc.spec.external_name.rstrip(".") + "."
            out.add(base, RR(base, QTYPE.CNAME, rdata=CNAME(target), ttl=ttl))
        return out
    if not _is_headless(svc):
        if not svc.spec.cluster_ip:
            return out  # not allocated yet: the name exists, without records
        rr = _address_record(base, svc.spec.cluster_ip, ttl)
        if rr is not None:
            out.add(base, rr)
            out.ptr[svc.spec.cluster_ip] = base
        for port in svc.spec.ports:
            if not port.name:
                continue
            proto = (port.protocol or "TCP").lower()
            srv_name = f"_{port.name}._{proto}.{base}".lower()
            out.add(f"_{proto}.{base}")
            out.add(srv_name, RR(srv_name, QTYPE.SRV, ttl=ttl,
                                 rdata=SRV(priority=0, weight=100, port=port.port,
                                           target=base + ".")))
        return out
    # Headless: the ready addresses themselves, and a name for each of them.
    targets: dict[str, str] = {}  # ip -> its name under the service
    srv: dict[str, list[tuple[int, str]]] = {}  # SRV owner -> (port, target)
    hostnames: set[str] = set()
    for subset in endpoints.subsets if endpoints is not None else ():
        for address in subset.addresses:
            rr = _address_record(base, address.ip, ttl)
            if rr is None:
                continue
            out.add(base, rr)
            label = (address.hostname or _dashed(address.ip)).lower()
            hostnames.add(label)
            target = f"{label}.{base}"
            targets[address.ip] = target
            endpoint_rr = _address_record(target, address.ip, ttl)
            if endpoint_rr is not None:
                out.add(target, endpoint_rr)
            if address.hostname:
                out.ptr[address.ip] = target
            for endpoint_port in subset.ports:
                if endpoint_port.name:
                    proto = (endpoint_port.protocol or "TCP").lower()
                    srv.setdefault(f"_{endpoint_port.name}._{proto}.{base}".lower(),
                                   []).append((endpoint_port.port, target))
                    out.add(f"_{proto}.{base}")
    for pod in pods:
        hostname = pod.spec.hostname.lower()
        if (not hostname or hostname in hostnames or not pod.status.pod_ip
                or not (_pod_is_ready(pod) or svc.spec.publish_not_ready_addresses)):
            continue
        target = f"{hostname}.{base}"
        rr = _address_record(target, pod.status.pod_ip, ttl)
        if rr is not None:
            out.add(target, rr)
            hostnames.add(hostname)
    for owner, entries in srv.items():
        weight = max(1, 100 // len(entries))
        for port_number, target in entries:
            out.add(owner, RR(owner, QTYPE.SRV, ttl=ttl,
                              rdata=SRV(priority=0, weight=weight, port=port_number,
                                        target=target + ".")))
    return out


def _reverse_name(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer.lower()


class ClusterZone:
    """The records of every Service in the cluster domain, kept current by `set_*` and
    `delete_*` (called from informer handlers), and answers (`lookup`). `version` grows on
    every change, and `changed_since` says which Services changed, so that a cache of
    encoded answers forgets only theirs (and the names no Service owns: `owner`)."""

    def __init__(self, domain: str = DEFAULT_DOMAIN, ttl: int = DEFAULT_TTL) -> None:
        self.domain = domain.strip(".").lower()
        self.ttl = ttl
        self.version = 0
        self._changes: deque[str] = deque(maxlen=CHANGE_LOG)
        self._services: dict[str, core_pb2.Service] = {}
        self._endpoints: dict[str, core_pb2.Endpoints] = {}
        self._subdomain_pods: dict[str, dict[str, core_pb2.Pod]] = {}  # ns/subdomain -> pods
        self._pod_subdomain: dict[str, str] = {}  # pod key -> ns/subdomain it is listed under
        self._records: dict[str, ServiceRecords] = {}  # ns/name -> its records
        self._namespaces: dict[str, int] = {}  # ns -> how many services it has
        self._ptr: dict[str, str] = {}  # reverse name -> target
        self._soa = RR(self.domain, QTYPE.SOA, ttl=ttl, rdata=SOA(
            f"ns.dns.{self.domain}.", f"hostmaster.{self.domain}.",
            (1, 7200, 1800, 86400, ttl)))
        self._version_txt = RR(f"dns-version.{self.domain}", QTYPE.TXT, ttl=ttl,
                               rdata=TXT(SCHEMA_VERSION))

    # ---- changes ----

    def set_service(self, svc: core_pb2.Service) -> None:
        key = f"{svc.metadata.namespace}/{svc.metadata.name}"
        if key not in self._services:
            ns = svc.metadata.namespace
            self._namespaces[ns] = self._namespaces.get(ns, 0) + 1
        self._services[key] = svc
        self._recompute(key)

    def delete_service(self, namespace: str, name: str) -> None:
        key = f"{namespace}/{name}"
        if self._services.pop(key, None) is not None:
            left = self._namespaces.get(namespace, 1) - 1
            if left:
                self._namespaces[namespace] = left
            else:
                self._namespaces.pop(namespace, None)
        self._recompute(key)

    def set_endpoints(self, endpoints: core_pb2.Endpoints) -> None:
        key = f"{endpoints.metadata.namespace}/{endpoints.metadata.name}"
        self._endpoints[key] = endpoints
        self._recompute(key)

    def delete_endpoints(self, namespace: str, name: str) -> None:
        key = f"{namespace}/{name}"
        self._endpoints.pop(key, None)
        self._recompute(key)

    def set_pod(self, pod: core_pb2.Pod) -> None:
        """Pods matter only with a hostname and a subdomain (a Service of that name)."""
        pod_key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        old = self._pod_subdomain.pop(pod_key, None)
        if old is not None:
            self._subdomain_pods.get(old, {}).pop(pod_key, None)
        new = (f"{pod.metadata.namespace}/{pod.spec.subdomain}"
               if pod.spec.subdomain and pod.spec.hostname else None)
        if new is not None:
            self._subdomain_pods.setdefault(new, {})[pod_key] = pod
            self._pod_subdomain[pod_key] = new
        for key in {old, new}:
            if key is not None:
                self._recompute(key)

    def delete_pod(self, namespace: str, name: str) -> None:
        pod_key = f"{namespace}/{name}"
        old = self._pod_subdomain.pop(pod_key, None)
        if old is not None:
            self._subdomain_pods.get(old, {}).pop(pod_key, None)
            self._recompute(old)

    def _recompute(self, key: str) -> None:
        old = self._records.pop(key, None)
        if old is not None:
            for ip in old.ptr:
                self._ptr.pop(_reverse_name(ip), None)
        svc = self._services.get(key)
        if svc is not None:
            pods = sorted(self._subdomain_pods.get(key, {}).values(),
                          key=lambda p: p.metadata.name)
            new = service_records(self.domain, svc, self._endpoints.get(key), pods, self.ttl)
            self._records[key] = new
            for ip, target in new.ptr.items():
                self._ptr[_reverse_name(ip)] = target + "."
        self._changes.append(key)
        self.version += 1

    def changed_since(self, version: int) -> set[str] | None:
        """The Services (ns/name) changed after `version`; None if that is too long ago
        to tell (forget everything)."""
        behind = self.version - version
        if behind < 0 or behind > len(self._changes):
            return None
        return set(itertools.islice(reversed(self._changes), behind))

    def owner(self, qname: str) -> str | None:
        """The Service (ns/name) whose change alone can change the answer for `qname`
        (lower case, no final dot): the one named by `*.SVC.NS.svc.ZONE`; None for every
        other name (the zone's own, namespaces', pods', reverse and foreign names)."""
        suffix = ".svc." + self.domain
        if not qname.endswith(suffix):
            return None
        labels = qname[: -len(suffix)].split(".")
        if len(labels) < 2:
            return None
        return f"{labels[-1]}/{labels[-2]}"

    # ---- answers ----

    def is_authoritative(self, qname: str) -> bool:
        """Whether `qname` (lower case, no final dot) is this zone's to answer."""
        if qname == self.domain or qname.endswith("." + self.domain):
            return True
        return qname in self._ptr

    def lookup(self, qname: str, qtype: int) -> Answer | None:
        """The answer to (qname, qtype) for a name in the zone or a reverse name of the
        zone's; None for any other name (to be forwarded upstream). `qname`: lower case,
        without the final dot."""
        if qname != self.domain and not qname.endswith("." + self.domain):
            target = self._ptr.get(qname)
            if target is None:
                return None
            if qtype in (QTYPE.PTR, QTYPE.ANY):
                return Answer(RCODE.NOERROR, (RR(qname, QTYPE.PTR, rdata=PTR(target),
                                                 ttl=self.ttl),))
            return self._nodata()
        relative = qname[: -len(self.domain)].rstrip(".")
        labels = relative.split(".")[::-1] if relative else []
        if not labels:
            if qtype in (QTYPE.SOA, QTYPE.ANY):
                return Answer(RCODE.NOERROR, (self._soa,))
            return self._nodata()
        if labels == ["dns-version"]:
            if qtype in (QTYPE.TXT, QTYPE.ANY):
                return Answer(RCODE.NOERROR, (self._version_txt,))
            return self._nodata()
        if labels[0] == "svc":
            return self._lookup_service(qname, qtype, labels)
        if labels[0] == "pod":
            return self._lookup_pod(qname, qtype, labels)
        return self._nxdomain()

    def _lookup_service(self, qname: str, qtype: int, labels: list[str]) -> Answer:
        if len(labels) == 1:
            return self._nodata()
        if len(labels) == 2:
            return self._nodata() if labels[1] in self._namespaces else self._nxdomain()
        records = self._records.get(f"{labels[1]}/{labels[2]}")
        rrs = records.names.get(qname) if records is not None else None
        if rrs is None or records is None:
            return self._nxdomain()
        wanted = [rr for rr in rrs
                  if rr.rtype == qtype or qtype == QTYPE.ANY or rr.rtype == QTYPE.CNAME]
        if not wanted:
            return self._nodata()
        additional: list[RR] = []
        if qtype == QTYPE.SRV:
            # The targets' addresses, so that a client needs one query (as CoreDNS).
            for rr in wanted:
                target = str(rr.rdata.target).rstrip(".").lower()
                additional += [a for a in records.names.get(target, ())
                               if a.rtype in (QTYPE.A, QTYPE.AAAA)]
        return Answer(RCODE.NOERROR, tuple(wanted), (), tuple(additional))

    def _lookup_pod(self, qname: str, qtype: int, labels: list[str]) -> Answer:
        # `A-B-C-D.NS.pod.ZONE`: the address the name spells (CoreDNS's "pods insecure").
        if len(labels) < 3:
            return self._nodata()
        if len(labels) > 3:
            return self._nxdomain()
        dotted = labels[2].replace("-", ".")
        try:
            ip = ipaddress.IPv4Address(dotted)
        except ValueError:
            return self._nxdomain()
        if qtype in (QTYPE.A, QTYPE.ANY):
            return Answer(RCODE.NOERROR, (RR(qname, QTYPE.A, rdata=A(str(ip)), ttl=self.ttl),))
        return self._nodata()

    def _nodata(self) -> Answer:
        return Answer(RCODE.NOERROR, (), (self._soa,))

    def _nxdomain(self) -> Answer:
        return Answer(RCODE.NXDOMAIN, (), (self._soa,))

    def names(self) -> list[str]:
        """Every name the Services make (for logs and benchmarks)."""
        return sorted(n for r in self._records.values() for n in r.names)
