"""Table-driven tests for the scheduler plugins, on hand-built Node and Pod protobufs.

Expected reasons and scores are Kubernetes' (kube-scheduler's messages, its toleration and
node affinity rules, its least-allocated arithmetic).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytest

from scheduler.framework import FITS, FilterPlugin, NodeInfo, PodInfo, ScorePlugin, Status
from scheduler.plugins import (
    NodeAffinity,
    NodeName,
    NodePorts,
    NodeReady,
    NodeResourcesFit,
    NodeResourcesLeastAllocated,
    NodeUnschedulable,
    OwnerSpread,
    TaintToleration,
    default_filters,
    default_plugins,
    default_scores,
)
from scheduler.plugins.node_affinity import SelectorTerm
from scheduler.plugins.taint_toleration import find_untolerated, tolerates
from skiff.api.selectors import match_node_selector_requirement
from skiff.api.v1 import core_pb2, meta_pb2

unschedulable = Status.unschedulable
unresolvable = Status.unresolvable

# ---------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------


def make_node(
    name: str = "n1",
    cpu: str | None = "4",
    memory: str | None = "8Gi",
    pods: str | None = "110",
    *,
    ephemeral: str | None = None,
    labels: dict[str, str] | None = None,
    taints: Iterable[core_pb2.Taint] = (),
    unschedulable: bool = False,
    ready: str | None = "True",
) -> core_pb2.Node:
    """A node with the given allocatable amounts (None leaves one out) and, unless
    `ready` is None, a Ready condition with that status."""
    node = core_pb2.Node(metadata=meta_pb2.ObjectMeta(name=name, labels=labels or {}))
    for resource, amount in (("cpu", cpu), ("memory", memory), ("pods", pods),
                             ("ephemeral-storage", ephemeral)):
        if amount is not None:
            node.status.allocatable[resource].value = amount
    node.spec.unschedulable = unschedulable
    node.spec.taints.extend(taints)
    if ready is not None:
        node.status.conditions.add(type="Ready", status=ready)
    return node


def container(
    name: str = "c",
    cpu: str | None = None,
    memory: str | None = None,
    ephemeral: str | None = None,
    ports: Iterable[tuple[int, str, str]] = (),
) -> core_pb2.Container:
    """A container with requests and (host port, protocol, host IP) ports."""
    c = core_pb2.Container(name=name, image="busybox")
    for resource, amount in (("cpu", cpu), ("memory", memory), ("ephemeral-storage", ephemeral)):
        if amount is not None:
            c.resources.requests[resource].value = amount
    for host_port, protocol, host_ip in ports:
        c.ports.add(container_port=host_port or 80, host_port=host_port, protocol=protocol,
                    host_ip=host_ip)
    return c


def make_pod(
    name: str = "p",
    cpu: str | None = None,
    memory: str | None = None,
    *,
    ephemeral: str | None = None,
    containers: Sequence[core_pb2.Container] | None = None,
    init: Sequence[core_pb2.Container] = (),
    node_name: str = "",
    node_selector: dict[str, str] | None = None,
    affinity: core_pb2.Affinity | None = None,
    tolerations: Iterable[core_pb2.Toleration] = (),
    ports: Iterable[tuple[int, str, str]] = (),
    owner_uid: str = "",
) -> core_pb2.Pod:
    """A pod with one container asking for cpu/memory, unless `containers` is given."""
    pod = core_pb2.Pod(metadata=meta_pb2.ObjectMeta(name=name, namespace="default",
                                                    uid=f"uid-{name}"))
    if containers is None:
        containers = [container(cpu=cpu, memory=memory, ephemeral=ephemeral, ports=ports)]
    pod.spec.containers.extend(containers)
    pod.spec.init_containers.extend(init)
    pod.spec.node_name = node_name
    pod.spec.node_selector.update(node_selector or {})
    if affinity is not None:
        pod.spec.affinity.CopyFrom(affinity)
    pod.spec.tolerations.extend(tolerations)
    if owner_uid:
        pod.metadata.owner_references.add(kind="ReplicaSet", name="rs", uid=owner_uid,
                                          controller=True)
    return pod


def node_info(node: core_pb2.Node, *pods: core_pb2.Pod) -> NodeInfo:
    return NodeInfo.of(node, [PodInfo(p) for p in pods])


def taint(key: str, value: str = "", effect: str = "NoSchedule") -> core_pb2.Taint:
    return core_pb2.Taint(key=key, value=value, effect=effect)


def toleration(key: str = "", operator: str = "", value: str = "",
               effect: str = "") -> core_pb2.Toleration:
    return core_pb2.Toleration(key=key, operator=operator, value=value, effect=effect)


def req(key: str, operator: str, *values: str) -> core_pb2.NodeSelectorRequirement:
    return core_pb2.NodeSelectorRequirement(key=key, operator=operator, values=values)


def term(*expressions: core_pb2.NodeSelectorRequirement,
         fields: Iterable[core_pb2.NodeSelectorRequirement] = ()) -> core_pb2.NodeSelectorTerm:
    return core_pb2.NodeSelectorTerm(match_expressions=expressions, match_fields=fields)


def required(*terms: core_pb2.NodeSelectorTerm) -> core_pb2.Affinity:
    """Required node affinity with these terms (set even when there are none)."""
    affinity = core_pb2.Affinity()
    affinity.node_affinity.required_during_scheduling_ignored_during_execution.SetInParent()
    (affinity.node_affinity.required_during_scheduling_ignored_during_execution
     .node_selector_terms.extend(terms))
    return affinity


def preferred(*weighted: tuple[int, core_pb2.NodeSelectorTerm]) -> core_pb2.Affinity:
    affinity = core_pb2.Affinity()
    for weight, preference in weighted:
        affinity.node_affinity.preferred_during_scheduling_ignored_during_execution.add(
            weight=weight, preference=preference)
    return affinity


def run_filter(plugin: FilterPlugin, pod: core_pb2.Pod,
               node: core_pb2.Node | NodeInfo) -> Status:
    info = node if isinstance(node, NodeInfo) else node_info(node)
    return plugin.filter(PodInfo(pod), info)


def run_scores(plugin: ScorePlugin, pod: core_pb2.Pod, nodes: Sequence[NodeInfo]) -> list[int]:
    """Raw scores over `nodes`, then normalized, as the scheduler does in one decision."""
    info = PodInfo(pod)
    scores = [plugin.score(info, node) for node in nodes]
    plugin.normalize(info, scores)
    return scores


# ---------------------------------------------------------------------------
# NodeResourcesFit
# ---------------------------------------------------------------------------

TOO_MANY = "Too many pods"
NO_CPU = "Insufficient cpu"
NO_MEMORY = "Insufficient memory"
NO_STORAGE = "Insufficient ephemeral-storage"

RESOURCE_CASES = [
    # (id, pod, node, pods already booked, expected)
    ("fits", make_pod(cpu="1", memory="1Gi"), make_node(), [], FITS),
    ("exactly the rest", make_pod(cpu="2", memory="6Gi"), make_node(),
     [make_pod("a", cpu="2", memory="2Gi")], FITS),
    ("one millicore too many", make_pod(cpu="2001m"), make_node(),
     [make_pod("a", cpu="2")], unschedulable(NO_CPU)),
    ("short of memory", make_pod(memory="5Gi"), make_node(),
     [make_pod("a", memory="4Gi")], unschedulable(NO_MEMORY)),
    ("short of cpu and memory", make_pod(cpu="3", memory="5Gi"), make_node(),
     [make_pod("a", cpu="2", memory="4Gi")], unschedulable(NO_CPU, NO_MEMORY)),
    ("ephemeral storage short", make_pod(ephemeral="20Gi"), make_node(ephemeral="10Gi"), [],
     unresolvable(NO_STORAGE)),
    ("ephemeral storage the node has none of", make_pod(ephemeral="1Gi"), make_node(), [],
     unresolvable(NO_STORAGE)),
    ("ephemeral storage fits", make_pod(ephemeral="1Gi"), make_node(ephemeral="10Gi"), [],
     FITS),
    # Init containers run one at a time: the pod needs max(sum of apps, largest init).
    ("init container larger than the app containers",
     make_pod(containers=[container("a", cpu="1"), container("b", cpu="1")],
              init=[container("i", cpu="3")]),
     make_node(), [make_pod("x", cpu="1500m")], unschedulable(NO_CPU)),
    ("same pod without the init container fits",
     make_pod(containers=[container("a", cpu="1"), container("b", cpu="1")]),
     make_node(), [make_pod("x", cpu="1500m")], FITS),
    ("init containers are not summed",
     make_pod(containers=[container("a", cpu="1")],
              init=[container("i", cpu="2"), container("j", cpu="2")]),
     make_node(), [make_pod("x", cpu="1500m")], FITS),
    ("pod count reached", make_pod(cpu="1"), make_node(pods="2"),
     [make_pod("a"), make_pod("b")], unschedulable(TOO_MANY)),
    ("last pod slot", make_pod(cpu="1"), make_node(pods="2"), [make_pod("a")], FITS),
    ("node without a pods allocatable", make_pod(), make_node(pods=None), [],
     unschedulable(TOO_MANY)),
    ("pod count and cpu both reported", make_pod(cpu="3"), make_node(pods="1"),
     [make_pod("a", cpu="2")], unschedulable(TOO_MANY, NO_CPU)),
    ("zero requests fit a full node", make_pod(), make_node(),
     [make_pod("a", cpu="4", memory="8Gi")], FITS),
    ("zero requests still count against the pod limit", make_pod(), make_node(pods="1"),
     [make_pod("a", cpu="4", memory="8Gi")], unschedulable(TOO_MANY)),
    # A resource the pod does not ask for is not checked, even when overbooked.
    ("memory only on a cpu-overbooked node", make_pod(memory="1Gi"), make_node(cpu="1"),
     [make_pod("a", cpu="2")], FITS),
]


@pytest.mark.parametrize(("pod", "node", "booked", "expected"),
                         [case[1:] for case in RESOURCE_CASES],
                         ids=[case[0] for case in RESOURCE_CASES])
def test_node_resources_fit(pod: core_pb2.Pod, node: core_pb2.Node,
                            booked: list[core_pb2.Pod], expected: Status) -> None:
    assert run_filter(NodeResourcesFit(), pod, node_info(node, *booked)) == expected


# ---------------------------------------------------------------------------
# NodeName
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("wanted", "node", "expected"), [
    ("", "n1", FITS),
    ("n1", "n1", FITS),
    ("n2", "n1", unresolvable("node(s) didn't match the requested node name")),
])
def test_node_name(wanted: str, node: str, expected: Status) -> None:
    assert run_filter(NodeName(), make_pod(node_name=wanted), make_node(node)) == expected


# ---------------------------------------------------------------------------
# NodeAffinity: filter
# ---------------------------------------------------------------------------

AFFINITY_MISMATCH = unresolvable("node(s) didn't match Pod's node affinity/selector")
LABELS = {"zone": "a", "disk": "ssd", "cores": "8", "gen": "v2"}

SELECTOR_CASES = [
    # (id, nodeSelector, node labels, fits)
    ("no selector", {}, {}, True),
    ("matching label", {"zone": "a"}, LABELS, True),
    ("every label must match", {"zone": "a", "disk": "hdd"}, LABELS, False),
    ("different value", {"zone": "b"}, LABELS, False),
    ("missing label", {"rack": "r1"}, LABELS, False),
    ("empty value needs the label", {"rack": ""}, LABELS, False),
    ("empty value matches an empty label", {"rack": ""}, {"rack": ""}, True),
]


@pytest.mark.parametrize(("selector", "labels", "fits"), [c[1:] for c in SELECTOR_CASES],
                         ids=[c[0] for c in SELECTOR_CASES])
def test_node_selector(selector: dict[str, str], labels: dict[str, str], fits: bool) -> None:
    result = run_filter(NodeAffinity(), make_pod(node_selector=selector),
                        make_node(labels=labels))
    assert result == (FITS if fits else AFFINITY_MISMATCH)


# One requirement in one term, matched against LABELS.
OPERATOR_CASES = [
    ("In match", req("zone", "In", "a", "b"), True),
    ("In other value", req("zone", "In", "b", "c"), False),
    ("In missing label", req("rack", "In", "r1"), False),
    ("NotIn other value", req("zone", "NotIn", "b"), True),
    ("NotIn listed value", req("zone", "NotIn", "a", "b"), False),
    ("NotIn missing label", req("rack", "NotIn", "r1"), True),
    ("Exists present", req("disk", "Exists"), True),
    ("Exists missing", req("rack", "Exists"), False),
    ("DoesNotExist missing", req("rack", "DoesNotExist"), True),
    ("DoesNotExist present", req("disk", "DoesNotExist"), False),
    ("Gt larger", req("cores", "Gt", "4"), True),
    ("Gt equal", req("cores", "Gt", "8"), False),
    ("Gt smaller", req("cores", "Gt", "16"), False),
    ("Lt smaller", req("cores", "Lt", "16"), True),
    ("Lt equal", req("cores", "Lt", "8"), False),
    ("Gt non-integer label", req("gen", "Gt", "1"), False),
    ("Lt non-integer label", req("gen", "Lt", "1000"), False),
    ("Gt missing label", req("rack", "Gt", "1"), False),
    ("Gt non-integer value", req("cores", "Gt", "four"), False),
    ("Gt two values", req("cores", "Gt", "1", "2"), False),
    ("In without values", req("zone", "In"), False),
    ("Exists with values", req("disk", "Exists", "ssd"), False),
    ("unknown operator", req("zone", "Equals", "a"), False),
    ("lower-case operator", req("zone", "in", "a"), False),
    ("invalid key", req("-zone-", "Exists"), False),
]


@pytest.mark.parametrize(("requirement", "fits"), [c[1:] for c in OPERATOR_CASES],
                         ids=[c[0] for c in OPERATOR_CASES])
def test_required_affinity_operators(requirement: core_pb2.NodeSelectorRequirement,
                                     fits: bool) -> None:
    pod = make_pod(affinity=required(term(requirement)))
    result = run_filter(NodeAffinity(), pod, make_node(labels=LABELS))
    assert result == (FITS if fits else AFFINITY_MISMATCH)


@pytest.mark.parametrize("requirement", [c[1] for c in OPERATOR_CASES],
                         ids=[c[0] for c in OPERATOR_CASES])
@pytest.mark.parametrize("labels", [LABELS, {}, {"cores": "-3", "zone": ""}],
                         ids=["labels", "no labels", "odd labels"])
def test_compiled_requirement_agrees_with_selectors(
        requirement: core_pb2.NodeSelectorRequirement, labels: dict[str, str]) -> None:
    # The plugin compiles requirements once per pod; it must mean exactly what
    # match_node_selector_requirement means.
    compiled = SelectorTerm.of(term(requirement))
    got = compiled is not None and compiled.matches(labels, "n1")
    want = match_node_selector_requirement(labels, requirement.key, requirement.operator,
                                           tuple(requirement.values))
    assert got == want


NAME_IN = req("metadata.name", "In", "n1")

TERM_CASES = [
    # (id, affinity, node selector, fits) on node "n1" with LABELS
    ("terms are ORed", required(term(req("zone", "In", "b")), term(req("disk", "In", "ssd"))),
     {}, True),
    ("no term matches", required(term(req("zone", "In", "b")), term(req("disk", "In", "hdd"))),
     {}, False),
    ("expressions are ANDed",
     required(term(req("zone", "In", "a"), req("disk", "In", "hdd"))), {}, False),
    ("all expressions hold", required(term(req("zone", "In", "a"), req("disk", "Exists"))),
     {}, True),
    ("empty term list matches nothing", required(), {}, False),
    ("an empty term matches nothing", required(term()), {}, False),
    ("an empty term is skipped", required(term(), term(req("zone", "In", "a"))), {}, True),
    ("an invalid term does not spoil the others",
     required(term(req("zone", "Bogus", "a")), term(req("zone", "In", "a"))), {}, True),
    ("matchFields name In", required(term(fields=[NAME_IN])), {}, True),
    ("matchFields name In other", required(term(fields=[req("metadata.name", "In", "n2")])),
     {}, False),
    ("matchFields name NotIn other",
     required(term(fields=[req("metadata.name", "NotIn", "n2")])), {}, True),
    ("matchFields name NotIn self",
     required(term(fields=[req("metadata.name", "NotIn", "n1")])), {}, False),
    ("matchFields needs exactly one value",
     required(term(fields=[req("metadata.name", "In", "n1", "n2")])), {}, False),
    ("matchFields only knows metadata.name",
     required(term(fields=[req("metadata.uid", "NotIn", "x")])), {}, False),
    ("matchFields only In and NotIn",
     required(term(fields=[req("metadata.name", "Exists")])), {}, False),
    ("matchFields and expressions are ANDed",
     required(term(req("zone", "In", "b"), fields=[NAME_IN])), {}, False),
    ("matchFields and expressions both hold",
     required(term(req("zone", "In", "a"), fields=[NAME_IN])), {}, True),
    ("selector and affinity both hold", required(term(req("zone", "In", "a"))),
     {"disk": "ssd"}, True),
    ("affinity holds, selector does not", required(term(req("zone", "In", "a"))),
     {"disk": "hdd"}, False),
    ("selector holds, affinity does not", required(term(req("zone", "In", "b"))),
     {"disk": "ssd"}, False),
    ("only preferred affinity filters nothing", preferred((10, term(req("zone", "In", "b")))),
     {}, True),
    ("an empty node affinity filters nothing", core_pb2.Affinity(
        node_affinity=core_pb2.NodeAffinity()), {}, True),
]


@pytest.mark.parametrize(("affinity", "selector", "fits"), [c[1:] for c in TERM_CASES],
                         ids=[c[0] for c in TERM_CASES])
def test_required_affinity_terms(affinity: core_pb2.Affinity, selector: dict[str, str],
                                 fits: bool) -> None:
    pod = make_pod(affinity=affinity, node_selector=selector)
    result = run_filter(NodeAffinity(), pod, make_node("n1", labels=LABELS))
    assert result == (FITS if fits else AFFINITY_MISMATCH)


def test_affinity_cache_follows_the_pod() -> None:
    # One plugin instance serves pod after pod; each must be judged on its own selectors.
    plugin = NodeAffinity()
    node = node_info(make_node(labels={"zone": "a"}))
    in_a = PodInfo(make_pod("a", node_selector={"zone": "a"}))
    in_b = PodInfo(make_pod("b", node_selector={"zone": "b"}))
    anywhere = PodInfo(make_pod("c"))
    for _ in range(2):
        assert plugin.filter(in_a, node) == FITS
        assert plugin.filter(in_b, node) == AFFINITY_MISMATCH
        assert plugin.filter(anywhere, node) == FITS


# ---------------------------------------------------------------------------
# NodeAffinity: score
# ---------------------------------------------------------------------------

PREFERENCES = preferred((10, term(req("zone", "In", "a"))),
                        (30, term(req("disk", "In", "ssd"))),
                        (50, term(fields=[req("metadata.name", "In", "n5")])))


@pytest.mark.parametrize(("affinity", "nodes", "expected"), [
    (PREFERENCES,
     [make_node("n1", labels={"zone": "a"}), make_node("n2", labels={"disk": "ssd"}),
      make_node("n3", labels={"zone": "a", "disk": "ssd"}), make_node("n4")],
     [25, 75, 100, 0]),
    (PREFERENCES, [make_node("n1", labels={"zone": "a"}), make_node("n5")], [20, 100]),
    (PREFERENCES, [make_node("n1"), make_node("n2")], [0, 0]),
    # A weight-0 or empty preferred term counts for nothing.
    (preferred((0, term(req("zone", "In", "a"))), (5, term()), (20, term(req("disk", "Exists")))),
     [make_node("n1", labels={"zone": "a"}), make_node("n2", labels={"disk": "hdd"})],
     [0, 100]),
], ids=["weights add up", "matchFields", "nothing matches", "weight 0 and empty terms"])
def test_preferred_affinity_score(affinity: core_pb2.Affinity, nodes: list[core_pb2.Node],
                                  expected: list[int]) -> None:
    plugin = NodeAffinity()
    pod = make_pod(affinity=affinity)
    assert plugin.applies(PodInfo(pod))
    assert run_scores(plugin, pod, [node_info(n) for n in nodes]) == expected


@pytest.mark.parametrize("pod", [
    make_pod(),
    make_pod(node_selector={"zone": "a"}),
    make_pod(affinity=required(term(req("zone", "In", "a")))),
    make_pod(affinity=preferred((0, term(req("zone", "In", "a"))))),
], ids=["nothing", "selector", "required only", "weight 0 only"])
def test_preferred_affinity_does_not_apply(pod: core_pb2.Pod) -> None:
    assert not NodeAffinity().applies(PodInfo(pod))


# ---------------------------------------------------------------------------
# TaintToleration
# ---------------------------------------------------------------------------

GPU = taint("dedicated", "gpu")

TAINT_CASES = [
    # (id, node taints, pod tolerations, expected)
    ("no taints", [], [], FITS),
    ("untolerated NoSchedule", [GPU], [],
     unresolvable("node(s) had untolerated taint {dedicated: gpu}")),
    ("empty value in the message", [taint("dedicated")], [],
     unresolvable("node(s) had untolerated taint {dedicated: }")),
    ("untolerated NoExecute", [taint("evict", "now", "NoExecute")], [],
     unresolvable("node(s) had untolerated taint {evict: now}")),
    ("PreferNoSchedule does not filter", [taint("soft", "x", "PreferNoSchedule")], [], FITS),
    ("Equal with key, value and effect", [GPU],
     [toleration("dedicated", "Equal", "gpu", "NoSchedule")], FITS),
    ("Equal with another value", [GPU], [toleration("dedicated", "Equal", "tpu")],
     unresolvable("node(s) had untolerated taint {dedicated: gpu}")),
    ("empty operator means Equal", [GPU], [toleration("dedicated", "", "gpu")], FITS),
    ("empty operator, other value", [GPU], [toleration("dedicated", "", "")],
     unresolvable("node(s) had untolerated taint {dedicated: gpu}")),
    ("Exists ignores the value", [GPU], [toleration("dedicated", "Exists", "ignored")], FITS),
    ("Exists for another key", [GPU], [toleration("other", "Exists")],
     unresolvable("node(s) had untolerated taint {dedicated: gpu}")),
    ("Exists with empty key tolerates everything",
     [GPU, taint("evict", "now", "NoExecute")], [toleration(operator="Exists")], FITS),
    ("Exists with empty key, limited to one effect",
     [GPU, taint("evict", "now", "NoExecute")], [toleration(operator="Exists",
                                                            effect="NoSchedule")],
     unresolvable("node(s) had untolerated taint {evict: now}")),
    ("empty effect matches NoExecute", [taint("evict", "now", "NoExecute")],
     [toleration("evict", "Equal", "now")], FITS),
    ("another effect does not match", [taint("evict", "now", "NoExecute")],
     [toleration("evict", "Equal", "now", "NoSchedule")],
     unresolvable("node(s) had untolerated taint {evict: now}")),
    ("unknown operator tolerates nothing", [GPU], [toleration("dedicated", "Gt", "gpu")],
     unresolvable("node(s) had untolerated taint {dedicated: gpu}")),
    ("the first untolerated taint is reported", [GPU, taint("b", "2"), taint("c", "3")],
     [toleration("dedicated", "Exists")], unresolvable("node(s) had untolerated taint {b: 2}")),
    ("several tolerations, each for one taint", [GPU, taint("b", "2")],
     [toleration("b", "Equal", "2"), toleration("dedicated", "Exists")], FITS),
]


@pytest.mark.parametrize(("taints", "tolerations", "expected"),
                         [c[1:] for c in TAINT_CASES], ids=[c[0] for c in TAINT_CASES])
def test_taint_toleration_filter(taints: list[core_pb2.Taint],
                                 tolerations: list[core_pb2.Toleration],
                                 expected: Status) -> None:
    result = run_filter(TaintToleration(), make_pod(tolerations=tolerations),
                        make_node(taints=taints))
    assert result == expected


def test_tolerates_and_find_untolerated() -> None:
    soft = taint("soft", "x", "PreferNoSchedule")
    assert tolerates(toleration("soft", "Exists"), soft)
    assert not tolerates(toleration("soft", "Exists", effect="NoSchedule"), soft)
    assert find_untolerated([soft, GPU], []) is GPU
    assert find_untolerated([soft, GPU], [], {"PreferNoSchedule"}) is soft
    assert find_untolerated([soft], [toleration(operator="Exists")],
                            {"PreferNoSchedule"}) is None


def prefer(key: str) -> core_pb2.Taint:
    return taint(key, "x", "PreferNoSchedule")


@pytest.mark.parametrize(("tolerations", "raw", "expected"), [
    ([], [0, 1, 2, 1], [100, 50, 0, 50]),
    ([toleration("a", "Exists")], [0, 0, 1, 1], [100, 100, 0, 0]),
    ([toleration("a", "Exists", effect="PreferNoSchedule")], [0, 0, 1, 1], [100, 100, 0, 0]),
    # A NoSchedule toleration does not tolerate a PreferNoSchedule taint.
    ([toleration("a", "Exists", effect="NoSchedule")], [0, 1, 2, 1], [100, 50, 0, 50]),
    ([toleration(operator="Exists")], [0, 0, 0, 0], [100, 100, 100, 100]),
], ids=["none", "one key", "PreferNoSchedule effect", "NoSchedule effect", "everything"])
def test_taint_toleration_score(tolerations: list[core_pb2.Toleration], raw: list[int],
                                expected: list[int]) -> None:
    nodes = [
        node_info(make_node("n1", taints=[taint("hard")])),  # NoSchedule: not counted
        node_info(make_node("n2", taints=[prefer("a")])),
        node_info(make_node("n3", taints=[prefer("a"), prefer("b")])),
        node_info(make_node("n4", taints=[prefer("b")])),
    ]
    plugin = TaintToleration()
    pod = PodInfo(make_pod(tolerations=tolerations))
    assert plugin.applies(pod)
    assert [plugin.score(pod, n) for n in nodes] == raw
    assert run_scores(plugin, pod.pod, nodes) == expected


# ---------------------------------------------------------------------------
# NodePorts
# ---------------------------------------------------------------------------

NO_PORTS = unschedulable("node(s) didn't have free ports for the requested pod ports")

PORT_CASES = [
    # (id, the pod's ports, the booked pod's ports, expected)
    ("no host ports", [], [(8080, "TCP", "")], FITS),
    ("nothing booked", [(8080, "TCP", "")], [], FITS),
    ("same port", [(8080, "TCP", "")], [(8080, "TCP", "")], NO_PORTS),
    ("protocol defaults to TCP", [(8080, "", "")], [(8080, "TCP", "")], NO_PORTS),
    ("same port, other protocol", [(8080, "UDP", "")], [(8080, "TCP", "")], FITS),
    ("other port", [(8081, "TCP", "")], [(8080, "TCP", "")], FITS),
    ("every address vs one", [(8080, "TCP", "0.0.0.0")], [(8080, "TCP", "10.0.0.1")],
     NO_PORTS),
    ("one address vs every", [(8080, "TCP", "10.0.0.1")], [(8080, "TCP", "")], NO_PORTS),
    ("same address", [(8080, "TCP", "10.0.0.1")], [(8080, "TCP", "10.0.0.1")], NO_PORTS),
    ("different addresses", [(8080, "TCP", "10.0.0.1")], [(8080, "TCP", "10.0.0.2")], FITS),
    ("one of several conflicts", [(53, "UDP", ""), (8080, "TCP", "")],
     [(53, "TCP", ""), (8080, "TCP", "")], NO_PORTS),
    ("container port only", [(0, "TCP", "")], [(0, "TCP", "")], FITS),
]


@pytest.mark.parametrize(("wanted", "booked", "expected"), [c[1:] for c in PORT_CASES],
                         ids=[c[0] for c in PORT_CASES])
def test_node_ports(wanted: list[tuple[int, str, str]], booked: list[tuple[int, str, str]],
                    expected: Status) -> None:
    node = node_info(make_node(), make_pod("other", ports=booked))
    assert run_filter(NodePorts(), make_pod(ports=wanted), node) == expected


def test_node_ports_freed_when_the_pod_leaves() -> None:
    booked = make_pod("other", ports=[(8080, "TCP", "")])
    node = node_info(make_node(), booked)
    pod = make_pod(ports=[(8080, "TCP", "")])
    assert run_filter(NodePorts(), pod, node) == NO_PORTS
    node.remove_pod("default/other")
    assert run_filter(NodePorts(), pod, node) == FITS


# ---------------------------------------------------------------------------
# NodeUnschedulable and NodeReady
# ---------------------------------------------------------------------------

UNSCHEDULABLE = unresolvable("node(s) were unschedulable")
UNSCHEDULABLE_KEY = "node.kubernetes.io/unschedulable"


@pytest.mark.parametrize(("cordoned", "tolerations", "expected"), [
    (False, [], FITS),
    (True, [], UNSCHEDULABLE),
    (True, [toleration(UNSCHEDULABLE_KEY, "Exists", effect="NoSchedule")], FITS),
    (True, [toleration(UNSCHEDULABLE_KEY, "Exists")], FITS),
    (True, [toleration(operator="Exists")], FITS),
    (True, [toleration(UNSCHEDULABLE_KEY, "Exists", effect="NoExecute")], UNSCHEDULABLE),
    (True, [toleration(UNSCHEDULABLE_KEY, "Equal", "true")], UNSCHEDULABLE),
], ids=["schedulable", "cordoned", "tolerated", "any effect", "tolerates all",
        "wrong effect", "wrong value"])
def test_node_unschedulable(cordoned: bool, tolerations: list[core_pb2.Toleration],
                            expected: Status) -> None:
    result = run_filter(NodeUnschedulable(), make_pod(tolerations=tolerations),
                        make_node(unschedulable=cordoned))
    assert result == expected


NOT_READY = unresolvable("node(s) were not ready")
NOT_READY_KEY = "node.kubernetes.io/not-ready"
UNREACHABLE_KEY = "node.kubernetes.io/unreachable"


@pytest.mark.parametrize(("ready", "tolerations", "expected"), [
    ("True", [], FITS),
    ("False", [], NOT_READY),
    ("False", [toleration(NOT_READY_KEY, "Exists", effect="NoSchedule")], FITS),
    ("False", [toleration(UNREACHABLE_KEY, "Exists")], NOT_READY),
    ("False", [toleration(NOT_READY_KEY, "Exists", effect="NoExecute")], NOT_READY),
    ("Unknown", [], NOT_READY),
    ("Unknown", [toleration(UNREACHABLE_KEY, "Exists")], FITS),
    ("Unknown", [toleration(NOT_READY_KEY, "Exists")], NOT_READY),
    (None, [], NOT_READY),
    (None, [toleration(UNREACHABLE_KEY, "Exists", effect="NoSchedule")], FITS),
    ("False", [toleration(operator="Exists")], FITS),
], ids=["ready", "not ready", "not ready tolerated", "not ready, unreachable tolerated",
        "not ready, wrong effect", "unknown", "unknown tolerated",
        "unknown, not-ready tolerated", "no condition", "no condition tolerated",
        "tolerates all"])
def test_node_ready(ready: str | None, tolerations: list[core_pb2.Toleration],
                    expected: Status) -> None:
    result = run_filter(NodeReady(), make_pod(tolerations=tolerations), make_node(ready=ready))
    assert result == expected


# ---------------------------------------------------------------------------
# NodeResourcesLeastAllocated and OwnerSpread
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("pod", "node", "booked", "expected"), [
    # cpu (4000-2000)*100//4000 = 50, memory (8Gi-4Gi)*100//8Gi = 50
    (make_pod(cpu="1", memory="2Gi"), make_node(), [make_pod("a", cpu="1", memory="2Gi")], 50),
    # cpu 3000/4000 free = 75, memory 6/8 free = 75
    (make_pod(cpu="1", memory="2Gi"), make_node(), [], 75),
    # cpu 75, memory 50: average 62
    (make_pod(cpu="1", memory="4Gi"), make_node(), [], 62),
    # No requests count as 100m and 200Mi: cpu 3900*100//4000 = 97, memory 97.5 -> 97.
    (make_pod(), make_node(), [], 97),
    # Booked pods without requests count too: 3 x 100m + 100m = 400m -> 90;
    # 4 x 200Mi = 800Mi of 8192Mi -> 90.
    (make_pod(), make_node(), [make_pod("a"), make_pod("b"), make_pod("c")], 90),
    # More than the node has scores 0 for that resource: cpu 0, memory 75.
    (make_pod(cpu="5", memory="2Gi"), make_node(), [], 37),
    # A resource with no allocatable is left out of the average.
    (make_pod(cpu="1"), make_node(memory=None), [], 75),
    (make_pod(), make_node(cpu=None, memory=None), [], 0),
], ids=["half used", "quarter used", "uneven", "defaults", "defaults booked",
        "over capacity", "no memory allocatable", "nothing allocatable"])
def test_least_allocated(pod: core_pb2.Pod, node: core_pb2.Node, booked: list[core_pb2.Pod],
                         expected: int) -> None:
    plugin = NodeResourcesLeastAllocated()
    info = PodInfo(pod)
    assert plugin.applies(info)
    score = plugin.score(info, node_info(node, *booked))
    assert score == expected
    scores = [score, 3]
    plugin.normalize(info, scores)
    assert scores == [expected, 3]  # already on 0..100: left alone


@pytest.mark.parametrize(("counts", "expected"), [
    ([2, 0, 1], [0, 100, 50]),
    ([0, 0], [100, 100]),
    ([3, 3], [0, 0]),
    ([1, 3, 0], [67, 0, 100]),
])
def test_owner_spread(counts: list[int], expected: list[int]) -> None:
    nodes = [node_info(make_node(f"n{i}"),
                       *(make_pod(f"n{i}-p{j}", owner_uid="rs-1") for j in range(count)),
                       make_pod(f"n{i}-other", owner_uid="rs-2"))
             for i, count in enumerate(counts)]
    plugin = OwnerSpread()
    pod = make_pod(owner_uid="rs-1")
    assert plugin.applies(PodInfo(pod))
    assert [plugin.score(PodInfo(pod), n) for n in nodes] == counts
    assert run_scores(plugin, pod, nodes) == expected


def test_owner_spread_needs_an_owner() -> None:
    assert not OwnerSpread().applies(PodInfo(make_pod()))


# ---------------------------------------------------------------------------
# Defaults
# ---------------------------------------------------------------------------


def test_default_plugins() -> None:
    assert [p.name for p in default_filters()] == [
        "NodeUnschedulable", "NodeReady", "NodeName", "TaintToleration", "NodeAffinity",
        "NodePorts", "NodeResourcesFit"]
    scores = default_scores()
    assert [(p.name, p.weight) for p in scores] == [
        ("NodeResourcesLeastAllocated", 1), ("OwnerSpread", 2), ("NodeAffinity", 2),
        ("TaintToleration", 3)]
    filters, scores = default_plugins()
    shared = {p.name: p for p in filters}
    assert all(shared.get(p.name, p) is p for p in scores)


def first_failure(pod: core_pb2.Pod, node: NodeInfo) -> Status:
    """What the scheduler reports for a node: the reasons of the first failing filter."""
    info = PodInfo(pod)
    for plugin in default_filters():
        status = plugin.filter(info, node)
        if not status.is_success():
            return status
    return FITS


@pytest.mark.parametrize(("pod", "node", "expected"), [
    (make_pod(cpu="1"), node_info(make_node()), FITS),
    (make_pod(cpu="8"), node_info(make_node(unschedulable=True, taints=[GPU], ready="False")),
     UNSCHEDULABLE),
    (make_pod(cpu="8"), node_info(make_node(taints=[GPU], ready="False")), NOT_READY),
    (make_pod(cpu="8", node_selector={"zone": "b"}), node_info(make_node(taints=[GPU])),
     unresolvable("node(s) had untolerated taint {dedicated: gpu}")),
    (make_pod(cpu="8", node_selector={"zone": "b"}), node_info(make_node()), AFFINITY_MISMATCH),
    (make_pod(cpu="8", memory="9Gi"), node_info(make_node()), unresolvable(NO_CPU, NO_MEMORY)),
], ids=["fits", "cordoned first", "not ready next", "taint before affinity",
        "affinity before resources", "resources last"])
def test_filter_order_decides_the_reason(pod: core_pb2.Pod, node: NodeInfo,
                                         expected: Status) -> None:
    assert first_failure(pod, node) == expected
