"""Status codes and cluster events: what each filter answers (kube-scheduler's codes), which
events each plugin registers, which pods an event moves out of the unschedulable set, and
how a failing filter is reported (an error, not "does not fit")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from scheduler.algorithm import Algorithm
from scheduler.events import (
    ASSIGNED_POD_DELETE,
    ASSIGNED_POD_FINISHED,
    ASSUMED_POD_FORGOTTEN,
    NODE_ADD,
    ActionType,
    ClusterEvent,
    ClusterEventWithHint,
    EventHints,
    Resource,
    node_update_event,
)
from scheduler.framework import FITS, Code, NodeInfo, PodInfo, Status
from scheduler.plugins import (
    NodeAffinity,
    NodeName,
    NodePorts,
    NodeReady,
    NodeResourcesFit,
    NodeUnschedulable,
    TaintToleration,
    default_filters,
)
from scheduler.queue import SchedulingQueue
from scheduler.scheduler import Scheduler
from skiff.api.v1 import core_pb2
from skiff.client.clock import FakeClock
from skiff.client.events import FakeRecorder

ALL_FILTERS = frozenset({"NodeUnschedulable", "NodeReady", "NodeName", "TaintToleration",
                         "NodeAffinity", "NodePorts", "NodeResourcesFit"})


def node(name: str = "n1", *, cpu: str = "4", labels: dict[str, str] | None = None,
         taints: Sequence[tuple[str, str]] = (), unschedulable: bool = False,
         ready: str = "True", heartbeat: int = 0) -> core_pb2.Node:
    n = core_pb2.Node()
    n.metadata.name = name
    n.metadata.labels.update(labels or {})
    for key, value in (("cpu", cpu), ("memory", "8Gi"), ("pods", "110")):
        n.status.allocatable[key].value = value
    for key, value in taints:
        n.spec.taints.add(key=key, value=value, effect="NoSchedule")
    n.spec.unschedulable = unschedulable
    c = n.status.conditions.add(type="Ready", status=ready)
    c.last_heartbeat_time.seconds = heartbeat
    n.status.conditions.add(type="MemoryPressure", status="False")
    return n


def pod(name: str = "p", cpu: str = "", *, node_name: str = "",
        selector: dict[str, str] | None = None) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.namespace, p.metadata.name, p.metadata.uid = "ns", name, f"uid-{name}"
    p.spec.scheduler_name = "default-scheduler"
    c = p.spec.containers.add(name="c", image="i")
    if cpu:
        c.resources.requests["cpu"].value = cpu
    p.spec.node_name = node_name
    p.spec.node_selector.update(selector or {})
    return p


def changed(edit: Callable[[core_pb2.Node], None]) -> tuple[core_pb2.Node, core_pb2.Node]:
    old = node()
    new = core_pb2.Node()
    new.CopyFrom(old)
    edit(new)
    return old, new


def heartbeat(n: core_pb2.Node) -> None:
    for c in n.status.conditions:
        c.last_heartbeat_time.seconds += 10


def relabel(n: core_pb2.Node) -> None:
    n.metadata.labels["zone"] = "a"


def taint(n: core_pb2.Node) -> None:
    n.spec.taints.add(key="dedicated", value="gpu", effect="NoSchedule")


def cordon(n: core_pb2.Node) -> None:
    n.spec.unschedulable = True


def grow(n: core_pb2.Node) -> None:
    n.status.allocatable["cpu"].value = "8"


def grow_capacity(n: core_pb2.Node) -> None:
    n.status.capacity["cpu"].value = "8"


def not_ready(n: core_pb2.Node) -> None:
    n.status.conditions[0].status = "False"


def memory_pressure(n: core_pb2.Node) -> None:
    n.status.conditions[1].status = "True"


# ---------------------------------------------------------------- codes


@pytest.mark.parametrize(("plugin", "pod", "node", "code"), [
    (NodeUnschedulable(), pod(), node(unschedulable=True), Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
    (NodeReady(), pod(), node(ready="False"), Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
    (NodeName(), pod(node_name="n2"), node(), Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
    (TaintToleration(), pod(), node(taints=[("a", "b")]), Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
    (NodeAffinity(), pod(selector={"zone": "a"}), node(), Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
    # More than the node has at all: no eviction would make room.
    (NodeResourcesFit(), pod(cpu="5"), node(cpu="4"), Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
    (NodeResourcesFit(), pod(cpu="4"), node(cpu="4"), Code.SUCCESS),
], ids=["cordoned", "not ready", "other node name", "taint", "selector", "too big", "fits"])
def test_each_rejection_carries_kube_schedulers_code(
        plugin: Any, pod: core_pb2.Pod, node: core_pb2.Node, code: Code) -> None:
    assert plugin.filter(PodInfo(pod), NodeInfo.of(node)).code is code


def test_room_that_pods_hold_is_unschedulable_not_unresolvable() -> None:
    full = NodeInfo.of(node(cpu="4"), [PodInfo(pod("big", cpu="3", node_name="n1"))])
    status = NodeResourcesFit().filter(PodInfo(pod(cpu="2")), full)
    assert status == Status(Code.UNSCHEDULABLE, ("Insufficient cpu",))
    ported = pod("a")
    ported.spec.containers[0].ports.add(container_port=80, host_port=80)
    taken = NodeInfo.of(node(), [PodInfo(ported)])
    assert NodePorts().filter(PodInfo(ported), taken).code is Code.UNSCHEDULABLE


def test_status_helpers() -> None:
    assert FITS.is_success() and not FITS.is_rejected() and FITS.code is Code.SUCCESS
    assert Status.unschedulable("a", "b").is_rejected()
    assert Status.unresolvable("a").is_rejected()
    error = Status.error("boom")
    assert not error.is_success() and not error.is_rejected() and error.message() == "boom"


# ---------------------------------------------------------------- the decision


class Answers:
    """A filter that gives one fixed answer for the named nodes."""

    def __init__(self, name: str, nodes: set[str], status: Status) -> None:
        self.name, self.nodes, self.status = name, nodes, status

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        return self.status if node.name in self.nodes else FITS


class Raises:
    name = "Raises"

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        raise RuntimeError("boom")


def infos(count: int) -> list[NodeInfo]:
    return [NodeInfo.of(node(f"n{i}")) for i in range(count)]


def test_the_decision_counts_unresolvable_nodes() -> None:
    cordoned = Answers("NodeUnschedulable", {"n0"}, Status.unresolvable("cordoned"))
    full = Answers("NodeResourcesFit", {"n1", "n2"}, Status.unschedulable("Insufficient cpu"))
    decision = Algorithm([cordoned, full], []).schedule(PodInfo(pod()), infos(3))
    assert decision.node is None and decision.error is None
    assert decision.unresolvable == 1
    assert decision.rejected_by == {"NodeUnschedulable", "NodeResourcesFit"}
    assert decision.explain() == "0/3 nodes are available: 1 cordoned, 2 Insufficient cpu."


def test_a_success_status_that_is_not_fits_still_fits() -> None:
    fine = Answers("Fine", {"n0"}, Status(Code.SUCCESS))
    assert Algorithm([fine], []).schedule(PodInfo(pod()), infos(1)).node == "n0"


@pytest.mark.parametrize("broken", [Answers("Broken", {"n1"}, Status.error("no cache")),
                                    Raises()], ids=["error status", "raises"])
def test_a_filter_error_stops_the_decision_and_is_no_rejection(broken: Any) -> None:
    decision = Algorithm([broken], []).schedule(PodInfo(pod()), infos(3))
    assert decision.node is None
    assert decision.error is not None and decision.error.code is Code.ERROR
    assert decision.error.message().startswith(f"running {broken.name!r} filter plugin: ")
    assert not decision.reasons and not decision.rejected_by


# ---------------------------------------------------------------- events


@pytest.mark.parametrize(("edit", "action"), [
    (heartbeat, None),
    (grow, ActionType.UPDATE_NODE_ALLOCATABLE),
    (grow_capacity, ActionType.UPDATE_NODE_ALLOCATABLE),
    (relabel, ActionType.UPDATE_NODE_LABEL),
    (taint, ActionType.UPDATE_NODE_TAINT),
    (cordon, ActionType.UPDATE_NODE_TAINT),
    (not_ready, ActionType.UPDATE_NODE_CONDITION),
    (memory_pressure, ActionType.UPDATE_NODE_CONDITION),
])
def test_a_node_update_is_classified_by_what_changed(
        edit: Callable[[core_pb2.Node], None], action: ActionType | None) -> None:
    event = node_update_event(*changed(edit))
    if action is None:
        assert event is None
    else:
        assert event == ClusterEvent(Resource.NODE, action, "NodeUpdate")


def test_one_update_carries_every_kind_of_change() -> None:
    event = node_update_event(*changed(lambda n: (relabel(n), grow(n))))
    assert event is not None
    assert event.action == ActionType.UPDATE_NODE_LABEL | ActionType.UPDATE_NODE_ALLOCATABLE


def test_what_each_plugin_registers() -> None:
    hints = EventHints(default_filters())

    def events(plugin: str) -> set[tuple[Resource, ActionType]]:
        registered = hints.registered(plugin)
        assert registered is not None
        return {(r.event.resource, r.event.action) for r in registered}

    node_add = (Resource.NODE, ActionType.ADD)
    pod_delete = (Resource.POD, ActionType.DELETE)
    assert events("NodeName") == {node_add}
    assert events("NodeUnschedulable") == {node_add, (Resource.NODE, ActionType.UPDATE_NODE_TAINT)}
    assert events("NodeAffinity") == {node_add, (Resource.NODE, ActionType.UPDATE_NODE_LABEL)}
    assert events("TaintToleration") == {node_add, (Resource.NODE, ActionType.UPDATE_NODE_TAINT)}
    assert events("NodeReady") == {node_add, (Resource.NODE, ActionType.UPDATE_NODE_TAINT),
                                   (Resource.NODE, ActionType.UPDATE_NODE_CONDITION)}
    assert events("NodePorts") == {node_add, pod_delete}
    assert events("NodeResourcesFit") == {
        node_add, pod_delete, (Resource.NODE, ActionType.UPDATE_NODE_ALLOCATABLE)}


@pytest.mark.parametrize(("edit", "helped"), [
    (grow, {"NodeResourcesFit"}),
    (grow_capacity, {"NodeResourcesFit"}),
    (relabel, {"NodeAffinity"}),
    (taint, {"TaintToleration", "NodeUnschedulable", "NodeReady"}),
    (cordon, {"NodeUnschedulable"}),
    (not_ready, {"NodeReady"}),
    (memory_pressure, set()),
])
def test_which_plugins_a_node_update_may_help(edit: Callable[[core_pb2.Node], None],
                                              helped: set[str]) -> None:
    old, new = changed(edit)
    event = node_update_event(old, new)
    assert event is not None
    assert EventHints(default_filters()).helped(event, old, new) == helped


@pytest.mark.parametrize(("event", "helped"), [
    (NODE_ADD, ALL_FILTERS),
    (ASSIGNED_POD_DELETE, {"NodeResourcesFit", "NodePorts"}),
    (ASSIGNED_POD_FINISHED, {"NodeResourcesFit", "NodePorts"}),
    (ASSUMED_POD_FORGOTTEN, {"NodeResourcesFit", "NodePorts"}),
    (ClusterEvent(Resource.NODE, ActionType.DELETE, "NodeDelete"), set()),
])
def test_which_plugins_other_events_may_help(event: ClusterEvent, helped: set[str]) -> None:
    assert EventHints(default_filters()).helped(event) == helped


class Registers:
    """A filter that registers one event with a hint."""

    name = "Registers"

    def __init__(self, hint: Callable[[Any, Any], bool]) -> None:
        self.hint = hint

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(
            ClusterEvent(Resource.NODE, ActionType.UPDATE_NODE_LABEL), self.hint)]

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        return FITS


def test_a_plugin_that_registers_nothing_hears_every_event() -> None:
    hints = EventHints([Answers("Silent", set(), FITS), Registers(lambda old, new: False)])
    assert hints.registered("Silent") is None
    assert hints.helped(NODE_ADD) == {"Silent"}
    assert hints.helped(ASSIGNED_POD_DELETE) == {"Silent"}


def test_a_hint_decides_and_a_failing_hint_counts_as_helping(
        caplog: pytest.LogCaptureFixture) -> None:
    old, new = changed(relabel)
    event = node_update_event(old, new)
    assert event is not None
    seen: list[tuple[Any, Any]] = []

    def wants_zone(before: Any, after: Any) -> bool:
        seen.append((before, after))
        return "zone" in after.metadata.labels

    assert EventHints([Registers(wants_zone)]).helped(event, old, new) == {"Registers"}
    assert seen == [(old, new)]
    assert EventHints([Registers(lambda o, n: False)]).helped(event, old, new) == set()
    assert EventHints([Registers(lambda o, n: 1 / 0 > 0)]).helped(event, old, new) == {
        "Registers"}
    assert "queueing hint of Registers failed" in caplog.text


# ---------------------------------------------------------------- the queue asks them


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def queue(clock: FakeClock) -> AsyncIterator[SchedulingQueue]:
    q = SchedulingQueue(clock=clock, hints=EventHints(default_filters()))
    timers = asyncio.ensure_future(q.run())
    yield q
    q.close()
    await asyncio.wait_for(timers, timeout=1.0)


async def park(q: SchedulingQueue, clock: FakeClock, key: str, *rejected_by: str) -> None:
    q.add(key, (0, key))
    task = asyncio.ensure_future(q.pop())
    await clock.settle()
    popped = task.result()
    q.requeue_unschedulable(popped, frozenset(rejected_by))


async def test_an_event_moves_the_pods_rejected_by_a_plugin_it_helps(
        queue: SchedulingQueue, clock: FakeClock) -> None:
    await park(queue, clock, "room", "NodeResourcesFit")
    await park(queue, clock, "taint", "TaintToleration")
    await park(queue, clock, "both", "TaintToleration", "NodePorts")
    await park(queue, clock, "no-nodes")  # rejected by no plugin: there were no nodes
    await clock.advance(20)  # every back-off has expired
    assert queue.on_event(ASSIGNED_POD_DELETE, pod(), None) == 3
    assert queue.pending() == {"active": 3, "backoff": 0, "unschedulable": 1}


async def test_an_event_that_helps_no_plugin_moves_nothing_and_is_no_move_request(
        queue: SchedulingQueue, clock: FakeClock) -> None:
    await park(queue, clock, "room", "NodeResourcesFit")
    old, new = changed(memory_pressure)
    event = node_update_event(old, new)
    assert event is not None
    queue.add("flying", (1, "flying"))
    task = asyncio.ensure_future(queue.pop())
    await clock.settle()
    flying = task.result()
    assert queue.on_event(event, old, new) == 0
    # Nothing happened that the attempt missed: the pod in flight parks.
    queue.requeue_unschedulable(flying, frozenset({"NodeResourcesFit"}))
    assert queue.pending() == {"active": 0, "backoff": 0, "unschedulable": 2}


async def test_a_queue_without_hints_moves_every_pod(clock: FakeClock) -> None:
    q = SchedulingQueue(clock=clock)
    await park(q, clock, "taint", "TaintToleration")
    await clock.advance(20)
    assert q.on_event(ASSIGNED_POD_DELETE) == 1
    q.close()


# ---------------------------------------------------------------- the scheduler


class StandIn:
    """Lists what it is given, never sends watch events, records status writes."""

    def __init__(self, objects: list[Any]) -> None:
        self.objects = objects
        self.statuses: list[core_pb2.Pod] = []

    async def list(self, kind: Any, namespace: str = "", **_: Any) -> tuple[list[Any], str]:
        name = getattr(kind, "kind", None) or getattr(kind, "__name__", "")
        return [o for o in self.objects if type(o).__name__ == name], "1"

    async def watch(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        await asyncio.Event().wait()
        yield None  # pragma: no cover

    async def bind(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("nothing may be bound")

    async def update_status(self, obj: core_pb2.Pod) -> core_pb2.Pod:
        self.statuses.append(obj)
        return obj


def test_node_heartbeats_move_nothing_and_changes_move_what_they_help() -> None:
    recorder = FakeRecorder()
    scheduler = Scheduler(StandIn([]), recorder=recorder)  # type: ignore[arg-type]
    moves: list[tuple[str, frozenset[str]]] = []

    def on_event(event: ClusterEvent, old: Any = None, new: Any = None) -> int:
        hints = scheduler.queue.hints
        assert hints is not None
        moves.append((event.label, hints.helped(event, old, new)))
        return 0

    scheduler.queue.on_event = on_event  # type: ignore[method-assign]
    old = node()
    scheduler._node_added(old)
    for edit in (heartbeat, relabel):
        new = core_pb2.Node()
        new.CopyFrom(old)
        edit(new)
        scheduler._node_updated(old, new)
        old = new
    scheduler._pod_added(pod("bound", cpu="1", node_name="n1"))
    scheduler._pod_deleted(pod("bound", cpu="1", node_name="n1"))
    assert moves == [("NodeAdd", ALL_FILTERS), ("NodeUpdate", {"NodeAffinity"}),
                     ("AssignedPodDeleted", {"NodeResourcesFit", "NodePorts"})]


async def test_a_filter_error_is_reported_as_a_scheduler_error_and_backs_off() -> None:
    server = StandIn([node("n1"), pod("p")])
    recorder = FakeRecorder()
    broken = Answers("Broken", {"n1"}, Status.error("no cache"))
    scheduler = Scheduler(server, filters=[broken], recorder=recorder)  # type: ignore[arg-type]
    task = asyncio.create_task(scheduler.run())
    try:
        await _until(lambda: bool(server.statuses))
        # Retried after a back-off, not parked until the cluster changes.
        assert scheduler.queue.pending() == {"active": 0, "backoff": 1, "unschedulable": 0}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    message = "running 'Broken' filter plugin: no cache"
    assert recorder.events == [f"Warning FailedScheduling {message}"]
    condition = server.statuses[0].status.conditions[0]
    assert (condition.type, condition.status, condition.reason, condition.message) == (
        "PodScheduled", "False", "SchedulerError", message)


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)
