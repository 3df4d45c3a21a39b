"""Per-kind rules of the registry, as Kubernetes' registry strategies: what a create
resets, what Update and UpdateStatus may change, how a kind is deleted.

The generic registry asks its kind's Strategy; most kinds use the base class.
"""

from __future__ import annotations

import time

from google.protobuf.message import Message

from skiff.api import defaults, kinds
from skiff.api.v1 import core_pb2

PROTECTED_NAMESPACES = {"default", "kube-system", "kube-public"}


class Strategy:
    def __init__(self, kind: kinds.Kind) -> None:
        self.kind = kind

    def prepare_for_create(self, obj: Message) -> None:
        if self.kind.has_status and self.kind.system_status:
            obj.ClearField("status")  # type: ignore[arg-type]
        kinds.apply_defaults(obj)

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

    def grace_period(self, obj: Message, requested: int | None) -> int:
        return 0

    def finalizing(self, obj: Message) -> bool:
        """Whether something must still happen before the object may go."""
        return bool(obj.metadata.finalizers)  # type: ignore[attr-defined]

    def lease_ttl(self) -> int | None:
        return None


def _copy_field(target: Message, source: Message, name: str) -> None:
    """target.name = source.name, keeping "unset" unset (so a no-op stays a no-op)."""
    if source.HasField(name):
        getattr(target, name).CopyFrom(getattr(source, name))
    else:
        target.ClearField(name)


def _keep_system_metadata(new: Message, old: Message) -> None:
    nm, om = new.metadata, old.metadata  # type: ignore[attr-defined]
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
        obj.status.phase = "Pending"  # type: ignore[attr-defined]
        defaults.add_default_tolerations(obj)  # type: ignore[arg-type]

    def prepare_for_update(self, new: Message, old: Message) -> None:
        super().prepare_for_update(new, old)
        # As the admission plugin does on every write: a replaced manifest that omits
        # the default tolerations keeps them (removing one is not allowed).
        defaults.add_default_tolerations(new)  # type: ignore[arg-type]

    def grace_period(self, obj: Message, requested: int | None) -> int:
        pod: core_pb2.Pod = obj  # type: ignore[assignment]
        # A pod no kubelet runs, or one that has finished, has nothing to stop.
        if not pod.spec.node_name or pod.status.phase in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(requested, 0)
        if pod.spec.HasField("termination_grace_period_seconds"):
            return max(pod.spec.termination_grace_period_seconds, 0)
        return 30


class NamespaceStrategy(Strategy):
    def prepare_for_create(self, obj: Message) -> None:
        super().prepare_for_create(obj)
        defaults.namespace_on_create(obj)  # type: ignore[arg-type]  # status Active, the `kubernetes` finalizer

    def prepare_for_update(self, new: Message, old: Message) -> None:
        super().prepare_for_update(new, old)
        # spec.finalizers belong to the namespace lifecycle, not to the user's Update.
        new.spec.ClearField("finalizers")  # type: ignore[attr-defined]
        new.spec.finalizers.extend(old.spec.finalizers)  # type: ignore[attr-defined]

    def finalizing(self, obj: Message) -> bool:
        return super().finalizing(obj) or bool(obj.spec.finalizers)  # type: ignore[attr-defined]


class EventStrategy(Strategy):
    def lease_ttl(self) -> int | None:
        return 3600


class ServiceStrategy(Strategy):
    def prepare_for_update(self, new: Message, old: Message) -> None:
        super().prepare_for_update(new, old)
        # As Kubernetes does: values the apiserver allocated are kept when an update
        # leaves them unset (a manifest rarely names its clusterIP or nodePorts).
        ns, os_ = new.spec, old.spec  # type: ignore[attr-defined]
        if not ns.cluster_ip and os_.cluster_ip and ns.type != "ExternalName":
            ns.cluster_ip = os_.cluster_ip
            del ns.cluster_ips[:]
            ns.cluster_ips.extend(os_.cluster_ips)
        if ns.type in ("NodePort", "LoadBalancer"):
            old_ports = {(p.port, p.protocol): p.node_port for p in os_.ports}
            for p in ns.ports:
                if not p.node_port:
                    p.node_port = old_ports.get((p.port, p.protocol), 0)


class JobStrategy(Strategy):
    def prepare_for_create(self, obj: Message) -> None:
        super().prepare_for_create(obj)
        defaults.job_generate_selector(obj, obj.metadata.uid)  # type: ignore[arg-type, attr-defined]


_STRATEGIES: dict[str, type[Strategy]] = {
    "Pod": PodStrategy,
    "Namespace": NamespaceStrategy,
    "Event": EventStrategy,
    "Service": ServiceStrategy,
    "Job": JobStrategy,
}


def for_kind(kind: kinds.Kind) -> Strategy:
    return _STRATEGIES.get(kind.kind, Strategy)(kind)


def now() -> int:
    """Unix seconds: Kubernetes' object timestamps have whole-second precision."""
    return int(time.time())
