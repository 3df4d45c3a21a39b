"""CRUD, defaults, validation and optimistic concurrency through the real apiserver."""

from __future__ import annotations

import asyncio
import copy

import pytest
import yaml
from fixtures.examples import example, project_documents

from skiff.api import convert, kinds
from skiff.api.status import CauseType
from skiff.api.v1 import apps_pb2, batch_pb2, coordination_pb2, core_pb2
from skiff.client import errors
from skiff.client.client import Client


def pod(name: str, ns: str, **labels: str) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name, p.metadata.namespace = name, ns
    p.metadata.labels.update(labels)
    p.spec.containers.add(name="app", image="busybox:1.36")
    return p


def manifest(path: str, index: int = 0) -> dict:
    return [d for d in yaml.safe_load_all(example(path).read_text()) if d][index]


# One manifest of every kind the examples have, plus the kinds they lack, built here.
KIND_MANIFESTS = [
    "pods/simple-pod.yaml", "controllers/nginx-deployment.yaml", "controllers/frontend.yaml",
    "controllers/fluentd-daemonset.yaml", "controllers/job.yaml",
    "service/simple-service.yaml", "configmap/configmap-multikeys.yaml",
    "pods/inject/secret.yaml",
]


@pytest.mark.parametrize("path", KIND_MANIFESTS)
async def test_crud_of_example_manifests(client: Client, ns: str, path: str) -> None:
    await crud(client, ns, manifest(path))


@pytest.mark.parametrize("doc", project_documents())
async def test_crud_of_the_projects_examples(client: Client, ns: str, doc: dict) -> None:
    await crud(client, ns, copy.deepcopy(doc))


async def crud(client: Client, ns: str, data: dict) -> None:
    """Create, get, list, update and delete one manifest's object, in `ns` (a cluster-scoped
    one under a name of its own)."""
    namespaced = kinds.for_manifest(data["apiVersion"], data["kind"]).namespaced
    if namespaced:
        data["metadata"]["namespace"] = ns
    else:
        data["metadata"]["name"] = f"{ns}-{data['metadata']['name']}"
        ns = ""
    created, warnings = await client.create_manifest(data)
    assert warnings == []
    meta = created.metadata  # type: ignore[attr-defined]
    assert meta.uid and meta.resource_version and meta.creation_timestamp.seconds
    kind = type(created)
    got = await client.get(kind, meta.name, ns)
    assert got == created
    items, _ = await client.list(kind, ns)
    names = [i.metadata.name for i in items]  # type: ignore[attr-defined]
    assert names == [meta.name] if namespaced else meta.name in names
    got.metadata.labels["touched"] = "yes"  # type: ignore[attr-defined]
    updated = await client.update(got)
    assert int(updated.metadata.resource_version) > int(meta.resource_version)  # type: ignore[attr-defined]
    await client.delete(kind, meta.name, ns)
    if namespaced:
        with pytest.raises(errors.NotFound, match=f'"{meta.name}" not found'):
            await client.get(kind, meta.name, ns)


async def test_crud_of_kinds_without_examples(client: Client, ns: str) -> None:
    node = core_pb2.Node()
    node.metadata.name = f"node-{ns}"
    node.status.capacity["cpu"].value = "2"
    created = await client.create(node)
    assert created.metadata.namespace == ""
    assert created.status.capacity["cpu"].value == "2"  # node status is the kubelet's to set
    await client.delete(core_pb2.Node, node.metadata.name)

    lease = coordination_pb2.Lease()
    lease.metadata.name, lease.metadata.namespace = "holder", ns
    lease.spec.holder_identity = "me"
    assert (await client.create(lease)).spec.holder_identity == "me"

    ep = core_pb2.Endpoints()
    ep.metadata.name, ep.metadata.namespace = "svc", ns
    ep.subsets.add().addresses.add(ip="10.1.0.5")
    assert (await client.create(ep)).subsets[0].addresses[0].ip == "10.1.0.5"

    cj = batch_pb2.CronJob()
    cj.metadata.name, cj.metadata.namespace = "tick", ns
    cj.spec.schedule = "*/5 * * * *"
    tmpl = cj.spec.job_template.spec.template
    tmpl.spec.restart_policy = "OnFailure"
    tmpl.spec.containers.add(name="c", image="busybox")
    created_cj = await client.create(cj)
    assert created_cj.spec.concurrency_policy == "Allow"
    assert created_cj.spec.successful_jobs_history_limit == 3
    assert created_cj.spec.failed_jobs_history_limit == 1


async def test_defaults_are_kubernetes_defaults(client: Client, ns: str) -> None:
    data = manifest("controllers/nginx-deployment.yaml")
    data["metadata"]["namespace"] = ns
    del data["spec"]["replicas"]
    d, _ = await client.create_manifest(data)
    assert isinstance(d, apps_pb2.Deployment)
    assert d.spec.replicas == 1
    assert d.spec.strategy.type == "RollingUpdate"
    assert d.spec.strategy.rolling_update.max_surge.str_val == "25%"
    assert d.spec.strategy.rolling_update.max_unavailable.str_val == "25%"
    assert d.spec.revision_history_limit == 10
    assert d.spec.progress_deadline_seconds == 600
    spec = d.spec.template.spec
    assert spec.restart_policy == "Always"
    assert spec.termination_grace_period_seconds == 30
    assert spec.containers[0].image_pull_policy == "IfNotPresent"  # nginx:1.14.2

    p = pod("latest", ns)
    p.spec.containers[0].image = "busybox"
    created = await client.create(p)
    assert created.spec.containers[0].image_pull_policy == "Always"
    assert created.status.phase == "Pending"

    job = batch_pb2.Job()
    job.metadata.name, job.metadata.namespace = "j", ns
    job.spec.template.spec.restart_policy = "Never"
    job.spec.template.spec.containers.add(name="c", image="busybox:1")
    j = await client.create(job)
    assert (j.spec.backoff_limit, j.spec.completions, j.spec.parallelism) == (6, 1, 1)

    svc = core_pb2.Service()
    svc.metadata.name, svc.metadata.namespace = "web", ns
    svc.spec.selector["app"] = "web"
    svc.spec.ports.add(port=80)
    s = await client.create(svc)
    assert s.spec.type == "ClusterIP"
    assert s.spec.ports[0].target_port.int_val == 80
    assert s.spec.cluster_ip.startswith("10.")


async def test_generate_name_and_generation(client: Client, ns: str) -> None:
    data = manifest("controllers/nginx-deployment.yaml")
    data["metadata"] = {"generateName": "web-", "namespace": ns}
    d, _ = await client.create_manifest(data)
    assert d.metadata.name.startswith("web-") and len(d.metadata.name) == 9  # type: ignore[attr-defined]
    assert d.metadata.generation == 1  # type: ignore[attr-defined]
    d.metadata.labels["x"] = "y"  # type: ignore[attr-defined]
    d = await client.update(d)
    assert d.metadata.generation == 1  # metadata only: no bump  # type: ignore[attr-defined]
    d.spec.replicas = 5  # type: ignore[attr-defined]
    d = await client.update(d)
    assert d.metadata.generation == 2  # type: ignore[attr-defined]
    d.status.replicas = 5  # type: ignore[attr-defined]
    d = await client.update_status(d)
    assert d.metadata.generation == 2  # type: ignore[attr-defined]
    assert d.status.replicas == 5  # type: ignore[attr-defined]


async def test_update_cannot_change_status_nor_status_update_spec(client: Client, ns: str
                                                                  ) -> None:
    created = await client.create(pod("p", ns))
    changed = copy.deepcopy(created)
    changed.status.phase = "Running"
    after = await client.update(changed)
    assert after.status.phase == "Pending"
    changed = copy.deepcopy(after)
    changed.spec.containers[0].image = "busybox:2"
    changed.status.phase = "Running"
    after = await client.update_status(changed)
    assert after.status.phase == "Running"
    assert after.spec.containers[0].image == "busybox:1.36"


async def test_noop_update_keeps_the_version(client: Client, ns: str) -> None:
    created = await client.create(pod("same", ns))
    again = await client.update(created)
    assert again.metadata.resource_version == created.metadata.resource_version


async def test_stale_update_is_a_conflict(client: Client, ns: str) -> None:
    created = await client.create(pod("race", ns))
    first, second = copy.deepcopy(created), copy.deepcopy(created)
    first.metadata.labels["by"] = "first"
    second.metadata.labels["by"] = "second"
    await client.update(first)
    with pytest.raises(errors.Conflict, match="the object has been modified"):
        await client.update(second)
    assert (await client.get(core_pb2.Pod, "race", ns)).metadata.labels["by"] == "first"


async def test_two_clients_race_from_one_version(apiserver, ns: str) -> None:  # type: ignore[no-untyped-def]
    a, b = apiserver.client(), apiserver.client()
    try:
        created = await a.create(pod("both", ns))
        results = await asyncio.gather(
            *(c.update(_labelled(created, who)) for c, who in ((a, "a"), (b, "b"))),
            return_exceptions=True)
        assert sum(isinstance(r, errors.Conflict) for r in results) == 1
        assert sum(isinstance(r, core_pb2.Pod) for r in results) == 1
    finally:
        await a.close()
        await b.close()


def _labelled(p: core_pb2.Pod, who: str) -> core_pb2.Pod:
    out = copy.deepcopy(p)
    out.metadata.labels["who"] = who
    return out


async def test_200_concurrent_writers_lose_no_update(apiserver, ns: str) -> None:  # type: ignore[no-untyped-def]
    """Each writer adds its own annotation with read-modify-write and retries on
    conflict; at the end every one of the 200 annotations is there."""
    clients = [apiserver.client() for _ in range(8)]
    cm = core_pb2.ConfigMap()
    cm.metadata.name, cm.metadata.namespace = "counter", ns
    await clients[0].create(cm)

    async def writer(i: int) -> None:
        c = clients[i % len(clients)]
        while True:
            current = await c.get(core_pb2.ConfigMap, "counter", ns)
            current.data[f"w{i}"] = str(i)
            try:
                await c.update(current)
                return
            except errors.Conflict:
                continue

    try:
        await asyncio.wait_for(asyncio.gather(*(writer(i) for i in range(200))), 120)
        final = await clients[0].get(core_pb2.ConfigMap, "counter", ns)
        assert len(final.data) == 200
    finally:
        for c in clients:
            await c.close()


async def test_bad_input_is_refused_with_the_field_named_and_nothing_stored(
        client: Client, ns: str) -> None:
    bad_name = pod("Web", ns)
    with pytest.raises(errors.Invalid, match=r'metadata.name: Invalid value: "Web"'):
        await client.create(bad_name)

    secret = core_pb2.Secret()
    secret.metadata.name, secret.metadata.namespace = "huge", ns
    secret.data["blob"] = b"x" * (2 * 1024 * 1024)
    with pytest.raises(errors.Invalid, match="data: Too long"):
        await client.create(secret)

    wrong_type = {"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "typed", "namespace": ns},
                  "spec": {"containers": [{"name": "c", "image": "i",
                                           "ports": [{"containerPort": "eighty"}]}]}}
    with pytest.raises(errors.Invalid,
                       match=r"spec.containers\[0\].ports\[0\].containerPort: expected an int"):
        await client.create_manifest(wrong_type)

    with pytest.raises(errors.Invalid, match='no matches for kind "Gadget"'):
        await client.create_manifest({"apiVersion": "v1", "kind": "Gadget",
                                      "metadata": {"name": "g"}})

    bad_replicas = manifest("controllers/nginx-deployment.yaml")
    bad_replicas["metadata"]["namespace"] = ns
    bad_replicas["spec"]["replicas"] = -1
    with pytest.raises(errors.Invalid, match=r"spec.replicas: Invalid value: -1"):
        await client.create_manifest(bad_replicas)

    for kind, name in ((core_pb2.Pod, "Web"), (core_pb2.Secret, "huge"),
                       (core_pb2.Pod, "typed"), (apps_pb2.Deployment, "nginx-deployment")):
        with pytest.raises(errors.NotFound):
            await client.get(kind, name, ns)


async def test_unsupported_fields_are_warnings(client: Client, ns: str) -> None:
    data = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "warn", "namespace": ns},
            "spec": {"serviceAccountName": "robot",
                     "containers": [{"name": "c", "image": "busybox:1", "resizePolicy": []}]}}
    created, warnings = await client.create_manifest(data)
    assert created.metadata.name == "warn"  # type: ignore[attr-defined]
    assert any("spec.serviceAccountName" in w for w in warnings)
    assert any("spec.containers[0].resizePolicy" in w for w in warnings)


async def test_missing_namespace_is_refused(client: Client) -> None:
    with pytest.raises(errors.NotFound, match='namespaces "nowhere" not found'):
        await client.create(pod("p", "nowhere"))


async def test_builtin_namespaces_exist_and_are_protected(client: Client) -> None:
    for name in ("default", "kube-system"):
        assert (await client.get(core_pb2.Namespace, name)).status.phase == "Active"
    with pytest.raises(errors.Forbidden):
        await client.delete(core_pb2.Namespace, "default")


async def test_selectors_on_list(client: Client, ns: str) -> None:
    await client.create(pod("a", ns, app="web", tier="front"))
    await client.create(pod("b", ns, app="web", tier="back"))
    await client.create(pod("c", ns, app="db"))
    unscheduled = pod("d", ns)
    unscheduled.spec.node_name = "n1"
    await client.create(unscheduled)

    async def names(labels: str = "", fields: str = "") -> list[str]:
        items, _ = await client.list(core_pb2.Pod, ns, label_selector=labels,
                                     field_selector=fields)
        return sorted(i.metadata.name for i in items)

    assert await names("app=web") == ["a", "b"]
    assert await names("app==web,tier!=back") == ["a"]
    assert await names("app in (web,db),tier notin (front)") == ["b", "c"]
    assert await names("tier") == ["a", "b"]
    assert await names("!app") == ["d"]
    assert await names(fields="spec.nodeName=n1") == ["d"]
    assert await names(fields="metadata.name!=a,status.phase=Pending") == ["b", "c", "d"]
    with pytest.raises(errors.Invalid, match="field label not supported: spec.bogus"):
        await names(fields="spec.bogus=x")
    with pytest.raises(errors.Invalid):
        await names("app in (web")


async def test_bind_sets_the_node_once(client: Client, ns: str) -> None:
    created = await client.create(pod("b", ns))
    bound = await client.bind(ns, "b", "node-1", uid=created.metadata.uid)
    assert bound.spec.node_name == "node-1"  # type: ignore[attr-defined]
    cond = {c.type: c.status for c in bound.status.conditions}  # type: ignore[attr-defined]
    assert cond["PodScheduled"] == "True"
    with pytest.raises(errors.FailedPrecondition, match='already assigned to node "node-1"'):
        await client.bind(ns, "b", "node-2")


async def test_pod_graceful_deletion(client: Client, ns: str) -> None:
    await client.create(pod("never-scheduled", ns))
    await client.delete(core_pb2.Pod, "never-scheduled", ns)
    with pytest.raises(errors.NotFound):
        await client.get(core_pb2.Pod, "never-scheduled", ns)

    await client.create(pod("running", ns))
    await client.bind(ns, "running", "node-1")
    marked = await client.delete(core_pb2.Pod, "running", ns)
    assert marked.metadata.HasField("deletion_timestamp")  # type: ignore[attr-defined]
    assert marked.metadata.deletion_grace_period_seconds == 30  # type: ignore[attr-defined]
    still = await client.get(core_pb2.Pod, "running", ns)
    assert still.metadata.HasField("deletion_timestamp")
    # The kubelet confirms with a zero grace period once the containers are gone.
    await client.delete(core_pb2.Pod, "running", ns, grace_period=0)
    with pytest.raises(errors.NotFound):
        await client.get(core_pb2.Pod, "running", ns)


async def test_finalizers_hold_deletion_until_removed(client: Client, ns: str) -> None:
    cm = core_pb2.ConfigMap()
    cm.metadata.name, cm.metadata.namespace = "held", ns
    cm.metadata.finalizers.append("example.com/hold")
    await client.create(cm)
    marked = await client.delete(core_pb2.ConfigMap, "held", ns)
    assert marked.metadata.HasField("deletion_timestamp")  # type: ignore[attr-defined]
    current = await client.get(core_pb2.ConfigMap, "held", ns)
    del current.metadata.finalizers[:]
    await client.update(current)
    with pytest.raises(errors.NotFound):
        await client.get(core_pb2.ConfigMap, "held", ns)


async def test_owner_references_are_stored(client: Client, ns: str) -> None:
    p = pod("owned", ns)
    p.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet", name="rs",
                                    uid="1234", controller=True)
    created = await client.create(p)
    assert created.metadata.owner_references[0].controller is True


async def test_namespace_deletion_removes_its_content(client: Client) -> None:
    ns = core_pb2.Namespace()
    ns.metadata.name = "doomed"
    await client.create(ns)
    await client.create(pod("p1", "doomed"))
    cm = core_pb2.ConfigMap()
    cm.metadata.name, cm.metadata.namespace = "cfg", "doomed"
    await client.create(cm)
    marked = await client.delete(core_pb2.Namespace, "doomed")
    assert marked.status.phase == "Terminating"  # type: ignore[attr-defined]
    with pytest.raises(errors.Forbidden, match="being terminated") as refused:
        await client.create(pod("late", "doomed"))
    assert refused.value.has_cause(CauseType.NAMESPACE_TERMINATING)
    for _ in range(100):
        try:
            await client.get(core_pb2.Namespace, "doomed")
        except errors.NotFound:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("namespace was not removed")
    assert (await client.list(core_pb2.Pod, "doomed"))[0] == []
    assert (await client.list(core_pb2.ConfigMap, "doomed"))[0] == []


async def test_cluster_ips_are_unique_and_kept_on_update(client: Client, ns: str) -> None:
    async def make(i: int) -> core_pb2.Service:
        svc = core_pb2.Service()
        svc.metadata.name, svc.metadata.namespace = f"s{i}", ns
        svc.spec.ports.add(port=80)
        return await client.create(svc)

    services = await asyncio.gather(*(make(i) for i in range(30)))
    ips = {s.spec.cluster_ip for s in services}
    assert len(ips) == 30
    data = convert.to_dict(services[0])
    del data["spec"]["clusterIP"], data["spec"]["clusterIPs"]
    updated, _ = await client.update_manifest(data)
    assert updated.spec.cluster_ip == services[0].spec.cluster_ip  # type: ignore[attr-defined]
    taken = core_pb2.Service()
    taken.metadata.name, taken.metadata.namespace = "dup", ns
    taken.spec.cluster_ip = services[1].spec.cluster_ip
    taken.spec.ports.add(port=80)
    with pytest.raises(errors.Invalid, match="provided IP is already allocated"):
        await client.create(taken)


async def test_token_auth(apiserver_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    server = apiserver_factory(extra_args=("--token-file", str(token), "--log-level", "DEBUG"))
    anonymous = Client(server.address)
    wrong = Client(server.address, token="s3cret2")
    allowed = Client(server.address, token="s3cret")
    try:
        with pytest.raises(errors.Unauthenticated):
            await anonymous.get(core_pb2.Namespace, "default")
        with pytest.raises(errors.Unauthenticated, match="missing or wrong token"):
            await wrong.get(core_pb2.Namespace, "default")
        with pytest.raises(errors.Unauthenticated):
            async for _ in wrong.watch(core_pb2.Namespace):
                pass
        assert (await allowed.get(core_pb2.Namespace, "default")).metadata.name == "default"
        # The identity reaches the handlers (logged at debug), and every verb still works.
        ns = core_pb2.Namespace()
        ns.metadata.name = "authenticated"
        await allowed.create(ns)
        names = [n.metadata.name for n in (await allowed.list(core_pb2.Namespace))[0]]
        assert "authenticated" in names
        assert "admin (system:masters, system:authenticated): create Namespace /authenticated" \
            in server.log()
    finally:
        await anonymous.close()
        await wrong.close()
        await allowed.close()


async def test_a_new_apiserver_loads_a_large_registry(apiserver_factory) -> None:  # type: ignore[no-untyped-def]
    """More objects than one etcd page (and than gRPC's default 4 MiB message) load
    into a newly started apiserver's cache."""
    first = apiserver_factory()
    writer = first.client()
    try:
        big = "x" * 2000

        async def make(i: int) -> None:
            cm = core_pb2.ConfigMap()
            cm.metadata.name, cm.metadata.namespace = f"cm-{i}", "default"
            cm.data["blob"] = big
            await writer.create(cm)

        for start in range(0, 2600, 100):
            await asyncio.gather(*(make(i) for i in range(start, start + 100)))
        second = apiserver_factory(first.etcd_endpoint)
        reader = second.client()
        try:
            items, _ = await reader.list(core_pb2.ConfigMap, "default")
            assert len(items) == 2600
        finally:
            await reader.close()
    finally:
        await writer.close()
