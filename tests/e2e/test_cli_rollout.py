"""`skiff scale`, `rollout status|history|undo|pause|resume|restart` and `set image` as a
user runs them: the real CLI in a subprocess against a real apiserver. No controllers
run: the tests write the ReplicaSets of a deployment's history and the statuses a
controller would write, and check what the CLI prints and changes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
from fixtures.cli import Cli, Running, create, get
from google.protobuf.message import Message

from skiff.api.v1 import apps_pb2, batch_pb2, core_pb2, meta_pb2
from skiff.client.client import Client

REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"


def write_status(address: str, kind: type[Message], name: str, ns: str, **fields: Any) -> None:
    """What a controller would write: status fields (and conditions as (type, reason))."""
    async def body() -> None:
        async with Client(address) as client:
            obj: Any = await client.get(kind, name, ns)
            conditions = fields.pop("conditions", ())
            obj.status.Clear()
            for key, value in fields.items():
                setattr(obj.status, key, value)
            for type_, reason in conditions:
                obj.status.conditions.add(type=type_, status="True", reason=reason)
            await client.update_status(obj)
    asyncio.run(body())


@pytest.fixture
def ns(apiserver: Any) -> str:
    namespace = core_pb2.Namespace()
    namespace.metadata.name = f"ro-{uuid.uuid4().hex[:8]}"
    create(apiserver.address, namespace)
    return namespace.metadata.name


def template(image: str, *, hash_: str = "") -> core_pb2.PodTemplateSpec:
    t = core_pb2.PodTemplateSpec()
    t.metadata.labels["app"] = "web"
    if hash_:
        t.metadata.labels["pod-template-hash"] = hash_
    t.spec.containers.add(name="app", image=image, command=["sleep", "3600"])
    return t


def deployment(ns: str, image: str, *, name: str = "web", replicas: int = 3,
               annotations: dict[str, str] | None = None) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment()
    d.metadata.name, d.metadata.namespace = name, ns
    d.metadata.annotations.update(annotations or {})
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = "web"
    d.spec.template.CopyFrom(template(image))
    return d


def replica_set(owner: apps_pb2.Deployment, revision: int, image: str,
                change_cause: str = "") -> apps_pb2.ReplicaSet:
    rs = apps_pb2.ReplicaSet()
    hash_ = f"h{revision}{uuid.uuid4().hex[:4]}"
    rs.metadata.name = f"{owner.metadata.name}-{hash_}"
    rs.metadata.namespace = owner.metadata.namespace
    rs.metadata.annotations[REVISION] = str(revision)
    if change_cause:
        rs.metadata.annotations[CHANGE_CAUSE] = change_cause
    rs.metadata.owner_references.append(meta_pb2.OwnerReference(
        api_version="apps/v1", kind="Deployment", name=owner.metadata.name,
        uid=owner.metadata.uid, controller=True, block_owner_deletion=True))
    rs.spec.replicas = 0
    rs.spec.selector.match_labels.update({"app": "web", "pod-template-hash": hash_})
    rs.spec.template.CopyFrom(template(image, hash_=hash_))
    return rs


def with_history(address: str, ns: str) -> apps_pb2.Deployment:
    """A deployment at revision 3 (web:3), with the ReplicaSets of revisions 1 to 3, and
    a ReplicaSet of another deployment that is no part of its history."""
    (d,) = create(address, deployment(ns, "web:3", annotations={
        REVISION: "3", CHANGE_CAUSE: "skiff set image web=web:3"}))
    (other,) = create(address, deployment(ns, "other:1", name="other"))
    create(address,
           replica_set(d, 1, "web:1", "skiff create deployment web"),
           replica_set(d, 2, "web:2"),
           replica_set(d, 3, "web:3", "skiff set image web=web:3"),
           replica_set(other, 7, "other:1"))
    return d  # type: ignore[no-any-return]


# ---- scale ----


def test_scale_sets_replicas_with_kubectls_precondition(cli: Cli, apiserver: Any,
                                                        ns: str) -> None:
    create(apiserver.address, deployment(ns, "web:1", replicas=1))
    assert cli.ok("scale", "deployment", "web", "--replicas=3", "-n", ns) == (
        "deployment.apps/web scaled\n")
    assert get(apiserver.address, apps_pb2.Deployment, "web", ns).spec.replicas == 3

    err = cli.fails("scale", "deploy/web", "--replicas=5", "--current-replicas=2", "-n", ns)
    assert err == "error: Expected replicas to be 2, was 3\n"
    assert get(apiserver.address, apps_pb2.Deployment, "web", ns).spec.replicas == 3
    assert cli.ok("scale", "--current-replicas=3", "deploy/web", "--replicas=0", "-n", ns) == (
        "deployment.apps/web scaled\n")
    assert get(apiserver.address, apps_pb2.Deployment, "web", ns).spec.replicas == 0


def test_scale_a_replica_set_and_refuse_what_has_no_replicas(cli: Cli, apiserver: Any,
                                                             ns: str) -> None:
    (d,) = create(apiserver.address, deployment(ns, "web:1"))
    (rs,) = create(apiserver.address, replica_set(d, 1, "web:1"))
    assert cli.ok("scale", "rs", rs.metadata.name, "--replicas=2", "-n", ns) == (
        f"replicaset.apps/{rs.metadata.name} scaled\n")
    assert get(apiserver.address, apps_pb2.ReplicaSet, rs.metadata.name, ns).spec.replicas == 2
    assert "error: cannot scale pods" in cli.fails("scale", "pod", "x", "--replicas=1", "-n", ns)
    assert "COUNT must be greater than or equal to 0" in cli.fails(
        "scale", "deploy", "web", "--replicas=-1", "-n", ns)
    assert 'deployments.apps "nope" not found' in cli.fails(
        "scale", "deploy", "nope", "--replicas=1", "-n", ns)


# ---- history ----


def test_history_lists_the_revisions_of_the_deployments_own_replica_sets(
        cli: Cli, apiserver: Any, ns: str) -> None:
    with_history(apiserver.address, ns)
    assert cli.ok("rollout", "history", "deployment/web", "-n", ns) == (
        "deployment.apps/web \n"
        "REVISION  CHANGE-CAUSE\n"
        "1         skiff create deployment web\n"
        "2         <none>\n"
        "3         skiff set image web=web:3\n"
        "\n")


def test_history_of_one_revision_shows_its_pod_template(cli: Cli, apiserver: Any,
                                                        ns: str) -> None:
    with_history(apiserver.address, ns)
    out = cli.ok("rollout", "history", "deploy", "web", "--revision=1", "-n", ns)
    lines = out.splitlines()
    assert lines[0] == "deployment.apps/web with revision #1"
    assert lines[1] == "Pod Template:"
    assert lines[2].split()[:2] == ["Labels:", "app=web"]
    assert lines[3].strip().startswith("pod-template-hash=h1")
    assert lines[4].split() == ["Annotations:", "kubernetes.io/change-cause:", "skiff", "create",
                                "deployment", "web"]
    assert any(line.split() == ["Image:", "web:1"] for line in lines)
    assert cli.fails("rollout", "history", "deploy/web", "--revision=9", "-n", ns) == (
        "error: unable to find the specified revision\n")


def test_history_without_replica_sets_and_of_an_unsupported_kind(cli: Cli, apiserver: Any,
                                                                 ns: str) -> None:
    create(apiserver.address, deployment(ns, "web:1"))
    assert cli.ok("rollout", "history", "deploy/web", "-n", ns) == (
        "deployment.apps/web \nNo rollout history found.\n")
    assert cli.fails("rollout", "history", "pod/x", "-n", ns) == (
        'error: no history viewer has been implemented for "Pod"\n')


# ---- undo ----


def test_undo_goes_back_to_the_previous_revision_then_to_a_given_one(
        cli: Cli, apiserver: Any, ns: str) -> None:
    with_history(apiserver.address, ns)
    assert cli.ok("rollout", "undo", "deployment/web", "-n", ns) == (
        "deployment.apps/web rolled back\n")
    d = get(apiserver.address, apps_pb2.Deployment, "web", ns)
    assert d.spec.template.spec.containers[0].image == "web:2"
    assert dict(d.spec.template.metadata.labels) == {"app": "web"}  # no pod-template-hash
    # The history bookkeeping stays; the rest of the annotations are revision 2's (none).
    assert dict(d.metadata.annotations) == {REVISION: "3"}

    assert cli.ok("rollout", "undo", "deployment/web", "--to-revision=1", "-n", ns) == (
        "deployment.apps/web rolled back\n")
    d = get(apiserver.address, apps_pb2.Deployment, "web", ns)
    assert d.spec.template.spec.containers[0].image == "web:1"
    assert d.metadata.annotations[CHANGE_CAUSE] == "skiff create deployment web"

    assert cli.ok("rollout", "undo", "deployment/web", "--to-revision=1", "-n", ns) == (
        "deployment.apps/web skipped rollback (current template already matches revision 1)\n")


def test_undo_errors(cli: Cli, apiserver: Any, ns: str) -> None:
    with_history(apiserver.address, ns)
    assert cli.fails("rollout", "undo", "deploy/web", "--to-revision=9", "-n", ns) == (
        "error: unable to find specified revision 9 in history\n")
    cli.ok("rollout", "pause", "deploy/web", "-n", ns)
    assert "error: you cannot rollback a paused deployment; resume it first" in cli.fails(
        "rollout", "undo", "deploy/web", "-n", ns)
    d = get(apiserver.address, apps_pb2.Deployment, "web", ns)
    assert d.spec.template.spec.containers[0].image == "web:3"  # untouched
    (lonely,) = create(apiserver.address, deployment(ns, "x:1", name="lonely"))
    create(apiserver.address, replica_set(lonely, 1, "x:1"))
    assert cli.fails("rollout", "undo", "deploy/lonely", "-n", ns) == (
        'error: no rollout history found for deployment "lonely"\n')


# ---- pause, resume, restart ----


def test_pause_and_resume_with_kubectls_refusals(cli: Cli, apiserver: Any, ns: str) -> None:
    create(apiserver.address, deployment(ns, "web:1"))
    assert cli.ok("rollout", "pause", "deployment/web", "-n", ns) == "deployment.apps/web paused\n"
    assert get(apiserver.address, apps_pb2.Deployment, "web", ns).spec.paused
    assert cli.fails("rollout", "pause", "deployment/web", "-n", ns) == (
        'error: deployments.apps "web" is already paused\n')
    assert cli.ok("rollout", "resume", "deploy", "web", "-n", ns) == (
        "deployment.apps/web resumed\n")
    assert not get(apiserver.address, apps_pb2.Deployment, "web", ns).spec.paused
    assert cli.fails("rollout", "resume", "deployment/web", "-n", ns) == (
        'error: deployments.apps "web" is not paused\n')


def test_restart_stamps_the_pod_template(cli: Cli, apiserver: Any, ns: str) -> None:
    create(apiserver.address, deployment(ns, "web:1"))
    ds = apps_pb2.DaemonSet()
    ds.metadata.name, ds.metadata.namespace = "agent", ns
    ds.spec.selector.match_labels["app"] = "web"
    ds.spec.template.CopyFrom(template("agent:1"))
    create(apiserver.address, ds)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    assert cli.ok("rollout", "restart", "deployment/web", "daemonset/agent", "-n", ns) == (
        "deployment.apps/web restarted\ndaemonset.apps/agent restarted\n")
    for kind, name in ((apps_pb2.Deployment, "web"), (apps_pb2.DaemonSet, "agent")):
        obj = get(apiserver.address, kind, name, ns)
        stamp = obj.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]
        when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert when.tzinfo is not None
        assert before <= when <= dt.datetime.now(dt.UTC)
    cli.ok("rollout", "pause", "deployment/web", "-n", ns)
    assert cli.fails("rollout", "restart", "deployment/web", "-n", ns) == (
        "error: deployments.apps \"web\" can't restart paused deployment (run rollout resume "
        "first)\n")


# ---- set image ----


def test_set_image_updates_named_containers_of_templates_and_pods(
        cli: Cli, apiserver: Any, ns: str) -> None:
    create(apiserver.address, deployment(ns, "web:1"))
    assert cli.ok("set", "image", "deployment/web", "app=web:2", "-n", ns) == (
        "deployment.apps/web image updated\n")
    d = get(apiserver.address, apps_pb2.Deployment, "web", ns)
    assert d.spec.template.spec.containers[0].image == "web:2"
    # The same image again changes nothing and says nothing, as kubectl.
    assert cli.ok("set", "image", "deployment/web", "app=web:2", "-n", ns) == ""

    result = cli("set", "image", "deployment/web", "nope=x:1", "-n", ns)
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", 'error: unable to find container named "nope"\n')

    p = core_pb2.Pod()
    p.metadata.name, p.metadata.namespace = "two", ns
    p.spec.containers.add(name="a", image="a:1")
    p.spec.containers.add(name="b", image="b:1")
    create(apiserver.address, p)
    assert cli.ok("set", "image", "pod/two", "*=busybox:2", "-n", ns) == "pod/two image updated\n"
    live = get(apiserver.address, core_pb2.Pod, "two", ns)
    assert [c.image for c in live.spec.containers] == ["busybox:2", "busybox:2"]


def test_set_image_in_a_cron_jobs_job_template(cli: Cli, apiserver: Any, ns: str) -> None:
    cj = batch_pb2.CronJob()
    cj.metadata.name, cj.metadata.namespace = "nightly", ns
    cj.spec.schedule = "0 3 * * *"
    cj.spec.job_template.spec.template.spec.restart_policy = "OnFailure"
    cj.spec.job_template.spec.template.spec.containers.add(name="job", image="job:1")
    create(apiserver.address, cj)
    assert cli.ok("set", "image", "cronjob", "nightly", "job=job:2", "-n", ns) == (
        "cronjob.batch/nightly image updated\n")
    live = get(apiserver.address, batch_pb2.CronJob, "nightly", ns)
    assert live.spec.job_template.spec.template.spec.containers[0].image == "job:2"


# ---- status ----


def test_status_follows_the_rollout_until_it_is_done(cli: Cli, apiserver: Any, ns: str,
                                                     running: list[Running]) -> None:
    (d,) = create(apiserver.address, deployment(ns, "web:2"))
    r = cli.start("rollout", "status", "deployment/web", "-n", ns)
    running.append(r)
    waiting = 'Waiting for deployment "web" rollout to finish: '
    assert r.next_line() == "Waiting for deployment spec update to be observed..."
    steps: list[tuple[dict[str, Any], str]] = [
        (dict(replicas=1, updated_replicas=1),
         waiting + "1 out of 3 new replicas have been updated..."),
        (dict(replicas=4, updated_replicas=3, available_replicas=1),
         waiting + "1 old replicas are pending termination..."),
        (dict(replicas=3, updated_replicas=3, available_replicas=2),
         waiting + "2 of 3 updated replicas are available..."),
        (dict(replicas=3, updated_replicas=3, available_replicas=3, ready_replicas=3),
         'deployment "web" successfully rolled out'),
    ]
    for fields, expected in steps:
        write_status(apiserver.address, apps_pb2.Deployment, "web", ns,
                     observed_generation=d.metadata.generation, **fields)
        assert r.next_line() == expected
    code, err = r.wait()
    assert (code, err) == (0, "")


def test_status_fails_when_the_progress_deadline_is_exceeded(
        cli: Cli, apiserver: Any, ns: str, running: list[Running]) -> None:
    (d,) = create(apiserver.address, deployment(ns, "web:2"))
    write_status(apiserver.address, apps_pb2.Deployment, "web", ns,
                 observed_generation=d.metadata.generation, replicas=1, updated_replicas=1,
                 conditions=[("Progressing", "ReplicaSetUpdated")])
    r = cli.start("rollout", "status", "deployment/web", "-n", ns)
    running.append(r)
    assert r.next_line() == ('Waiting for deployment "web" rollout to finish: 1 out of 3 new '
                             "replicas have been updated...")
    write_status(apiserver.address, apps_pb2.Deployment, "web", ns,
                 observed_generation=d.metadata.generation, replicas=1, updated_replicas=1,
                 conditions=[("Progressing", "ProgressDeadlineExceeded")])
    code, err = r.wait()
    assert (code, err) == (1, 'error: deployment "web" exceeded its progress deadline\n')


def test_status_without_watch_and_with_a_timeout(cli: Cli, apiserver: Any, ns: str) -> None:
    create(apiserver.address, deployment(ns, "web:2"))
    assert cli.ok("rollout", "status", "deploy/web", "--watch=false", "-n", ns) == (
        "Waiting for deployment spec update to be observed...\n")
    result = cli("rollout", "status", "deploy/web", "--timeout=1s", "-n", ns)
    assert (result.returncode, result.stderr) == (
        1, "error: timed out waiting for the condition\n")
    assert result.stdout == "Waiting for deployment spec update to be observed...\n"
    assert cli.fails("rollout", "status", "pod/x", "-n", ns) == (
        "error: no status viewer has been implemented for Pod\n")


def test_status_of_a_daemon_set(cli: Cli, apiserver: Any, ns: str,
                                running: list[Running]) -> None:
    ds = apps_pb2.DaemonSet()
    ds.metadata.name, ds.metadata.namespace = "agent", ns
    ds.spec.selector.match_labels["app"] = "web"
    ds.spec.template.CopyFrom(template("agent:1"))
    (ds,) = create(apiserver.address, ds)
    gen = ds.metadata.generation
    write_status(apiserver.address, apps_pb2.DaemonSet, "agent", ns, observed_generation=gen,
                 desired_number_scheduled=3, updated_number_scheduled=1)
    r = cli.start("rollout", "status", "ds/agent", "-n", ns)
    running.append(r)
    waiting = 'Waiting for daemon set "agent" rollout to finish: '
    assert r.next_line() == waiting + "1 out of 3 new pods have been updated..."
    write_status(apiserver.address, apps_pb2.DaemonSet, "agent", ns, observed_generation=gen,
                 desired_number_scheduled=3, updated_number_scheduled=3, number_available=2)
    assert r.next_line() == waiting + "2 of 3 updated pods are available..."
    write_status(apiserver.address, apps_pb2.DaemonSet, "agent", ns, observed_generation=gen,
                 desired_number_scheduled=3, updated_number_scheduled=3, number_available=3)
    assert r.next_line() == 'daemon set "agent" successfully rolled out'
    assert r.wait() == (0, "")


def test_status_says_why_a_pod_of_the_deployment_does_not_start(cli: Cli, apiserver: Any,
                                                                 ns: str) -> None:
    (d,) = create(apiserver.address, deployment(ns, "web:2"))
    write_status(apiserver.address, apps_pb2.Deployment, "web", ns,
                 observed_generation=d.metadata.generation, replicas=1, updated_replicas=1)
    p = core_pb2.Pod()
    p.metadata.name, p.metadata.namespace = "web-1", ns
    p.metadata.labels["app"] = "web"
    p.spec.CopyFrom(template("web:2").spec)
    create(apiserver.address, p)

    async def crash() -> None:
        async with Client(apiserver.address) as client:
            live = await client.get(core_pb2.Pod, "web-1", ns)
            status = live.status.container_statuses.add(name="app", image="web:2")
            status.state.waiting.reason = "CrashLoopBackOff"
            status.state.waiting.message = "back-off 10s restarting failed container"
            await client.update_status(live)

    asyncio.run(crash())
    assert cli.ok("rollout", "status", "deploy/web", "--watch=false", "-n", ns) == (
        'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been '
        "updated... (Warning: CrashLoopBackOff - back-off 10s restarting failed container)\n")
