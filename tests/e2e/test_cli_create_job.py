"""`skiff create job` as a user runs it: the real CLI in a subprocess against a real
apiserver. `--from=cronjob/NAME` makes a manual run of a CronJob, as kubectl does."""

from __future__ import annotations

import subprocess
import uuid
from typing import Any

import pytest
import yaml
from fixtures.cli import Cli, call, create

from skiff.api import defaults
from skiff.api.v1 import batch_pb2, core_pb2
from skiff.client import errors


def skiff(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    return Cli(address)(*args)


def get_job(address: str, name: str, ns: str) -> batch_pb2.Job:
    return call(address, lambda c: c.get(batch_pb2.Job, name, ns))  # type: ignore[no-any-return]


@pytest.fixture
def ns(apiserver: Any) -> str:
    namespace = core_pb2.Namespace()
    namespace.metadata.name = f"cj-{uuid.uuid4().hex[:8]}"
    create(apiserver.address, namespace)
    return namespace.metadata.name


def nightly(ns: str) -> batch_pb2.CronJob:
    cj = batch_pb2.CronJob()
    cj.metadata.name, cj.metadata.namespace = "nightly", ns
    cj.spec.schedule = "0 3 * * *"
    template = cj.spec.job_template
    template.metadata.labels["team"] = "data"
    template.metadata.annotations["owner"] = "ops@example.com"
    template.spec.backoff_limit = 2
    template.spec.active_deadline_seconds = 600
    pod = template.spec.template
    pod.metadata.labels["tier"] = "batch"
    pod.spec.restart_policy = "OnFailure"
    pod.spec.containers.add(name="backup", image="busybox", command=["sh", "-c", "echo done"])
    return cj


def test_create_job_from_a_cronjob(apiserver: Any, ns: str) -> None:
    (cj,) = create(apiserver.address, nightly(ns))
    result = skiff(apiserver.address, "create", "job", "backup-now",
                   "--from=cronjob/nightly", "-n", ns)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "job.batch/backup-now created\n"

    job = get_job(apiserver.address, "backup-now", ns)
    assert dict(job.metadata.annotations) == {"cronjob.kubernetes.io/instantiate": "manual",
                                              "owner": "ops@example.com"}
    assert dict(job.metadata.labels) == {"team": "data"}
    [ref] = job.metadata.owner_references
    assert (ref.api_version, ref.kind, ref.name, ref.uid, ref.controller) == (
        "batch/v1", "CronJob", "nightly", cj.metadata.uid, True)
    assert not ref.block_owner_deletion
    assert (job.spec.backoff_limit, job.spec.active_deadline_seconds) == (2, 600)
    assert job.spec.template.spec.containers[0].command == ["sh", "-c", "echo done"]
    assert job.spec.template.spec.restart_policy == "OnFailure"
    # The apiserver gave it a selector of its own, as every Job.
    labels = job.spec.template.metadata.labels
    assert labels["tier"] == "batch"
    assert labels[defaults.CONTROLLER_UID_LABEL] == job.metadata.uid
    assert job.spec.selector.match_labels[defaults.CONTROLLER_UID_LABEL] == job.metadata.uid


def test_cronjob_short_names_and_outputs(apiserver: Any, ns: str) -> None:
    create(apiserver.address, nightly(ns))
    out = skiff(apiserver.address, "create", "job", "by-alias", "--from", "cj/nightly",
                "-n", ns, "-o", "name")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "job.batch/by-alias\n"

    dry = skiff(apiserver.address, "create", "job", "just-looking",
                "--from=cronjobs.batch/nightly", "-n", ns, "--dry-run=client", "-o", "yaml")
    assert dry.returncode == 0, dry.stderr
    shown = yaml.safe_load(dry.stdout)
    assert shown["kind"] == "Job" and shown["apiVersion"] == "batch/v1"
    assert shown["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert shown["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    with pytest.raises(errors.NotFound):
        get_job(apiserver.address, "just-looking", ns)


def test_create_job_from_an_image(apiserver: Any, ns: str) -> None:
    out = skiff(apiserver.address, "create", "job", "once", "--image", "busybox", "-n", ns,
                "--", "sh", "-c", "echo hi")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "job.batch/once created\n"
    job = get_job(apiserver.address, "once", ns)
    [container] = job.spec.template.spec.containers
    assert (container.name, container.image, list(container.command)) == (
        "once", "busybox", ["sh", "-c", "echo hi"])
    assert job.spec.template.spec.restart_policy == "Never"


@pytest.mark.parametrize(("args", "message"), [
    (("--from=cronjob/missing",), 'cronjobs.batch "missing" not found'),
    (("--from=deployment/web",), "unknown object type deployment.apps"),
    (("--from=nightly",), "must have a single resource and name"),
    ((), "either --image or --from must be specified"),
    (("--from=cronjob/nightly", "--image=busybox"), "either --image or --from"),
    (("--from=cronjob/nightly", "--", "date"), "cannot specify --from and command"),
])
def test_create_job_errors(apiserver: Any, ns: str, args: tuple[str, ...], message: str) -> None:
    create(apiserver.address, nightly(ns))
    result = skiff(apiserver.address, "create", "job", "x", "-n", ns, *args)
    assert result.returncode != 0
    assert message in result.stderr
    with pytest.raises(errors.NotFound):
        get_job(apiserver.address, "x", ns)


def test_a_job_of_that_name_already_exists(apiserver: Any, ns: str) -> None:
    create(apiserver.address, nightly(ns))
    assert skiff(apiserver.address, "create", "job", "twice", "--from=cronjob/nightly",
                 "-n", ns).returncode == 0
    again = skiff(apiserver.address, "create", "job", "twice", "--from=cronjob/nightly",
                  "-n", ns)
    assert again.returncode != 0
    assert "already exists" in again.stderr
