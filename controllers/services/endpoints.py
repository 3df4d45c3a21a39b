"""The Endpoints controller: for each Service with a selector, the Endpoints object of the
same name lists the pods it chooses, as Kubernetes' pkg/controller/endpoint does.

* A pod is listed when it has an IP and is not finished; one being deleted only when the
  service publishes not-ready addresses (ShouldPodBeInEndpoints). Ready pods go in
  ``addresses``, the others in ``notReadyAddresses``, unless the service has
  ``publishNotReadyAddresses`` (then all are ready). An address carries the pod's IP, node
  and a reference to the pod, and its hostname when the pod's ``subdomain`` is the
  service's name.
* Ports are resolved per pod: a numeric ``targetPort`` as is, a named one from that pod's
  container ports of the same protocol (FindPort); a pod without the named port is left
  out for that port. The addresses are then grouped by the ports they serve
  (RepackSubsets), so pods serving one name on different numbers land in different
  subsets. A headless service without ports gets its addresses with no ports.
* A Service without a selector (and an ExternalName one) is never touched: its Endpoints
  are the user's. A deleted Service's Endpoints are deleted, and so, when the controller
  starts, are Endpoints without a Service (deleted while no controller ran).
* The Endpoints carry the service's labels (plus ``service.kubernetes.io/headless`` for a
  headless one) and ``endpoints.kubernetes.io/last-change-trigger-time``: the time of the
  oldest pod or service change this write took in.
* Writes happen only when the subsets or labels changed (compared in a normal order).

Batching (kube-controller-manager's ``--endpoint-updates-batch-period``): a pod change is
synced at once when its service was last synced more than a batch period ago, otherwise
when the period is over; the work queue merges every change that arrives meanwhile into
that one sync. So a lone readiness change is written at once, while a rollout writes each
service's Endpoints at most once per period (Kubernetes' default is no batching at all;
Skiff's is 0.5 s). Service changes are synced at once.

Left out: EndpointSlices, the 1000-address cap and its over-capacity annotation, IPv6.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from controllers.common.context import ControllerContext
from skiff.api.pods import is_ready, is_terminal
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.controller import Controller
from skiff.client.informer import INDEX_NAMESPACE, object_key

__all__ = [
    "DEFAULT_BATCH_PERIOD",
    "HEADLESS_LABEL",
    "TRIGGER_TIME_ANNOTATION",
    "EndpointsController",
    "endpoint_subsets",
    "find_port",
]

log = logging.getLogger(__name__)

DEFAULT_BATCH_PERIOD = 0.5
HEADLESS_LABEL = "service.kubernetes.io/headless"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
EXTERNAL_NAME = "ExternalName"


# ---- which pods, which ports ----

def _selects(service: core_pb2.Service, pod: core_pb2.Pod) -> bool:
    selector = service.spec.selector
    return bool(selector) and all(pod.metadata.labels.get(k) == v for k, v in selector.items())


def _managed(service: core_pb2.Service) -> bool:
    """The controller writes this service's Endpoints (it has a selector and addresses)."""
    return bool(service.spec.selector) and service.spec.type != EXTERNAL_NAME


def _pod_ip(pod: core_pb2.Pod) -> str:
    return pod.status.pod_ip or (pod.status.pod_ips[0].ip if pod.status.pod_ips else "")


def _listed(pod: core_pb2.Pod, publish_not_ready: bool) -> bool:
    """Kubernetes' ShouldPodBeInEndpoints."""
    if is_terminal(pod) or not _pod_ip(pod):
        return False
    return publish_not_ready or not pod.metadata.HasField("deletion_timestamp")


def find_port(pod: core_pb2.Pod, port: core_pb2.ServicePort) -> int | None:
    """The pod's port for a service port (Kubernetes' FindPort): a numeric targetPort (the
    service port itself when unset), or the container port of that name and protocol."""
    target = port.target_port
    if target.WhichOneof("value") != "str_val":
        return target.int_val or port.port
    protocol = port.protocol or "TCP"
    for container in pod.spec.containers:
        for cport in container.ports:
            if cport.name == target.str_val and (cport.protocol or "TCP") == protocol:
                return cport.container_port
    return None


def _address(service: core_pb2.Service, pod: core_pb2.Pod) -> core_pb2.EndpointAddress:
    address = core_pb2.EndpointAddress(ip=_pod_ip(pod))
    if pod.spec.node_name:
        address.node_name = pod.spec.node_name
    ref = address.target_ref
    ref.kind, ref.namespace, ref.name = "Pod", pod.metadata.namespace, pod.metadata.name
    ref.uid = pod.metadata.uid
    if pod.spec.hostname and pod.spec.subdomain == service.metadata.name:
        address.hostname = pod.spec.hostname
    return address


# ---- subsets ----

_PortKey = tuple[str, int, str, str]  # name, port, protocol, appProtocol
_AddressKey = tuple[str, str]  # ip, pod uid
_NO_PORT: _PortKey = ("", -1, "", "")  # a headless service without ports: addresses only


@dataclass
class _Repack:
    """Kubernetes' RepackSubsets: every address by the ports it serves, then one subset
    per distinct set of (address, ready) pairs."""

    addresses: dict[_AddressKey, core_pb2.EndpointAddress] = field(default_factory=dict)
    # port -> address -> ready (ready wins when an address is seen both ways)
    by_port: dict[_PortKey, dict[_AddressKey, bool]] = field(default_factory=dict)

    def add(self, address: core_pb2.EndpointAddress, ready: bool,
            ports: Iterable[_PortKey]) -> None:
        key = (address.ip, address.target_ref.uid)
        self.addresses.setdefault(key, address)
        for port in ports:
            readiness = self.by_port.setdefault(port, {})
            readiness[key] = readiness.get(key, False) or ready

    def subsets(self) -> list[core_pb2.EndpointSubset]:
        groups: dict[tuple[tuple[_AddressKey, bool], ...], list[_PortKey]] = {}
        for port, readiness in self.by_port.items():
            groups.setdefault(tuple(sorted(readiness.items())), []).append(port)
        subsets = []
        for members, ports in groups.items():
            subset = core_pb2.EndpointSubset()
            for key, ready in members:
                target = subset.addresses if ready else subset.not_ready_addresses
                target.add().CopyFrom(self.addresses[key])
            for name, number, protocol, app_protocol in ports:
                if number < 0:
                    continue
                added = subset.ports.add(name=name, port=number, protocol=protocol)
                if app_protocol:
                    added.app_protocol = app_protocol
            subsets.append(subset)
        return normalized(subsets)


def endpoint_subsets(service: core_pb2.Service, pods: Iterable[core_pb2.Pod]
                     ) -> list[core_pb2.EndpointSubset]:
    """The subsets of `service`'s Endpoints from the pods of its namespace."""
    publish = service.spec.publish_not_ready_addresses
    repack = _Repack()
    for pod in pods:
        if not _selects(service, pod) or not _listed(pod, publish):
            continue
        address = _address(service, pod)
        ready = publish or is_ready(pod)
        if not service.spec.ports:
            if service.spec.cluster_ip == "None":
                repack.add(address, ready, [_NO_PORT])
            continue
        ports: list[_PortKey] = []
        for sport in service.spec.ports:
            number = find_port(pod, sport)
            if number is None:
                log.debug("pod %s has no port %r for service %s", object_key(pod),
                          sport.target_port.str_val, object_key(service))
                continue
            ports.append((sport.name, number, sport.protocol or "TCP", sport.app_protocol))
        repack.add(address, ready, ports)
    return repack.subsets()


def _address_order(address: core_pb2.EndpointAddress) -> tuple[str, str]:
    return address.ip, address.target_ref.uid


def normalized(subsets: Iterable[core_pb2.EndpointSubset]) -> list[core_pb2.EndpointSubset]:
    """Copies of `subsets` in one order (addresses by IP, ports by name and number,
    subsets by their first port and address), for writing and for comparing."""
    out = []
    for subset in subsets:
        copy = core_pb2.EndpointSubset()
        copy.addresses.extend(sorted(subset.addresses, key=_address_order))
        copy.not_ready_addresses.extend(sorted(subset.not_ready_addresses, key=_address_order))
        copy.ports.extend(sorted(subset.ports, key=lambda p: (p.name, p.port, p.protocol)))
        out.append(copy)
    return sorted(out, key=lambda s: s.SerializeToString(deterministic=True))


def endpoints_labels(service: core_pb2.Service) -> dict[str, str]:
    labels = dict(service.metadata.labels)
    if service.spec.cluster_ip == "None":
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    return labels


def _same(current: core_pb2.Endpoints, subsets: list[core_pb2.EndpointSubset],
          labels: Mapping[str, str]) -> bool:
    return normalized(current.subsets) == subsets and dict(current.metadata.labels) == labels


def _pod_view(pod: core_pb2.Pod) -> tuple[object, ...]:
    """What of a pod its Endpoints depend on: other changes (e.g. restarts counted, probe
    times) are not worth a sync."""
    return (dict(pod.metadata.labels), _pod_ip(pod), pod.status.phase, is_ready(pod),
            pod.spec.node_name, pod.spec.hostname, pod.spec.subdomain,
            pod.metadata.HasField("deletion_timestamp"),
            [(p.name, p.container_port, p.protocol)
             for c in pod.spec.containers for p in c.ports])


# ---- the controller ----

class EndpointsController(Controller):
    def __init__(self, ctx: ControllerContext, *, workers: int = 1,
                 batch_period: float | None = None) -> None:
        self.client = ctx.client
        self.clock = ctx.clock
        self.batch_period = (ctx.config.endpoint_updates_batch_period if batch_period is None
                             else batch_period)
        self.services = ctx.factory.informer(core_pb2.Service)
        self.pods = ctx.factory.informer(core_pb2.Pod)
        self.endpoints = ctx.factory.informer(core_pb2.Endpoints)
        super().__init__("endpoint", informers=[self.services, self.pods, self.endpoints],
                         workers=workers, clock=ctx.clock)
        # service key -> when it was last synced (the controller's clock), for batching
        self._last_sync: dict[str, float] = {}
        # service key -> the wall time of the oldest change not yet synced
        self._trigger_time: dict[str, datetime] = {}

        self.services.add_handlers(on_add=self._service_changed,
                                   on_update=lambda old, new: self._service_changed(new),
                                   on_delete=self._service_changed)
        self.pods.add_handlers(on_add=self._pod_changed, on_update=self._pod_updated,
                               on_delete=self._pod_changed)
        # Someone deleted a managed service's Endpoints: write them again.
        self.endpoints.add_handlers(on_delete=self.enqueue)

    # ---- handlers ----

    def _note_change(self, key: str) -> None:
        self._trigger_time.setdefault(key, self.clock.wall())

    def _service_changed(self, service: core_pb2.Service) -> None:
        key = object_key(service)
        self._note_change(key)
        self.enqueue_key(key)

    def _pod_changed(self, pod: core_pb2.Pod) -> None:
        self._enqueue_services_of(pod)

    def _pod_updated(self, old: core_pb2.Pod, new: core_pb2.Pod) -> None:
        if _pod_view(old) == _pod_view(new):
            return
        self._enqueue_services_of(new)
        if old.metadata.labels != new.metadata.labels:
            self._enqueue_services_of(old)

    def _enqueue_services_of(self, pod: core_pb2.Pod) -> None:
        for service in self.services.store.by_index(INDEX_NAMESPACE, pod.metadata.namespace):
            if _selects(service, pod):
                key = object_key(service)
                self._note_change(key)
                last = self._last_sync.get(key)
                wait = 0.0 if last is None else last + self.batch_period - self.clock.now()
                self.enqueue_after(key, wait)

    async def wait_for_sync(self) -> None:
        """Then every Endpoints object is looked at once (Kubernetes'
        checkLeftoverEndpoints): those of services deleted while no controller ran go."""
        await super().wait_for_sync()
        for key in self.endpoints.store.keys():  # noqa: SIM118 (a Store, not a dict)
            self.enqueue_key(key)

    # ---- sync ----

    async def sync(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        service = self.services.store.get(key)
        if service is None:
            self._last_sync.pop(key, None)
            self._trigger_time.pop(key, None)
            if self.endpoints.store.get(key) is None:
                return
            with contextlib.suppress(errors.NotFound):
                await self.client.delete(core_pb2.Endpoints, name, namespace)
            return
        if not _managed(service):
            self._trigger_time.pop(key, None)
            return
        self._last_sync[key] = self.clock.now()
        trigger = self._trigger_time.pop(key, None)
        pods = self.pods.store.by_index(INDEX_NAMESPACE, namespace)
        subsets = endpoint_subsets(service, pods)
        labels = endpoints_labels(service)
        current = self.endpoints.store.get(key)
        if current is not None and _same(current, subsets, labels):
            return
        endpoints = core_pb2.Endpoints()
        if current is not None:
            endpoints.metadata.CopyFrom(current.metadata)
        endpoints.metadata.name, endpoints.metadata.namespace = name, namespace
        endpoints.metadata.labels.clear()
        endpoints.metadata.labels.update(labels)
        if trigger is not None:
            endpoints.metadata.annotations[TRIGGER_TIME_ANNOTATION] = _rfc3339(trigger)
        else:
            endpoints.metadata.annotations.pop(TRIGGER_TIME_ANNOTATION, None)
        endpoints.subsets.extend(subsets)
        try:
            if current is None:
                await self.client.create(endpoints)
            else:
                await self.client.update(endpoints)
        except errors.ApiError:
            if trigger is not None:  # keep the oldest change for the retry
                self._trigger_time.setdefault(key, trigger)
            raise
        ready = sum(len(s.addresses) for s in subsets)
        not_ready = sum(len(s.not_ready_addresses) for s in subsets)
        log.info("endpoints %s: %d ready, %d not ready address(es)", key, ready, not_ready)


def _rfc3339(when: datetime) -> str:
    """Go's RFC3339Nano in UTC, as Kubernetes writes the annotation."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")
