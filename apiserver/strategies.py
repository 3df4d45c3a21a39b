"""Per-kind rules of the registry, as Kubernetes' registry strategies: what a create
resets, what Update and UpdateStatus may change, what a write allocates or frees besides
the object itself, how a kind is deleted.

The generic registry asks its kind's Strategy at each step and knows no kind itself; most
kinds use the base class. The hooks, in the order the registry calls them:

* create: prepare_for_create, validate, allocate (again after a lost race, on a fresh
  copy; allocation_conflict says whether a taken side key is the user's fault), with
  lease_ttl for the write;
* update: prepare_for_update (or status_update), validate_update, then reallocate (the
  side keys to add and drop), or release when the update lets a deleted object go;
* delete: check_delete, grace_period, finalizing, prepare_for_delete when the object is
  only marked, release when it goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from google.protobuf.message import Message

from apiserver import errors, storage
from apiserver.allocator import ServiceAllocator
from skiff.api import defaults, kinds
from skiff.api.meta import meta
from skiff.api.pods import is_terminal
from skiff.api.v1 import batch_pb2, core_pb2
from skiff.api.validation.service import invalid_cluster_ips

PROTECTED_NAMESPACES = {"default", "kube-system", "kube-public"}


@dataclass(frozen=True)
class Settings:
    """What strategies learn from the apiserver's command line."""

    service_cluster_ip_range: str = "10.96.0.0/12"


class Strategy:
    def __init__(self, kind: kinds.Kind, settings: Settings | None = None) -> None:
        self.kind = kind

    # ---- create and update ----

    def prepare_for_create(self, obj: Message) -> None:
        if self.kind.has_status and self.kind.system_status:
            obj.ClearField("status")
        kinds.apply_defaults(obj)

    def validate(self, obj: Message) -> list[str]:
        """The problems of a new object; [] if it may be created."""
        return kinds.validate(obj)

    def prepare_for_update(self, new: Message, old: Message) -> None:
        """Update changes everything but status and system-owned metadata."""
        if self.kind.has_status:
            _copy_field(new, old, "status")
        _keep_system_metadata(new, old)
        kinds.apply_defaults(new)

    def status_update(self, new: Message, old: Message) -> Message:
        """UpdateStatus changes only status: the result is old with new's status."""
        result = type(old)()
        result.CopyFrom(old)
        _copy_field(result, new, "status")
        return result

    def validate_update(self, new: Message, old: Message) -> list[str]:
        """The problems of an updated object, and of the change from `old`."""
        return kinds.validate(new) + kinds.validate_update(new, old)

    # ---- what a write holds besides the object: side keys in the same transaction ----

    def allocate(self, obj: Message) -> list[storage.Put]:
        """Values the object is given on create (written into it), and the side keys that
        hold them, created with the object only if absent. Called again on a fresh copy
        of the object when a side key was taken and allocation_conflict returned None.
        May raise errors.ApiError for a value that can never be had."""
        return []

    def allocation_conflict(self, obj: Message, key: str) -> str | None:
        """Why the create of `obj` (as the user sent it) is invalid when side key `key` is
        taken; None when the value was picked at random (pick again)."""
        return None

    def release(self, obj: Message) -> list[storage.Delete]:
        """The side keys to delete with the object."""
        return []

    def reallocate(self, new: Message, old: Message) -> list[storage.Put | storage.Delete]:
        """The side keys an update adds (only if absent) and drops."""
        return []

    # ---- delete ----

    def check_delete(self, name: str) -> None:
        """Raises errors.ApiError when the object may never be deleted."""

    def grace_period(self, obj: Message, requested: int | None) -> int:
        return 0

    def finalizing(self, obj: Message) -> bool:
        """Whether something must still happen before the object may go."""
        return bool(meta(obj).finalizers)

    def prepare_for_delete(self, obj: Message) -> None:
        """Changes to an object marked for deletion (it has a deletionTimestamp)."""

    def lease_ttl(self) -> int | None:
        return None


def _copy_field(target: Message, source: Message, name: str) -> None:
    """target.name = source.name, keeping "unset" unset (so a no-op stays a no-op)."""
    if source.HasField(name):
        getattr(target, name).CopyFrom(getattr(source, name))
    else:
        target.ClearField(name)


def _keep_system_metadata(new: Message, old: Message) -> None:
    nm, om = meta(new), meta(old)
    nm.uid = om.uid
    nm.creation_timestamp.CopyFrom(om.creation_timestamp)
    nm.generation = om.generation
    if om.HasField("deletion_timestamp"):
        nm.deletion_timestamp.CopyFrom(om.deletion_timestamp)
    else:
        nm.ClearField("deletion_timestamp")
    if om.HasField("deletion_grace_period_seconds"):
        nm.deletion_grace_period_seconds = om.deletion_grace_period_seconds
    else:
        nm.ClearField("deletion_grace_period_seconds")


class PodStrategy(Strategy):
    def prepare_for_create(self, obj: Message) -> None:
        super().prepare_for_create(obj)
        pod = cast(core_pb2.Pod, obj)
        pod.status.phase = "Pending"
        defaults.add_default_tolerations(pod)

    def prepare_for_update(self, new: Message, old: Message) -> None:
        super().prepare_for_update(new, old)
        # As the admission plugin does on every write: a replaced manifest that omits
        # the default tolerations keeps them (removing one is not allowed).
        defaults.add_default_tolerations(cast(core_pb2.Pod, new))

    def grace_period(self, obj: Message, requested: int | None) -> int:
        pod = cast(core_pb2.Pod, obj)
        # A pod no kubelet runs, or one that has finished, has nothing to stop.
        if not pod.spec.node_name or is_terminal(pod):
            return 0
        if requested is not None:
            return max(requested, 0)
        if pod.spec.HasField("termination_grace_period_seconds"):
            return max(pod.spec.termination_grace_period_seconds, 0)
        return 30


class NamespaceStrategy(Strategy):
    def prepare_for_create(self, obj: Message) -> None:
        super().prepare_for_create(obj)
        # status Active, the `kubernetes` finalizer
        defaults.namespace_on_create(cast(core_pb2.Namespace, obj))

    def prepare_for_update(self, new: Message, old: Message) -> None:
        super().prepare_for_update(new, old)
        # spec.finalizers belong to the namespace lifecycle, not to the user's Update.
        ns, old_ns = cast(core_pb2.Namespace, new), cast(core_pb2.Namespace, old)
        ns.spec.ClearField("finalizers")
        ns.spec.finalizers.extend(old_ns.spec.finalizers)

    def check_delete(self, name: str) -> None:
        if name in PROTECTED_NAMESPACES:
            raise errors.forbidden(f'namespaces "{name}" is forbidden: this namespace may not '
                                   "be deleted")

    def finalizing(self, obj: Message) -> bool:
        return super().finalizing(obj) or bool(cast(core_pb2.Namespace, obj).spec.finalizers)

    def prepare_for_delete(self, obj: Message) -> None:
        cast(core_pb2.Namespace, obj).status.phase = "Terminating"


class EventStrategy(Strategy):
    def lease_ttl(self) -> int | None:
        return 3600


class ServiceStrategy(Strategy):
    """Services get a cluster IP and node ports, each held by a side key under
    /allocations/ (see apiserver.allocator): two Services can never share one."""

    def __init__(self, kind: kinds.Kind, settings: Settings | None = None) -> None:
        super().__init__(kind, settings)
        self.allocator = ServiceAllocator((settings or Settings()).service_cluster_ip_range)

    def prepare_for_create(self, obj: Message) -> None:
        super().prepare_for_create(obj)
        _init_headless(cast(core_pb2.Service, obj).spec)

    def prepare_for_update(self, new: Message, old: Message) -> None:
        super().prepare_for_update(new, old)
        _init_headless(cast(core_pb2.Service, new).spec)
        _drop_type_dependent_fields(cast(core_pb2.Service, new), cast(core_pb2.Service, old))
        # As Kubernetes does: values the apiserver allocated are kept when an update
        # leaves them unset (a manifest rarely names its clusterIP or nodePorts).
        ns, os_ = cast(core_pb2.Service, new).spec, cast(core_pb2.Service, old).spec
        if not ns.cluster_ip and os_.cluster_ip and ns.type != "ExternalName":
            ns.cluster_ip = os_.cluster_ip
            del ns.cluster_ips[:]
            ns.cluster_ips.extend(os_.cluster_ips)
        if ns.cluster_ip and not ns.cluster_ips and ns.type != "ExternalName":
            # Kubernetes' normalizeClusterIPs: a clusterIP alone stands for clusterIPs too.
            ns.cluster_ips.append(ns.cluster_ip)
        if ns.type in ("NodePort", "LoadBalancer"):
            old_ports = {(p.port, p.protocol): p.node_port for p in os_.ports}
            for p in ns.ports:
                if not p.node_port:
                    p.node_port = old_ports.get((p.port, p.protocol), 0)

    def _requested_ip(self, svc: core_pb2.Service) -> str:
        """The cluster IP the user asked for ("" for one picked at random)."""
        ip = svc.spec.cluster_ip if svc.spec.cluster_ip not in ("", "None") else ""
        if ip and not self.allocator.contains(ip):
            raise errors.invalid(self.kind, svc.metadata.name, [_cluster_ips_problem(
                svc.spec, ip, f"the provided IP ({ip}) is not in the valid range. "
                              f"The range of valid IPs is {self.allocator.network}")])
        return ip

    def allocate(self, obj: Message) -> list[storage.Put]:
        svc = cast(core_pb2.Service, obj)
        spec = svc.spec
        requested_ip = self._requested_ip(svc)
        owner = f"{svc.metadata.namespace}/{svc.metadata.name}".encode()
        puts: list[storage.Put] = []
        if spec.type != "ExternalName" and spec.cluster_ip != "None":
            spec.cluster_ip = requested_ip or self.allocator.random_ip()
            del spec.cluster_ips[:]
            spec.cluster_ips.append(spec.cluster_ip)
            puts.append(storage.Put(self.allocator.ip_key(spec.cluster_ip), owner))
        if _needs_node_port(spec):
            self._fill_node_ports(spec)
            puts += [storage.Put(self.allocator.node_port_key(p), owner)
                     for p in sorted({p.node_port for p in spec.ports})]
        return puts

    def _fill_node_ports(self, spec: core_pb2.ServiceSpec) -> None:
        """Kubernetes' initNodePorts: ports of one number (53/TCP and 53/UDP) share a node
        port, the one asked for on any of them, else one picked at random."""
        by_number: dict[int, int] = {}
        for port in spec.ports:
            if port.port not in by_number:
                asked = next((p.node_port for p in spec.ports
                              if p.port == port.port and p.node_port), 0)
                by_number[port.port] = asked or self._free_random_node_port(spec, by_number)
            if not port.node_port:
                port.node_port = by_number[port.port]

    def _free_random_node_port(self, spec: core_pb2.ServiceSpec,
                               picked: dict[int, int]) -> int:
        mine = {p.node_port for p in spec.ports} | set(picked.values())
        while (port := self.allocator.random_node_port()) in mine:
            pass
        return port

    def allocation_conflict(self, obj: Message, key: str) -> str | None:
        spec = cast(core_pb2.Service, obj).spec
        requested = {self.allocator.node_port_key(p.node_port).decode()
                     for p in spec.ports if p.node_port}
        if spec.cluster_ip not in ("", "None"):
            requested.add(self.allocator.ip_key(spec.cluster_ip).decode())
        if key not in requested:
            return None
        value = key.rsplit("/", 1)[1]
        if "/serviceips/" in key:
            return _cluster_ips_problem(spec, value, "provided IP is already allocated")
        # Kubernetes names the port: spec.ports[i].nodePort.
        index = next(i for i, p in enumerate(spec.ports) if str(p.node_port) == value)
        return (f"spec.ports[{index}].nodePort: Invalid value: {value}: "
                "provided port is already allocated")

    def release(self, obj: Message) -> list[storage.Delete]:
        spec = cast(core_pb2.Service, obj).spec
        keys = []
        if spec.cluster_ip and spec.cluster_ip != "None":
            keys.append(self.allocator.ip_key(spec.cluster_ip))
        keys += [self.allocator.node_port_key(p)
                 for p in sorted({p.node_port for p in spec.ports if p.node_port})]
        return [storage.Delete(k) for k in keys]

    def reallocate(self, new: Message, old: Message) -> list[storage.Put | storage.Delete]:
        """Side keys for a Service whose allocated values changed on update; a type that
        now needs a cluster IP or node ports it lacks gets them, as on create."""
        spec = cast(core_pb2.Service, new).spec
        if _needs_cluster_ip(spec) and not spec.cluster_ip:
            spec.cluster_ip = self.allocator.random_ip()
            del spec.cluster_ips[:]
            spec.cluster_ips.append(spec.cluster_ip)
        if _needs_node_port(spec):
            self._fill_node_ports(spec)
        keys_old = {d.key for d in self.release(old)}
        keys_new = {d.key for d in self.release(new)}
        svc = cast(core_pb2.Service, new)
        owner = f"{svc.metadata.namespace}/{svc.metadata.name}".encode()
        ops: list[storage.Put | storage.Delete] = [
            storage.Put(k, owner) for k in sorted(keys_new - keys_old)]
        ops += [storage.Delete(k) for k in sorted(keys_old - keys_new)]
        return ops


def _cluster_ips_problem(spec: core_pb2.ServiceSpec, ip: str, reason: str) -> str:
    """Kubernetes' words for a cluster IP it cannot allocate: the field is clusterIPs,
    its value printed as Go prints a []string."""
    return invalid_cluster_ips("spec.clusterIPs", list(spec.cluster_ips) or [spec.cluster_ip],
                               f"failed to allocate IP {ip}: {reason}")


def _init_headless(spec: core_pb2.ServiceSpec) -> None:
    """What Kubernetes' allocator gives a headless Service: clusterIPs ["None"]; a family
    policy and families (defaulting leaves those to the allocator, which knows the cluster's
    families): SingleStack and [IPv4] with a selector; without one RequireDualStack and
    both families, so that the Endpoints the user writes may hold either."""
    if spec.type == "ExternalName" or spec.cluster_ip != "None":
        return
    if not spec.cluster_ips:
        spec.cluster_ips.append("None")
    if not spec.HasField("ip_family_policy"):
        spec.ip_family_policy = "SingleStack" if spec.selector else "RequireDualStack"
    if not spec.ip_families:
        spec.ip_families.append("IPv4")
    if len(spec.ip_families) < 2 and spec.ip_family_policy != "SingleStack":
        spec.ip_families.append("IPv6" if spec.ip_families[0] == "IPv4" else "IPv4")


def _needs_cluster_ip(spec: core_pb2.ServiceSpec) -> bool:
    return spec.type != "ExternalName"


def _needs_node_port(spec: core_pb2.ServiceSpec) -> bool:
    return spec.type in ("NodePort", "LoadBalancer")


def _externally_accessible(spec: core_pb2.ServiceSpec) -> bool:
    return _needs_node_port(spec) or (spec.type == "ClusterIP" and bool(spec.external_ips))


def _drop_type_dependent_fields(new: core_pb2.Service, old: core_pb2.Service) -> None:
    """Kubernetes' dropTypeDependentFields: a Service is a union discriminated by `type`.
    When an update moves it to a type that no longer uses a field the apiserver may
    have set (cluster IPs, node ports, externalTrafficPolicy) and the user did not change
    that field too, the field goes (and what was allocated for it is released), so the
    ClusterIP form of a NodePort manifest applies. A field the user did change is left
    for validation to judge."""
    ns, os_ = new.spec, old.spec
    if _needs_cluster_ip(os_) and not _needs_cluster_ip(ns):
        if ns.cluster_ip == os_.cluster_ip and list(ns.cluster_ips) == list(os_.cluster_ips):
            ns.cluster_ip = ""
            del ns.cluster_ips[:]
        if list(ns.ip_families) == list(os_.ip_families):
            del ns.ip_families[:]
        if ns.ip_family_policy == os_.ip_family_policy:
            ns.ClearField("ip_family_policy")
    # Users may add, remove or change ports, as long as they add no node port of their own.
    old_node_ports = {p.node_port for p in os_.ports if p.node_port}
    new_node_ports = {p.node_port for p in ns.ports if p.node_port}
    if (_needs_node_port(os_) and not _needs_node_port(ns)
            and new_node_ports <= old_node_ports):
        for port in ns.ports:
            port.node_port = 0
    if (_externally_accessible(os_) and not _externally_accessible(ns)
            and ns.external_traffic_policy == os_.external_traffic_policy):
        ns.external_traffic_policy = ""
    if ns.type != "LoadBalancer":
        new.status.ClearField("load_balancer")


class JobStrategy(Strategy):
    def prepare_for_create(self, obj: Message) -> None:
        super().prepare_for_create(obj)
        job = cast(batch_pb2.Job, obj)
        defaults.job_generate_selector(job, job.metadata.uid)


# The kinds with rules of their own, by kind name; every other kind uses Strategy.
_STRATEGIES: dict[str, Callable[[kinds.Kind, Settings], Strategy]] = {
    "Pod": PodStrategy,
    "Namespace": NamespaceStrategy,
    "Event": EventStrategy,
    "Service": ServiceStrategy,
    "Job": JobStrategy,
}


def for_kind(kind: kinds.Kind, settings: Settings | None = None) -> Strategy:
    return _STRATEGIES.get(kind.kind, Strategy)(kind, settings or Settings())


def for_kinds(settings: Settings | None = None) -> dict[str, Strategy]:
    """Every served kind's strategy, by kind name."""
    return {k.kind: for_kind(k, settings) for k in kinds.KINDS}


def now() -> int:
    """Unix seconds: Kubernetes' object timestamps have whole-second precision."""
    return int(time.time())
