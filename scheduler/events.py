"""Cluster events, and which plugins each one may help (kube-scheduler's EventsToRegister
and queueing hints).

A pod that no node fits waits in the queue's unschedulable set, remembering the filter
plugins that rejected it. Each plugin declares the cluster events that can turn its "no"
into a "yes" (``events_to_register``): a ``ClusterEvent`` (a resource and a set of
actions) with an optional hint that looks at the changed object and says whether this
particular change could help. When something happens, ``EventHints.helped`` names the
plugins the event may help, and the queue retries the pods that one of them rejected.

A plugin that registers nothing (it has no ``events_to_register``) is taken to care about
every event, as in Kubernetes; a pod that no plugin rejected (there were no nodes at all)
is retried by any event that helps some plugin.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from skiff.api.v1 import core_pb2

__all__ = [
    "ASSIGNED_POD_DELETE",
    "ASSIGNED_POD_FINISHED",
    "ASSUMED_POD_FORGOTTEN",
    "NODE_ADD",
    "ActionType",
    "ClusterEvent",
    "ClusterEventWithHint",
    "EnqueueExtensions",
    "EventHints",
    "QueueingHint",
    "Resource",
    "node_update_event",
    "taints_changed",
]

log = logging.getLogger(__name__)


class Resource(enum.Enum):
    """What changed. ``POD`` is a pod bound to a node (or assumed on one): a pending pod's
    own changes reach the queue directly (``SchedulingQueue.update``)."""

    NODE = "Node"
    POD = "Pod"


class ActionType(enum.Flag):
    """How it changed. A node update carries the union of the kinds of change it made;
    one that changes none of them (a status heartbeat) is no event at all."""

    ADD = 1
    DELETE = 2
    UPDATE_NODE_ALLOCATABLE = 4
    UPDATE_NODE_LABEL = 8
    UPDATE_NODE_TAINT = 16  # spec.taints or spec.unschedulable
    UPDATE_NODE_CONDITION = 32  # the status of a condition, not its heartbeat
    UPDATE = (UPDATE_NODE_ALLOCATABLE | UPDATE_NODE_LABEL | UPDATE_NODE_TAINT
              | UPDATE_NODE_CONDITION)
    ALL = ADD | DELETE | UPDATE


@dataclass(frozen=True, slots=True)
class ClusterEvent:
    """A change in the cluster (what happened), or a pattern a plugin registers (what it
    cares about); ``label`` names the event in logs."""

    resource: Resource
    action: ActionType
    label: str = ""

    def matches(self, registered: ClusterEvent) -> bool:
        """Does this event fall under `registered` (same resource, a shared action)?"""
        return self.resource is registered.resource and bool(self.action & registered.action)


QueueingHint = Callable[[Any, Any], bool]
"""Given the changed object before and after (None for an add's "before" or a delete's
"after"), could this change help a pod the plugin rejected? A hint that raises counts as
yes: a needless retry is cheaper than a stuck pod."""


@dataclass(frozen=True, slots=True)
class ClusterEventWithHint:
    event: ClusterEvent
    hint: QueueingHint | None = None  # None: every matching event may help


@runtime_checkable
class EnqueueExtensions(Protocol):
    """A plugin that says which events can make a pod it rejected schedulable."""

    name: str

    def events_to_register(self) -> Sequence[ClusterEventWithHint]: ...


NODE_ADD = ClusterEvent(Resource.NODE, ActionType.ADD, "NodeAdd")
ASSIGNED_POD_DELETE = ClusterEvent(Resource.POD, ActionType.DELETE, "AssignedPodDeleted")
# A pod that finished, or an assumption dropped after a failed bind, gives its room back
# as a deleted pod does.
ASSIGNED_POD_FINISHED = ClusterEvent(Resource.POD, ActionType.DELETE, "AssignedPodFinished")
ASSUMED_POD_FORGOTTEN = ClusterEvent(Resource.POD, ActionType.DELETE, "AssumedPodForgotten")


def node_update_event(old: core_pb2.Node, new: core_pb2.Node) -> ClusterEvent | None:
    """The event a node update makes: the union of the kinds of change in it, or None
    when it changes nothing the scheduler looks at (a status heartbeat)."""
    action = ActionType(0)
    if (old.status.allocatable != new.status.allocatable
            or old.status.capacity != new.status.capacity):
        action |= ActionType.UPDATE_NODE_ALLOCATABLE
    if old.metadata.labels != new.metadata.labels:
        action |= ActionType.UPDATE_NODE_LABEL
    if taints_changed(old, new) or old.spec.unschedulable != new.spec.unschedulable:
        action |= ActionType.UPDATE_NODE_TAINT
    if _condition_statuses(old) != _condition_statuses(new):
        action |= ActionType.UPDATE_NODE_CONDITION
    if not action:
        return None
    return ClusterEvent(Resource.NODE, action, "NodeUpdate")


def taints_changed(old: core_pb2.Node | None, new: core_pb2.Node | None) -> bool:
    """A hint for plugins that read the taints but not ``spec.unschedulable``."""
    if old is None or new is None:
        return True
    return list(old.spec.taints) != list(new.spec.taints)


def _condition_statuses(node: core_pb2.Node) -> dict[str, str]:
    return {c.type: c.status for c in node.status.conditions}


class EventHints:
    """The events each plugin registered, keyed by plugin name (kube-scheduler's
    queueing hint map), built once from the scheduler's filter plugins."""

    def __init__(self, plugins: Iterable[object]) -> None:
        self._registered: dict[str, tuple[ClusterEventWithHint, ...]] = {}
        self._wildcard: set[str] = set()
        for plugin in plugins:
            if isinstance(plugin, EnqueueExtensions):
                self._registered[plugin.name] = tuple(plugin.events_to_register())
            else:
                name = getattr(plugin, "name", "")
                self._wildcard.add(str(name))

    def registered(self, plugin: str) -> tuple[ClusterEventWithHint, ...] | None:
        """What `plugin` registered; None for an unknown plugin or one that registers
        nothing (and so cares about every event)."""
        return self._registered.get(plugin)

    def helped(self, event: ClusterEvent, old: Any = None, new: Any = None) -> frozenset[str]:
        """The plugins that `event` (`old` -> `new`) may help: those that registered a
        matching event whose hint, if any, says yes, and those that registered nothing."""
        helped = set(self._wildcard)
        for name, registrations in self._registered.items():
            for registration in registrations:
                if not event.matches(registration.event):
                    continue
                if registration.hint is None or _ask(registration.hint, name, event, old, new):
                    helped.add(name)
                    break
        return frozenset(helped)


def _ask(hint: QueueingHint, plugin: str, event: ClusterEvent, old: Any, new: Any) -> bool:
    try:
        return bool(hint(old, new))
    except Exception:
        log.exception("queueing hint of %s failed on %s; taking it as helping", plugin,
                      event.label)
        return True
