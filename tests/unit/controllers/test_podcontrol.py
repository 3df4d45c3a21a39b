"""PodControl's creates whose outcome is unknown (Timeout: etcd may have stored the pod;
Unavailable: the connection broke mid-call): sent again as the very same create, by a
name chosen before the first send, so a pod is never made twice. And its decisions on the
apiserver's Status, not on the words of its message."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from controllers.common.expectations import Expectations
from controllers.common.podcontrol import CREATE_RESENDS, PodControl, namespace_terminating
from skiff.api import status
from skiff.api.status import CauseType, StatusReason
from skiff.api.v1 import apps_pb2, core_pb2, meta_pb2
from skiff.client import errors
from skiff.client.clock import FakeClock


class FakePods:
    """A pod store whose creates fail as told, per call: "lost" (a Timeout, not stored),
    "landed" (stored, then a Timeout), "dropped" (Unavailable, not stored), "stolen" (a
    Timeout, and another owner's pod takes the name meanwhile), "ok"."""

    def __init__(self, *outcomes: str) -> None:
        self.outcomes = list(outcomes)
        self.stored: dict[str, core_pb2.Pod] = {}
        self.sent: list[str] = []

    async def create(self, pod: core_pb2.Pod) -> core_pb2.Pod:
        self.sent.append(pod.metadata.name)
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        assert pod.metadata.name, "a create that may be resent must carry its name"
        if pod.metadata.name in self.stored:
            raise errors.AlreadyExists(f'pods "{pod.metadata.name}" already exists')
        if outcome == "lost":
            raise errors.Timeout("Timeout: request did not complete within requested timeout")
        if outcome == "dropped":
            raise errors.Unavailable("connection reset")
        if outcome == "stolen":
            other = core_pb2.Pod()
            other.metadata.name = pod.metadata.name
            other.metadata.owner_references.add(kind="ReplicaSet", uid="other-uid",
                                                controller=True)
            self.stored[pod.metadata.name] = other
            raise errors.Timeout("Timeout: request did not complete within requested timeout")
        stored = core_pb2.Pod()
        stored.CopyFrom(pod)
        stored.metadata.uid = f"uid-{len(self.stored)}"
        self.stored[pod.metadata.name] = stored
        if outcome == "landed":
            raise errors.Timeout("Timeout: request did not complete within requested timeout")
        return stored

    async def get(self, kind: Any, name: str, namespace: str = "") -> core_pb2.Pod:
        found = self.stored.get(name)
        if found is None:
            raise errors.NotFound(f'pods "{name}" not found')
        return found


class Events:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def event(self, obj: Any, type_: str, reason: str, message: str) -> None:
        self.seen.append(f"{type_} {reason} {message}")


def owner(uid: str = "rs-uid") -> apps_pb2.ReplicaSet:
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name, rs.metadata.namespace, rs.metadata.uid = "web", "ns", uid
    rs.spec.template.spec.containers.add(name="main", image="busybox")
    return rs


async def run_with(clock: FakeClock, call: Any) -> Any:
    """Runs `call` to its end, moving the fake clock through its back-off sleeps."""
    task = asyncio.ensure_future(call)
    while not task.done():
        await clock.settle()
        await clock.advance(60)
    return task.result()


@pytest.mark.parametrize("first", ["lost", "landed", "dropped"])
async def test_an_uncertain_create_is_resent_as_the_same_create(first: str) -> None:
    pods, clock = FakePods(first), FakeClock()
    control = PodControl(pods, Events(), clock=clock)  # type: ignore[arg-type]
    rs = owner()
    pod = control.pod_from_template(rs, rs.spec.template)
    assert not pod.metadata.name

    created = await run_with(clock, control.create(rs, pod))
    assert len(pods.stored) == 1, "exactly one pod, whatever the first send did"
    assert pods.sent[0] == pods.sent[1] == created.metadata.name
    assert created.metadata.name.startswith("web-") and len(created.metadata.name) == 9


async def test_a_name_taken_by_someone_else_is_not_taken_for_ours() -> None:
    pods, clock = FakePods("stolen"), FakeClock()
    control = PodControl(pods, Events(), clock=clock)  # type: ignore[arg-type]
    rs = owner()
    with pytest.raises(errors.AlreadyExists):
        await run_with(clock, control.create(rs, control.pod_from_template(
            rs, rs.spec.template)))
    assert len(pods.sent) == 2


async def test_a_create_still_uncertain_after_every_resend_stays_expected() -> None:
    pods, clock = FakePods(*["lost"] * (CREATE_RESENDS + 1)), FakeClock()
    events = Events()
    control = PodControl(pods, events, clock=clock)  # type: ignore[arg-type]
    rs = owner()
    expectations = Expectations(clock)
    expectations.expect("ns/web", creations=3)
    wanted = [control.pod_from_template(rs, rs.spec.template) for _ in range(3)]

    error = await run_with(clock, control.create_all(rs, wanted, expectations, "ns/web"))
    assert isinstance(error, errors.Timeout)
    assert len(pods.sent) == CREATE_RESENDS + 1 and len(set(pods.sent)) == 1
    assert not pods.stored
    # The two never tried are off the expectations; the uncertain one is not: a second
    # pod for it must wait until the informer shows it or the expectation expires.
    assert not expectations.satisfied("ns/web")
    expectations.created("ns/web")
    assert expectations.satisfied("ns/web")
    assert any("FailedCreate" in e for e in events.seen)


async def test_a_refused_create_is_not_resent() -> None:
    pods, clock = FakePods(), FakeClock()

    async def refuse(pod: core_pb2.Pod) -> core_pb2.Pod:
        pods.sent.append(pod.metadata.name)
        raise errors.Invalid("spec.containers: Required value")

    pods.create = refuse  # type: ignore[method-assign]
    control = PodControl(pods, Events(), clock=clock)  # type: ignore[arg-type]
    rs = owner()
    with pytest.raises(errors.Invalid):
        await control.create(rs, control.pod_from_template(rs, rs.spec.template))
    assert len(pods.sent) == 1


WORDS = "unable to create new content in namespace x because it is being terminated"


def test_a_terminating_namespace_is_known_by_its_cause() -> None:
    cause = meta_pb2.StatusCause(reason=CauseType.NAMESPACE_TERMINATING, message=WORDS)
    terminating = status.failure(StatusReason.FORBIDDEN, "refused",
                                 meta_pb2.StatusDetails(causes=[cause]))
    assert namespace_terminating(errors.Forbidden("refused", status=terminating))
    # The same words without the cause (a webhook's, a quota's) are not the namespace's.
    other = status.failure(StatusReason.FORBIDDEN, WORDS)
    assert not namespace_terminating(errors.Forbidden(WORDS, status=other))
    assert not namespace_terminating(errors.Forbidden(WORDS))
