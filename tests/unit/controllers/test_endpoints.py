"""The Endpoints controller: what a Service's Endpoints hold for a set of pods (Kubernetes'
endpoints_controller_test.go cases: ready and not-ready pods, publishNotReadyAddresses,
terminal, deleting and IP-less pods, named ports per pod, repacking, hostnames, headless
services without ports), and its sync over caches against a fake apiserver: writes only
on change, user-written Endpoints left alone, a deleted service's removed, batching."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.message import Message

from controllers.common.context import ControllerContext
from controllers.main import CONTROLLERS, component_config, parse_args
from controllers.services.endpoints import (
    HEADLESS_LABEL,
    TRIGGER_TIME_ANNOTATION,
    EndpointsController,
    endpoint_subsets,
)
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.clock import FakeClock
from skiff.client.informer import SharedInformerFactory, object_key

NS = "ns"


def pod(name: str, ip: str = "", *, ready: bool = True, labels: dict[str, str] | None = None,
        phase: str = "Running", ports: dict[str, int] | None = None, node: str = "n1",
        deleting: bool = False, hostname: str = "", subdomain: str = "") -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name, p.metadata.namespace, p.metadata.uid = name, NS, f"uid-{name}"
    p.metadata.labels.update(labels if labels is not None else {"app": "web"})
    if deleting:
        p.metadata.deletion_timestamp.GetCurrentTime()
    p.spec.node_name = node
    p.spec.hostname, p.spec.subdomain = hostname, subdomain
    container = p.spec.containers.add(name="c", image="busybox")
    for port_name, number in (ports or {}).items():
        container.ports.add(name=port_name, container_port=number, protocol="TCP")
    p.status.phase = phase
    p.status.pod_ip = ip
    p.status.conditions.add(type="Ready", status="True" if ready else "False")
    return p


def service(name: str = "web", *, ports: list[tuple[str, int, int | str]] | None = None,
            selector: dict[str, str] | None = None, publish: bool = False,
            cluster_ip: str = "10.96.0.10", labels: dict[str, str] | None = None
            ) -> core_pb2.Service:
    s = core_pb2.Service()
    s.metadata.name, s.metadata.namespace = name, NS
    s.metadata.labels.update(labels or {})
    s.spec.selector.update({"app": "web"} if selector is None else selector)
    s.spec.cluster_ip = cluster_ip
    s.spec.publish_not_ready_addresses = publish
    for port_name, number, target in (ports if ports is not None else [("", 80, 8080)]):
        sp = s.spec.ports.add(name=port_name, port=number, protocol="TCP")
        if isinstance(target, str):
            sp.target_port.str_val = target
        else:
            sp.target_port.int_val = target
    return s


def view(subsets: list[core_pb2.EndpointSubset]) -> list[dict[str, Any]]:
    """Subsets as plain data: addresses by IP, ports by (name, number)."""
    return [{"ready": [a.ip for a in s.addresses],
             "not_ready": [a.ip for a in s.not_ready_addresses],
             "ports": [(p.name, p.port) for p in s.ports]} for s in subsets]


# ---- what the Endpoints hold


def test_ready_and_not_ready_pods_are_listed_apart() -> None:
    subsets = endpoint_subsets(service(), [
        pod("a", "10.0.0.2"), pod("b", "10.0.0.1"), pod("c", "10.0.0.3", ready=False)])
    assert view(subsets) == [{"ready": ["10.0.0.1", "10.0.0.2"], "not_ready": ["10.0.0.3"],
                              "ports": [("", 8080)]}]
    address = subsets[0].addresses[0]
    assert (address.node_name, address.target_ref.kind, address.target_ref.name,
            address.target_ref.namespace, address.target_ref.uid) == (
        "n1", "Pod", "b", NS, "uid-b")


def test_publish_not_ready_addresses_lists_every_pod_as_ready() -> None:
    subsets = endpoint_subsets(service(publish=True), [
        pod("a", "10.0.0.1"), pod("c", "10.0.0.3", ready=False),
        pod("d", "10.0.0.4", deleting=True)])
    assert view(subsets) == [{"ready": ["10.0.0.1", "10.0.0.3", "10.0.0.4"],
                              "not_ready": [], "ports": [("", 8080)]}]


def test_finished_deleting_and_address_less_pods_and_other_labels_are_left_out() -> None:
    subsets = endpoint_subsets(service(), [
        pod("ok", "10.0.0.1"),
        pod("done", "10.0.0.2", phase="Succeeded"),
        pod("failed", "10.0.0.3", phase="Failed", ready=False),
        pod("going", "10.0.0.4", deleting=True),
        pod("no-ip"),
        pod("other", "10.0.0.5", labels={"app": "db"}),
    ])
    assert view(subsets) == [{"ready": ["10.0.0.1"], "not_ready": [], "ports": [("", 8080)]}]


def test_no_pods_no_subsets() -> None:
    assert endpoint_subsets(service(), []) == []


def test_a_named_port_with_different_numbers_per_pod_makes_separate_subsets() -> None:
    svc = service(ports=[("http", 80, "web")])
    subsets = endpoint_subsets(svc, [
        pod("a", "10.0.0.1", ports={"web": 8080}),
        pod("b", "10.0.0.2", ports={"web": 9090}),
        pod("c", "10.0.0.3", ports={"web": 8080}),
        pod("d", "10.0.0.4", ports={"other": 7070}),  # has no such port: left out
    ])
    assert sorted(map(str, view(subsets))) == sorted(map(str, [
        {"ready": ["10.0.0.1", "10.0.0.3"], "not_ready": [], "ports": [("http", 8080)]},
        {"ready": ["10.0.0.2"], "not_ready": [], "ports": [("http", 9090)]},
    ]))


def test_a_named_port_needs_the_same_protocol() -> None:
    svc = service(ports=[("dns", 53, "dns")])
    svc.spec.ports[0].protocol = "UDP"
    p = pod("a", "10.0.0.1", ports={"dns": 5353})  # a TCP port of that name
    assert endpoint_subsets(svc, [p]) == []
    p.spec.containers[0].ports[0].protocol = "UDP"
    assert view(endpoint_subsets(svc, [p]))[0]["ports"] == [("dns", 5353)]


def test_several_ports_repacked_by_what_each_pod_serves() -> None:
    # Kubernetes' RepackSubsets: one subset per set of addresses serving the same ports.
    svc = service(ports=[("http", 80, "http"), ("metrics", 9100, 9100)])
    subsets = endpoint_subsets(svc, [
        pod("a", "10.0.0.1", ports={"http": 8080}),
        pod("b", "10.0.0.2", ports={"http": 8080}, ready=False),
        pod("c", "10.0.0.3"),  # no http port: only metrics
    ])
    assert sorted(map(str, view(subsets))) == sorted(map(str, [
        {"ready": ["10.0.0.1"], "not_ready": ["10.0.0.2"], "ports": [("http", 8080)]},
        {"ready": ["10.0.0.1", "10.0.0.3"], "not_ready": ["10.0.0.2"],
         "ports": [("metrics", 9100)]},
    ]))


def test_an_unset_target_port_is_the_service_port() -> None:
    svc = service(ports=[("", 80, 0)])
    assert view(endpoint_subsets(svc, [pod("a", "10.0.0.1")]))[0]["ports"] == [("", 80)]


def test_hostname_only_when_the_subdomain_is_the_service() -> None:
    subsets = endpoint_subsets(service("web"), [
        pod("a", "10.0.0.1", hostname="alpha", subdomain="web"),
        pod("b", "10.0.0.2", hostname="beta", subdomain="other"),
    ])
    assert [(a.ip, a.hostname) for a in subsets[0].addresses] == [
        ("10.0.0.1", "alpha"), ("10.0.0.2", "")]


def test_a_headless_service_without_ports_lists_addresses_only() -> None:
    svc = service(cluster_ip="None", ports=[])
    assert view(endpoint_subsets(svc, [pod("a", "10.0.0.1")])) == [
        {"ready": ["10.0.0.1"], "not_ready": [], "ports": []}]
    assert endpoint_subsets(service(ports=[]), [pod("a", "10.0.0.1")]) == []


# ---- sync over caches


class FakeApi:
    def __init__(self) -> None:
        self.writes: list[tuple[str, Message | str]] = []
        self.fail_with: Exception | None = None

    async def create(self, obj: Message) -> Message:
        if self.fail_with:
            raise self.fail_with
        self.writes.append(("create", obj))
        return obj

    async def update(self, obj: Message) -> Message:
        self.writes.append(("update", obj))
        return obj

    async def delete(self, kind: Any, name: str, namespace: str = "", **_: Any) -> Message:
        self.writes.append(("delete", f"{namespace}/{name}"))
        return core_pb2.Endpoints()


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=100.0)


@pytest.fixture
def ctrl(api: FakeApi, clock: FakeClock) -> EndpointsController:
    ctx = ControllerContext(api, SharedInformerFactory(api), clock)  # type: ignore[arg-type]
    return EndpointsController(ctx, batch_period=1.0)


def cache(ctrl: EndpointsController, *objects: Message) -> None:
    for obj in objects:
        informer = {core_pb2.Service: ctrl.services, core_pb2.Pod: ctrl.pods,
                    core_pb2.Endpoints: ctrl.endpoints}[type(obj)]
        informer.store._put(object_key(obj), obj)  # type: ignore[attr-defined]


async def test_creates_then_writes_only_on_change(ctrl: EndpointsController,
                                                 api: FakeApi) -> None:
    svc = service(labels={"team": "a"})
    cache(ctrl, svc, pod("a", "10.0.0.1"))
    ctrl._service_changed(svc)
    await ctrl.sync(f"{NS}/web")
    assert [w[0] for w in api.writes] == ["create"]
    created = api.writes[0][1]
    assert isinstance(created, core_pb2.Endpoints)
    assert dict(created.metadata.labels) == {"team": "a"}
    assert created.metadata.annotations[TRIGGER_TIME_ANNOTATION].endswith("Z")
    # The apiserver has it now; the same pods again: no write.
    cache(ctrl, created)
    await ctrl.sync(f"{NS}/web")
    assert len(api.writes) == 1
    # A readiness flip moves the address.
    cache(ctrl, pod("a", "10.0.0.1", ready=False))
    await ctrl.sync(f"{NS}/web")
    assert api.writes[-1][0] == "update"
    updated = api.writes[-1][1]
    assert isinstance(updated, core_pb2.Endpoints)
    assert view(list(updated.subsets)) == [
        {"ready": [], "not_ready": ["10.0.0.1"], "ports": [("", 8080)]}]


async def test_stored_endpoints_in_another_order_are_not_rewritten(
        ctrl: EndpointsController, api: FakeApi) -> None:
    svc = service(ports=[("a", 80, 8080), ("b", 81, 8081)])
    cache(ctrl, svc, pod("x", "10.0.0.1"), pod("y", "10.0.0.2"))
    stored = core_pb2.Endpoints()
    stored.metadata.name, stored.metadata.namespace = "web", NS
    stored.subsets.extend(endpoint_subsets(svc, ctrl.pods.store.list()))
    stored.subsets[0].addresses.reverse()
    stored.subsets[0].ports.reverse()
    cache(ctrl, stored)
    await ctrl.sync(f"{NS}/web")
    assert api.writes == []


async def test_a_service_without_selector_is_left_to_its_user(ctrl: EndpointsController,
                                                             api: FakeApi) -> None:
    svc = service(selector={})
    user = core_pb2.Endpoints()
    user.metadata.name, user.metadata.namespace = "web", NS
    user.subsets.add().addresses.add(ip="192.0.2.1")
    cache(ctrl, svc, user, pod("a", "10.0.0.1"))
    await ctrl.sync(f"{NS}/web")
    assert api.writes == []


async def test_a_deleted_service_loses_its_endpoints(ctrl: EndpointsController,
                                                    api: FakeApi) -> None:
    stale = core_pb2.Endpoints()
    stale.metadata.name, stale.metadata.namespace = "web", NS
    cache(ctrl, stale)
    await ctrl.sync(f"{NS}/web")
    assert api.writes == [("delete", f"{NS}/web")]


async def test_headless_label(ctrl: EndpointsController, api: FakeApi) -> None:
    cache(ctrl, service(cluster_ip="None"), pod("a", "10.0.0.1"))
    await ctrl.sync(f"{NS}/web")
    created = api.writes[0][1]
    assert isinstance(created, core_pb2.Endpoints)
    assert created.metadata.labels[HEADLESS_LABEL] == ""


async def test_a_failed_write_is_retried_by_raising(ctrl: EndpointsController,
                                                   api: FakeApi) -> None:
    cache(ctrl, service(), pod("a", "10.0.0.1"))
    api.fail_with = errors.AlreadyExists("endpoints web exists")
    with pytest.raises(errors.AlreadyExists):
        await ctrl.sync(f"{NS}/web")


async def test_pod_changes_within_a_batch_period_wait_for_its_end(
        ctrl: EndpointsController, clock: FakeClock) -> None:
    svc = service()
    cache(ctrl, svc)
    p = pod("a", "10.0.0.1")
    ctrl._pod_changed(p)  # never synced: at once
    assert ctrl.queue.len() == 1
    key = await ctrl.queue.get()
    await ctrl.sync(key)
    ctrl.queue.done(key)
    await clock.advance(0.25)
    for i in range(50):  # a burst: one sync when the period is over
        ctrl._pod_changed(pod(f"p{i}", f"10.0.1.{i}"))
    assert ctrl.queue.len() == 0
    await clock.advance(0.74)
    assert ctrl.queue.len() == 0
    await clock.advance(0.02)
    assert ctrl.queue.len() == 1
    ctrl.queue.shutdown()


async def test_pod_updates_that_do_not_matter_enqueue_nothing(
        ctrl: EndpointsController) -> None:
    cache(ctrl, service())
    old = pod("a", "10.0.0.1")
    new = pod("a", "10.0.0.1")
    new.status.container_statuses.add(name="c", restart_count=1)
    ctrl._pod_updated(old, new)
    assert ctrl.queue.len() == 0
    ctrl._pod_updated(old, pod("a", "10.0.0.1", ready=False))
    assert ctrl.queue.len() == 1
    ctrl.queue.shutdown()


def test_the_batch_period_flag_and_registration() -> None:
    assert CONTROLLERS["endpoint"] == (EndpointsController,)
    assert component_config(parse_args([])).endpoint_updates_batch_period == 0.5
    for text, seconds in [("2", 2.0), ("500ms", 0.5), ("1s", 1.0), ("0", 0.0)]:
        config = component_config(parse_args(["--endpoint-updates-batch-period", text]))
        assert config.endpoint_updates_batch_period == seconds


async def test_at_start_endpoints_without_a_service_are_looked_at(
        ctrl: EndpointsController) -> None:
    orphan = core_pb2.Endpoints()
    orphan.metadata.name, orphan.metadata.namespace = "gone", NS
    cache(ctrl, orphan)
    for informer in ctrl.informers:
        informer._synced.set()
    await ctrl.wait_for_sync()
    assert await ctrl.queue.get() == f"{NS}/gone"
    ctrl.queue.shutdown()


def test_an_address_from_pod_ips_when_pod_ip_is_unset() -> None:
    p = pod("a")
    p.status.pod_ips.add(ip="10.0.0.9")
    assert view(endpoint_subsets(service(), [p]))[0]["ready"] == ["10.0.0.9"]
