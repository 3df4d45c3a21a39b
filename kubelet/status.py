"""A pod's status, as a pure function of its spec and what the runtime reports.

The kubelet's generateAPIPodStatus, in small parts: `container_status` turns the runtime's
containers of one spec container into a ContainerStatus, `pod_phase` is Kubernetes'
getPhase, `pod_conditions` the kubelet-owned conditions, and `build_pod_status` puts them
together with the QoS class (skiff.api.pods, as every component computes it). No I/O and
no clock: the caller passes `now`, so every rule is table-tested
(tests/unit/kubelet/test_status.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from kubelet.runtime import ContainerInfo, State
from skiff.api.conditions import stamp_transition
from skiff.api.pods import FAILED, PENDING, RUNNING, SUCCEEDED, is_terminal, qos_class
from skiff.api.v1 import core_pb2

CONTAINER_ID_SCHEME = "docker"

# Default waiting reasons, as Kubernetes: an app container of a pod with init containers
# waits with PodInitializing until it exists, any other with ContainerCreating.
CONTAINER_CREATING = "ContainerCreating"
POD_INITIALIZING = "PodInitializing"
# A container the runtime created but could not start; Docker reports exit code 128.
START_FAILED_EXIT_CODE = 128

POD_SCHEDULED = "PodScheduled"
READY_TO_START = "PodReadyToStartContainers"
INITIALIZED = "Initialized"
CONTAINERS_READY = "ContainersReady"
READY = "Ready"
_KUBELET_CONDITIONS = (READY_TO_START, INITIALIZED, READY, CONTAINERS_READY, POD_SCHEDULED)


# ---------------------------------------------------------------------------------------
# Container statuses
# ---------------------------------------------------------------------------------------

def container_status(spec_container: core_pb2.Container, infos: Sequence[ContainerInfo], *,
                     waiting_reason: str | None = None, waiting_message: str = "",
                     ready: bool = False, started: bool | None = None
                     ) -> core_pb2.ContainerStatus:
    """The status of one spec container from its runtime containers, newest first.

    `waiting_reason` is why the kubelet has not (re)started it (ErrImagePull,
    CrashLoopBackOff, ...); it shows only while no attempt of the container runs. `ready`
    and `started` come from the probes and count only while it runs.
    """
    status = core_pb2.ContainerStatus(name=spec_container.name, image=spec_container.image)
    newest = infos[0] if infos else None
    running = newest is not None and newest.state == State.RUNNING
    status.ready = ready and running
    if started is not None:
        status.started = started and running
    if newest is None:
        _set_waiting(status.state, waiting_reason or CONTAINER_CREATING, waiting_message)
        return status

    status.restart_count = newest.attempt
    status.image_id = newest.image_id
    status.container_id = container_id(newest.id)
    previous = infos[1] if len(infos) > 1 else None
    if running:
        status.state.running.SetInParent()
        _set_time(status.state.running.started_at, newest.started_at)
    elif waiting_reason:
        # Waiting to run again: what the last attempt did is lastState.
        _set_waiting(status.state, waiting_reason, waiting_message)
        previous = newest
    elif newest.state == State.EXITED:
        _set_terminated(status.state, newest)
    else:
        _set_waiting(status.state, CONTAINER_CREATING, "")
    if previous is not None and previous.state in (State.EXITED, State.CREATED):
        _set_terminated(status.last_state, previous)
    return status


def container_id(runtime_id: str) -> str:
    return f"{CONTAINER_ID_SCHEME}://{runtime_id}"


def _set_waiting(state: core_pb2.ContainerState, reason: str, message: str) -> None:
    state.waiting.reason = reason
    state.waiting.message = message


def _set_terminated(state: core_pb2.ContainerState, info: ContainerInfo) -> None:
    terminated = state.terminated
    terminated.exit_code = _exit_code(info)
    terminated.reason = info.reason or _default_reason(info)
    terminated.message = info.message
    terminated.container_id = container_id(info.id)
    _set_time(terminated.started_at, info.started_at)
    _set_time(terminated.finished_at, info.finished_at)


def _exit_code(info: ContainerInfo) -> int:
    if info.state == State.CREATED:
        return info.exit_code or START_FAILED_EXIT_CODE  # never started: a failure
    return info.exit_code


def _default_reason(info: ContainerInfo) -> str:
    if info.state == State.CREATED:
        return "ContainerCannotRun"
    return "Completed" if info.exit_code == 0 else "Error"


def _set_time(ts: Timestamp, unix_seconds: float) -> None:
    if unix_seconds > 0:
        ts.FromNanoseconds(round(unix_seconds * 1e9))


# ---------------------------------------------------------------------------------------
# Phase
# ---------------------------------------------------------------------------------------

def pod_phase(spec: core_pb2.PodSpec, init_statuses: Sequence[core_pb2.ContainerStatus],
              statuses: Sequence[core_pb2.ContainerStatus], *,
              pod_is_terminal: bool = False) -> str:
    """Kubernetes' getPhase. `pod_is_terminal`: the kubelet has decided that nothing in
    the pod runs again (e.g. it was deleted), so a stopped pod is Succeeded or Failed
    whatever its restart policy."""
    pending_init, failed_init = _count_init(spec, init_statuses)
    if failed_init and spec.restart_policy == "Never":
        return FAILED
    counts = _count_app(spec, statuses)
    if pending_init or counts.waiting:
        return PENDING  # some container has not started yet
    if counts.running and not counts.unknown:
        return RUNNING
    if counts.stopped and not counts.running and not counts.unknown:
        return _stopped_phase(spec.restart_policy or "Always", counts, pod_is_terminal)
    return PENDING


class _Counts:
    def __init__(self) -> None:
        self.unknown = self.running = self.waiting = self.stopped = self.succeeded = 0


def _count_init(spec: core_pb2.PodSpec, statuses: Sequence[core_pb2.ContainerStatus]
                ) -> tuple[int, int]:
    by_name = {s.name: s for s in statuses}
    pending = failed = 0
    for container in spec.init_containers:
        status = by_name.get(container.name)
        if status is None or status.state.HasField("running"):
            pending += 1
        elif status.state.HasField("terminated"):
            failed += status.state.terminated.exit_code != 0
        elif status.last_state.HasField("terminated"):
            # Waiting to run again after an attempt: the attempt decides.
            failed += status.last_state.terminated.exit_code != 0
        else:
            pending += 1
    return pending, failed


def _count_app(spec: core_pb2.PodSpec, statuses: Sequence[core_pb2.ContainerStatus]
               ) -> _Counts:
    by_name = {s.name: s for s in statuses}
    counts = _Counts()
    for container in spec.containers:
        status = by_name.get(container.name)
        if status is None:
            counts.unknown += 1
        elif status.state.HasField("running"):
            counts.running += 1
        elif status.state.HasField("terminated"):
            counts.stopped += 1
            counts.succeeded += status.state.terminated.exit_code == 0
        elif status.state.HasField("waiting") and status.last_state.HasField("terminated"):
            counts.stopped += 1  # ran, and waits to run again
        elif status.state.HasField("waiting"):
            counts.waiting += 1
        else:
            counts.unknown += 1
    return counts


def _stopped_phase(policy: str, counts: _Counts, pod_is_terminal: bool) -> str:
    """Every app container has stopped."""
    if pod_is_terminal:
        return SUCCEEDED if counts.stopped == counts.succeeded else FAILED
    if policy == "Always":
        return RUNNING  # they are all being restarted
    if counts.stopped == counts.succeeded:
        return SUCCEEDED
    if policy == "Never":
        return FAILED
    return RUNNING  # OnFailure: the failed ones are being restarted


# ---------------------------------------------------------------------------------------
# Conditions
# ---------------------------------------------------------------------------------------

def pod_conditions(pod: core_pb2.Pod, phase: str,
                   init_statuses: Sequence[core_pb2.ContainerStatus],
                   statuses: Sequence[core_pb2.ContainerStatus],
                   previous_conditions: Sequence[core_pb2.PodCondition], now: datetime, *,
                   sandbox_ready: bool | None = None) -> list[core_pb2.PodCondition]:
    """The pod's conditions: those others own are kept as they are, the kubelet's are
    computed; a condition's lastTransitionTime moves only when its status changes.
    `sandbox_ready` (when known) adds PodReadyToStartContainers."""
    previous = {c.type: c for c in previous_conditions}
    out = [_copy(c) for c in previous_conditions if c.type not in _KUBELET_CONDITIONS]
    computed: list[core_pb2.PodCondition] = []
    if sandbox_ready is not None:
        computed.append(_condition(READY_TO_START, sandbox_ready))
    computed.append(initialized_condition(pod.spec, init_statuses, phase))
    containers_ready = containers_ready_condition(pod.spec, statuses, phase)
    computed.append(_condition(READY, containers_ready.status == "True",
                               containers_ready.reason, containers_ready.message))
    computed.append(containers_ready)
    for condition in computed:
        stamp_transition(condition, previous.get(condition.type), now)
    out += computed
    out.append(_scheduled_condition(previous.get(POD_SCHEDULED), now))
    return out


def initialized_condition(spec: core_pb2.PodSpec,
                          init_statuses: Sequence[core_pb2.ContainerStatus],
                          phase: str) -> core_pb2.PodCondition:
    """True when every init container has succeeded (an init container is ready then)."""
    unknown, unready = _unready(spec.init_containers, init_statuses)
    if phase == SUCCEEDED and not unknown:
        return _condition(INITIALIZED, True, "PodCompleted")
    message = _unready_message(unknown, unready, "incomplete")
    if message:
        return _condition(INITIALIZED, False, "ContainersNotInitialized", message)
    return _condition(INITIALIZED, True)


def containers_ready_condition(spec: core_pb2.PodSpec,
                               statuses: Sequence[core_pb2.ContainerStatus],
                               phase: str) -> core_pb2.PodCondition:
    unknown, unready = _unready(spec.containers, statuses)
    if phase == SUCCEEDED and not unknown:
        return _condition(CONTAINERS_READY, False, "PodCompleted")
    message = _unready_message(unknown, unready, "unready")
    if message:
        return _condition(CONTAINERS_READY, False, "ContainersNotReady", message)
    return _condition(CONTAINERS_READY, True)


def _unready(containers: Iterable[core_pb2.Container],
             statuses: Sequence[core_pb2.ContainerStatus]) -> tuple[list[str], list[str]]:
    by_name = {s.name: s for s in statuses}
    unknown = [c.name for c in containers if c.name not in by_name]
    unready = [c.name for c in containers if c.name in by_name and not by_name[c.name].ready]
    return unknown, unready


def _unready_message(unknown: list[str], unready: list[str], adjective: str) -> str:
    # Go prints a []string as [a b]; Kubernetes' messages carry that form.
    parts = []
    if unknown:
        parts.append(f"containers with unknown status: [{' '.join(unknown)}]")
    if unready:
        parts.append(f"containers with {adjective} status: [{' '.join(unready)}]")
    return ", ".join(parts)


def _condition(type_: str, status: bool, reason: str = "", message: str = ""
               ) -> core_pb2.PodCondition:
    return core_pb2.PodCondition(type=type_, status="True" if status else "False",
                                 reason=reason, message=message)


def _copy(condition: core_pb2.PodCondition) -> core_pb2.PodCondition:
    out = core_pb2.PodCondition()
    out.CopyFrom(condition)
    return out


def _scheduled_condition(previous: core_pb2.PodCondition | None, now: datetime
                         ) -> core_pb2.PodCondition:
    # The scheduler's binding set it; a pod on this node is scheduled whatever an older
    # status said, so only a missing or stale condition is replaced.
    if previous is not None and previous.status == "True":
        return _copy(previous)
    condition = _condition(POD_SCHEDULED, True)
    condition.last_transition_time.FromDatetime(now)
    return condition


# ---------------------------------------------------------------------------------------
# The whole status
# ---------------------------------------------------------------------------------------

def build_pod_status(pod: core_pb2.Pod, *, infos: Sequence[ContainerInfo],
                     waiting: Mapping[str, tuple[str, str]] | None = None,
                     ready: Callable[[str], bool] = lambda container_id: True,
                     started: Callable[[str], bool] = lambda container_id: True,
                     pod_ip: str = "", host_ip: str = "", now: datetime | float,
                     start_time: datetime | float | None = None,
                     sandbox_ready: bool | None = None,
                     pod_is_terminal: bool = False) -> core_pb2.PodStatus:
    """The pod's status from its runtime containers (any order; sandboxes may be among
    them, and are then what `sandbox_ready` defaults to).

    `waiting`: container name -> (reason, message) for containers the kubelet is not
    (re)starting now; `ready` / `started`: the probe manager's answers by container id;
    `now` and `start_time` (when the kubelet accepted the pod, default `now`, set only
    once): datetimes or unix seconds. `sandbox_ready` (known or inferred) adds the
    PodReadyToStartContainers condition.
    """
    waiting = waiting or {}
    by_name = _by_name(infos)
    status = core_pb2.PodStatus()
    status.init_container_statuses.extend(
        _init_status(c, by_name.get(c.name, []), waiting.get(c.name))
        for c in pod.spec.init_containers)
    default_reason = POD_INITIALIZING if pod.spec.init_containers else CONTAINER_CREATING
    status.container_statuses.extend(
        _app_status(c, by_name.get(c.name, []), waiting.get(c.name), default_reason,
                    ready, started)
        for c in pod.spec.containers)
    status.phase = _phase(pod, status, pod_is_terminal)
    if status.phase == pod.status.phase:
        # The reason and message go with the phase (e.g. an eviction's), so they stay.
        status.reason, status.message = pod.status.reason, pod.status.message
    if sandbox_ready is None and any(i.is_sandbox for i in infos):
        sandbox_ready = any(i.is_sandbox and i.state == State.RUNNING for i in infos)
    status.conditions.extend(pod_conditions(
        pod, status.phase, status.init_container_statuses, status.container_statuses,
        pod.status.conditions, _datetime(now), sandbox_ready=sandbox_ready))
    _set_addresses(status, pod, pod_ip, host_ip)
    _set_start_time(status, pod, _datetime(now if start_time is None else start_time))
    status.qos_class = pod.status.qos_class or qos_class(pod.spec)
    return status


def _datetime(value: datetime | float) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(value, UTC)


def _by_name(infos: Sequence[ContainerInfo]) -> dict[str, list[ContainerInfo]]:
    out: dict[str, list[ContainerInfo]] = {}
    for info in infos:
        if not info.is_sandbox:
            out.setdefault(info.name, []).append(info)
    for group in out.values():
        group.sort(key=lambda i: (i.attempt, i.created_at), reverse=True)
    return out


def _init_status(container: core_pb2.Container, infos: list[ContainerInfo],
                 waiting: tuple[str, str] | None) -> core_pb2.ContainerStatus:
    newest = infos[0] if infos else None
    succeeded = newest is not None and newest.state == State.EXITED and newest.exit_code == 0
    # An init container that succeeded is done: it never waits again, and counts as ready.
    reason, message = (None, "") if succeeded or waiting is None else waiting
    status = container_status(container, infos, waiting_reason=reason,
                              waiting_message=message)
    status.ready = succeeded
    return status


def _app_status(container: core_pb2.Container, infos: list[ContainerInfo],
                waiting: tuple[str, str] | None, default_reason: str,
                ready: Callable[[str], bool], started: Callable[[str], bool]
                ) -> core_pb2.ContainerStatus:
    reason, message = waiting or (None, "")
    if reason is None and not infos:
        reason = default_reason
    newest = infos[0] if infos else None
    running = newest is not None and newest.state == State.RUNNING
    return container_status(container, infos, waiting_reason=reason, waiting_message=message,
                            ready=running and newest is not None and ready(newest.id),
                            started=running and newest is not None and started(newest.id))


def _phase(pod: core_pb2.Pod, status: core_pb2.PodStatus, pod_is_terminal: bool) -> str:
    phase = pod_phase(pod.spec, status.init_container_statuses, status.container_statuses,
                      pod_is_terminal=pod_is_terminal)
    # A pod never leaves Succeeded or Failed: its containers may be gone by now, and
    # what they did must not be rewritten.
    if is_terminal(pod):
        return pod.status.phase
    return phase


def _set_addresses(status: core_pb2.PodStatus, pod: core_pb2.Pod, pod_ip: str,
                   host_ip: str) -> None:
    if not pod_ip and pod.spec.host_network:
        pod_ip = host_ip  # a host-network pod has the node's address
    status.host_ip = host_ip
    if pod_ip:
        status.pod_ip = pod_ip
        status.pod_ips.add(ip=pod_ip)


def _set_start_time(status: core_pb2.PodStatus, pod: core_pb2.Pod, start_time: datetime
                    ) -> None:
    if pod.status.HasField("start_time"):
        status.start_time.CopyFrom(pod.status.start_time)
    else:
        status.start_time.FromDatetime(start_time)
