"""Creating and deleting the objects a controller owns, with the events users read.

Every controller that makes pods makes them alike: the template's labels, annotations,
finalizers and spec, a name generated from the owner's (`web-7d4b9-` + random), and an
ownerReference naming the owner as controller with blockOwnerDeletion, so garbage
collection and `describe` find them. Each create and delete is reported as an Event on the
owner (SuccessfulCreate / FailedCreate / SuccessfulDelete / FailedDelete), with
Kubernetes' messages.

A create whose outcome is unknown (Timeout: etcd did not answer in time, and may have
stored it; or Unavailable: the connection broke mid-call) is never repeated blindly: the
pod is named here rather than by the apiserver's generateName, so sending it again is the
very same create. It lands once, or meets itself already stored (AlreadyExists, owned by
this owner); there is never a second pod. If etcd stays silent through every resend, the
pod stays expected, as Kubernetes' Job and DaemonSet controllers leave a timed-out
create: the informer shows it if it landed, and the expectation expires if it did not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from google.protobuf.message import Message

from controllers.common.expectations import Expectations
from skiff.api import kinds
from skiff.api.meta import generated_name, meta
from skiff.api.status import CauseType
from skiff.api.v1 import core_pb2, meta_pb2
from skiff.client import errors
from skiff.client.backoff import exponential_delay
from skiff.client.client import Client
from skiff.client.clock import Clock, RealClock
from skiff.client.events import Recorder
from skiff.client.informer import object_key

__all__ = ["PodControl", "namespace_terminating", "owner_reference", "slow_start_batch"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Resends of a create whose outcome is unknown, and the pause before each (doubling): with
# a write's 30 s deadline, about two and a half minutes of a silent etcd in all.
CREATE_RESENDS = 4
RESEND_DELAY_INITIAL = 1.0
RESEND_DELAY_MAX = 8.0

# Slow start: the first batch of creations is this small, and each batch that fully
# succeeds doubles the next, so a quota or admission error costs one call, not hundreds.
SLOW_START_INITIAL_BATCH = 1


def namespace_terminating(err: errors.ApiError) -> bool:
    """The apiserver refused a create because the namespace is being deleted: nothing to
    retry, and no object will ever appear for it."""
    return isinstance(err, errors.Forbidden) and err.has_cause(CauseType.NAMESPACE_TERMINATING)


def owner_reference(owner: Message) -> meta_pb2.OwnerReference:
    """A controller reference to `owner` (controller and blockOwnerDeletion set)."""
    kind = kinds.by_message(owner)
    owner_meta = meta(owner)
    return meta_pb2.OwnerReference(api_version=kind.api_version, kind=kind.kind,
                                   name=owner_meta.name, uid=owner_meta.uid, controller=True,
                                   block_owner_deletion=True)


def uncertain(err: errors.ApiError) -> bool:
    """Whether a create that failed so may have been stored all the same."""
    return isinstance(err, (errors.Timeout, errors.Unavailable))


class PodControl:
    def __init__(self, client: Client, recorder: Recorder, *, clock: Clock | None = None
                 ) -> None:
        self.client = client
        self.recorder = recorder
        self.clock: Clock = clock if clock is not None else RealClock()

    def pod_from_template(self, owner: Message, template: core_pb2.PodTemplateSpec, *,
                          generate_name: str | None = None) -> core_pb2.Pod:
        """The pod `owner` would create from `template` (not yet sent); callers may add to
        it (a node name, a label, a finalizer) before `create`."""
        owner_meta = meta(owner)
        pod = core_pb2.Pod()
        pod.metadata.namespace = owner_meta.namespace
        pod.metadata.generate_name = (generate_name if generate_name is not None
                                      else f"{owner_meta.name}-")
        pod.metadata.labels.update(template.metadata.labels)
        pod.metadata.annotations.update(template.metadata.annotations)
        pod.metadata.finalizers.extend(template.metadata.finalizers)
        pod.metadata.owner_references.append(owner_reference(owner))
        pod.spec.CopyFrom(template.spec)
        return pod

    async def create(self, owner: Message, pod: core_pb2.Pod) -> core_pb2.Pod:
        """Creates `pod` (named here if it has only a generateName, see the module's
        docstring) and records the outcome on `owner`; API errors are re-raised, a
        Timeout or Unavailable only once resending the same create did not settle it."""
        if not pod.metadata.name and pod.metadata.generate_name:
            named = core_pb2.Pod()
            named.CopyFrom(pod)
            named.metadata.name = generated_name(pod.metadata.generate_name)
            pod = named
        try:
            created = await self._create_once(owner, pod)
        except errors.ApiError as err:
            self.recorder.event(owner, "Warning", "FailedCreate", f"Error creating: {err}")
            raise
        self.recorder.event(owner, "Normal", "SuccessfulCreate",
                            f"Created pod: {created.metadata.name}")
        return created

    async def _create_once(self, owner: Message, pod: core_pb2.Pod) -> core_pb2.Pod:
        """Sends the create of `pod`, and again (the same, by name) while its outcome is
        unknown, until it is known: stored now, or found stored by an earlier send."""
        resends = 0
        while True:
            try:
                return await self.client.create(pod)
            except errors.AlreadyExists:
                if not resends:
                    raise  # the name was taken before we sent anything: not ours
                found = await self._own_pod(owner, pod)
                if found is None:
                    raise
                log.info("pod %s: an earlier create that timed out had been stored",
                         object_key(pod))
                return found
            except errors.ApiError as err:
                if not uncertain(err) or resends == CREATE_RESENDS:
                    raise
                resends += 1
                delay = exponential_delay(resends, RESEND_DELAY_INITIAL, RESEND_DELAY_MAX)
                log.warning("pod %s: create may or may not have been stored (%s); sending "
                            "it again in %.0fs", object_key(pod), err.message, delay)
                await self.clock.sleep(delay)

    async def _own_pod(self, owner: Message, pod: core_pb2.Pod) -> core_pb2.Pod | None:
        """The pod stored under `pod`'s name if `owner` controls it (it is then the one an
        earlier send of this create stored: names are random per pod), else None."""
        try:
            found = await self.client.get(core_pb2.Pod, pod.metadata.name,
                                          pod.metadata.namespace)
        except errors.NotFound:
            return None
        owner_uid = meta(owner).uid
        if any(ref.controller and ref.uid == owner_uid
               for ref in found.metadata.owner_references):
            return found
        return None

    async def delete(self, owner: Message, pod: core_pb2.Pod) -> bool:
        """Deletes `pod` (gracefully, only that very pod: uid precondition) and records it
        on `owner`. Returns False if it was already gone."""
        try:
            await self.client.delete(core_pb2.Pod, pod.metadata.name, pod.metadata.namespace,
                                     uid=pod.metadata.uid)
        except errors.NotFound:
            return False
        except errors.ApiError as err:
            self.recorder.event(owner, "Warning", "FailedDelete",
                                f"Error deleting: {err}")
            raise
        self.recorder.event(owner, "Normal", "SuccessfulDelete",
                            f"Deleted pod: {pod.metadata.name}")
        return True


    async def create_all(self, owner: Message, pods: Sequence[core_pb2.Pod],
                         expectations: Expectations, key: str) -> BaseException | None:
        """Creates `pods` in slow-start batches for the owner `key`, whose expectations
        the caller has set. Pods that failed, were never tried after a failed batch, or
        were refused by a terminating namespace will never show up in the informer, so
        they are taken off the expectations; those whose create may have been stored
        stay on them. Returns the first error."""
        pending = iter(pods)

        maybe_made = 0  # creates whose outcome stayed unknown: the informer will tell

        async def create_one() -> bool:
            nonlocal maybe_made
            try:
                await self.create(owner, next(pending))
            except errors.ApiError as err:
                if namespace_terminating(err):
                    return False
                if uncertain(err):
                    maybe_made += 1
                raise
            return True

        results, error = await slow_start_batch(len(pods), create_one)
        never_made = len(pods) - sum(results) - maybe_made
        if never_made > 0:
            expectations.created(key, never_made)
        return error

    async def delete_all(self, owner: Message, pods: Sequence[core_pb2.Pod],
                         expectations: Expectations, key: str) -> BaseException | None:
        """Deletes `pods` concurrently for the owner `key`, whose expectations the caller
        has set; a pod already gone or not deleted is taken off them at once (no event
        will come for it). Returns the first error."""
        async def delete_one(pod: core_pb2.Pod) -> None:
            try:
                gone_already = not await self.delete(owner, pod)
            except BaseException:
                expectations.deleted(key, object_key(pod))
                raise
            if gone_already:
                expectations.deleted(key, object_key(pod))

        outcomes = await asyncio.gather(*(delete_one(pod) for pod in pods),
                                        return_exceptions=True)
        return next((o for o in outcomes if isinstance(o, BaseException)), None)


async def slow_start_batch(count: int, call: Callable[[], Awaitable[T]], *,
                           initial: int = SLOW_START_INITIAL_BATCH
                           ) -> tuple[list[T], BaseException | None]:
    """Calls `call` `count` times in batches of 1, 2, 4, ... run concurrently, stopping
    after the first batch in which a call failed. Returns the results of the calls that
    succeeded and the first error (None if all succeeded); calls never made are neither."""
    done: list[T] = []
    remaining, batch = count, min(initial, count)
    while batch > 0:
        outcomes = await asyncio.gather(*(call() for _ in range(batch)),
                                        return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        done += [o for o in outcomes if not isinstance(o, BaseException)]
        if failures:
            return done, failures[0]
        remaining -= batch
        batch = min(2 * batch, remaining)
    return done, None
