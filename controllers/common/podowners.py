"""Pod events for a controller whose objects own pods through a label selector
(ReplicaSet, DaemonSet, Job): which owner to look at, and what its expectations saw.

* A pod of ours that appears is a creation seen; one that gets a deletionTimestamp or
  disappears is a deletion seen (a terminating pod no longer counts, so the deletion is
  observed when it starts, not when the kubelet finishes it).
* Its controller is enqueued on every change (the base class's `enqueue_owners_from`).
* An orphan that appears, is released, or changes labels enqueues every owner in its
  namespace whose selector matches it (before or after), so one of them can adopt it.
* An owner that goes takes its expectations with it: one recreated under the same name
  must not wait on its predecessor's pods.
"""

from __future__ import annotations

from typing import Any

from controllers.common.claim import controller_of, selector_of
from controllers.common.expectations import Expectations
from skiff.api.selectors import LabelSelector, SelectorError
from skiff.api.v1 import core_pb2
from skiff.client.controller import Controller
from skiff.client.informer import INDEX_NAMESPACE, Informer, object_key

__all__ = ["PodOwnerEvents", "usable_selector"]


def usable_selector(owner: Any) -> LabelSelector | None:
    """The owner's selector, or None if it is invalid or empty: validation forbids both,
    and an empty one would claim every pod of the namespace."""
    try:
        selector = selector_of(owner)
    except SelectorError:
        return None
    return None if selector.is_empty() or selector.matches_nothing else selector


class PodOwnerEvents:
    def __init__(self, controller: Controller, owners: Informer[Any],
                 pods: Informer[core_pb2.Pod], expectations: Expectations) -> None:
        self.controller = controller
        self.owners = owners
        self.owner_kind = owners.kind.kind
        self.expectations = expectations
        controller.enqueue_owners_from(pods, owners.kind)
        pods.add_handlers(on_add=self._added, on_update=self._updated,
                          on_delete=self._deletion_seen)
        owners.add_handlers(on_delete=lambda owner: expectations.forget(object_key(owner)))

    def owner_key(self, pod: core_pb2.Pod) -> str | None:
        """The key of the cached owner that controls `pod`; None if its controller is
        another kind, or an owner of that name that is not the one the pod names."""
        ref = controller_of(pod)
        if ref is None or ref.kind != self.owner_kind:
            return None
        owner = self.owners.store.get_by_name(pod.metadata.namespace, ref.name)
        if owner is None or owner.metadata.uid != ref.uid:
            return None
        return object_key(owner)

    def _added(self, pod: core_pb2.Pod) -> None:
        if pod.metadata.HasField("deletion_timestamp"):
            self._deletion_seen(pod)  # first seen already going (e.g. after a relist)
            return
        owner_key = self.owner_key(pod)
        if owner_key is not None:
            self.expectations.created(owner_key)
        elif controller_of(pod) is None:
            self._enqueue_matching(pod)

    def _updated(self, old: core_pb2.Pod, new: core_pb2.Pod) -> None:
        if old.metadata.resource_version == new.metadata.resource_version:
            return  # a periodic resync: nothing changed
        if new.metadata.HasField("deletion_timestamp"):
            self._deletion_seen(new)
            return
        if controller_of(new) is not None:
            return
        labels_changed = dict(old.metadata.labels) != dict(new.metadata.labels)
        if labels_changed or controller_of(old) is not None:
            self._enqueue_matching(new)
        if labels_changed:
            self._enqueue_matching(old)

    def _deletion_seen(self, pod: core_pb2.Pod) -> None:
        owner_key = self.owner_key(pod)
        if owner_key is not None:
            self.expectations.deleted(owner_key, object_key(pod))

    def _enqueue_matching(self, pod: core_pb2.Pod) -> None:
        for owner in self.owners.store.by_index(INDEX_NAMESPACE, pod.metadata.namespace):
            selector = usable_selector(owner)
            if selector is not None and selector.matches(pod.metadata.labels):
                self.controller.enqueue(owner)
