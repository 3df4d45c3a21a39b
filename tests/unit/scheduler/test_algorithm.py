"""The decision (filter, score, pick), its explanation, and the cache's bookings."""

from __future__ import annotations

from collections import Counter

import pytest

from scheduler.algorithm import Algorithm, explain, feasible_nodes_to_find
from scheduler.cache import SchedulerCache
from scheduler.framework import FITS, NodeInfo, PodInfo, Status
from skiff.api.v1 import core_pb2


def node(name: str, cpu: str = "4", memory: str = "8Gi", pods: str = "110") -> core_pb2.Node:
    n = core_pb2.Node()
    n.metadata.name = name
    for key, value in (("cpu", cpu), ("memory", memory), ("pods", pods)):
        n.status.allocatable[key].value = value
    n.status.conditions.add(type="Ready", status="True")
    return n


def pod(name: str, cpu: str = "", node_name: str = "", phase: str = "") -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.namespace, p.metadata.name, p.metadata.uid = "ns", name, f"uid-{name}"
    c = p.spec.containers.add(name="c", image="i")
    if cpu:
        c.resources.requests["cpu"].value = cpu
    p.spec.node_name = node_name
    p.status.phase = phase
    return p


class Rejects:
    """A filter that turns away the named nodes with one reason."""

    def __init__(self, name: str, nodes: set[str], reason: str) -> None:
        self.name, self.nodes, self.reason = name, nodes, reason
        self.calls = 0

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        self.calls += 1
        return Status.unschedulable(self.reason) if node.name in self.nodes else FITS


class Prefers:
    """A score that likes one node."""

    name, weight = "Prefers", 1

    def __init__(self, favourite: str) -> None:
        self.favourite = favourite

    def applies(self, pod: PodInfo) -> bool:
        return True

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        return 100 if node.name == self.favourite else 0

    def normalize(self, pod: PodInfo, scores: list[int]) -> None:
        pass


def infos(count: int) -> list[NodeInfo]:
    return [NodeInfo.of(node(f"n{i}")) for i in range(count)]


@pytest.mark.parametrize("nodes,percentage,expected", [
    (10, 0, 10), (99, 0, 99), (100, 0, 100),
    (1000, 0, 420),  # 50 - 1000/125 = 42%
    (5000, 0, 500),  # 10%
    (6000, 0, 300),  # 2% is under the 5% floor
    (1000, 5, 100),  # 50 nodes would be under the 100-node floor
    (1000, 100, 1000),
])
def test_how_many_feasible_nodes_are_enough(nodes: int, percentage: int, expected: int) -> None:
    assert feasible_nodes_to_find(nodes, percentage) == expected


def test_the_message_counts_reasons_as_kubernetes_does() -> None:
    reasons = Counter({"Insufficient memory": 2,
                       "node(s) had untolerated taint {dedicated: gpu}": 1})
    assert explain(3, reasons) == ("0/3 nodes are available: 1 node(s) had untolerated taint "
                                   "{dedicated: gpu}, 2 Insufficient memory.")
    assert explain(0, Counter()) == "no nodes available to schedule pods"


def test_a_pod_that_fits_nowhere_gets_every_reason() -> None:
    taint = Rejects("TaintToleration", {"n0"}, "node(s) had untolerated taint {a: b}")
    room = Rejects("NodeResourcesFit", {"n1", "n2"}, "Insufficient cpu")
    decision = Algorithm([taint, room], []).schedule(PodInfo(pod("p")), infos(3))
    assert decision.node is None
    assert decision.rejected_by == {"TaintToleration", "NodeResourcesFit"}
    assert decision.explain() == ("0/3 nodes are available: 1 node(s) had untolerated taint "
                                  "{a: b}, 2 Insufficient cpu.")
    # A node rejected by the first filter is not asked about by the next one.
    assert room.calls == 2


def test_the_best_scored_feasible_node_wins() -> None:
    algorithm = Algorithm([Rejects("X", {"n3"}, "no")], [Prefers("n2")])
    assert algorithm.schedule(PodInfo(pod("p")), infos(4)).node == "n2"
    # The favourite filtered out: another feasible node, never the rejected one.
    algorithm = Algorithm([Rejects("X", {"n2"}, "no")], [Prefers("n2")])
    assert algorithm.schedule(PodInfo(pod("p")), infos(4)).node in {"n0", "n1", "n3"}


def test_large_clusters_stop_filtering_early_and_take_turns() -> None:
    counting = Rejects("Count", set(), "")
    algorithm = Algorithm([counting], [])
    nodes = infos(1000)
    first = algorithm.schedule(PodInfo(pod("p")), nodes)
    assert (first.evaluated, first.feasible) == (420, 420)
    second = algorithm.schedule(PodInfo(pod("q")), nodes)
    assert second.evaluated == 420 and counting.calls == 840
    # The second search started where the first stopped: together they saw 840 nodes.
    assert first.node is not None and second.node is not None


def test_an_assumed_pod_takes_room_at_once_and_a_forgotten_one_gives_it_back() -> None:
    cache = SchedulerCache()
    cache.set_node(node("n", cpu="1"))
    big = PodInfo(pod("big", cpu="800m"))
    cache.assume(big, "n")
    info = cache.node("n")
    assert info is not None and info.requested.milli_cpu == 800
    assert cache.is_assumed(big.key)
    cache.forget(big.key)
    assert info.requested.milli_cpu == 0 and not info.pods


def test_the_informer_confirms_an_assumption_without_counting_twice() -> None:
    cache = SchedulerCache()
    cache.set_node(node("n"))
    cache.assume(PodInfo(pod("p", cpu="500m")), "n")
    cache.add_pod(pod("p", cpu="500m", node_name="n"))
    info = cache.node("n")
    assert info is not None and info.requested.milli_cpu == 500 and len(info.pods) == 1
    assert not cache.is_assumed("ns/p")
    cache.forget("ns/p")  # a confirmed booking is not an assumption
    assert info.requested.milli_cpu == 500


def test_finished_pods_hold_nothing() -> None:
    cache = SchedulerCache()
    cache.set_node(node("n"))
    cache.add_pod(pod("p", cpu="500m", node_name="n"))
    cache.add_pod(pod("p", cpu="500m", node_name="n", phase="Succeeded"))
    info = cache.node("n")
    assert info is not None and info.requested.milli_cpu == 0 and not info.pods


def test_pods_on_an_unknown_node_count_when_it_appears() -> None:
    cache = SchedulerCache()
    cache.add_pod(pod("early", cpu="1", node_name="later"))
    assert cache.candidates() == []
    cache.set_node(node("later"))
    [info] = cache.candidates()
    assert info.requested.milli_cpu == 1000
    cache.remove_node("later")
    assert cache.candidates() == []
    cache.remove_pod("ns/early")
    assert cache.node("later") is None


def test_init_containers_count_as_kubernetes_does() -> None:
    p = pod("p", cpu="300m")
    init = p.spec.init_containers.add(name="init", image="i")
    init.resources.requests["cpu"].value = "1"
    assert PodInfo(p).requests.milli_cpu == 1000  # max(300m, 1)
    init.resources.requests["cpu"].value = "100m"
    assert PodInfo(p).requests.milli_cpu == 300
