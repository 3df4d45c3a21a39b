"""What a pod needs next, as a pure function of its spec and what the runtime reports.

`plan_pod` is the kubelet's `computePodActions`: given the pod, the runtime's view of its
sandboxes and containers, the liveness results and the crash-loop back-off, it decides
what to create, start, kill and clean up. `plan_stop` is its `killPod`: what stopping a
pod takes (being deleted, or gone from the apiserver): every container killed within the
grace period, the sandboxes stopped, everything removed, the volumes torn down.

Both do no I/O, so every rule of restart policies, init containers, back-off and grace
periods is tested by a table (tests/unit/kubelet/test_plan.py); one executor
(kubelet/pods/executor.py) carries out either plan.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kubelet.runtime import LABEL_GRACE, LABEL_SPEC_HASH, ContainerInfo, State
from skiff.api.v1 import core_pb2

# A container whose start failed stays "created"; Docker reports this exit code for it.
START_FAILED_EXIT_CODE = 128
# Kubernetes' default terminationGracePeriodSeconds.
DEFAULT_GRACE = 30.0


@dataclass
class PodActions:
    create_sandbox: bool = False
    sandbox_attempt: int = 0
    sandbox_id: str = ""  # the sandbox to use, once created
    # Containers to stop, with why (for events): id -> reason.
    kill: dict[str, str] = field(default_factory=dict)
    # Seconds each container in `kill` gets from SIGTERM to SIGKILL (preStop included).
    grace: dict[str, float] = field(default_factory=dict)
    # Sandboxes to stop: the pod is finished (Succeeded, or Failed under restartPolicy
    # Never) or stopping, and its network namespace and IP go back to the node.
    stop_sandboxes: list[str] = field(default_factory=list)
    # Old sandboxes and exited containers no longer needed for status.
    remove: list[str] = field(default_factory=list)
    # Sandboxes to remove with whatever is still in them (a stopping pod's).
    remove_sandboxes: list[str] = field(default_factory=list)
    # The pod is stopping: its volumes go once its containers are gone ...
    teardown_volumes: bool = False
    # ... and, deleted gracefully, the apiserver is told it is gone (the final delete).
    confirm_deletion: bool = False
    # What to start, in order, with the attempt (restart count) each gets.
    start: list[tuple[core_pb2.Container, int, bool]] = field(default_factory=list)
    # name -> (reason, message) for containers that wait (e.g. CrashLoopBackOff).
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Seconds until a back-off ends: the pod should be synced again then.
    retry_after: float | None = None


def spec_hash(container: core_pb2.Container) -> str:
    """Changes when the container's spec changes: a running container is then replaced."""
    return hashlib.sha256(container.SerializeToString(deterministic=True)).hexdigest()[:16]


def _exited(info: ContainerInfo) -> bool:
    return info.state in (State.EXITED, State.CREATED, State.UNKNOWN)


def never_started(info: ContainerInfo) -> bool:
    """Created, and neither started nor failed to start (a start that failed leaves an
    error and exit code 128): work a kubelet left half-done by dying between creating
    the container and starting it. It is no attempt of the container."""
    return (info.state == State.CREATED and not info.is_sandbox and not info.message
            and not info.exit_code)


def exit_code(info: ContainerInfo) -> int:
    if info.state == State.CREATED:
        return info.exit_code or START_FAILED_EXIT_CODE  # its start failed
    return info.exit_code


def should_restart(policy: str, info: ContainerInfo) -> bool:
    if policy == "Never":
        return False
    if policy == "OnFailure":
        return exit_code(info) != 0
    return True  # Always


def backoff_key(pod_uid: str, name: str) -> str:
    return f"{pod_uid}/{name}"


def termination_grace(pod: core_pb2.Pod) -> float:
    """The pod's terminationGracePeriodSeconds (Kubernetes' default when unset)."""
    spec = pod.spec
    return float(spec.termination_grace_period_seconds
                 if spec.HasField("termination_grace_period_seconds") else DEFAULT_GRACE)


def deletion_grace(pod: core_pb2.Pod, now: float) -> float:
    """What is left at unix time `now` of a deleted pod's grace period."""
    meta = pod.metadata
    remaining = meta.deletion_timestamp.seconds - now
    return max(min(remaining, float(meta.deletion_grace_period_seconds)), 0.0)


def started_grace(info: ContainerInfo) -> float:
    """The grace period a container was started with (its label): what an orphan gets."""
    return float(info.labels.get(LABEL_GRACE, "") or DEFAULT_GRACE)


def pod_finished(pod: core_pb2.Pod, latest: dict[str, ContainerInfo]) -> bool:
    """No container will run again: every app container has exited and the restart
    policy restarts none of them (Kubernetes then leaves the pod Succeeded or Failed)."""
    spec = pod.spec
    if spec.restart_policy == "Always" or not spec.containers:
        return False
    for c in spec.containers:
        info = latest.get(c.name)
        if info is None or not _exited(info) or should_restart(spec.restart_policy, info):
            return False
    return True


def init_failed(pod: core_pb2.Pod, latest: dict[str, ContainerInfo]) -> bool:
    """An init container failed under restartPolicy Never: the pod fails."""
    if pod.spec.restart_policy != "Never":
        return False
    for c in pod.spec.init_containers:
        info = latest.get(c.name)
        if info is not None and _exited(info) and exit_code(info) != 0:
            return True
    return False


def plan_stop(pod: core_pb2.Pod | None, sandboxes: Sequence[ContainerInfo],
              containers: Sequence[ContainerInfo], *, now: float) -> PodActions:
    """What stopping a pod takes: every container killed (preStop, SIGTERM, the grace
    period, SIGKILL), the sandboxes stopped, then all of it removed and the volumes torn
    down. A pod being deleted (`pod`, at unix time `now`) gets what is left of its
    deletion's grace period and its deletion is confirmed; a pod gone from the apiserver
    (`pod` None: its containers are orphans) gives each container the grace period it
    was started with."""
    actions = PodActions(teardown_volumes=True, confirm_deletion=pod is not None)
    grace = deletion_grace(pod, now) if pod is not None else None
    for info in containers:
        actions.kill[info.id] = ""
        actions.grace[info.id] = grace if grace is not None else started_grace(info)
    actions.stop_sandboxes = [s.id for s in sandboxes]
    actions.remove = [i.id for i in containers]
    actions.remove_sandboxes = [s.id for s in sandboxes]
    return actions


def plan_pod(pod: core_pb2.Pod, sandboxes: Sequence[ContainerInfo],
             containers: Sequence[ContainerInfo], *,
             liveness_failed: Callable[[str], bool],
             backoff_remaining: Callable[[str, float], float]) -> PodActions:
    """`sandboxes` and `containers` are this pod's, in any order. A container killed gets
    the pod's grace period, and the pod wants a sync at once after (what was stopped
    may have to start again)."""
    actions = _plan_running(pod, sandboxes, containers, liveness_failed, backoff_remaining)
    if actions.kill:
        grace = termination_grace(pod)
        actions.grace = {cid: grace for cid in actions.kill}
        actions.retry_after = 0.0
    return actions


def _plan_running(pod: core_pb2.Pod, sandboxes: Sequence[ContainerInfo],
                  containers: Sequence[ContainerInfo],
                  liveness_failed: Callable[[str], bool],
                  backoff_remaining: Callable[[str, float], float]) -> PodActions:
    actions = PodActions()
    # Half-done work goes: each such container is created afresh as the same attempt
    # (its attempt number is free again), so no restart is counted that never happened.
    actions.remove += [i.id for i in containers if never_started(i)]
    containers = [i for i in containers if not never_started(i)]
    sandboxes = sorted(sandboxes, key=lambda s: (s.attempt, s.created_at), reverse=True)
    current = sandboxes[0] if sandboxes and sandboxes[0].state == State.RUNNING else None
    by_name = _by_name(containers)
    # Only containers made in the current sandbox say what runs now; older ones still
    # give restart counts and lastState.
    latest = {name: infos[0] for name, infos in by_name.items()
              if current is not None and infos[0].created_at >= current.created_at}

    actions.remove += [s.id for s in sandboxes[1:]]
    actions.remove += _garbage(by_name)
    known = {c.name for c in pod.spec.init_containers} | {c.name for c in pod.spec.containers}
    for name, infos in by_name.items():
        if name not in known:
            actions.kill.update({i.id: "not in the pod's spec" for i in infos if not _exited(i)})
            actions.remove += [i.id for i in infos if _exited(i)]

    if current is None:
        everything = {name: infos[0] for name, infos in by_name.items()}
        if sandboxes and (pod_finished(pod, everything) or init_failed(pod, everything)):
            return actions  # done: nothing runs again
        actions.create_sandbox = True
        actions.sandbox_attempt = sandboxes[0].attempt + 1 if sandboxes else 0
        for infos in by_name.values():
            actions.kill.update({i.id: "the pod sandbox changed" for i in infos
                                 if not _exited(i)})
        latest = {}
    else:
        actions.sandbox_id = current.id
        if pod_finished(pod, latest) or init_failed(pod, latest):
            # Nothing runs in it again: Kubernetes stops the sandbox of a finished pod;
            # the exited containers stay for their status and logs.
            actions.stop_sandboxes.append(current.id)
            return actions

    if init_failed(pod, latest):
        return actions
    if not _plan_init(pod, by_name, latest, actions, backoff_remaining):
        return actions  # init containers still to run: app containers wait
    for container in pod.spec.containers:
        _plan_app_container(pod, container, by_name, latest.get(container.name), actions,
                            liveness_failed, backoff_remaining)
    return actions


def _by_name(containers: Sequence[ContainerInfo]) -> dict[str, list[ContainerInfo]]:
    out: dict[str, list[ContainerInfo]] = {}
    for info in containers:
        out.setdefault(info.name, []).append(info)
    for infos in out.values():
        infos.sort(key=lambda i: (i.attempt, i.created_at), reverse=True)
    return out


def _garbage(by_name: dict[str, list[ContainerInfo]]) -> list[str]:
    # Keep the newest two of each container: the current one and the one before it,
    # whose state is lastState and whose logs `skiff logs --previous` shows.
    return [i.id for infos in by_name.values() for i in infos[2:] if _exited(i)]


def _next_attempt(by_name: dict[str, list[ContainerInfo]], name: str) -> int:
    infos = by_name.get(name)
    return infos[0].attempt + 1 if infos else 0


def _restart_or_wait(pod: core_pb2.Pod, container: core_pb2.Container, info: ContainerInfo,
                     by_name: dict[str, list[ContainerInfo]], actions: PodActions,
                     backoff_remaining: Callable[[str, float], float], init: bool) -> None:
    key = backoff_key(pod.metadata.uid, container.name)
    wait = backoff_remaining(key, info.finished_at or info.created_at)
    if wait > 0:
        actions.waiting[container.name] = (
            "CrashLoopBackOff",
            f"back-off {_seconds(wait)} restarting failed container={container.name} "
            f"pod={pod.metadata.name}_{pod.metadata.namespace}({pod.metadata.uid})")
        actions.retry_after = min(wait, actions.retry_after or wait)
        return
    actions.start.append((container, _next_attempt(by_name, container.name), init))


def _seconds(value: float) -> str:
    whole = round(value)
    return f"{whole // 60}m{whole % 60}s" if whole >= 60 else f"{whole}s"


def _plan_init(pod: core_pb2.Pod, by_name: dict[str, list[ContainerInfo]],
               latest: dict[str, ContainerInfo], actions: PodActions,
               backoff_remaining: Callable[[str, float], float]) -> bool:
    """Plans the next init container; True when all have succeeded."""
    for container in pod.spec.init_containers:
        info = latest.get(container.name)
        if info is None:
            actions.start.append((container, _next_attempt(by_name, container.name), True))
            return False
        if info.state == State.RUNNING:
            return False
        if exit_code(info) == 0:
            continue
        # Failed: Never was handled by init_failed; OnFailure and Always retry it.
        _restart_or_wait(pod, container, info, by_name, actions, backoff_remaining, True)
        return False
    return True


def _plan_app_container(pod: core_pb2.Pod, container: core_pb2.Container,
                        by_name: dict[str, list[ContainerInfo]], info: ContainerInfo | None,
                        actions: PodActions, liveness_failed: Callable[[str], bool],
                        backoff_remaining: Callable[[str, float], float]) -> None:
    policy = pod.spec.restart_policy or "Always"
    if info is None:
        actions.start.append((container, _next_attempt(by_name, container.name), False))
        return
    if info.state == State.RUNNING:
        if info.labels.get(LABEL_SPEC_HASH) not in (None, spec_hash(container)):
            actions.kill[info.id] = "its spec changed"
            actions.start.append((container, _next_attempt(by_name, container.name), False))
        elif liveness_failed(info.id):
            # Killed now; whether and when it restarts is decided like any other exit,
            # back-off included, on the next sync.
            actions.kill[info.id] = "failed liveness probe"
        return
    if should_restart(policy, info):
        _restart_or_wait(pod, container, info, by_name, actions, backoff_remaining, False)
